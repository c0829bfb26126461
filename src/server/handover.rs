//! The state one image of the master hands to the next across an upgrade
//! in place (`upgrade.rs`): what it is, and its text form.
//!
//! The form is lines of `KEY VALUE…`, first `mpecho-state FORMAT`, last
//! `end WORKERS` (so a truncated state is refused, never half used).
//! Descriptors travel by number: the exec keeps them open at the same
//! numbers. [`STATE_FORMAT`] is the one form this build writes and reads;
//! `mpecho upgrade-check` prints it, and the old image refuses to exec a
//! build that does not accept it. A change to the form takes a new number.
//!
//! This module only converts: it opens, adopts and closes nothing, and
//! reads no environment.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::sys::pid_t;

use super::lifetimes::Lifetimes;
use super::monitor::Counters;

/// The state format this build writes and reads.
pub const STATE_FORMAT: u32 = 1;

/// The variable naming the descriptor the state is on, for the next image
/// only: it removes it from its environment at once.
pub const STATE_VAR: &str = "MPECHO_UPGRADE_STATE";

/// One worker carried over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandedWorker {
    pub pid: pid_t,
    /// Its pidfd's number, if it had one.
    pub pidfd: Option<RawFd>,
    pub peer: SocketAddr,
    /// How long it had been serving at the hand-over.
    pub age: Duration,
}

/// Everything the next image needs that the command line does not say.
#[derive(Debug, Clone)]
pub struct Handover {
    /// The version of the image that handed over.
    pub from_version: String,
    pub from_pid: u32,
    /// The path the master was started from (resolved once, at the first
    /// boot): what the next upgrade execs too.
    pub exe: PathBuf,
    pub listener: RawFd,
    pub metrics: Option<RawFd>,
    /// The log file's descriptor (as reopened last); `None`: stderr.
    pub log: Option<RawFd>,
    /// `NOTIFY_SOCKET` and `WATCHDOG_USEC` as read at the first boot (they
    /// are removed from the environment then).
    pub notify_socket: Option<String>,
    pub watchdog_usec: Option<String>,
    pub uptime: Duration,
    pub started_at: SystemTime,
    pub peak: usize,
    pub counters: Counters,
    pub workers: Vec<HandedWorker>,
}

