//! Replaying a master's log: its `accept` and worker-exit lines in order,
//! checked line by line against the table they imply, and a figures line
//! reconciled with that replay and with itself.
//!
//! It only reads; every inconsistency is a panic that quotes the line, so
//! a test that replays a log needs no checks of its own for these.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};

use crate::log::{field_number, log_field};

/// How a worker ended, as the master logged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    Status(i32),
    Signal(String),
}

/// The master's accepts and exits replayed in log order.
#[derive(Debug, Default)]
pub struct Replay {
    /// Every accepted worker with its client's address, in order.
    pub accepted: Vec<(i32, SocketAddr)>,
    /// Every worker exit, in order.
    pub exits: Vec<(i32, Exit)>,
    /// The workers live at the end of the replay.
    pub live: HashMap<i32, SocketAddr>,
    per_ip: HashMap<IpAddr, usize>,
    /// The most workers live at once.
    pub max_active: usize,
    /// The most workers live at once for each client address.
    pub max_per_ip: HashMap<IpAddr, usize>,
}

impl Replay {
    /// How many exits `f` accepts.
    pub fn exits_where(&self, f: impl Fn(&Exit) -> bool) -> u64 {
        self.exits.iter().filter(|(_, e)| f(e)).count() as u64
    }

    /// The workers killed by `signal` (`"SIGKILL"`).
    pub fn killed_by(&self, signal: &str) -> BTreeSet<i32> {
        self.exits
            .iter()
            .filter(|(_, e)| *e == Exit::Signal(signal.to_string()))
            .map(|(pid, _)| *pid)
            .collect()
    }

    /// Whether worker `pid`'s exit is in the log.
    pub fn exited(&self, pid: i32) -> bool {
        self.exits.iter().any(|(p, _)| *p == pid)
    }

    /// Worker pids by their client's address (a port may be reused).
    pub fn workers_by_peer(&self) -> HashMap<SocketAddr, Vec<i32>> {
        let mut map: HashMap<SocketAddr, Vec<i32>> = HashMap::new();
        for (pid, peer) in &self.accepted {
            map.entry(*peer).or_default().push(*pid);
        }
        map
    }
}

/// Replays master `master`'s `accept` and exit lines in `log`, checking each
/// against the table so far: no worker accepted twice while live, no exit
/// of a worker that is not live, every line's `active=` and `peer=` as the
/// replay has them.
pub fn replay(log: &str, master: i32) -> Replay {
    let tag = format!(" master[{master}]: ");
    let mut r = Replay::default();
    for line in log.lines() {
        let Some((_, message)) = line.split_once(&tag) else {
            continue;
        };
        if message.starts_with("accept peer=") {
            let peer: SocketAddr = log_field(line, "peer").parse().expect("peer=");
            let pid: i32 = log_field(line, "worker").parse().expect("worker=");
            assert!(
                r.live.insert(pid, peer).is_none(),
                "worker {pid} accepted while live: {line}"
            );
            r.accepted.push((pid, peer));
            let count = r.per_ip.entry(peer.ip()).or_default();
            *count += 1;
            let max = r.max_per_ip.entry(peer.ip()).or_default();
            *max = (*max).max(*count);
            r.max_active = r.max_active.max(r.live.len());
        } else if let Some(rest) = message.strip_prefix("worker ") {
            let (pid, how) = rest.split_once(' ').expect("worker PID …");
            let exit = if let Some(status) = how.strip_prefix("exited status=") {
                let code = status.split([' ', '(']).next().unwrap_or("");
                Exit::Status(code.parse().expect("a status"))
            } else if let Some(signal) = how.strip_prefix("killed by ") {
                Exit::Signal(signal.split(' ').next().unwrap_or("").to_string())
            } else {
                continue;
            };
            let pid: i32 = pid.parse().expect("a worker pid");
            let peer = r
                .live
                .remove(&pid)
                .unwrap_or_else(|| panic!("exit of worker {pid}, which is not live: {line}"));
            assert_eq!(log_field(line, "peer"), peer.to_string(), "{line}");
            *r.per_ip.get_mut(&peer.ip()).expect("counted address") -= 1;
            r.exits.push((pid, exit));
        } else {
            continue;
        }
        let active: usize = log_field(line, "active").parse().expect("active=");
        assert_eq!(active, r.live.len(), "active= of {line}");
    }
    r
}

/// Checks a figures line of master `master` against itself and against the
/// master's log up to that line; returns the replay.
pub fn reconcile(log: &str, master: i32, figures: &str) -> Replay {
    let upto = log
        .find(figures)
        .unwrap_or_else(|| panic!("figures line not in the log: {figures}"));
    let r = replay(&log[..upto], master);
    let n = |name| field_number(figures, name);
    assert_eq!(
        n("accepted"),
        n("exited_ok") + n("exited_error") + n("exited_signal") + n("exited_idle") + n("active"),
        "accepted = exited + active: {figures}"
    );
    assert_eq!(
        n("rejected"),
        n("rejected_full") + n("rejected_per_ip"),
        "{figures}"
    );
    let checks = [
        ("accepted", r.accepted.len() as u64),
        ("active", r.live.len() as u64),
        ("peak", r.max_active as u64),
        ("exited_ok", r.exits_where(|e| *e == Exit::Status(0))),
        ("exited_idle", r.exits_where(|e| *e == Exit::Status(3))),
        (
            "exited_error",
            r.exits_where(|e| matches!(e, Exit::Status(s) if *s != 0 && *s != 3)),
        ),
        (
            "exited_signal",
            r.exits_where(|e| matches!(e, Exit::Signal(_))),
        ),
    ];
    for (name, from_log) in checks {
        assert_eq!(
            n(name),
            from_log,
            "{name} of the figures vs the log's lines: {figures}"
        );
    }
    r
}
