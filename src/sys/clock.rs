//! The monotonic clock as a number of microseconds: what a service manager
//! compares timestamps with (`MONOTONIC_USEC=` in a reload notification).
//! `std::time::Instant` reads the same clock but never shows its value.
//!
//! Only reads the clock; never sleeps, never decides what a time means.

use std::io;

use super::check;

/// `CLOCK_MONOTONIC` now, in microseconds.
pub fn monotonic_usec() -> io::Result<u64> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec on this frame, and
    // clock_gettime writes nothing else; CLOCK_MONOTONIC always exists on
    // Linux.
    check(unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) })?;
    Ok(now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_monotonic_clock_moves_forward_with_instant() {
        let before = monotonic_usec().unwrap();
        let started = std::time::Instant::now();
        while started.elapsed() < std::time::Duration::from_millis(2) {}
        let after = monotonic_usec().unwrap();
        assert!(after >= before + 2_000, "{before} → {after}");
    }
}
