//! Reaping workers, from the main loop only (DESIGN §3), in one of two ways:
//! `reap_worker` for a worker whose pidfd epoll reported readable
//! (`waitid(P_PIDFD)`, one child looked at), and `reap_children`, the
//! classic `waitpid(-1, WNOHANG)` until it returns 0, after a SIGCHLD when
//! some worker has no pidfd. SIGCHLDs coalesce: one flag may stand for many
//! exits, so that call reaps every child that has ended, never just one.

use std::time::Duration;

use crate::handoff::WorkerExit;
use crate::log::{error, info, warning};
use crate::sys::{self, ExitKind, pid_t};

use super::monitor::Counters;
use super::workers::Workers;

/// Reaps every terminated child, updating the table and the counters and
/// logging how each one ended.
pub fn reap_children(workers: &mut Workers, counters: &mut Counters) {
    loop {
        match sys::reap_one_child() {
            Ok(Some((pid, how))) => record_exit(pid, how, workers, counters),
            Ok(None) => return,
            Err(e) => {
                error!("waitpid failed: {e}");
                return;
            }
        }
    }
}

/// Reaps worker `pid` after its pidfd became readable.
pub fn reap_worker(pid: pid_t, workers: &mut Workers, counters: &mut Counters) {
    // Already reaped by a SIGCHLD scan in this same wake-up.
    let Some(pidfd) = workers.pidfd(pid) else {
        return;
    };
    match sys::reap_pidfd(pidfd) {
        Ok(Some(how)) => record_exit(pid, how, workers, counters),
        // Readable means ended; a spurious wake-up costs one call.
        Ok(None) => {}
        Err(e) => error!("waitid for worker {pid} failed: {e}"),
    }
}

fn record_exit(pid: pid_t, how: ExitKind, workers: &mut Workers, counters: &mut Counters) {
    let worker = workers.remove(pid);
    debug_assert!(
        worker.is_some(),
        "a reaped pid ({pid}) must be in the workers table"
    );
    let (peer, lived) = match &worker {
        Some(w) => (w.peer.to_string(), w.started.elapsed()),
        None => ("unknown".to_string(), Duration::ZERO),
    };
    counters.lifetimes.observe(lived);
    let lived = lived.as_secs_f64();
    let active = workers.len();
    match how {
        ExitKind::Code(code) => match WorkerExit::from_code(code) {
            Some(WorkerExit::Done) => {
                counters.exited_ok += 1;
                info!(
                    "worker {pid} exited status={code} peer={peer} lived={lived:.3}s active={active}"
                );
            }
            Some(WorkerExit::IdleTimeout) => {
                counters.exited_idle += 1;
                info!(
                    "worker {pid} exited status={code} (idle timeout) peer={peer} lived={lived:.3}s active={active}"
                );
            }
            Some(WorkerExit::IoError | WorkerExit::Usage) | None => {
                counters.exited_error += 1;
                warning!(
                    "worker {pid} exited status={code} peer={peer} lived={lived:.3}s active={active}"
                );
            }
        },
        ExitKind::Signal(sig) => {
            counters.exited_signal += 1;
            warning!(
                "worker {pid} killed by {} peer={peer} lived={lived:.3}s active={active}",
                sys::signal_name(sig)
            );
        }
    }
}
