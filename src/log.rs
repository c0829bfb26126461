//! The log: one sink per process, shared by the master and every worker.
//!
//! Each line is formatted in memory and handed to the kernel with a single
//! `write(2)` on a descriptor opened once with `O_APPEND` (or on standard
//! error), so lines from thousands of processes never tear or interleave
//! (DESIGN §5). This module never opens or closes the file per message, never
//! buffers across lines, and never writes a control character: every message
//! is escaped on its way out, so no client can forge a line.
//!
//! A line that cannot be written (a full disk, a pipe whose reader died:
//! SIGPIPE is ignored process-wide, so that is EPIPE, not death) is lost, but
//! counted ([`write_errors`]), because nowhere else is left to report it.
//! On SIGHUP the server [`reopen`]s the file at the same path onto the same
//! descriptor number, so everything holding that number (the spawner) writes
//! to the new file from then on.
//!
//! Line shape: `2026-11-21T22:16:24.123Z INFO master[4242]: message`.

use std::fmt::{self, Write as _};
use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::handoff::FIRST_FREE_FD;
use crate::sys;

/// Severity, from the most to the least important.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl Level {
    /// The name as written in a log line.
    pub fn label(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        }
    }

    /// The lower-case name used on the command line (`--log-level info`).
    pub fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        }
    }

    pub fn from_name(name: &str) -> Option<Level> {
        [
            Level::Error,
            Level::Warn,
            Level::Info,
            Level::Debug,
            Level::Trace,
        ]
        .into_iter()
        .find(|level| level.name() == name)
    }
}

/// Where lines go.
pub enum Sink {
    Stderr,
    /// A log file opened with `O_APPEND`, kept open for the life of the
    /// process (at one descriptor number, even across a reopen).
    File {
        fd: OwnedFd,
        path: PathBuf,
    },
    /// A log file a worker was handed on a descriptor: written, never
    /// reopened (its master reopens, and only new workers see the new file).
    Inherited(OwnedFd),
}

/// The log file named on the command line could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("could not open log file {}: {source}", path.display())]
pub struct OpenLogError {
    path: PathBuf,
    source: io::Error,
}

impl Sink {
    /// The sink a server's `--log-file` asks for: that file, or stderr.
    pub fn for_option(path: Option<&Path>) -> Result<Sink, OpenLogError> {
        match path {
            Some(path) => Sink::open_file(path).map_err(|source| OpenLogError {
                path: path.to_path_buf(),
                source,
            }),
            None => Ok(Sink::Stderr),
        }
    }

