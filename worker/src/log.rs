//! The worker's log: lines in the shared format (`mpecho_handoff::
//! format_line`, the master's too), `worker[PID]` as their component,
//! each written with one `write(2)` to the log descriptor the master
//! handed over (4) or to standard error.
//!
//! The line is formatted in a small stack buffer (see `SHORT_LINE`); nothing is buffered across lines,
//! and a line that cannot be written is lost (nowhere is left to say so).
//! Never called from a signal handler.

use core::fmt;
use core::sync::atomic::{AtomicI32, AtomicU8, AtomicU32, Ordering};

use mpecho_handoff::{Level, format_line, format_short_line};

use crate::sys;

/// The stack buffer a line is formatted in: every line the worker writes
/// fits (the longest, a trace of 64 escaped bytes, is under 400 bytes), so
/// the frame stays within the stack pages a worker touches anyway. A
/// longer line is formatted again, whole, into `sys::BUFFERS.line` (.bss,
/// 4000 bytes, touched only then): the bytes are the same either way.
const SHORT_LINE: usize = 512;

// Every static here starts at zero, in .bss: nothing in .data is written,
// so its page stays the file's, shared by every worker.

/// Where lines go; set by `init` (nothing is written before it).
static SINK: AtomicI32 = AtomicI32::new(0);
/// The least severe level written, as 1 + its index in `Level::ALL`; 0
/// (before `init`): nothing is written.
static MAX_LEVEL: AtomicU8 = AtomicU8::new(0);
static PID: AtomicU32 = AtomicU32::new(0);

/// Starts logging to descriptor `fd` at `max_level` and below. The pid is
/// asked of the kernel at the first call only: a process that serves one
/// session after another (`--model prefork`) keeps it, and none of them
/// forks after logging.
pub fn init(fd: i32, max_level: Level) {
    SINK.store(fd, Ordering::Relaxed);
    if PID.load(Ordering::Relaxed) == 0 {
        PID.store(sys::pid(), Ordering::Relaxed);
    }
    MAX_LEVEL.store(max_level as u8 + 1, Ordering::Relaxed);
}

/// Whether a line at `level` would be written (so that callers can skip
/// preparing what only that line shows).
pub fn enabled(level: Level) -> bool {
    (level as u8) < MAX_LEVEL.load(Ordering::Relaxed)
}

/// Formats and writes one line; use the macros below.
pub fn write(level: Level, args: fmt::Arguments<'_>) {
    if !enabled(level) {
        return;
    }
    let (now, pid) = (sys::wall_clock(), PID.load(Ordering::Relaxed));
    let sink = SINK.load(Ordering::Relaxed);
    let mut short = [0u8; SHORT_LINE];
    if let Some(line) = format_short_line(&mut short, now, level, "worker", pid, args) {
        let _ = sys::write_all(sink, line);
        return;
    }
    // Never lent already: formatting a line logs nothing, and signal
    // handlers never log.
    sys::BUFFERS.line.with(|buf| {
        let line = format_line(buf, now, level, "worker", pid, args);
        let _ = sys::write_all(sink, line);
    });
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
