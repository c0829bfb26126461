//! The hand-over from mpecho's master to its worker executable: everything
//! the two sides of an exec must agree on, defined once and shared by both
//! (`mpecho`, on std, re-exports it from `mpecho::handoff`; `mpecho-worker`,
//! without std or libc, links it directly).
//!
//! - the worker's program name and descriptors ([`WORKER_NAME`],
//!   [`CLIENT_FD`], [`LOG_FD`], [`FIRST_FREE_FD`]);
//! - its command line, written by the master and read back by the worker
//!   ([`WorkerArgs`], `args.rs`), the check the master runs once at
//!   start ([`VERSION_OPTION`], [`VersionLine`]), and the do-nothing mode
//!   that measures the master's own ceiling ([`DO_NOTHING_OPTION`]);
//! - how it ends ([`WorkerExit`], `exit.rs`);
//! - the idle timeout, "0 = off" ([`IdleTimeout`], `args.rs`);
//! - the log line, byte for byte: timestamp, level labels, escaping, the
//!   4000-byte cap ([`format_line`], [`Level`], [`EscapedBytes`], `log.rs`),
//!   and how a peer's address is shown ([`display_addr`]);
//! - how an OS error reads in a message, as std shows it ([`Errno`]);
//! - the two `LISTEN_*` variables a worker started by systemd reads
//!   (`activation.rs`), with the master's parser built on the same code.
//!
//! What this crate must never do: depend on std, alloc or any crate (the
//! worker has no allocator, and a dependency or feature would be unified
//! into its build), make a system call, or hold state. It only defines,
//! parses and formats.

#![cfg_attr(not(test), no_std)]

mod activation;
mod addr;
mod args;
mod errno;
mod exit;
mod log;

pub use activation::{MAX_PASSED, NotOneConnection, VarsError, passed_count};
pub use addr::display_addr;
pub use args::{ArgError, BadIdleTimeout, IdleTimeout, WorkerArgs};
pub use errno::Errno;
pub use exit::WorkerExit;
pub use log::{EscapedBytes, Level, MAX_LINE, TextBuf, format_line, format_short_line};

use core::ffi::CStr;
use core::fmt;

/// The client connection, always: the master `dup2`s it here (DESIGN §2),
/// and systemd's `Accept=yes` passes it here too (`SD_LISTEN_FDS_START`).
pub const CLIENT_FD: i32 = 3;
/// The log file, when the master logs to one (otherwise standard error).
pub const LOG_FD: i32 = 4;
/// The lowest descriptor the master may hand over from: anything it passes
/// to a worker sits at or above this, so setting up 3 and 4 in the child
/// never overwrites a source still to be copied.
pub const FIRST_FREE_FD: i32 = LOG_FD + 1;

/// One literal for the two forms of the worker's name below.
macro_rules! worker_name {
    () => {
        "mpecho-worker"
    };
}

/// The worker executable's file name (and the name of the memory file the
/// master runs the built-in one from), its `argv[0]`, and the name it gives itself
/// (`PR_SET_NAME`) for `ps`, `top` and `pgrep`: exec'd through a
/// descriptor, it would otherwise show up as that descriptor's number.
pub const WORKER_NAME: &str = worker_name!();

/// [`WORKER_NAME`] as the C string that `argv[0]` and `PR_SET_NAME` take.
pub const WORKER_PROGRAM: &CStr =
    match CStr::from_bytes_with_nul(concat!(worker_name!(), "\0").as_bytes()) {
        Ok(name) => name,
        Err(_) => panic!("the worker's name has no NUL inside"),
    };

/// The version of this hand-over: raise it whenever anything in this crate
/// changes meaning (an option, a descriptor, a status), so that a master
/// refuses a worker built for another one.
pub const HANDOFF_VERSION: u32 = 2;

/// The workspace's release version (every package shares it).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The only argument of the check the master runs once at start:
/// `mpecho-worker --version` prints [`VersionLine`] and exits 0.
pub const VERSION_OPTION: &str = "--version";

/// Measuring only, never in service: as the first option after the
/// program name (`mpecho-worker --do-nothing ...`, what `mpecho serve
/// --do-nothing-workers` writes), the worker closes the client descriptor
/// and exits 0 before anything else, without reading its other options.
/// A master started so runs its whole path (accept, spawn, exec, exit,
/// reap) with no echo work: the ceiling its churn is measured against
/// (docs/BENCHMARKS.md). Hand-over 2 added it.
pub const DO_NOTHING_OPTION: &str = "--do-nothing";

/// What `mpecho-worker --version` prints (followed by a newline), and what
/// the master expects to read back from the executable it opened:
/// `mpecho-worker 0.1.0 (hand-over 1)`.
pub struct VersionLine;

impl fmt::Display for VersionLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{WORKER_NAME} {VERSION} (hand-over {HANDOFF_VERSION})")
    }
}
