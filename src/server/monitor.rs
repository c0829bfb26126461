//! The master's figures: counters kept by the loop, the process's own
//! resource use read from /proc (DESIGN §6), and [`Snapshot`], everything
//! reported at one moment: the one source of numbers for both the figures
//! line (`Figures`) and the metrics endpoint (`metrics/exposition.rs`), so
//! the two can never disagree about what was counted.
//!
//! Reading /proc happens only when a snapshot is taken (a figures line:
//! periodically, on SIGUSR1 and at exit; a scrape of the metrics), never
//! per connection.

use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use crate::sys;

use super::config::Config;
use super::lifetimes::Lifetimes;
use super::listener::State;

/// Counters the event loop updates as things happen.
#[derive(Debug, Default, Clone)]
pub struct Counters {
    /// Connections handed to a worker.
    pub accepted: u64,
    /// Connections closed at once because the worker limit was reached.
    pub rejected_full: u64,
    /// Connections closed at once because their address had `max_per_ip`
    /// workers already.
    pub rejected_per_ip: u64,
    /// Connections closed at once because an access rule denies their
    /// address (`--rules`).
    pub rejected_rule: u64,
    /// Connections closed at once because their address was over its rate
    /// (`--max-rate-per-ip`, or its rule's).
    pub rejected_rate: u64,
    /// Connections closed without a usable PROXY header
    /// (`--proxy-protocol`): an untrusted source, a bad, slow or abandoned
    /// header, or too many waiting.
    pub rejected_proxy: u64,
    /// Times accepting paused at the worker limit (`--on-full defer`).
    pub deferred: u64,
    /// Connections closed because no worker could be started.
    pub spawn_failures: u64,
    /// Connections lost at `accept`: aborted before they were taken, or
    /// closed unserved while out of descriptors (one each).
    pub accept_errors: u64,
    /// Workers that exited with status 0.
    pub exited_ok: u64,
    /// Workers that exited with a non-zero status other than idle timeout.
    pub exited_error: u64,
    /// Workers that closed an idle connection.
    pub exited_idle: u64,
    /// Workers ended by a signal.
    pub exited_signal: u64,
    /// How long each reaped worker lived, however it ended: its count is
    /// the sum of the four `exited_*` counters.
    pub lifetimes: Lifetimes,
}

impl Counters {
    /// Connections accepted and closed at once, whatever the reason
    /// (failed starts are counted apart, as `spawn_failures`).
    pub fn rejected(&self) -> u64 {
        self.rejected_full
            + self.rejected_per_ip
            + self.rejected_rule
            + self.rejected_rate
            + self.rejected_proxy
    }
}

/// Everything the master reports, read at one moment.
pub struct Snapshot<'a> {
    pub counters: &'a Counters,
    pub active: usize,
    pub peak: usize,
    pub uptime: Duration,
    /// When the master booted, on the wall clock.
    pub started_at: SystemTime,
    pub listener: State,
    /// The limits it runs with.
    pub config: &'a Config,
    pub process: ProcessFigures,
    /// Log lines this process could not write (`log::write_errors`).
    pub log_write_errors: u64,
    /// The pool's processes by state (`--model prefork` only).
    pub pool: Option<PoolCounts>,
}

/// How many pool processes are in each state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolCounts {
    /// Waiting for a client.
    pub idle: usize,
    /// Serving one.
    pub busy: usize,
    /// Retired or ending, not reaped yet.
    pub leaving: usize,
}

/// The master process's own resource use; `None` where /proc could not be
/// read.
#[derive(Debug, Clone, Copy)]
pub struct ProcessFigures {
    pub rss_kb: Option<u64>,
    pub open_fds: Option<usize>,
    /// The soft descriptor limit (`RLIMIT_NOFILE`).
    pub max_fds: Option<u64>,
}

impl ProcessFigures {
    pub fn read() -> ProcessFigures {
        ProcessFigures {
            rss_kb: rss_kb(),
            open_fds: open_fds(),
            max_fds: sys::get_limit(sys::Resource::OpenFiles)
                .ok()
                .map(|limit| limit.soft),
        }
    }
}

impl Snapshot<'_> {
    /// The figures line's fields (`active=1 peak=1 …`).
    pub fn figures(&self) -> Figures<'_> {
        Figures(self)
    }
}

/// One figures line: the counters plus live numbers at this moment.
pub struct Figures<'a>(&'a Snapshot<'a>);

impl fmt::Display for Figures<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        let c = s.counters;
        let unknown = || "?".to_string();
        write!(
            f,
            "active={} peak={} accepted={} rejected={} spawn_failures={} accept_errors={} \
             exited_ok={} exited_error={} exited_signal={} exited_idle={} \
             rejected_full={} rejected_per_ip={} rejected_rule={} rejected_rate={} \
             rejected_proxy={} deferred={} \
             rss_kb={} fds={} \
             uptime_s={} \
             log_write_errors={} model={}",
            s.active,
            s.peak,
            c.accepted,
            c.rejected(),
            c.spawn_failures,
            c.accept_errors,
            c.exited_ok,
            c.exited_error,
            c.exited_signal,
            c.exited_idle,
            c.rejected_full,
            c.rejected_per_ip,
            c.rejected_rule,
            c.rejected_rate,
            c.rejected_proxy,
            c.deferred,
            s.process.rss_kb.map_or_else(unknown, |v| v.to_string()),
            s.process.open_fds.map_or_else(unknown, |v| v.to_string()),
            s.uptime.as_secs(),
            s.log_write_errors,
            s.config.model.name(),
        )
    }
}

/// This process's resident set size in kB (`VmRSS`).
pub fn rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// How many descriptors this process holds (not counting one used to find
/// out).
///
/// Linux 6.2 and later give the count as the size of /proc/self/fd: one
/// `stat`, about 50 µs with 10,000 descriptors open (a pidfd per worker),
/// where listing the directory takes 10–20 ms, all of it time the loop
/// neither accepts nor reaps (a scrape took 10.7 ms with 10,000 workers
/// held). Older kernels say 0 there, and the directory is listed.
pub fn open_fds() -> Option<usize> {
    const FDS: &str = "/proc/self/fd";
    if let Ok(meta) = std::fs::metadata(FDS)
        && meta.len() > 0
    {
        return usize::try_from(meta.len()).ok();
    }
    let entries = std::fs::read_dir(FDS).ok()?;
    Some(entries.count().saturating_sub(1))
}

/// When the next periodic figures line is due.
pub struct Schedule {
    interval: Option<Duration>,
    next: Option<Instant>,
}

impl Schedule {
    /// `interval` of zero turns periodic reports off.
    pub fn new(interval: Duration, now: Instant) -> Schedule {
        let interval = (!interval.is_zero()).then_some(interval);
        Schedule {
            interval,
            next: interval.map(|i| now + i),
        }
    }

    pub fn next(&self) -> Option<Instant> {
        self.next
    }

    /// Whether a report is due at `now`; if so the next one is scheduled.
    pub fn is_due(&mut self, now: Instant) -> bool {
        match (self.next, self.interval) {
            (Some(next), Some(interval)) if now >= next => {
                self.next = Some(now + interval);
                true
            }
            _ => false,
        }
    }
}
