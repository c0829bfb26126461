//! The workers table: every live worker the master started, by pid.
//!
//! A pid enters the table right after a successful spawn and leaves it only
//! when `waitpid` reports it (see `reap.rs`). The table never silently stops
//! tracking: the worker limit is checked against it *before* spawning
//! (DESIGN §4), so at shutdown the master can signal every worker it owns.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use crate::sys::pid_t;

/// What the master remembers about one worker.
#[derive(Debug, Clone)]
pub struct Worker {
    pub peer: SocketAddr,
    pub started: Instant,
}

#[derive(Debug, Default)]
pub struct Workers {
    live: HashMap<pid_t, Worker>,
    peak: usize,
}

impl Workers {
    pub fn with_capacity(capacity: usize) -> Workers {
        Workers {
            live: HashMap::with_capacity(capacity),
            peak: 0,
        }
    }

    pub fn insert(&mut self, pid: pid_t, worker: Worker) {
        let previous = self.live.insert(pid, worker);
        debug_assert!(
            previous.is_none(),
            "pid {pid} was spawned while still in the table"
        );
        self.peak = self.peak.max(self.live.len());
    }

    /// Forgets a reaped worker, returning what was known about it.
    pub fn remove(&mut self, pid: pid_t) -> Option<Worker> {
        self.live.remove(&pid)
    }

    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Most workers alive at once since start.
    pub fn peak(&self) -> usize {
        self.peak
    }

    pub fn pids(&self) -> impl Iterator<Item = pid_t> + '_ {
        self.live.keys().copied()
    }
}
