//! Starting a worker without exec (`--model fork`): a fork-style `clone3`
//! (a copy of this process's memory) that *shares* the descriptor table
//! until the child has unshared it, then, in the child, the state an
//! exec'd worker starts in (the client on 3, the log on 4, no other
//! descriptor above 2, default signal dispositions, an empty mask, its own
//! process group, its name), then the caller's `serve`, then `_exit` with
//! what it returned.
//!
//! Why not `fork()`: it copies the whole descriptor table, so a master
//! holding a pidfd per worker paid for every live worker twice per
//! connection (the copy, then the child's closing them one by one, 2.2 ms
//! of the 2.9 ms a new connection took with 10,000 held), and each copy
//! kept every reaped worker's pidfd alive, and epoll reporting it, until
//! the child got round to closing it. Here the child copies only the
//! descriptors below the highest one it needs (`CLOSE_RANGE_UNSHARE`), as
//! `spawn.rs`'s child does, while the parent waits for it to say so.
//!
//! The child never returns into the caller's code and never runs the
//! parent's destructors, `atexit` handlers or buffered output's flushes
//! (`_exit`). Only for a single-threaded process (the master): the child
//! of a multi-threaded one may only make async-signal-safe calls. Like
//! Rust's own `Command`, it calls `clone3` directly, so no `pthread_atfork`
//! handler runs and glibc's cached thread id in the child is the parent's:
//! system calls, `malloc` and Rust's std are fine there, pthread mutexes
//! that record their owner are not (a worker takes none). Where `clone3`
//! is refused (a seccomp filter answering ENOSYS or EPERM), it falls back
//! to `fork()` and closes the copied table. It decides nothing: which
//! descriptors and signals is the caller's.

use std::ffi::{CStr, c_int};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
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
/// keep them above the mapped range), as for `SpawnTemplate::spawn`. The
/// child copies only the descriptors below the highest `from` (and the
/// hand-shake's eventfd): keep what it must not pay for (pidfds) above them.
///
/// Returns once the child has its own descriptor table (or has died
/// before that), so the caller may close its copy of the client at once.
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
    let unshared = eventfd()?;
    let keep_below = fd_map
        .iter()
        .map(|(from, _)| from.as_raw_fd())
        .chain([unshared.as_raw_fd(), 2])
        .max()
        .unwrap_or(2)
        + 1;
    let (pid, pidfd) = match clone_sharing_files()? {
        Cloned::Parent { pid, pidfd } => (pid, pidfd),
        Cloned::Child => {
            let status = match unshare_files(keep_below, unshared.as_fd())
                .and_then(|()| set_up_child(fd_map, reset_signals, name))
            {
                Ok(()) => serve(),
                Err(_) => 127,
            };
            // SAFETY: ends this process (the child) at once, without
            // returning into the caller's code or running the parent's
            // destructors and atexit handlers, which are not the child's to
            // run. Nothing is closed in a table still shared with the
            // parent: exit only drops this process's reference to it.
            unsafe { libc::_exit(status) }
        }
        Cloned::Unsupported => return fork_copying_files(fd_map, reset_signals, name, serve),
    };
    wait_until_unshared(unshared.as_fd(), pidfd.as_fd());
    Ok(pid)
}

/// Which side of `clone_sharing_files` this is.
enum Cloned {
    /// The child's pid, and a pidfd to notice its death by while waiting.
    Parent {
        pid: pid_t,
        pidfd: OwnedFd,
    },
    Child,
    /// `clone3` is refused here (ENOSYS, EPERM: a seccomp filter).
    Unsupported,
}

/// The first fields of the kernel's `struct clone_args`
/// (`CLONE_ARGS_SIZE_VER0`, Linux 5.3), which is all a fork-style clone
/// sets: no stack (the child runs on its copy of ours), no tls.
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
}