/// What is wrong with a state handed over.
#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    #[error("state format {0:?} is not {STATE_FORMAT}, the one this build reads")]
    Format(String),
    #[error("bad line {0:?} in the state handed over")]
    BadLine(String),
    #[error("the state handed over has no {0} line")]
    Missing(&'static str),
    #[error("the state handed over is cut short (no `end` line, or a wrong worker count)")]
    Truncated,
    #[error("{0} cannot be handed over: it contains a line break")]
    Unwritable(&'static str),
}

/// The counters, in the order the `counters` line lists them.
const COUNTERS: usize = 13;

impl Handover {
    /// The text form.
    pub fn encode(&self) -> Result<String, HandoverError> {
        let mut s = String::new();
        let fd = |f: Option<RawFd>| f.map_or_else(|| "-".to_string(), |f| f.to_string());
        let exe = self.exe.to_str().ok_or(HandoverError::Unwritable("exe"))?;
        for (what, text) in [
            ("the executable's path", exe),
            ("the version", self.from_version.as_str()),
            (
                "NOTIFY_SOCKET",
                self.notify_socket.as_deref().unwrap_or_default(),
            ),
            (
                "WATCHDOG_USEC",
                self.watchdog_usec.as_deref().unwrap_or_default(),
            ),
        ] {
            if text.contains('\n') {
                return Err(HandoverError::Unwritable(what));
            }
        }
        // Writing to a String cannot fail.
        let _ = writeln!(s, "mpecho-state {STATE_FORMAT}");
        let _ = writeln!(s, "from-version {}", self.from_version);
        let _ = writeln!(s, "from-pid {}", self.from_pid);
        let _ = writeln!(s, "exe {exe}");
        let _ = writeln!(s, "listener {}", self.listener);
        let _ = writeln!(s, "metrics {}", fd(self.metrics));
        let _ = writeln!(s, "log {}", fd(self.log));
        if let Some(socket) = &self.notify_socket {
            let _ = writeln!(s, "notify-socket {socket}");
        }
        if let Some(usec) = &self.watchdog_usec {
            let _ = writeln!(s, "watchdog-usec {usec}");
        }
        let _ = writeln!(s, "uptime-ns {}", self.uptime.as_nanos());
        let since_epoch = self
            .started_at
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let _ = writeln!(s, "started-at-ns {}", since_epoch.as_nanos());
        let _ = writeln!(s, "peak {}", self.peak);
        let c = &self.counters;
        let counters = [
            c.accepted,
            c.rejected_full,
            c.rejected_per_ip,
            c.rejected_rule,
            c.rejected_rate,
            c.rejected_proxy,
            c.deferred,
            c.spawn_failures,
            c.accept_errors,
            c.exited_ok,
            c.exited_error,
            c.exited_idle,
            c.exited_signal,
        ];
        let _ = writeln!(s, "counters {}", join(counters.iter()));
        let (sum, count, buckets) = c.lifetimes.parts();
        let _ = writeln!(
            s,
            "lifetimes {} {count} {}",
            sum.as_nanos(),
            join(buckets.iter())
        );
        for w in &self.workers {
            let _ = writeln!(
                s,
                "worker {} {} {} {}",
                w.pid,
                fd(w.pidfd),
                w.peer,
                w.age.as_nanos()
            );
        }
        let _ = writeln!(s, "end {}", self.workers.len());
        Ok(s)
    }

    /// Reads the text form back.
    pub fn decode(text: &str) -> Result<Handover, HandoverError> {
        let mut lines = text.lines();
        let first = lines.next().unwrap_or_default();
        match first.strip_prefix("mpecho-state ") {
            Some(format) if format == STATE_FORMAT.to_string() => {}
            Some(format) => return Err(HandoverError::Format(format.to_string())),
            None => return Err(HandoverError::Format(first.to_string())),
        }
        let mut b = Builder::default();
        let mut ended = None;
        for line in lines {
            let bad = || HandoverError::BadLine(line.to_string());
            let (key, value) = line.split_once(' ').ok_or_else(bad)?;
            match key {
                "from-version" => b.from_version = Some(value.to_string()),
                "from-pid" => b.from_pid = Some(number(value).ok_or_else(bad)?),
                "exe" => b.exe = Some(PathBuf::from(value)),
                "listener" => b.listener = Some(number(value).ok_or_else(bad)?),
                "metrics" => b.metrics = Some(optional_fd(value).ok_or_else(bad)?),
                "log" => b.log = Some(optional_fd(value).ok_or_else(bad)?),
                "notify-socket" => b.notify_socket = Some(value.to_string()),
                "watchdog-usec" => b.watchdog_usec = Some(value.to_string()),
                "uptime-ns" => b.uptime = Some(nanos(value).ok_or_else(bad)?),
                "started-at-ns" => b.started_at = Some(UNIX_EPOCH + nanos(value).ok_or_else(bad)?),
                "peak" => b.peak = Some(number(value).ok_or_else(bad)?),
                "counters" => b.counters = Some(counters(value).ok_or_else(bad)?),
                "lifetimes" => b.lifetimes = Some(lifetimes(value).ok_or_else(bad)?),
                "worker" => b.workers.push(worker(value).ok_or_else(bad)?),
                "end" => ended = Some(number::<usize>(value).ok_or_else(bad)?),
                _ => return Err(bad()),
            }
        }
        if ended != Some(b.workers.len()) {
            return Err(HandoverError::Truncated);
        }
        b.finish()
    }
}

#[derive(Default)]
struct Builder {
    from_version: Option<String>,
    from_pid: Option<u32>,
    exe: Option<PathBuf>,
    listener: Option<RawFd>,
    metrics: Option<Option<RawFd>>,
    log: Option<Option<RawFd>>,
    notify_socket: Option<String>,
    watchdog_usec: Option<String>,
    uptime: Option<Duration>,
    started_at: Option<SystemTime>,
    peak: Option<usize>,
    counters: Option<Counters>,
    lifetimes: Option<Lifetimes>,
    workers: Vec<HandedWorker>,
}

impl Builder {
    fn finish(self) -> Result<Handover, HandoverError> {
        use HandoverError::Missing;
        let mut counters = self.counters.ok_or(Missing("counters"))?;
        counters.lifetimes = self.lifetimes.ok_or(Missing("lifetimes"))?;
        Ok(Handover {
            from_version: self.from_version.ok_or(Missing("from-version"))?,
            from_pid: self.from_pid.ok_or(Missing("from-pid"))?,
            exe: self.exe.ok_or(Missing("exe"))?,
            listener: self.listener.ok_or(Missing("listener"))?,
            metrics: self.metrics.ok_or(Missing("metrics"))?,
            log: self.log.ok_or(Missing("log"))?,
            notify_socket: self.notify_socket,
            watchdog_usec: self.watchdog_usec,
            uptime: self.uptime.ok_or(Missing("uptime-ns"))?,
            started_at: self.started_at.ok_or(Missing("started-at-ns"))?,
            peak: self.peak.ok_or(Missing("peak"))?,
            counters,
            workers: self.workers,
        })
    }
}

fn join<'a>(numbers: impl Iterator<Item = &'a u64>) -> String {
    numbers.map(u64::to_string).collect::<Vec<_>>().join(" ")
}

