//! Admission: whether a new connection gets a worker.
//!
//! Every decision about a connection is taken here, in the master, before a
//! process exists (DESIGN §4, §12): the worker limit, the per-address
//! limit, and what to do at the limit (turn the newcomer away, or leave it
//! waiting in the kernel's backlog), and the access rules' verdict
//! (`--rules`, asked of `rules::Rules` by the caller), and which rate
//! applies (the buckets are `rates.rs`'s). Under `--proxy-protocol` every
//! one of these decisions is taken on the real client's address, which
//! `pending.rs` reads from the balancer's header first; its own refusals
//! (an untrusted source, a bad or slow header) are [`Refusal::Proxy`].
//!
//! This module only decides. It accepts, closes, counts and logs nothing:
//! the loop acts on its answer.

use std::fmt;
use std::net::IpAddr;

use crate::cli::OnFull;
use crate::rules::{Decision, Prefix, Rate, RateLimit, Verdict};

use super::pending::ProxyRefusal;
use super::throttle::Kind;
use super::workers::Workers;

/// The limits a connection is admitted under.
#[derive(Debug, Clone)]
pub struct Admission {
    /// Most workers at once (`--max-workers`, at least 1).
    pub max_workers: usize,
    /// Most workers for one client address; 0 is no limit.
    pub max_per_ip: usize,
    /// New connections from one address per unit of time
    /// (`--max-rate-per-ip`); `None` is no limit.
    pub max_rate_per_ip: Option<Rate>,
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
    /// The address opened more than `rate` connections (`--max-rate-per-ip`
    /// or its rule's).
    Rate { ip: IpAddr, rate: Rate },
    /// An access rule (`--rules`) denies the address: the rule's line and
    /// prefix, or `None` for the file's default.
    Rule { matched: Option<(usize, Prefix)> },
    /// `--proxy-protocol`: no usable PROXY header (`pending.rs`).
    Proxy(ProxyRefusal),
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

    /// Whether a client from `ip` may have a worker now, the access rules
    /// having said `rule` of it: a denial first (whatever the load), then
    /// the worker limit, then the per-address limit (the rule's, if it
    /// sets one).
    pub fn admit(&self, workers: &Workers, ip: IpAddr, rule: &Decision) -> Result<(), Refusal> {
        if rule.verdict == Verdict::Deny {
            return Err(Refusal::Rule {
                matched: rule.matched,
            });
        }
        if self.is_full(workers) {
            return Err(self.full(workers));
        }
        let max = rule.max_per_ip.map_or(self.max_per_ip, |n| n as usize);
        let active = workers.count_from(ip);
        if max > 0 && active >= max {
            return Err(Refusal::PerIp { ip, active, max });
        }
        Ok(())
    }

    /// The rate that applies to a client the rules said `rule` of: its
    /// rule's, else `--max-rate-per-ip`; `None` is no limit.
    pub fn rate_for(&self, rule: &Decision) -> Option<Rate> {
        match rule.rate {
            Some(RateLimit::Limited(rate)) => Some(rate),
            Some(RateLimit::Unlimited) => None,
            None => self.max_rate_per_ip,
        }
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
            Refusal::Rule { .. } => Kind::RejectedRule,
            Refusal::Rate { .. } => Kind::RejectedRate,
            Refusal::Proxy(_) => Kind::RejectedProxy,
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
            Refusal::Rate { ip, rate } => write!(
                f,
                "rate limit reached for {ip} (max_rate_per_ip={}/{}s)",
                rate.connections, rate.secs
            ),
            Refusal::Rule {
                matched: Some((line, prefix)),
            } => write!(f, "denied by the access rule on line {line} ({prefix})"),
            Refusal::Rule { matched: None } => f.write_str("denied by the access rules' default"),
            Refusal::Proxy(why) => why.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::rules::Rules;
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
            max_rate_per_ip: None,
            on_full: OnFull::Reject,
        };
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let no_rules = Rules::default();
        let (rule_a, rule_b) = (no_rules.decide(a), no_rules.decide(b));
        let two_from_a = table(&["10.0.0.1:1", "10.0.0.1:2"]);
        assert_eq!(admission.admit(&two_from_a, b, &rule_b), Ok(()));
        assert_eq!(
            admission.admit(&two_from_a, a, &rule_a),
            Err(Refusal::PerIp {
                ip: a,
                active: 2,
                max: 2
            })
        );
        let full = table(&["10.0.0.1:1", "10.0.0.1:2", "10.0.0.2:1"]);
        assert_eq!(
            admission.admit(&full, b, &rule_b),
            Err(Refusal::Full { active: 3, max: 3 })
        );
        assert!(!admission.defers(&full), "reject never defers");
    }

    #[test]
    fn defer_stops_accepting_only_at_the_limit() {
        let admission = Admission {
            max_workers: 1,
            max_per_ip: 0,
            max_rate_per_ip: None,
            on_full: OnFull::Defer,
        };
        assert!(!admission.defers(&table(&[])));
        assert!(admission.defers(&table(&["[::1]:5"])));
    }

    /// A denial comes before every limit; a rule's per-address limit
    /// replaces the global one for its addresses only.
    #[test]
    fn rules_deny_first_and_replace_the_per_address_limit() {
        let admission = Admission {
            max_workers: 1,
            max_per_ip: 1,
            max_rate_per_ip: None,
            on_full: OnFull::Reject,
        };
        let rules = Rules::parse(
            b"deny 10.9.0.0/16\nallow 10.1.0.0/16 max-per-ip=3\n",
            "test.rules",
        )
        .unwrap();
        let full = table(&["10.0.0.1:1"]);
        let denied: IpAddr = "10.9.1.1".parse().unwrap();
        assert!(matches!(
            admission.admit(&full, denied, &rules.decide(denied)),
            Err(Refusal::Rule {
                matched: Some((1, _))
            })
        ));
        let roomy = Admission {
            max_workers: 10,
            ..admission
        };
        let office: IpAddr = "10.1.0.1".parse().unwrap();
        let two = table(&["10.1.0.1:1", "10.1.0.1:2"]);
        assert_eq!(roomy.admit(&two, office, &rules.decide(office)), Ok(()));
        let other: IpAddr = "10.2.0.1".parse().unwrap();
        let one = table(&["10.2.0.1:1"]);
        assert!(matches!(
            roomy.admit(&one, other, &rules.decide(other)),
            Err(Refusal::PerIp { max: 1, .. })
        ));
    }
}
