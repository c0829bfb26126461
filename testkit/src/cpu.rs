//! How much CPU a process (the master) uses over a stretch of a test: the
//! measure behind "the master does not spin".
//!
//! It reads the kernel's tick counts at the start and end of the stretch
//! and never samples in between, so it costs nothing while the load runs.

use std::fmt;
use std::time::Instant;

use crate::process::cpu_ticks;

/// The CPU a process uses over a stretch of time.
pub struct CpuMeter {
    pid: i32,
    ticks: u64,
    since: Instant,
}

/// CPU seconds used over a wall-clock stretch.
#[derive(Debug, Clone, Copy)]
pub struct CpuShare {
    pub cpu: f64,
    pub wall: f64,
}

impl fmt::Display for CpuShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:.0}% ({:.2}s in {:.2}s)",
            100.0 * self.cpu / self.wall,
            self.cpu,
            self.wall
        )
    }
}

impl CpuMeter {
    /// Starts measuring process `pid` now.
    pub fn start(pid: i32) -> CpuMeter {
        CpuMeter {
            pid,
            ticks: cpu_ticks(pid),
            since: Instant::now(),
        }
    }

    /// What the process used since `start`.
    pub fn share(&self) -> CpuShare {
        // SAFETY: sysconf has no memory effects.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        CpuShare {
            cpu: (cpu_ticks(self.pid) - self.ticks) as f64 / hz,
            wall: self.since.elapsed().as_secs_f64(),
        }
    }
}

/// Asserts that the master used at most `bound` (a share of one core) of
/// CPU in `share`; `when` says during what, for the failure message.
pub fn assert_cpu_bounded(share: CpuShare, bound: f64, when: &str) {
    assert!(
        share.cpu <= bound * share.wall,
        "the master used {share} of one core {when}; the bound is {:.0}%",
        bound * 100.0
    );
}
