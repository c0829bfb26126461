//! How long workers lived: a histogram with fixed buckets, observed once per
//! worker when it is reaped (`reap.rs`), exposed by the metrics endpoint as
//! `mpecho_worker_lifetime_seconds`.
//!
//! An observation is a search in a fixed table of 22 bounds and two
//! additions: no allocation, no system call, nothing that grows with the
//! number of workers, because it runs on the reaping path. This module
//! only counts; it formats nothing.

use std::time::Duration;

/// Upper bounds of the buckets, in seconds (each bucket counts lifetimes
/// `<=` its bound; a last, implicit `+Inf` bucket counts them all).
///
/// A connection through a fresh worker lives about a millisecond (spawn,
/// one echo, exit: 0.6–1 ms on the development machine), churning clients
/// some milliseconds, interactive sessions seconds to minutes, and a held
/// connection up to hours. Below 10 s the bounds follow the usual 1–2.5–5
/// steps per decade, where a lifetime says what the server itself costs
/// (1 ms is the floor: a worker cannot live much less). Above, they are the
/// durations operators reason in: a minute, two, five (the default
/// `--idle-timeout`, so that a worker closed for idleness, which lives at
/// least that long, stands out), ten and thirty minutes, one, two and four
/// hours. 22 bounds keep a scrape's histogram at 25 lines.
pub const BOUNDS: [f64; 22] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0,
];

/// The histogram: a count per bucket (not cumulative), the sum and count.
#[derive(Debug, Default, Clone)]
pub struct Lifetimes {
    /// `in_bucket[i]` counts lifetimes in `(BOUNDS[i-1], BOUNDS[i]]`; the
    /// last one, those above every bound.
    in_bucket: [u64; BOUNDS.len() + 1],
    sum: Duration,
    count: u64,
}

impl Lifetimes {
    /// Records one worker that lived `lived`.
    pub fn observe(&mut self, lived: Duration) {
        let secs = lived.as_secs_f64();
        let bucket = BOUNDS.partition_point(|&bound| bound < secs);
        self.in_bucket[bucket] += 1;
        self.sum = self.sum.saturating_add(lived);
        self.count += 1;
    }

    /// How many lifetimes were observed.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The total of every lifetime observed.
    pub fn sum(&self) -> Duration {
        self.sum
    }

    /// The histogram as numbers: sum, count and the count per bucket (for
    /// the state an upgrade hands over, `handover.rs`).
    pub fn parts(&self) -> (Duration, u64, &[u64]) {
        (self.sum, self.count, &self.in_bucket)
    }

    /// The histogram [`Lifetimes::parts`] gave; `None` if the buckets are
    /// not this build's number of buckets.
    pub fn from_parts(sum: Duration, count: u64, buckets: &[u64]) -> Option<Lifetimes> {
        Some(Lifetimes {
            in_bucket: buckets.try_into().ok()?,
            sum,
            count,
        })
    }

    /// The cumulative counts, as the exposition format wants them: for each
    /// bound, the lifetimes at or below it, then `None` (`+Inf`) with all.
    pub fn cumulative(&self) -> impl Iterator<Item = (Option<f64>, u64)> + '_ {
        let bounds = BOUNDS.iter().copied().map(Some).chain([None]);
        bounds
            .zip(self.in_bucket.iter())
            .scan(0u64, |total, (bound, &n)| {
                *total += n;
                Some((bound, *total))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_increasing() {
        assert!(BOUNDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn a_lifetime_on_a_bound_counts_in_that_bucket_and_all_above() {
        let mut h = Lifetimes::default();
        h.observe(Duration::from_millis(1));
        h.observe(Duration::from_micros(1_001));
        h.observe(Duration::from_secs(300));
        h.observe(Duration::from_secs(86_400));
        let cumulative: Vec<_> = h.cumulative().collect();
        assert_eq!(cumulative.len(), BOUNDS.len() + 1);
        assert_eq!(cumulative[0], (Some(0.001), 1));
        assert_eq!(cumulative[1], (Some(0.0025), 2));
        let at_300 = cumulative.iter().find(|(b, _)| *b == Some(300.0));
        assert_eq!(at_300, Some(&(Some(300.0), 3)));
        assert_eq!(cumulative.last(), Some(&(None, 4)));
        assert!(cumulative.windows(2).all(|w| w[0].1 <= w[1].1));
        assert_eq!(h.count(), 4);
        assert_eq!(
            h.sum(),
            Duration::from_micros(2_001) + Duration::from_secs(86_700)
        );
    }
}