/// A copy of this process (fork-style: its own copy of the memory,
/// SIGCHLD at exit) that shares the descriptor table (`CLONE_FILES`).
fn clone_sharing_files() -> io::Result<Cloned> {
    let mut pidfd: c_int = -1;
    let mut args = CloneArgs {
        flags: (libc::CLONE_FILES | libc::CLONE_PIDFD) as u64,
        pidfd: &raw mut pidfd as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..CloneArgs::default()
    };
    // SAFETY: without CLONE_VM the child runs on its own copy of our memory
    // and stack, as after fork(): the process is single-threaded, so that
    // copy is consistent and ordinary code may run in it (see the header
    // for glibc's thread id). `args` is valid for its size, and the kernel
    // writes the pidfd into `pidfd` only. The shared table is changed by
    // neither side until the child has unshared it (`fork_worker`).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &raw mut args,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match check(ret) {
        Ok(0) => Ok(Cloned::Child),
        Ok(pid) => Ok(Cloned::Parent {
            pid: pid as pid_t,
            // SAFETY: CLONE_PIDFD made this descriptor for us alone.
            pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
        }),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => {
            Ok(Cloned::Unsupported)
        }
        Err(e) => Err(e),
    }
}

/// A close-on-exec eventfd, the child's "I have my own table now".
fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd creates a new descriptor or returns -1.
    let fd = check(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) })?;
    // SAFETY: the kernel just created this descriptor for us alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// In the child, first thing: a private descriptor table holding only the
/// entries below `keep_below` (the others are neither copied nor closed
/// one by one), then a word to the parent on `unshared`, which it sends
/// even if the unsharing failed (the parent must not wait for ever). Until
/// then the child changes nothing in the table it shares.
fn unshare_files(keep_below: RawFd, unshared: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_UNSHARE gives this process a
    // copy of the shared table without the range, and closes nothing in
    // the table the parent still uses.
    let result = check(unsafe {
        libc::syscall(
            libc::SYS_close_range,
            keep_below as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_UNSHARE,
        )
    });
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from `one` to an eventfd the parent created
    // for this; the child's copy refers to the same counter.
    let told = check(unsafe { libc::write(unshared.as_raw_fd(), (&raw const one).cast(), 8) });
    result.and(told).map(drop)
}

/// In the parent: waits until the child has said that its table is its
/// own, or has died before that (its pidfd becomes readable), whichever
/// comes first. Either way the table is the parent's alone again. Nothing
/// to report: once the child exists, the caller must watch it, and the
/// child's set-up failures are its exit status.
fn wait_until_unshared(unshared: BorrowedFd<'_>, pidfd: BorrowedFd<'_>) {
    let mut fds = [unshared, pidfd].map(|fd| libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    });
    // SAFETY: `fds` is a valid array of two pollfds for the call; no
    // timeout, and the signal mask stays as it is (NULL): the master's
    // handled signals stay blocked, and only another signal's EINTR (which
    // is retried) can end the wait early.
    let waited = super::retry_eintr(|| unsafe {
        libc::ppoll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            ptr::null(),
            ptr::null(),
        )
    });
    debug_assert!(
        waited.is_ok(),
        "ppoll on two valid descriptors on the stack failed: {waited:?}"
    );
}

/// Where `clone3` is refused: `fork()` copies the whole table, and the
/// child closes what it does not need (see `set_up_child`).
fn fork_copying_files(
    fd_map: &[(BorrowedFd<'_>, RawFd)],
    reset_signals: &[c_int],
    name: &CStr,
    serve: impl FnOnce() -> i32,
) -> io::Result<pid_t> {
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
    // SAFETY: as in `fork_worker`: the child ends here, never returning
    // into the caller's code.
    unsafe { libc::_exit(status) }
}

/// The child's set-up in its own descriptor table, in `fork_worker`'s
/// order.
fn set_up_child(
    fd_map: &[(BorrowedFd<'_>, RawFd)],
    reset_signals: &[c_int],
    name: &CStr,
) -> io::Result<()> {
    for (from, to) in fd_map {
        // SAFETY: dup2 on two descriptor numbers in this process's own
        // table: `from` is open (borrowed), `to` is overwritten on purpose
        // (the hand-over's number); the result has close-on-exec clear,
        // which is moot without an exec.
        if unsafe { libc::dup2(from.as_raw_fd(), *to) } != *to {
            return Err(io::Error::last_os_error());
        }
    }
    let first_closed = fd_map.iter().map(|&(_, to)| to).max().unwrap_or(2) + 1;
    // SAFETY: closes descriptors only, in this process's own table, every
    // one of them the parent's (listener, epoll set, spare, metrics, the
    // hand-shake's eventfd and pidfd, log and client originals, and after
    // a plain fork the pidfds): nothing in the child uses them from here on.
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
    // was inherited (a new process starts with none), and what arrives
    // from here on takes the default action until the worker installs its
    // own.
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
