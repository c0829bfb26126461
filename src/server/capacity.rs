//! The start-up capacity check: will the machine let the master run
//! `--max-workers` workers?
//!
//! Each limit that is too small gets exactly one WARN line naming it, its
//! value and how to raise it. Nothing is changed here except the soft
//! descriptor limit, which the master raises to the hard limit: it costs
//! nothing and it is what every worker's pidfd and every accept needs.

use std::path::PathBuf;

use crate::log::{info, warning};
use crate::sys::{self, Resource};

/// Room for what is not a worker: the master, a client or two, tools.
const MARGIN: u64 = 64;

/// Raises the soft descriptor limit to the hard one.
pub fn raise_descriptor_limit() {
    match sys::raise_soft_limit_to_hard(Resource::OpenFiles) {
        Ok(Some(before)) => info!(
            "raised the descriptor limit from {} to {}",
            before.soft, before.hard
        ),
        Ok(None) => {}
        Err(e) => warning!("could not raise the descriptor limit to its hard limit: {e}"),
    }
}

/// Warns about every limit smaller than `max_workers` plus a margin.
pub fn check(max_workers: usize) {
    let needed = max_workers as u64 + MARGIN;
    if sys::effective_uid() != 0 {
        // RLIMIT_NPROC does not bind root.
        if let Ok(limit) = sys::get_limit(Resource::Processes) {
            warn_if_short(
                "RLIMIT_NPROC (max user processes, counting every process of this user)",
                limit.soft,
                needed,
                "raise it with `ulimit -u` or LimitNPROC= in the systemd unit",
            );
        }
    }
    if let Some(pids_max) = cgroup_pids_max() {
        warn_if_short(
            "the cgroup's pids.max",
            pids_max,
            needed,
            "a systemd service defaults to about 4,915 tasks: set TasksMax= in the unit",
        );
    }
    if let Some(pid_max) = read_number("/proc/sys/kernel/pid_max") {
        warn_if_short(
            "kernel.pid_max",
            pid_max,
            needed,
            "raise it with `sysctl kernel.pid_max=N`",
        );
    }
    if let Some(threads_max) = read_number("/proc/sys/kernel/threads-max") {
        warn_if_short(
            "kernel.threads-max",
            threads_max,
            needed,
            "raise it with `sysctl kernel.threads-max=N`",
        );
    }
    if let Ok(limit) = sys::get_limit(Resource::OpenFiles) {
        warn_if_short(
            "RLIMIT_NOFILE (the master holds a pidfd per worker)",
            limit.soft,
            needed,
            "raise the hard limit with `ulimit -Hn` or LimitNOFILE= in the systemd unit",
        );
    }
}

fn warn_if_short(what: &str, value: u64, needed: u64, how: &str) {
    if value < needed {
        warning!(
            "{what} is {value}, below max_workers + {MARGIN} = {needed}: the master may fail to start workers before its limit; {how}"
        );
    }
}

/// `pids.max` of this process's cgroup (v2), if limited.
fn cgroup_pids_max() -> Option<u64> {
    let membership = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = membership.lines().find_map(|l| l.strip_prefix("0::"))?;
    let file = PathBuf::from("/sys/fs/cgroup")
        .join(path.trim_start_matches('/'))
        .join("pids.max");
    read_number(file.to_str()?)
}

/// A number from a /proc or /sys file; `None` if missing or `max`.
fn read_number(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}
