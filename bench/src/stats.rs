//! What a run counts: latency histograms and errors by kind.
//!
//! Recording is allocation-free and O(1) (a histogram is one fixed array
//! of counters, allocated when the run starts), so it can sit on the hot
//! path of every operation. This module never decides what an error is
//! worth or whether a run failed: it only counts.

use std::io;
use std::time::Duration;

/// Sub-buckets per power of two: values are kept to within 1/128 (0.8 %)
/// of what was measured, which is finer than the run-to-run noise of any
/// figure reported, at a fixed 58 × 128 counters (58 KiB) per histogram.
const SUB_BITS: u32 = 7;
const SUB: usize = 1 << SUB_BITS;
/// Groups of SUB buckets: the first holds 0..SUB exactly, then one per
/// power of two up to 2^63 ns.
const GROUPS: usize = 64 - SUB_BITS as usize + 1;

/// Latencies in nanoseconds, log-linear buckets (as HdrHistogram does).
pub struct Histogram {
    counts: Box<[u64]>,
    count: u64,
    sum_ns: u64,
    max_ns: u64,
}

/// The figures a report shows for one histogram, in nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub count: u64,
    pub mean: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Histogram {
    pub fn new() -> Histogram {
        Histogram {
            counts: vec![0; GROUPS * SUB].into_boxed_slice(),
            count: 0,
            sum_ns: 0,
            max_ns: 0,
        }
    }

    pub fn record(&mut self, elapsed: Duration) {
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.counts[bucket(ns)] += 1;
        self.count += 1;
        self.sum_ns = self.sum_ns.saturating_add(ns);
        self.max_ns = self.max_ns.max(ns);
    }

    /// The value at or below which a fraction `q` of the samples lie: the
    /// upper edge of the bucket holding that rank, never above the largest
    /// sample (so the percentiles are ordered and none exceeds max).
    pub fn percentile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (index, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return bucket_top(index).min(self.max_ns);
            }
        }
        self.max_ns
    }

    pub fn summary(&self) -> Summary {
        Summary {
            count: self.count,
            mean: self.sum_ns.checked_div(self.count).unwrap_or(0),
            p50: self.percentile(0.50),
            p90: self.percentile(0.90),
            p99: self.percentile(0.99),
            p999: self.percentile(0.999),
            max: self.max_ns,
        }
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

/// The bucket of a value: exact below SUB; above, the power of two (the
/// group) and the SUB_BITS bits below the leading one.
fn bucket(ns: u64) -> usize {
    if ns < SUB as u64 {
        return ns as usize;
    }
    let exponent = 63 - ns.leading_zeros();
    let shift = exponent - SUB_BITS;
    let sub = (ns >> shift) as usize & (SUB - 1);
    (shift as usize + 1) * SUB + sub
}

/// The largest value that falls in bucket `index`.
fn bucket_top(index: usize) -> u64 {
    let (group, sub) = (index / SUB, (index % SUB) as u64);
    if group == 0 {
        return sub;
    }
    let shift = group as u32 - 1;
    let low = (SUB as u64 + sub) << shift;
    low.saturating_add((1u64 << shift) - 1)
}

/// How an operation failed. Every failure is exactly one of these, and all
/// are reported, zero or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Nothing listens there (a reset answering the SYN).
    Refused,
    /// The connection was reset or aborted by the other side.
    Reset,
    /// A connect or an echo did not finish within the timeout.
    Timeout,
    /// Bytes came back that were not the ones sent: changed, from another
    /// connection or request, too many, or while nothing was outstanding.
    Mismatch,
    /// The server closed the connection before the whole echo was back.
    Eof,
    /// Anything else (no address or port left, no descriptor, …).
    Other,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 6] = [
        ErrorKind::Refused,
        ErrorKind::Reset,
        ErrorKind::Timeout,
        ErrorKind::Mismatch,
        ErrorKind::Eof,
        ErrorKind::Other,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Refused => "refused",
            ErrorKind::Reset => "reset",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Mismatch => "mismatch",
            ErrorKind::Eof => "eof",
            ErrorKind::Other => "other",
        }
    }

    /// The kind of a failed system call on a connection.
    pub fn of_io(e: &io::Error) -> ErrorKind {
        match e.kind() {
            io::ErrorKind::ConnectionRefused => ErrorKind::Refused,
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => ErrorKind::Reset,
            io::ErrorKind::TimedOut => ErrorKind::Timeout,
            io::ErrorKind::UnexpectedEof => ErrorKind::Eof,
            _ => ErrorKind::Other,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Errors counted by kind, with the first message of each kind kept to
/// show the user what it looked like (allocated on the error path only).
#[derive(Debug, Default)]
pub struct ErrorCounts {
    counts: [u64; 6],
    first: [Option<String>; 6],
}

impl ErrorCounts {
    pub fn add(&mut self, kind: ErrorKind, message: impl FnOnce() -> String) {
        let i = kind.index();
        self.counts[i] += 1;
        if self.first[i].is_none() {
            self.first[i] = Some(message());
        }
    }

    pub fn get(&self, kind: ErrorKind) -> u64 {
        self.counts[kind.index()]
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The first message recorded for `kind`, if any error of it happened.
    pub fn first(&self, kind: ErrorKind) -> Option<&str> {
        self.first[kind.index()].as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_tops_are_within_a_bucket() {
        let mut previous = 0;
        for ns in (0..5000u64).chain([1 << 20, (1 << 20) + 12_345, u64::MAX / 3, u64::MAX]) {
            let b = bucket(ns);
            assert!(b < GROUPS * SUB, "bucket {b} of {ns} out of range");
            assert!(bucket_top(b) >= ns, "top of bucket {b} below {ns}");
            if ns >= SUB as u64 {
                assert!(
                    (bucket_top(b) - ns) as f64 <= ns as f64 / SUB as f64,
                    "bucket {b} too wide at {ns}"
                );
            }
            if ns < 5000 {
                assert!(b == previous || b == previous + 1 || ns == 0);
                previous = b;
            }
        }
    }

    #[test]
    fn percentiles_are_ordered_and_close() {
        let mut h = Histogram::new();
        for us in 1..=1000u64 {
            h.record(Duration::from_micros(us));
        }
        let s = h.summary();
        assert_eq!(s.count, 1000);
        assert_eq!(s.max, 1_000_000);
        assert!(s.p50 <= s.p90 && s.p90 <= s.p99 && s.p99 <= s.p999 && s.p999 <= s.max);
        let near = |got: u64, want: u64| (got as f64 - want as f64).abs() <= want as f64 / 100.0;
        assert!(near(s.p50, 500_000), "p50 {}", s.p50);
        assert!(near(s.p90, 900_000), "p90 {}", s.p90);
        assert!(near(s.p99, 990_000), "p99 {}", s.p99);
        assert!(near(s.mean, 500_500), "mean {}", s.mean);
    }

    #[test]
    fn an_empty_histogram_reports_zeros() {
        assert_eq!(Histogram::new().summary(), Summary::default());
    }

    #[test]
    fn errors_keep_their_first_message() {
        let mut errors = ErrorCounts::default();
        errors.add(ErrorKind::Reset, || "first".to_string());
        errors.add(ErrorKind::Reset, || "second".to_string());
        assert_eq!(errors.get(ErrorKind::Reset), 2);
        assert_eq!(errors.first(ErrorKind::Reset), Some("first"));
        assert_eq!(errors.total(), 2);
        assert_eq!(errors.first(ErrorKind::Eof), None);
    }

    #[test]
    fn io_errors_are_classified() {
        let kind = |k| ErrorKind::of_io(&io::Error::from(k));
        assert_eq!(kind(io::ErrorKind::ConnectionRefused), ErrorKind::Refused);
        assert_eq!(kind(io::ErrorKind::ConnectionReset), ErrorKind::Reset);
        assert_eq!(kind(io::ErrorKind::BrokenPipe), ErrorKind::Reset);
        assert_eq!(kind(io::ErrorKind::TimedOut), ErrorKind::Timeout);
        assert_eq!(kind(io::ErrorKind::AddrNotAvailable), ErrorKind::Other);
    }
}
