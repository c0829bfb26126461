//! Processes other than by spawning: `fork` (for the chat client), pidfds,
//! signals to one process, and this process's own name, user and
//! environment.
//!
//! Never signals a process group or every process (a pid of 0 or less),
//! never forks a multi-threaded process, and never decides whom to signal
//! or when.

use std::ffi::{CStr, c_int, c_ulong};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;

use super::check;
use libc::pid_t;

/// Which side of a `fork` this is.
pub enum Forked {
    Parent { child: pid_t },
    Child,
}

/// Forks the calling process.
///
/// Only for single-threaded processes: the child of a multi-threaded
/// process may only call async-signal-safe functions, and mpecho's children
/// run ordinary Rust code.
pub fn fork() -> io::Result<Forked> {
    debug_assert!(
        std::fs::read_dir("/proc/self/task").map_or(true, |d| d.count() == 1),
        "fork() called in a multi-threaded process"
    );
    // SAFETY: the process is single-threaded (asserted above), so the child
    // is a complete copy in which any code may run; both sides own their
    // copies of every descriptor.
    match check(unsafe { libc::fork() })? {
        0 => Ok(Forked::Child),
        child => Ok(Forked::Parent { child }),
    }
}

/// A pidfd for child `pid` (`pidfd_open`, Linux 5.3+), close-on-exec.
///
/// Signals sent through it can only reach that very process, even after
/// the pid number has been reused.
pub fn pidfd_open(pid: pid_t) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes two integers and returns a new descriptor
    // (close-on-exec by definition) or -1 with errno.
    let fd = check(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    // SAFETY: the kernel just created this descriptor for us alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Sends `sig` to the process behind `pidfd`.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: c_int) -> io::Result<()> {
    // SAFETY: a valid pidfd, a signal number, no siginfo (NULL), flags 0.
    check(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            ptr::null::<libc::siginfo_t>(),
            0,
        )
    })
    .map(drop)
}

/// Sends `sig` to process `pid`.
pub fn send_signal(pid: pid_t, sig: c_int) -> io::Result<()> {
    debug_assert!(pid > 0, "signalling pid {pid} would hit a process group");
    // SAFETY: kill has no memory effects; a positive pid names one process.
    check(unsafe { libc::kill(pid, sig) }).map(drop)
}

/// Names the calling process `name` in `ps`, `top` and `pgrep` (the kernel's
/// `comm`, cut to 15 bytes).
///
/// Workers are started by exec'ing `/proc/self/exe`, so the kernel names
/// them after that file, `exe`, and an operator looking for `mpecho` in
/// `top` or with `pgrep mpecho` would not find them: this is for a worker
/// to call first thing. `PR_SET_NAME` names the calling thread, which in a
/// single-threaded process is the process.
pub fn set_process_name(name: &CStr) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated and outlives the call; the kernel
    // copies at most 15 bytes from it, stopping at the NUL, and changes
    // nothing but this thread's name. The unused arguments are passed as
    // zeros because prctl reads all four as unsigned longs.
    check(unsafe {
        libc::prctl(
            libc::PR_SET_NAME,
            name.as_ptr() as c_ulong,
            0 as c_ulong,
            0 as c_ulong,
            0 as c_ulong,
        )
    })
    .map(drop)
}

/// Removes each of `names` from this process's environment, so that no
/// program it starts later, and no code that reads the environment later,
/// sees them (what sd_listen_fds(3) and sd_notify(3) do when asked to
/// `unset_environment`).
///
/// Only for a single-threaded process, like `fork`: another thread reading
/// the environment meanwhile could see it half changed.
pub fn unset_env(names: &[&str]) {
    debug_assert!(
        std::fs::read_dir("/proc/self/task").map_or(true, |d| d.count() == 1),
        "unset_env() called in a multi-threaded process"
    );
    for name in names {
        // SAFETY: remove_var is unsafe only because another thread could
        // read or change the environment at the same time; the process is
        // single-threaded here (asserted above, and the callers run before
        // anything could start a thread: the master and the relay never do).
        unsafe { std::env::remove_var(name) };
    }
}

pub fn effective_uid() -> u32 {
    // SAFETY: geteuid cannot fail and has no memory effects.
    unsafe { libc::geteuid() }
}

/// Becomes user `uid` for good: supplementary `groups`, then group `gid`,
/// then the user id, in that order (once the uid is dropped, the groups can
/// no longer be changed). Checks afterwards that root cannot be regained.
pub fn become_user(uid: u32, gid: u32, groups: &[u32]) -> io::Result<()> {
    // SAFETY: `groups` is a valid slice of gid_t for its length; these calls
    // only change the process credentials. The process is single-threaded
    // here, so no other thread keeps the old credentials.
    unsafe {
        check(libc::setgroups(groups.len(), groups.as_ptr()))?;
        check(libc::setgid(gid))?;
        check(libc::setuid(uid))?;
    }
    // SAFETY: as above; this call must fail.
    if uid != 0 && unsafe { libc::setuid(0) } == 0 {
        return Err(io::Error::other(
            "root could be regained after dropping privileges",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The name set is the one `ps` and `pgrep` read, cut to 15 bytes. The
    /// test harness runs each test on a thread of its own, so only that
    /// thread is renamed.
    #[test]
    fn set_process_name_sets_the_comm_that_ps_reads() {
        set_process_name(c"mpecho").unwrap();
        let comm = std::fs::read_to_string("/proc/thread-self/comm").unwrap();
        assert_eq!(comm, "mpecho\n");

        set_process_name(c"mpecho-0123456789").unwrap();
        let comm = std::fs::read_to_string("/proc/thread-self/comm").unwrap();
        assert_eq!(comm, "mpecho-01234567\n");
    }
}
