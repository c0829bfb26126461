//! Graceful shutdown (DESIGN §7): after SIGTERM or SIGINT the listener is
//! already closed by the loop; here every worker is asked to finish, and
//! whoever is still alive when the grace period ends is killed.
//!
//! This module only sends signals and keeps the deadline; reaping stays in
//! `reap.rs`, and the loop exits once the workers table is empty, so no
//! time is spent waiting out the grace period when everyone left early.

use std::time::{Duration, Instant};

use crate::log::{info, warning};
use crate::sys;

use super::workers::{Worker, Workers};

/// The master is draining: no listener, waiting for workers to exit.
pub struct Draining {
    deadline: Instant,
    killed: bool,
}

/// Starts the drain: SIGTERM (then SIGCONT) to every worker.
pub fn begin_shutdown(workers: &Workers, cause: &str, grace: Duration) -> Draining {
    info!(
        "shutting down ({cause}): listener closed, asking {} workers to finish, grace {}s",
        workers.len(),
        grace.as_secs_f64()
    );
    for (pid, worker) in workers.iter() {
        // SIGCONT after SIGTERM: a stopped worker keeps the SIGTERM pending
        // and only acts on it once continued.
        signal_worker(pid, worker, libc::SIGTERM);
        signal_worker(pid, worker, libc::SIGCONT);
    }
    Draining {
        deadline: Instant::now() + grace,
        killed: false,
    }
}

impl Draining {
    /// When the loop must wake to enforce the grace period, if still pending.
    pub fn deadline(&self) -> Option<Instant> {
        (!self.killed).then_some(self.deadline)
    }

    /// Whether the remaining workers were killed (the grace period is over,
    /// or a second stop signal came).
    pub fn killed(&self) -> bool {
        self.killed
    }

    /// Kills the remaining workers once the grace period is over.
    pub fn on_tick(&mut self, now: Instant, workers: &Workers) {
        if !self.killed && now >= self.deadline {
            self.kill_all(workers, "grace period over");
        }
    }

    /// A second SIGTERM/SIGINT while draining: the operator does not want to
    /// wait for the grace period.
    pub fn escalate(&mut self, workers: &Workers, cause: &str) {
        if !self.killed {
            self.kill_all(workers, cause);
        }
    }

    fn kill_all(&mut self, workers: &Workers, why: &str) {
        self.killed = true;
        if workers.is_empty() {
            return;
        }
        warning!("{why}: killing {} remaining workers", workers.len());
        for (pid, worker) in workers.iter() {
            signal_worker(pid, worker, libc::SIGKILL);
        }
    }
}

fn signal_worker(pid: sys::pid_t, worker: &Worker, sig: libc::c_int) {
    // A worker in the table exists at least as a zombie until we reap it,
    // so ESRCH cannot happen; other errors (EPERM) are worth a line.
    if let Err(e) = worker.signal(pid, sig) {
        warning!(
            "could not send {} to worker {pid}: {e}",
            sys::signal_name(sig)
        );
    }
}
