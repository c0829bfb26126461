//! Rate-limited warnings: a flood must not become a disk-filling log.
//!
//! Each kind of repeated warning (global rejections, per-IP rejections,
//! PROXY header refusals, accept errors, spawn failures, deferrals) gets at most one line per
//! second. What is held back is counted, and the count is written in a line
//! of its own when that second is over (a sustained flood thus writes one
//! full line and one summary a second per kind): the event loop wakes for it
//! (`next_flush`), so the summary appears within about a second after a
//! burst ends, not only at the next event. Counters in the figures are kept
//! by the caller and never throttled.

use std::fmt;
use std::time::{Duration, Instant};

use crate::log::{self, Level};

/// At most one line per kind per this interval.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// The kinds of warning throttled separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    RejectedFull,
    RejectedPerIp,
    RejectedRule,
    RejectedRate,
    RejectedProxy,
    AcceptError,
    SpawnFailure,
    Deferral,
}

const KINDS: [Kind; 8] = [
    Kind::RejectedFull,
    Kind::RejectedPerIp,
    Kind::RejectedRule,
    Kind::RejectedRate,
    Kind::RejectedProxy,
    Kind::AcceptError,
    Kind::SpawnFailure,
    Kind::Deferral,
];

impl Kind {
    fn index(self) -> usize {
        self as usize
    }

    /// How the summary line names what was held back.
    fn describe(self) -> &'static str {
        match self {
            Kind::RejectedFull => "rejected connections (worker limit)",
            Kind::RejectedPerIp => "rejected connections (per-IP limit)",
            Kind::RejectedRule => "rejected connections (access rules)",
            Kind::RejectedRate => "rejected connections (rate limit)",
            Kind::RejectedProxy => "rejected connections (PROXY protocol)",
            Kind::AcceptError => "accept errors",
            Kind::SpawnFailure => "worker start failures",
            Kind::Deferral => "deferrals (worker limit)",
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Slot {
    /// When this kind last wrote a full warning line.
    last_line: Option<Instant>,
    suppressed: u64,
    level: Option<Level>,
}

#[derive(Debug, Default)]
pub struct Throttle {
    slots: [Slot; KINDS.len()],
}

impl Throttle {
    /// Writes the line now if this kind has not written one in the last
    /// second; otherwise counts it for the next summary.
    pub fn log(&mut self, kind: Kind, level: Level, now: Instant, args: fmt::Arguments<'_>) {
        let slot = &mut self.slots[kind.index()];
        if slot
            .last_line
            .is_some_and(|last| now.duration_since(last) < INTERVAL)
        {
            slot.suppressed += 1;
            slot.level = Some(level);
            return;
        }
        // The loop may see this event before the timer that was due for the
        // previous second's summary: write that summary first, in order.
        write_summary(kind, slot);
        slot.last_line = Some(now);
        log::write(level, args);
    }

    /// When the next summary is due, if anything is held back.
    pub fn next_flush(&self) -> Option<Instant> {
        self.slots
            .iter()
            .filter(|s| s.suppressed > 0)
            .filter_map(|s| s.last_line.map(|t| t + INTERVAL))
            .min()
    }

    /// Writes the summary of every kind whose second is over.
    ///
    /// The summary does not use up the kind's line: under a sustained flood
    /// the next event is written in full again, so the log keeps naming
    /// who is flooding.
    pub fn flush(&mut self, now: Instant) {
        for kind in KINDS {
            let slot = &mut self.slots[kind.index()];
            if slot
                .last_line
                .is_some_and(|last| now.duration_since(last) >= INTERVAL)
            {
                write_summary(kind, slot);
            }
        }
    }

    /// Writes every pending summary now, due or not: nothing held back may
    /// be lost when the process exits.
    pub fn flush_all(&mut self) {
        for kind in KINDS {
            write_summary(kind, &mut self.slots[kind.index()]);
        }
    }
}

fn write_summary(kind: Kind, slot: &mut Slot) {
    if slot.suppressed == 0 {
        return;
    }
    log::write(
        slot.level.unwrap_or(Level::Warn),
        format_args!(
            "suppressed {} more {} in the last {}s",
            slot.suppressed,
            kind.describe(),
            INTERVAL.as_secs()
        ),
    );
    slot.suppressed = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_second_then_a_summary() {
        let t0 = Instant::now();
        let mut throttle = Throttle::default();
        throttle.log(Kind::RejectedFull, Level::Warn, t0, format_args!("first"));
        for i in 1..=5 {
            throttle.log(
                Kind::RejectedFull,
                Level::Warn,
                t0 + Duration::from_millis(i * 100),
                format_args!("again"),
            );
        }
        // Another kind is not held back by the first.
        throttle.log(Kind::AcceptError, Level::Error, t0, format_args!("other"));
        assert_eq!(throttle.slots[Kind::RejectedFull.index()].suppressed, 5);
        assert_eq!(throttle.slots[Kind::AcceptError.index()].suppressed, 0);
        assert_eq!(throttle.next_flush(), Some(t0 + INTERVAL));
        throttle.flush(t0 + Duration::from_millis(900));
        assert_eq!(throttle.slots[Kind::RejectedFull.index()].suppressed, 5);
        throttle.flush(t0 + INTERVAL);
        assert_eq!(throttle.slots[Kind::RejectedFull.index()].suppressed, 0);
        assert_eq!(throttle.next_flush(), None);
        // Right after the summary, the next event is written in full.
        let later = t0 + INTERVAL + Duration::from_millis(1);
        throttle.log(Kind::RejectedFull, Level::Warn, later, format_args!("next"));
        assert_eq!(
            throttle.slots[Kind::RejectedFull.index()].last_line,
            Some(later)
        );
        assert_eq!(throttle.slots[Kind::RejectedFull.index()].suppressed, 0);
    }
}
