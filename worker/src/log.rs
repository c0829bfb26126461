//! The worker's log: lines in the shared format (`mpecho_handoff::
//! format_line`, the master's too), `worker[PID]` as their component,
//! each written with one `write(2)` to the log descriptor the master
//! handed over (4) or to standard error.
//!
//! The line is formatted on the stack; nothing is buffered across lines,
//! and a line that cannot be written is lost (nowhere is left to say so).
//! Never called from a signal handler.

use core::fmt;
use core::sync::atomic::{AtomicI32, AtomicU8, AtomicU32, Ordering};

use mpecho_handoff::{Level, MAX_LINE, format_line};

use crate::sys;

/// Standard error, until `init` says otherwise.
static SINK: AtomicI32 = AtomicI32::new(2);
/// The least severe level written, as its index in `Level::ALL`; nothing
/// is written before `init`.
static MAX_LEVEL: AtomicU8 = AtomicU8::new(NOTHING);
const NOTHING: u8 = u8::MAX;
static PID: AtomicU32 = AtomicU32::new(0);

/// Starts logging to descriptor `fd` at `max_level` and below.
pub fn init(fd: i32, max_level: Level) {
    SINK.store(fd, Ordering::Relaxed);
    PID.store(sys::pid(), Ordering::Relaxed);
    MAX_LEVEL.store(max_level as u8, Ordering::Relaxed);
}

/// Whether a line at `level` would be written (so that callers can skip
/// preparing what only that line shows).
pub fn enabled(level: Level) -> bool {
    let max = MAX_LEVEL.load(Ordering::Relaxed);
    max != NOTHING && level as u8 <= max
}

/// Formats and writes one line; use the macros below.
pub fn write(level: Level, args: fmt::Arguments<'_>) {
    if !enabled(level) {
        return;
    }
    let mut buf = [0u8; MAX_LINE];
    let line = format_line(
        &mut buf,
        sys::wall_clock(),
        level,
        "worker",
        PID.load(Ordering::Relaxed),
        args,
    );
    let _ = sys::write_all(SINK.load(Ordering::Relaxed), line);
}

macro_rules! warning {
    ($($arg:tt)*) => { $crate::log::write(mpecho_handoff::Level::Warn, format_args!($($arg)*)) };
}
macro_rules! info {
    ($($arg:tt)*) => { $crate::log::write(mpecho_handoff::Level::Info, format_args!($($arg)*)) };
}
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log::write(mpecho_handoff::Level::Debug, format_args!($($arg)*)) };
}
macro_rules! trace {
    ($($arg:tt)*) => { $crate::log::write(mpecho_handoff::Level::Trace, format_args!($($arg)*)) };
}
pub(crate) use {debug, info, trace, warning};
