//! Reaping workers, from the main loop only (DESIGN §3), in one of two ways:
//! `reap` for a child whose pidfd epoll reported readable
//! (`waitid(P_PIDFD)`, one child looked at), and `reap_children`, the
//! classic `waitpid(-1, WNOHANG)` until it returns 0, after a SIGCHLD when
//! some child has no pidfd. SIGCHLDs coalesce: one flag may stand for many
//! exits, so that call reaps every child that has ended, never just one.
//!
//! `record_end` is where a connection's end is counted and logged, once:
//! when its worker is reaped, or when a pool process (`--model prefork`,
//! `pool/`, whose children this module hands on) reports it.

use std::fmt;
use std::time::Duration;

use crate::handoff::WorkerExit;
use crate::log::{error, info, warning};
use crate::sys::{self, ExitKind, pid_t};

use super::event_loop::Master;
use super::monitor::Counters;
use super::workers::Workers;

impl Master {
    /// Reaps every terminated child (the SIGCHLD scan), each as
    /// [`Master::child_exited`] says.
    pub(super) fn reap_children(&mut self) {
        loop {
            match sys::reap_one_child() {
                Ok(Some((pid, how))) => self.child_exited(pid, how),
                Ok(None) => return,
                Err(e) => {
                    error!("waitpid failed: {e}");
                    return;
                }
            }
        }
    }

    /// Whether some child can only be reaped by the SIGCHLD scan.
    pub(super) fn reaps_by_scan(&self) -> bool {
        match &self.pool {
            Some(pool) => pool.reaps_by_scan(),
            None => self.workers.without_pidfd() > 0,
        }
    }

    /// Reaps the child whose pidfd (token: its pid) became readable.
    pub(super) fn reap(&mut self, pid: pid_t) {
        // Already reaped by a SIGCHLD scan in this same wake-up.
        let Some(pidfd) = self.workers.pidfd(pid) else {
            return;
        };
        match sys::reap_pidfd(pidfd) {
            Ok(Some(how)) => self.child_exited(pid, how),
            // Readable means ended; a spurious wake-up costs one call.
            Ok(None) => {}
            Err(e) => error!("waitid for worker {pid} failed: {e}"),
        }
    }

    /// A reaped child: a worker, or a pool process (`--model prefork`).
    fn child_exited(&mut self, pid: pid_t, how: ExitKind) {
        if self.pool.is_some() {
            return self.member_exited(pid, how);
        }
        // Out of epoll before the pidfd is closed: epoll forgets a file
        // only when its last descriptor closes, and a child forked a moment
        // ago may still hold a copy, so the reaped pidfd would keep waking
        // the loop (measured: eight wake-ups per connection in the fork
        // model, 312 µs of the master's CPU per connection instead of 165).
        if let Some(pidfd) = self.workers.pidfd(pid) {
            let _ = self.epoll.delete(pidfd);
        }
        let codes = match self.config.worker.program {
            Some(_) => ExitCodes::Program,
            None => ExitCodes::Worker,
        };
        let idled = self.idle_watch.as_mut().is_some_and(|w| w.forget(pid));
        record_end(
            pid,
            how,
            if idled {
                Ending::IdleTimeout
            } else {
                Ending::Exited
            },
            codes,
            &mut self.workers,
            &mut self.counters,
        );
    }
}

/// What a worker's exit code means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCodes {
    /// The worker's own (`WorkerExit`: 3 is the idle timeout, …).
    Worker,
    /// An `--exec` program's: 0 is success, anything else a failure.
    Program,
}

impl ExitCodes {
    fn meaning(self, code: i32) -> Option<WorkerExit> {
        match self {
            ExitCodes::Worker => WorkerExit::from_code(code),
            ExitCodes::Program => (code == 0).then_some(WorkerExit::Done),
        }
    }
}

/// How a connection's end was learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Its worker was reaped.
    Exited,
    /// Its pool process reported the session's end and serves on.
    Finished,
    /// Its `--exec` program was reaped after the master closed the
    /// connection for idleness (`idle.rs`): an idle timeout, however the
    /// program then ended.
    IdleTimeout,
}

impl fmt::Display for Ending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Ending::Exited | Ending::IdleTimeout => "exited",
            Ending::Finished => "finished",
        })
    }
}

/// Ends worker `pid`'s connection, which ended as `how` says: the table
/// forgets it (releasing its address's slot), the counters count it, and
/// one line says how it went.
pub fn record_end(
    pid: pid_t,
    how: ExitKind,
    ending: Ending,
    codes: ExitCodes,
    workers: &mut Workers,
    counters: &mut Counters,
) {
    let worker = workers.remove(pid);
    debug_assert!(
        worker.is_some(),
        "an ended worker ({pid}) must be in the workers table"
    );
    // Formatted only if a line is written: most runs log at warn.
    let (peer, lived): (&dyn fmt::Display, _) = match &worker {
        Some(w) => (&w.peer, w.started.elapsed()),
        None => (&"unknown", Duration::ZERO),
    };
    counters.lifetimes.observe(lived);
    let lived = lived.as_secs_f64();
    let active = workers.len();
    if ending == Ending::IdleTimeout {
        counters.exited_idle += 1;
        let how = match how {
            ExitKind::Code(code) => format!("exited status={code}"),
            ExitKind::Signal(sig) => format!("killed by {}", sys::signal_name(sig)),
        };
        return info!(
            "worker {pid} {how} (idle timeout) peer={peer} lived={lived:.3}s active={active}"
        );
    }
    match how {
        ExitKind::Code(code) => match codes.meaning(code) {
            Some(WorkerExit::Done) => {
                counters.exited_ok += 1;
                info!(
                    "worker {pid} {ending} status={code} peer={peer} lived={lived:.3}s active={active}"
                );
            }
            Some(WorkerExit::IdleTimeout) => {
                counters.exited_idle += 1;
                info!(
                    "worker {pid} {ending} status={code} (idle timeout) peer={peer} lived={lived:.3}s active={active}"
                );
            }
            Some(WorkerExit::IoError | WorkerExit::Usage) | None => {
                counters.exited_error += 1;
                warning!(
                    "worker {pid} {ending} status={code} peer={peer} lived={lived:.3}s active={active}"
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