fn number<T: std::str::FromStr>(text: &str) -> Option<T> {
    text.parse().ok()
}

fn nanos(text: &str) -> Option<Duration> {
    let n: u128 = text.parse().ok()?;
    let secs = u64::try_from(n / 1_000_000_000).ok()?;
    Some(Duration::new(secs, (n % 1_000_000_000) as u32))
}

fn optional_fd(text: &str) -> Option<Option<RawFd>> {
    match text {
        "-" => Some(None),
        fd => fd.parse().ok().map(Some),
    }
}

fn numbers(text: &str) -> Option<Vec<u64>> {
    text.split(' ').map(|n| n.parse().ok()).collect()
}

fn counters(text: &str) -> Option<Counters> {
    let n = numbers(text)?;
    if n.len() != COUNTERS {
        return None;
    }
    Some(Counters {
        accepted: n[0],
        rejected_full: n[1],
        rejected_per_ip: n[2],
        rejected_rule: n[3],
        rejected_rate: n[4],
        rejected_proxy: n[5],
        deferred: n[6],
        spawn_failures: n[7],
        accept_errors: n[8],
        exited_ok: n[9],
        exited_error: n[10],
        exited_idle: n[11],
        exited_signal: n[12],
        lifetimes: Lifetimes::default(),
    })
}

fn lifetimes(text: &str) -> Option<Lifetimes> {
    let (sum, rest) = text.split_once(' ')?;
    let (count, buckets) = rest.split_once(' ')?;
    Lifetimes::from_parts(nanos(sum)?, count.parse().ok()?, &numbers(buckets)?)
}

fn worker(text: &str) -> Option<HandedWorker> {
    let mut parts = text.split(' ');
    let pid = parts.next()?.parse().ok()?;
    let pidfd = optional_fd(parts.next()?)?;
    let peer = parts.next()?.parse().ok()?;
    let age = nanos(parts.next()?)?;
    parts.next().is_none().then_some(HandedWorker {
        pid,
        pidfd,
        peer,
        age,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Handover {
        let mut counters = Counters {
            accepted: 7,
            exited_ok: 5,
            ..Counters::default()
        };
        counters.lifetimes.observe(Duration::from_millis(3));
        Handover {
            from_version: "0.1.0+AAAAAAAA".into(),
            from_pid: 42,
            exe: "/usr/bin/mpecho".into(),
            listener: 5,
            metrics: None,
            log: Some(6),
            notify_socket: Some("@sd notify".into()),
            watchdog_usec: None,
            uptime: Duration::from_millis(1500),
            started_at: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            peak: 3,
            counters,
            workers: vec![
                HandedWorker {
                    pid: 100,
                    pidfd: Some(1024),
                    peer: "127.0.0.1:5000".parse().unwrap(),
                    age: Duration::from_nanos(12_345),
                },
                HandedWorker {
                    pid: 101,
                    pidfd: None,
                    peer: "[::1]:6000".parse().unwrap(),
                    age: Duration::ZERO,
                },
            ],
        }
    }

    #[test]
    fn a_state_reads_back_as_written() {
        let state = sample();
        let text = state.encode().unwrap();
        let back = Handover::decode(&text).unwrap();
        assert_eq!(back.workers, state.workers);
        assert_eq!(back.counters.accepted, 7);
        assert_eq!(back.counters.lifetimes.count(), 1);
        assert_eq!(back.notify_socket.as_deref(), Some("@sd notify"));
        assert_eq!(back.log, Some(6));
        assert_eq!(back.metrics, None);
        assert_eq!(back.started_at, state.started_at);
        assert_eq!(back.encode().unwrap(), text);
    }

    #[test]
    fn another_format_or_a_cut_state_is_refused() {
        let text = sample().encode().unwrap();
        let other = text.replacen("mpecho-state 1", "mpecho-state 2", 1);
        assert!(matches!(
            Handover::decode(&other),
            Err(HandoverError::Format(_))
        ));
        let cut: String = text.lines().take(5).map(|l| format!("{l}\n")).collect();
        assert!(matches!(
            Handover::decode(&cut),
            Err(HandoverError::Truncated)
        ));
    }
}
