//! The workers table: every live worker the master started, by pid, with
//! how many come from each client address. In `--model prefork` an entry is
//! a pool process while it serves a client (its connection, not the
//! process: it leaves when the client does), and `reserve` counts the pool
//! processes on their way out, which hold a slot of `--max-workers` too.
//!
//! A pid enters the table right after a successful spawn (or hand-over to
//! a pool process) and leaves it only through `reap::record_end`: when it
//! is reaped (`waitid` on its pidfd, or `waitpid` for a worker without
//! one), or when its pool process reports the client gone. Every way a
//! connection can end (exit, crash, SIGKILL, shutdown, a report) goes
//! through that one removal, so a per-address slot is released exactly
//! once. The table never silently
//! stops tracking: the limits are checked against it *before* spawning
//! (DESIGN §4), so at shutdown the master can signal every worker it owns.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Instant;

use crate::sys::{self, pid_t};

/// What the master remembers about one worker.
#[derive(Debug)]
pub struct Worker {
    /// The client's address, IPv4-mapped IPv6 already shown as IPv4.
    pub peer: SocketAddr,
    pub started: Instant,
    /// Signals go through this when we have it, so they can never hit a
    /// process that merely inherited the pid number. Without one (the
    /// master was out of descriptors when the worker started) `kill` is
    /// still safe: a pid stays ours until we reap it.
    pub pidfd: Option<OwnedFd>,
}

impl Worker {
    pub fn signal(&self, pid: pid_t, sig: libc::c_int) -> io::Result<()> {
        match &self.pidfd {
            Some(fd) => sys::pidfd_send_signal(fd.as_fd(), sig),
            None => sys::send_signal(pid, sig),
        }
    }
}

#[derive(Debug, Default)]
pub struct Workers {
    live: HashMap<pid_t, Worker>,
    per_ip: HashMap<IpAddr, usize>,
    peak: usize,
    /// Live workers without a pidfd, which only a SIGCHLD scan can reap.
    without_pidfd: usize,
    /// Processes that hold a slot of `--max-workers` without serving a
    /// client: `--model prefork`'s processes on their way out.
    reserved: usize,
}

impl Workers {
    pub fn with_capacity(capacity: usize) -> Workers {
        Workers {
            live: HashMap::with_capacity(capacity),
            per_ip: HashMap::new(),
            peak: 0,
            without_pidfd: 0,
            reserved: 0,
        }
    }

    pub fn insert(&mut self, pid: pid_t, worker: Worker) {
        *self.per_ip.entry(worker.peer.ip()).or_insert(0) += 1;
        self.without_pidfd += usize::from(worker.pidfd.is_none());
        let previous = self.live.insert(pid, worker);
        debug_assert!(
            previous.is_none(),
            "pid {pid} was spawned while still in the table"
        );
        self.peak = self.peak.max(self.live.len());
    }

    /// Forgets a reaped worker, releasing its address's slot, and returns
    /// what was known about it.
    pub fn remove(&mut self, pid: pid_t) -> Option<Worker> {
        let worker = self.live.remove(&pid)?;
        self.without_pidfd -= usize::from(worker.pidfd.is_none());
        match self.per_ip.entry(worker.peer.ip()) {
            Entry::Occupied(mut count) => {
                *count.get_mut() -= 1;
                if *count.get() == 0 {
                    count.remove();
                }
            }
            Entry::Vacant(_) => {
                debug_assert!(false, "worker {pid}'s address was not counted");
            }
        }
        Some(worker)
    }

    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Carries over the peak an earlier image of this master reached (an
    /// upgrade in place): the figures keep counting from there.
    pub fn carry_peak(&mut self, peak: usize) {
        self.peak = self.peak.max(peak);
    }

    /// Sets how many slots processes without a client hold (see `reserved`).
    pub fn reserve(&mut self, slots: usize) {
        self.reserved = slots;
    }

    /// Slots held by processes without a client.
    pub fn reserved(&self) -> usize {
        self.reserved
    }

    /// Live workers that have no pidfd.
    pub fn without_pidfd(&self) -> usize {
        self.without_pidfd
    }

    /// Live worker `pid`.
    pub fn get(&self, pid: pid_t) -> Option<&Worker> {
        self.live.get(&pid)
    }

    /// The pidfd of live worker `pid`, if it has one.
    pub fn pidfd(&self, pid: pid_t) -> Option<BorrowedFd<'_>> {
        self.live.get(&pid)?.pidfd.as_ref().map(AsFd::as_fd)
    }

    /// Live workers serving clients from `ip`.
    pub fn count_from(&self, ip: IpAddr) -> usize {
        self.per_ip.get(&ip).copied().unwrap_or(0)
    }

    /// Most workers alive at once since start.
    pub fn peak(&self) -> usize {
        self.peak
    }

    pub fn iter(&self) -> impl Iterator<Item = (pid_t, &Worker)> + '_ {
        self.live.iter().map(|(&pid, w)| (pid, w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(peer: &str) -> Worker {
        Worker {
            peer: peer.parse().unwrap(),
            started: Instant::now(),
            pidfd: None,
        }
    }

    #[test]
    fn per_address_slots_are_released_exactly_once() {
        let mut workers = Workers::default();
        workers.insert(10, worker("10.0.0.1:1000"));
        workers.insert(11, worker("10.0.0.1:1001"));
        workers.insert(12, worker("10.0.0.2:1000"));
        let ip = "10.0.0.1".parse().unwrap();
        assert_eq!(workers.count_from(ip), 2);
        assert!(workers.remove(10).is_some());
        assert!(workers.remove(10).is_none());
        assert_eq!(workers.count_from(ip), 1);
        assert!(workers.remove(11).is_some());
        assert_eq!(workers.count_from(ip), 0);
        assert_eq!(workers.per_ip.len(), 1);
        assert_eq!(workers.peak(), 3);
    }
}
