//! The only place where mpecho's library and binary call libc functions and
//! write `unsafe` blocks: every system call sits behind a small safe function
//! whose name says what it does, and every `unsafe` block says why it is
//! sound (`// SAFETY:`).
//!
//! Split by concern:
//! - `fd.rs`: descriptors (adopting inherited ones, the standard three,
//!   close-on-exec, duplicating, flags, a program opened to be run);
//! - `io.rs`: unbuffered reads and writes, one system call per attempt;
//! - `spawn.rs`: starting a program opened once with a vfork-style clone
//!   and `execveat` (`SpawnTemplate`) and the C strings it takes;
//! - `exec.rs`: replacing this process's image in place (the master's
//!   upgrade): a sealed memory file, the close-on-exec flag, `execve`;
//! - `fork.rs`: starting a worker without exec (`--model fork`): a plain
//!   fork, or one sharing the descriptor table until the child has copied
//!   the little it needs; the child's set-up, the worker's session, `_exit`;
//! - `passing.rs`: descriptors passed between processes over a
//!   sequenced-packet socket pair (`--model prefork`'s hand-over);
//! - `process.rs`: fork, pidfds, signals to one process, and this process's
//!   own user and environment;
//! - `reap.rs`: reaping children and decoding how they ended (`ExitKind`);
//! - `events.rs`: sleeping until a descriptor is ready or a signal arrives
//!   (`Epoll` with `epoll_pwait` for the master, `ppoll` for the chat);
//! - `signals.rs`: signal sets, handlers, dispositions, masks, names;
//! - `limits.rs`: resource limits and CPU time used;
//! - `clock.rs`: the monotonic clock as a number (for a service manager);
//! - `names.rs`: how host names are resolved in a static build.
//!
//! Callers see one flat namespace (`sys::NAME`), re-exported below; the
//! files are private.
//!
//! What this module must never do: allocate, lock or format inside a
//! signal handler or in the spawned child before exec (only
//! async-signal-safe system calls run there), nor return into the
//! master's code from a forked worker (`fork.rs` ends it with `_exit`); hold policy (which signals,
//! which limits, how many workers: callers decide); know about workers,
//! logs or clients; hand out a descriptor it created without exactly one
//! owner (`OwnedFd`) and close-on-exec, except the standard descriptors and
//! those a spawn maps into its child on purpose (DESIGN §2).

use std::ffi::c_int;

mod clock;
mod events;
mod exec;
mod fd;
mod fork;
mod io;
mod limits;
mod names;
mod passing;
mod process;
mod reap;
mod signals;
mod spawn;

pub use clock::monotonic_usec;
pub use events::{Epoll, EpollEvent, Interest, peer_closed, wait_for_events};
pub use exec::{exec_in_place, sealed_memfd, set_cloexec};
pub use fd::{
    adopt_inherited_fd, check_executable, close_inherited_fds_on_exec, dup_at_least, dup_to,
    ensure_standard_fds, memfd_executable, open_executable, replace_fd, set_nonblocking,
};
pub use fork::{fork_worker, fork_worker_sparing_table};
pub use io::{
    read_once, recv_nowait, send_nowait, tcp_quiet_for, write_all_unbuffered, write_once,
};
pub use libc::pid_t;
pub use limits::{
    CpuTime, Limit, Resource, Usage, cpu_time, get_limit, raise_soft_limit_to_hard, set_soft_limit,
};
pub use names::resolve_hosts_with_files_and_dns;
pub use passing::{
    Received, recv_fd, recv_fd_into, send_byte, send_fd, send_fd_with, seqpacket_pair,
};
pub use process::{
    Forked, become_user, effective_uid, fork, pidfd_open, pidfd_send_signal, send_signal, unset_env,
};
pub use reap::{ExitKind, reap_child, reap_one_child, reap_pidfd};
pub use signals::{
    Disposition, SignalSet, block_signals, install_handler, reset_ignored_signals, set_disposition,
    set_signal_mask, signal_name,
};
pub use spawn::{Argv, Program, SpawnTemplate, c_string};

/// A libc return type in which `-1` means "failed, the reason is in errno":
/// `int`, `ssize_t` (read, write) and `long` (`syscall`).
trait MinusOneIsError: Copy + PartialEq {
    const FAILED: Self;
}

impl MinusOneIsError for c_int {
    const FAILED: Self = -1;
}

impl MinusOneIsError for isize {
    const FAILED: Self = -1;
}

impl MinusOneIsError for libc::c_long {
    const FAILED: Self = -1;
}

/// Turns a libc `-1` return into the thread's `errno` as an `io::Error`.
#[inline]
fn check<T: MinusOneIsError>(ret: T) -> std::io::Result<T> {
    if ret == T::FAILED {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Makes `call` again for as long as a signal interrupts it (EINTR).
///
/// Handlers are installed with `SA_RESTART`, but the kernel does not restart
/// every call: a read or write on a socket with a timeout (the worker's idle
/// timeout) returns EINTR whatever the flag says. Retrying here keeps every
/// call that can block correct whichever handlers are installed (DESIGN §3).
#[inline]
fn retry_eintr<T: MinusOneIsError>(mut call: impl FnMut() -> T) -> std::io::Result<T> {
    loop {
        match check(call()) {
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            done => return done,
        }
    }
}
