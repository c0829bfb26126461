//! Processes as the kernel shows them in /proc: pids, parents and states,
//! children, process groups, open descriptors and pidfds, credentials,
//! limits, environment, the system call a process is blocked in, CPU time;
//! and signals and descriptor limits applied to them.
//!
//! Everything here reads the kernel's view at the moment of the call and
//! waits for nothing: a caller that needs a state to be reached polls with
//! `wait_for`. A process that is gone reads as `None` or empty, never as a
//! panic, except where a test asks about a process it knows is there.

use std::path::Path;
use std::thread;

use crate::net::text;

/// Sends `sig` to `pid` (a negative pid: to that process group); a
/// process already gone is not an error.
pub fn send_signal(pid: i32, sig: i32) {
    // SAFETY: kill has no memory effects.
    unsafe { libc::kill(pid, sig) };
}

/// Whether this test process runs as root (effective uid 0).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no memory effects.
    unsafe { libc::geteuid() == 0 }
}

/// Every process on the machine (the numeric entries of /proc), in
/// ascending pid order.
pub fn all_pids() -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<i32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect();
    pids.sort_unstable();
    pids
}

/// The fields of /proc/PID/stat after the command name — state, ppid,
/// pgrp, … (`man 5 proc`: field N of the file is index N - 3 here) — if
/// the process exists.
pub fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after
    // the last ')'.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    Some(rest.split(' ').map(str::to_string).collect())
}

/// `(pid, state)` of every process whose parent is `parent`, in ascending
/// pid order.
pub fn children_of(parent: i32) -> Vec<(i32, char)> {
    all_pids()
        .into_iter()
        .filter_map(|pid| match proc_state(pid) {
            Some((state, ppid)) if ppid == parent => Some((pid, state)),
            _ => None,
        })
        .collect()
}

/// `(state, ppid)` from /proc/PID/stat, if the process exists.
pub fn proc_state(pid: i32) -> Option<(char, i32)> {
    let fields = stat_fields(pid)?;
    let state = fields.first()?.chars().next()?;
    let ppid = fields.get(1)?.parse().ok()?;
    Some((state, ppid))
}

/// Whether a process with this pid exists (a zombie counts).
pub fn process_exists(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Whether `pid` runs an mpecho worker, which a pid reused by some other
/// process does not: `mpecho-worker …`, or `mpecho worker …` for a build
/// from before the worker executable (`MPECHO_BIN` may name one).
pub fn is_worker_process(pid: i32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
        cmdline.starts_with(b"mpecho-worker\0") || cmdline.starts_with(b"mpecho\0worker\0")
    })
}

/// Processes (zombies included) whose process group is `pgid`.
pub fn process_group_members(pgid: i32) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|&pid| {
            // After the command name: state, ppid, pgrp.
            stat_fields(pid).and_then(|fields| fields.get(2)?.parse::<i32>().ok()) == Some(pgid)
        })
        .collect()
}

/// Descriptor numbers open in process `pid`.
pub fn open_fds(pid: i32) -> Vec<i32> {
    let mut fds: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
                .collect()
        })
        .unwrap_or_default();
    fds.sort_unstable();
    fds
}

/// The descriptors of process `pid` that are pidfds (their /proc link is
/// `anon_inode:[pidfd]`).
pub fn pidfds(pid: i32) -> Vec<i32> {
    open_fds(pid)
        .into_iter()
        .filter(|fd| {
            std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
                .is_ok_and(|target| target.as_os_str() == "anon_inode:[pidfd]")
        })
        .collect()
}

/// Whether `pid` has ended: gone, or a zombie nobody of ours will reap
/// (an orphan is reparented, and its new parent may reap it late or never).
pub fn has_ended(pid: i32) -> bool {
    match proc_state(pid) {
        None => true,
        Some((state, ppid)) => state == 'Z' && ppid != std::process::id() as i32,
    }
}

/// Whether process `pid` is blocked in system call `number` right now
/// (the first field of /proc/PID/syscall).
pub fn blocked_in_syscall(pid: i32, number: libc::c_long) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/syscall"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<libc::c_long>().ok())
        == Some(number)
}

/// User plus system CPU time of `pid`, in clock ticks.
pub fn cpu_ticks(pid: i32) -> u64 {
    let fields = stat_fields(pid).expect("read the process's stat");
    // utime is field 14 of the file, stime 15.
    let utime: u64 = fields[11].parse().expect("utime");
    let stime: u64 = fields[12].parse().expect("stime");
    utime + stime
}

/// The numbers of a `Key:` line of /proc/PID/status (`Uid`, `Gid`,
/// `Groups`), in the order the kernel lists them.
pub fn status_ids(pid: i32, key: &str) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    let prefix = format!("{key}:");
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {key}: line in /proc/{pid}/status"));
    line.split_whitespace()
        .map(|n| n.parse().expect("a numeric id"))
        .collect()
}

/// Soft and hard values of a limit in /proc/PID/limits (`Max open files`,
/// `Max processes`); `None` stands for `unlimited`.
pub fn proc_limit(pid: i32, name: &str) -> (Option<u64>, Option<u64>) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/limits: {e}"));
    let rest = limits
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name:?} in /proc/{pid}/limits:\n{limits}"));
    let mut values = rest.split_whitespace().map(|v| v.parse().ok());
    (values.next().flatten(), values.next().flatten())
}

/// The environment of process `pid`, one `NAME=value` per entry, sorted.
pub fn environ(pid: i32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/environ: {e}"));
    let mut vars: Vec<String> = raw
        .split(|&b| b == 0)
        .filter(|v| !v.is_empty())
        .map(text)
        .collect();
    vars.sort();
    vars
}

/// Sets the soft descriptor limit of process `pid` (keeping its hard limit)
/// and returns the previous soft limit.
pub fn set_soft_nofile(pid: i32, soft: u64) -> u64 {
    let resource = libc::RLIMIT_NOFILE;
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a null new limit only reads the current one into `old`.
    let ret = unsafe { libc::prlimit(pid, resource, std::ptr::null(), &mut old) };
    assert_eq!(
        ret,
        0,
        "read the limits of pid {pid}: {}",
        std::io::Error::last_os_error()
    );
    let new = libc::rlimit {
        rlim_cur: soft,
        rlim_max: old.rlim_max,
    };
    // SAFETY: both pointers are valid for the call.
    let ret = unsafe { libc::prlimit(pid, resource, &new, std::ptr::null_mut()) };
    assert_eq!(
        ret,
        0,
        "set the limit of pid {pid} to {soft}: {}",
        std::io::Error::last_os_error()
    );
    old.rlim_cur
}

/// A process's soft descriptor limit to put back, on drop too: set one with
/// `set_soft_nofile`, keep its old value here.
pub struct RestoreLimit {
    pub pid: i32,
    pub limit: Option<u64>,
}

impl RestoreLimit {
    pub fn restore(&mut self) {
        if let Some(limit) = self.limit.take() {
            set_soft_nofile(self.pid, limit);
        }
    }
}

impl Drop for RestoreLimit {
    fn drop(&mut self) {
        // While a failure unwinds, the process is stopped anyway (it needs
        // no new descriptor for that), and a second panic would abort.
        if !thread::panicking() {
            self.restore();
        }
    }
}