    /// Opens `path` for appending (creating it with mode 0644 if missing).
    ///
    /// The descriptor is moved to `FIRST_FREE_FD` or above: workers receive
    /// the log on descriptor 4 and the client on 3, and a source descriptor
    /// in that range would be overwritten while the worker's descriptors
    /// are set up (see `handoff.rs`).
    pub fn open_file(path: &Path) -> io::Result<Sink> {
        let fd = sys::dup_at_least(open_append(path)?.as_fd(), FIRST_FREE_FD)?;
        Ok(Sink::File {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// The log file's descriptor, to hand to workers; `None` for stderr,
    /// which workers inherit as it is.
    pub fn file_fd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            Sink::Stderr => None,
            Sink::File { fd, .. } | Sink::Inherited(fd) => Some(fd.as_fd()),
        }
    }

    fn write_line(&self, line: &[u8]) {
        let stderr = io::stderr();
        let fd = match self {
            Sink::Stderr => stderr.as_fd(),
            Sink::File { fd, .. } | Sink::Inherited(fd) => fd.as_fd(),
        };
        // A short write is only possible on a full disk or a signal after
        // part of the line went out; finishing the line is better than
        // losing it. A failed write cannot be reported anywhere but in the
        // count.
        if sys::write_all_unbuffered(fd, line).is_err() {
            WRITE_ERRORS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Opens `path` for appending, creating it with mode 0644 if missing.
fn open_append(path: &Path) -> io::Result<std::fs::File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        .open(path)
}

/// Lines this process could not write, since it started.
static WRITE_ERRORS: AtomicU64 = AtomicU64::new(0);

/// How many log lines this process could not write (they are lost).
pub fn write_errors() -> u64 {
    WRITE_ERRORS.load(Ordering::Relaxed)
}

/// SIGHUP's part in the log: [`reopen`] the file and say how it went, in
/// the new file when it worked, in the old one when it did not.
pub fn reopen_on_sighup() {
    match reopen() {
        Ok(Some(path)) => info!("reopened log file {}", path.display()),
        Ok(None) => info!("SIGHUP received: logging to standard error, no log file to reopen"),
        Err(e) => error!("SIGHUP received but {e}; still writing to the old file"),
    }
}

/// Opens the log file again at the same path (the logrotate convention for
/// SIGHUP) and puts it on the same descriptor number, so the master and
/// every worker started from now on write to the new file. Returns the path,
/// or `None` when logging to standard error (nothing to reopen). On failure
/// the old file stays in use.
pub fn reopen() -> Result<Option<&'static Path>, OpenLogError> {
    let Some(Sink::File { fd, path }) = LOGGER.get().map(|l| &l.sink) else {
        return Ok(None);
    };
    let error = |source| OpenLogError {
        path: path.clone(),
        source,
    };
    let file = open_append(path).map_err(error)?;
    sys::replace_fd(file.as_fd(), fd.as_fd()).map_err(error)?;
    Ok(Some(path))
}

/// This process's logger: sink, threshold and the `component[pid]` label.
pub struct Logger {
    sink: Sink,
    max_level: Level,
    component: &'static str,
    pid: u32,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Longest line written, newline included. Below `PIPE_BUF` (4096), so a
/// line sent to a pipe (stderr under a supervisor) is still written whole.
const MAX_LINE: usize = 4000;

/// Sets up this process's logger; later calls are ignored (a process has
/// one identity and one sink for its whole life).
pub fn init(sink: Sink, max_level: Level, component: &'static str) {
    let _ = LOGGER.set(Logger {
        sink,
        max_level,
        component,
        pid: std::process::id(),
    });
}

/// The installed logger, if any.
pub fn logger() -> Option<&'static Logger> {
    LOGGER.get()
}

impl Logger {
    pub fn sink(&self) -> &Sink {
        &self.sink
    }

    pub fn max_level(&self) -> Level {
        self.max_level
    }
}

/// Whether a message at `level` would be written (so callers can skip
/// building expensive arguments).
pub fn enabled(level: Level) -> bool {
    LOGGER.get().is_some_and(|l| level <= l.max_level)
}

/// Formats and writes one line. Use the `error!`, `warning!`, `info!`, `debug!` and `trace!` macros.
pub fn write(level: Level, args: fmt::Arguments<'_>) {
    let Some(logger) = LOGGER.get() else { return };
    if level > logger.max_level {
        return;
    }
    let line = format_line(SystemTime::now(), level, logger.component, logger.pid, args);
    logger.sink.write_line(line.as_bytes());
}

fn format_line(
    now: SystemTime,
    level: Level,
    component: &str,
    pid: u32,
    args: fmt::Arguments<'_>,
) -> String {
    let mut line = String::with_capacity(128);
    push_timestamp(&mut line, now);
    let _ = write!(line, " {} {component}[{pid}]: ", level.label());
    let message = fmt::format(args);
    push_escaped_text(&mut line, &message);
    if line.len() > MAX_LINE - 1 {
        let mut cut = MAX_LINE - 1 - "...".len();
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push_str("...");
    }
    line.push('\n');
    line
}

/// Appends `text` with every control character (newline included) written
/// as `\xNN`, so a message is always exactly one line.
fn push_escaped_text(out: &mut String, text: &str) {
    for c in text.chars() {
        if c.is_control() {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            out.push(c);
        }
    }
}

/// Renders client bytes for a log message: printable ASCII as itself,
/// backslash as `\\`, everything else as `\xNN`.
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out
}

/// RFC 3339 UTC with milliseconds: `2026-11-21T22:16:24.123Z`.
fn push_timestamp(out: &mut String, now: SystemTime) {
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since_epoch.subsec_millis()
    );
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `civil_from_days`), so the log needs no date library.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

macro_rules! error {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Error, format_args!($($arg)*)) };
}
macro_rules! warning {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Warn, format_args!($($arg)*)) };
}
macro_rules! info {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Info, format_args!($($arg)*)) };
}
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Debug, format_args!($($arg)*)) };
}
macro_rules! trace {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Trace, format_args!($($arg)*)) };
}
pub(crate) use {debug, error, info, trace, warning};

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_rfc3339_utc_with_millis() {
        let t = UNIX_EPOCH + Duration::from_millis(1_763_763_384_123);
        let mut s = String::new();
        push_timestamp(&mut s, t);
        assert_eq!(s, "2025-11-21T22:16:24.123Z");
        let mut leap = String::new();
        push_timestamp(&mut leap, UNIX_EPOCH + Duration::from_secs(951_782_400));
        assert_eq!(leap, "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn a_message_cannot_break_out_of_its_line() {
        let line = format_line(
            UNIX_EPOCH,
            Level::Info,
            "worker",
            7,
            format_args!(
                "got {}",
                "a\n1970-01-01T00:00:00.000Z ERROR master[1]: forged\r"
            ),
        );
        assert_eq!(
            line,
            "1970-01-01T00:00:00.000Z INFO worker[7]: got a\\x0a1970-01-01T00:00:00.000Z ERROR master[1]: forged\\x0d\n"
        );
    }

    #[test]
    fn long_messages_are_cut_to_one_pipe_atomic_line() {
        let long = "x".repeat(10_000);
        let line = format_line(UNIX_EPOCH, Level::Info, "m", 1, format_args!("{long}"));
        assert_eq!(line.len(), MAX_LINE);
        assert!(line.ends_with("...\n"));
    }

    #[test]
    fn client_bytes_are_escaped() {
        assert_eq!(escape_bytes(b"ok \\ \0\xff\n"), "ok \\\\ \\x00\\xff\\x0a");
    }
}
