//! Admission: whether a new connection gets a worker.
//!
//! Every decision about a connection is taken here, in the master, before a
//! process exists (DESIGN §4, §12): the worker limit, the per-address
//! limit, and what to do at the limit (turn the newcomer away, or leave it
//! waiting in the kernel's backlog). Access rules, rate limits and the
//! real client address of a PROXY header belong here too.
//!
//! This module only decides. It accepts, closes, counts and logs nothing:
//! the loop acts on its answer.

use std::fmt;
use std::net::IpAddr;

use crate::cli::OnFull;

use super::throttle::Kind;
use super::workers::Workers;

/// The limits a connection is admitted under.
#[derive(Debug, Clone)]
pub struct Admission {
    /// Most workers at once (`--max-workers`, at least 1).
    pub max_workers: usize,
    /// Most workers for one client address; 0 is no limit.
    pub max_per_ip: usize,
    pub on_full: OnFull,
}

/// Why a connection was turned away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The worker limit is reached.
    Full { active: usize, max: usize },
    /// The client's address has `max` workers already.
    PerIp {
        ip: IpAddr,
        active: usize,
        max: usize,
    },
}

impl Admission {
    /// Whether the worker limit is reached: the one test of it.
    pub fn is_full(&self, workers: &Workers) -> bool {
        workers.len() + workers.reserved() >= self.max_workers
    }

    /// Whether the master should stop accepting for now, leaving new
    /// clients in the backlog until a worker exits (`--on-full defer`).
    pub fn defers(&self, workers: &Workers) -> bool {
        self.on_full == OnFull::Defer && self.is_full(workers)
    }

    /// Whether a client from `ip` may have a worker now.
    pub fn admit(&self, workers: &Workers, ip: IpAddr) -> Result<(), Refusal> {
        if self.is_full(workers) {
            return Err(self.full(workers));
        }
        let active = workers.count_from(ip);
        if self.max_per_ip > 0 && active >= self.max_per_ip {
            return Err(Refusal::PerIp {
                ip,
                active,
                max: self.max_per_ip,
            });
        }
        Ok(())
    }

    /// The refusal of a full server, as logged on rejection and deferral.
    pub fn full(&self, workers: &Workers) -> Refusal {
        Refusal::Full {
            active: workers.len(),
            max: self.max_workers,
        }
    }
}

impl Refusal {
    /// The kind of warning it is logged as (at most one line a second).
    pub fn kind(&self) -> Kind {
        match self {
            Refusal::Full { .. } => Kind::RejectedFull,
            Refusal::PerIp { .. } => Kind::RejectedPerIp,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Full { active, max } => write!(
                f,
                "worker limit reached ({active} active, max_workers={max})"
            ),
            Refusal::PerIp { ip, active, max } => write!(
                f,
                "per-IP limit reached ({active} active from {ip}, max_per_ip={max})"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::server::workers::Worker;

    fn table(peers: &[&str]) -> Workers {
        let mut workers = Workers::default();
        for (pid, peer) in peers.iter().enumerate() {
            let worker = Worker {
                peer: peer.parse().unwrap(),
                started: Instant::now(),
                pidfd: None,
            };
            workers.insert(pid as i32 + 100, worker);
        }
        workers
    }

    #[test]
    fn the_worker_limit_comes_before_the_per_address_limit() {
        let admission = Admission {
            max_workers: 3,
            max_per_ip: 2,
            on_full: OnFull::Reject,
        };
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let two_from_a = table(&["10.0.0.1:1", "10.0.0.1:2"]);
        assert_eq!(admission.admit(&two_from_a, b), Ok(()));
        assert_eq!(
            admission.admit(&two_from_a, a),
            Err(Refusal::PerIp {
                ip: a,
                active: 2,
                max: 2
            })
        );
        let full = table(&["10.0.0.1:1", "10.0.0.1:2", "10.0.0.2:1"]);
        assert_eq!(
            admission.admit(&full, b),
            Err(Refusal::Full { active: 3, max: 3 })
        );
        assert!(!admission.defers(&full), "reject never defers");
    }

    #[test]
    fn defer_stops_accepting_only_at_the_limit() {
        let admission = Admission {
            max_workers: 1,
            max_per_ip: 0,
            on_full: OnFull::Defer,
        };
        assert!(!admission.defers(&table(&[])));
        assert!(admission.defers(&table(&["[::1]:5"])));
    }
}
