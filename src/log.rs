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
//! Line shape: `2026-11-21T22:16:24.123Z INFO master[4242]: message`,
//! formatted by `mpecho_handoff::format_line`, the one definition the
//! worker executable formats its lines with too (timestamp, level labels,
//! escaping, the 4000-byte cap).

use std::fmt;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use clap::builder::{PossibleValuesParser, TypedValueParser};
pub use mpecho_handoff::Level;
use mpecho_handoff::{MAX_LINE, format_line};

use crate::handoff::FIRST_FREE_FD;
use crate::sys;

/// `--log-level`'s parser for clap: one of the levels' names (listed in
/// `--help` and the manual).
pub fn level_parser() -> impl TypedValueParser<Value = Level> {
    PossibleValuesParser::new(Level::ALL.map(Level::name))
        .try_map(|name| Level::from_name(&name).ok_or("not a log level"))
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

    /// The log file `path` already open on `fd`: an upgraded master's
    /// (`server/upgrade.rs`), handed over by the image before it, reopens
    /// included; SIGHUP reopens `path` as usual.
    pub fn adopted_file(fd: OwnedFd, path: PathBuf) -> Sink {
        Sink::File { fd, path }
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
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let mut buf = [0u8; MAX_LINE];
    let line = format_line(
        &mut buf,
        since_epoch,
        level,
        logger.component,
        logger.pid,
        args,
    );
    logger.sink.write_line(line);
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
pub(crate) use {debug, error, info, warning};
