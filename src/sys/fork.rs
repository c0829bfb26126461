//! Starting a worker without exec (`--model fork`): `fork`, then, in the
//! child, the state an exec'd worker starts in (the client on 3, the log
//! on 4, no other descriptor above 2, default signal dispositions, an
//! empty mask, its own process group, its name), then the caller's
//! `serve`, then `_exit` with what it returned.
//!
//! The child never returns into the caller's code and never runs the
//! parent's destructors, `atexit` handlers or buffered output's flushes
//! (`_exit`). Only for a single-threaded process (the master): the child
//! of a multi-threaded one may only make async-signal-safe calls. It
//! decides nothing: which descriptors and signals is the caller's.

use std::ffi::{CStr, c_int};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::ptr;

use super::check;
use super::signals::SignalSet;
use libc::pid_t;

/// Forks a child that `dup2(from, to)`s each pair of `fd_map` (in order),
/// closes every descriptor above the highest `to`, resets `reset_signals`
/// to their default dispositions, empties its signal mask, takes its own
/// process group and the name `name`, and then exits with `serve()`'s
/// status. Returns the child's pid in the parent.
///
/// The `from` descriptors must not be any of the `to` numbers (callers
/// keep them above the mapped range), as for `SpawnTemplate::spawn`.
///
/// A step of the set-up that fails ends the child with status 127 before
/// `serve` runs (nothing is shared with the parent to say which): the
/// parent sees it as a worker that exited with 127.
pub fn fork_worker(
    fd_map: &[(BorrowedFd<'_>, RawFd)],
    reset_signals: &[c_int],
    name: &CStr,
    serve: impl FnOnce() -> i32,
) -> io::Result<pid_t> {
    debug_assert!(
        fd_map
            .iter()
            .all(|(from, _)| fd_map.iter().all(|(_, to)| from.as_raw_fd() != *to)),
        "a source descriptor collides with a target number"
    );
    // SAFETY: the master is single-threaded, so the child is a complete
    // copy in which ordinary code may run; both sides own their copies of
    // every descriptor, and the child leaves only through `_exit` below.
    let pid = check(unsafe { libc::fork() })?;
    if pid != 0 {
        return Ok(pid);
    }
    let status = match set_up_child(fd_map, reset_signals, name) {
        Ok(()) => serve(),
        Err(_) => 127,
    };
    // SAFETY: ends this process (the child) at once, without returning
    // into the caller's code or running the parent's destructors and
    // atexit handlers, which are not the child's to run.
    unsafe { libc::_exit(status) }
}

/// The child's set-up, in `fork_worker`'s order.
fn set_up_child(
    fd_map: &[(BorrowedFd<'_>, RawFd)],
    reset_signals: &[c_int],
    name: &CStr,
) -> io::Result<()> {
    for (from, to) in fd_map {
        // SAFETY: dup2 on two descriptor numbers: `from` is open
        // (borrowed), `to` is overwritten on purpose (the hand-over's
        // number); the result has close-on-exec clear, which is moot
        // without an exec.
        if unsafe { libc::dup2(from.as_raw_fd(), *to) } != *to {
            return Err(io::Error::last_os_error());
        }
    }
    let first_closed = fd_map.iter().map(|&(_, to)| to).max().unwrap_or(2) + 1;
    // SAFETY: closes descriptors only, every one of them the parent's
    // (listener, epoll set, pidfds, spare, metrics, log and client
    // originals): nothing in the child uses them from here on.
    check(unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first_closed as libc::c_uint,
            libc::c_uint::MAX,
            0,
        )
    })?;
    // SAFETY: a zeroed sigaction is a valid value, made the default
    // disposition; sigaction only changes this process's signal state.
    unsafe {
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        for &sig in reset_signals {
            check(libc::sigaction(sig, &default, ptr::null_mut()))?;
        }
    }
    // Only now that no handler of the parent's is left: nothing pending
    // was inherited (fork clears it), and what arrives from here on takes
    // the default action until the worker installs its own.
    let empty = SignalSet::empty();
    // SAFETY: a valid, initialised signal set; the old mask is not asked for.
    check(unsafe { libc::sigprocmask(libc::SIG_SETMASK, &empty.0, ptr::null_mut()) })?;
    // SAFETY: setpgid(0, 0) only moves this process into a group of its own.
    check(unsafe { libc::setpgid(0, 0) })?;
    // SAFETY: `name` is NUL-terminated and outlives the call; the kernel
    // copies at most 16 bytes and changes only this thread's name.
    check(unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr(), 0, 0, 0) })?;
    Ok(())
}
