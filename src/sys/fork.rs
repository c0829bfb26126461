//! Starting a worker without exec (`--model fork`): a fork of this
//! process, then, in the child, the state an exec'd worker starts in (the
//! client on 3, the log on 4, no other descriptor above 2, default signal
//! dispositions, an empty mask, its own process group, its name), then the
//! caller's `serve`, then `_exit` with what it returned.
//!
//! Two ways to fork, the caller choosing by the size of its table:
//! `fork_worker` is a plain `fork()`, whose child copies the whole
//! descriptor table and closes what it does not need; with 10,000 pidfds
//! that copying and closing was 2.2 ms of the 2.9 ms a new connection
//! took, and each child's copy kept the pidfd of a worker just reaped
//! alive, with epoll reporting it, until the child had closed it.
//! `fork_worker_sparing_table` is a fork-style `clone3` that shares the
//! table until the child has unshared it with `CLOSE_RANGE_UNSHARE`,
//! copying only the descriptors below the highest one it needs, as
//! `spawn.rs`'s child does, while the parent waits for it to say so.
//!
//! The child never returns into the caller's code and never runs the
//! parent's destructors, `atexit` handlers or buffered output's flushes
//! (`_exit`), and changes nothing in a table it still shares. Only for a
//! single-threaded process (the master): the child of a multi-threaded one
//! may only make async-signal-safe calls. Like Rust's own `Command`, the
//! sparing fork calls `clone3` directly, so no `pthread_atfork` handler
//! runs and glibc's cached thread id in the child is the parent's: system
//! calls, `malloc` and Rust's std are fine there, pthread mutexes that
//! record their owner are not (a worker takes none). Where `clone3` is
//! refused (a seccomp filter answering ENOSYS or EPERM), it falls back to
//! `fork_worker`. It decides nothing: which descriptors, which signals and
//! which way is the caller's.

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
/// keep them above the mapped range), as for `SpawnTemplate::spawn`.
///
/// A plain `fork()`: the child gets a copy of the whole descriptor table
/// and closes what it does not need, which costs in proportion to the
/// table (see `fork_worker_sparing_table` for a large one). A step of the
/// set-up that fails ends the child with status 127 before `serve` runs
/// (nothing is shared with the parent to say which): the parent sees it
/// as a worker that exited with 127.
pub fn fork_worker(
    fd_map: &[(BorrowedFd<'_>, RawFd)],
    reset_signals: &[c_int],
    name: &CStr,
    serve: impl FnOnce() -> i32,
) -> io::Result<pid_t> {
    debug_assert_no_collision(fd_map);
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

/// As `fork_worker`, except when descriptor `large_mark` is open (the
/// caller's sign that its table holds many descriptors at and above it,
/// such as a pidfd per worker): then the child *shares* the table
/// (`clone3` with `CLONE_FILES`) and first of all unshares it with
/// `close_range(…, CLOSE_RANGE_UNSHARE)`, which copies only the
/// descriptors below the highest `from` (and the hand-shake's eventfd), so
/// nothing at or above the caller's many is copied or closed one by one.
/// The parent waits for the child's word that its table is its own (or
/// for its death), so the caller may close its copy of the client as soon
/// as this returns.
///
/// Why only then: the hand-shake makes the parent wait until the child
/// has been scheduled, which on a loaded machine costs more than copying
/// and closing a small table (measured: churn `-c 16` 10–30 % lower when
/// every fork waited), and nothing when the table is large (with 10,000
/// pidfds the copy and the closing took 2.2 ms of a connection's 2.9 ms).
pub fn fork_worker_sparing_table(
    large_mark: RawFd,
    fd_map: &[(BorrowedFd<'_>, RawFd)],
    reset_signals: &[c_int],
    name: &CStr,
    serve: impl FnOnce() -> i32,
) -> io::Result<pid_t> {
    if !is_open(large_mark) {
        return fork_worker(fd_map, reset_signals, name, serve);
    }
    debug_assert_no_collision(fd_map);
    let unshared = eventfd()?;
    let keep_below = fd_map
        .iter()
        .map(|(from, _)| from.as_raw_fd())
        .chain([unshared.as_raw_fd(), 2])
        .max()
        .unwrap_or(2)
        + 1;
    let pid = match clone_sharing_files()? {
        Cloned::Parent { pid } => pid,
        Cloned::Child => {
            let status = match unshare_files(keep_below, unshared.as_fd())
                .and_then(|()| set_up_child(fd_map, reset_signals, name))
            {
                Ok(()) => serve(),
                Err(_) => 127,
            };
            // SAFETY: as in `fork_worker`: the child ends here. Nothing is
            // closed in a table still shared with the parent (a failed
            // unsharing): exit only drops this process's reference to it.
            unsafe { libc::_exit(status) }
        }
        Cloned::Unsupported => return fork_worker(fd_map, reset_signals, name, serve),
    };
    wait_until_unshared(unshared.as_fd(), pid);
    Ok(pid)
}

fn debug_assert_no_collision(fd_map: &[(BorrowedFd<'_>, RawFd)]) {
    debug_assert!(
        fd_map
            .iter()
            .all(|(from, _)| fd_map.iter().all(|(_, to)| from.as_raw_fd() != *to)),
        "a source descriptor collides with a target number"
    );
}

/// Whether `fd` is an open descriptor of this process.
fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the descriptor's flags; a closed or
    // invalid number fails with EBADF and changes nothing.
    fd >= 0 && unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1
}

/// Which side of `clone_sharing_files` this is.
enum Cloned {
    Parent {
        pid: pid_t,
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
    let mut args = CloneArgs {
        flags: libc::CLONE_FILES as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..CloneArgs::default()
    };
    // SAFETY: without CLONE_VM the child runs on its own copy of our memory
    // and stack, as after fork(): the process is single-threaded, so that
    // copy is consistent and ordinary code may run in it (see the header
    // for glibc's thread id). `args` is valid for its size and asks the
    // kernel to write nothing back. The shared table is changed by
    // neither side until the child has unshared it
    // (`fork_worker_sparing_table`).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &raw mut args,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match check(ret) {
        Ok(0) => Ok(Cloned::Child),
        Ok(pid) => Ok(Cloned::Parent { pid: pid as pid_t }),
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

/// How long the parent waits for the child's word before it checks that
/// the child is still alive. The child always writes the word unless it
/// is killed first (SIGKILL from outside within microseconds of its
/// birth), so the check almost never runs; it only bounds how long the
/// master could stall on a child that died unheard. (A pidfd from
/// `CLONE_PIDFD` would tell at once, but creating and closing it costs
/// more per connection than this timer, which normally never fires.)
const CHILD_ALIVE_CHECK: libc::timespec = libc::timespec {
    tv_sec: 0,
    tv_nsec: 10_000_000,
};

/// In the parent: waits until the child has said that its table is its
/// own, or has died before that, whichever comes first. Either way the
/// table is the parent's alone again. Nothing to report: once the child
/// exists, the caller must watch it, and the child's set-up failures are
/// its exit status.
fn wait_until_unshared(unshared: BorrowedFd<'_>, child: pid_t) {
    let mut fd = libc::pollfd {
        fd: unshared.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd for the call and a valid timeout; the
        // signal mask stays as it is (NULL): the master's handled signals
        // stay blocked.
        let ready = unsafe { libc::ppoll(&mut fd, 1, &CHILD_ALIVE_CHECK, ptr::null()) };
        match check(ready) {
            Ok(0) if !has_exited(child) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // The word, the child's death, or an error that cannot happen
            // with one valid pollfd on the stack.
            _ => return,
        }
    }
}

/// Whether child `pid` has exited (or cannot be asked about), without
/// reaping it: the caller's reaping must still find it (`WNOWAIT`).
fn has_exited(pid: pid_t) -> bool {
    // SAFETY: a zeroed siginfo is a valid value for waitid to fill in.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid writes only to `info`; WNOWAIT leaves the child as it
    // is, WNOHANG returns at once.
    let asked = check(unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    });
    // SAFETY: waitid filled in a SIGCHLD siginfo, or left si_pid 0 when the
    // child is still running.
    asked.is_err() || unsafe { info.si_pid() } != 0
}

/// The child's set-up in its own descriptor table, in `fork_worker`'s
/// order (after the unsharing, for `fork_worker_sparing_table`).
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
    // hand-shake's eventfd, log and client originals, and after
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
