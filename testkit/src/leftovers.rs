//! Workers that must not outlive a test: those named in the logs of the
//! servers a test watches (`Leftovers`), checked at the end and killed on
//! drop, and those orphaned by a killed master, adopted by the test as a
//! child subreaper (`Subreaper`) and reaped by it (`reap_adopted`).
//!
//! Everything here cleans up on drop, also when the test fails, and never
//! kills a process that is not an mpecho worker: a pid read from an old
//! log may since have been given to some other process.

use std::collections::BTreeSet;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::log::worker_pids_in;
use crate::process::{is_worker_process, proc_state, send_signal};
use crate::server::Server;
use crate::wait::poll_for;

/// The workers named in the logs of the servers it watches: checked at the
/// end of a scenario, and killed on drop if any still runs, so that a
/// failing scenario leaves nothing behind (the servers' own drop stops the
/// masters). Declare it after the servers, so that it is dropped first.
#[derive(Default)]
pub struct Leftovers {
    logs: Vec<PathBuf>,
    /// Every pid read so far: a log is gone once its server is dropped.
    seen: BTreeSet<i32>,
}

impl Leftovers {
    /// Watches the workers of `server` (which must log to a file).
    pub fn watch(&mut self, server: &Server) {
        self.logs.push(server.log_path().to_path_buf());
    }

    fn pids(&mut self) -> BTreeSet<i32> {
        for path in &self.logs {
            let log = std::fs::read_to_string(path).unwrap_or_default();
            self.seen.extend(worker_pids_in(&log));
        }
        self.seen.clone()
    }

    /// Asserts that none of the workers is left: running (an orphan) or a
    /// zombie of one of `masters` or of this test. Returns how many were
    /// checked.
    pub fn assert_none_left(&mut self, masters: &[i32]) -> usize {
        let me = std::process::id() as i32;
        let pids = self.pids();
        let left: Vec<(i32, char, i32)> = pids
            .iter()
            .filter_map(|&pid| proc_state(pid).map(|(state, ppid)| (pid, state, ppid)))
            .filter(|&(pid, state, ppid)| {
                is_worker_process(pid) || (state == 'Z' && (masters.contains(&ppid) || ppid == me))
            })
            .collect();
        assert!(
            left.is_empty(),
            "workers left behind (pid, state, parent): {left:?}"
        );
        pids.len()
    }
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        let me = std::process::id() as i32;
        for pid in self.pids() {
            if is_worker_process(pid) {
                send_signal(pid, libc::SIGKILL);
            }
            if proc_state(pid).is_some_and(|(_, ppid)| ppid == me) {
                reap_adopted(pid, Duration::from_secs(1));
            }
        }
    }
}

/// What became of a worker adopted after its master died.
#[derive(Debug)]
pub enum Reaped {
    /// It exited and we reaped it: its wait status.
    Status(i32),
    /// It is not our child (reaped by its master before it died).
    NotOurs,
    StillRunning,
}

/// Waits up to `timeout` for child `pid` to exit, and reaps it.
pub fn reap_adopted(pid: i32, timeout: Duration) -> Reaped {
    poll_for(timeout, || {
        let mut status = 0;
        // SAFETY: waitpid writes only to `status`.
        match unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } {
            0 => None,
            -1 => Some(Reaped::NotOurs),
            _ => Some(Reaped::Status(status)),
        }
    })
    .unwrap_or(Reaped::StillRunning)
}

/// Makes this test process a child subreaper for as long as it lives:
/// workers orphaned by a killed master are then adopted by the test (and
/// reaped by it, with their exit status checked) rather than by whatever
/// runs as pid 1.
pub struct Subreaper;

impl Subreaper {
    pub fn become_one() -> Subreaper {
        // SAFETY: prctl with integer arguments only.
        let ret = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        assert_eq!(
            ret,
            0,
            "become a child subreaper: {}",
            io::Error::last_os_error()
        );
        Subreaper
    }
}

impl Drop for Subreaper {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) };
    }
}
