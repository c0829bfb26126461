//! The worker's command line, in one place: what the master writes
//! ([`WorkerArgs::write_options`]) is what the worker reads back
//! ([`WorkerArgs::parse`]):
//! `mpecho-worker --log-level=L --idle-timeout=SECS [--log-fd=4]`.
//!
//! Parsing borrows the arguments and never allocates (the worker has no
//! allocator); errors say what was wrong, quoting the argument.

use core::fmt;
use core::time::Duration;

use crate::log::Level;

const LOG_LEVEL: &str = "--log-level=";
const LOG_FD: &str = "--log-fd=";
const IDLE_TIMEOUT: &str = "--idle-timeout=";

/// How long a connection may stay idle before its worker closes it, or
/// off. On every command line it is a whole number of seconds, and 0 means
/// off: this type is the one place that says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdleTimeout(Option<Duration>);

impl IdleTimeout {
    pub const OFF: IdleTimeout = IdleTimeout(None);
    /// `mpecho serve`'s default, and a worker's when no master gives it
    /// one (systemd's `Accept=yes`, or by hand): five minutes is long for an
    /// echo client that is still there, short for a forgotten one.
    pub const DEFAULT: IdleTimeout = IdleTimeout(Some(Duration::from_secs(300)));

    pub fn from_secs(secs: u64) -> IdleTimeout {
        IdleTimeout((secs > 0).then(|| Duration::from_secs(secs)))
    }

    /// The command-line form: whole seconds, 0 for off.
    pub fn parse(text: &str) -> Result<IdleTimeout, BadIdleTimeout<'_>> {
        text.parse()
            .map(IdleTimeout::from_secs)
            .map_err(|_| BadIdleTimeout(text))
    }

    /// The timeout, `None` when off.
    pub fn duration(self) -> Option<Duration> {
        self.0
    }

    /// Whole seconds, 0 when off (the command-line form).
    pub fn as_secs(self) -> u64 {
        self.0.map_or(0, |d| d.as_secs())
    }
}

impl fmt::Display for IdleTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_secs())
    }
}

/// A number of seconds that is not one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadIdleTimeout<'a>(pub &'a str);

impl fmt::Display for BadIdleTimeout<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a whole number of seconds (0 turns it off)",
            self.0
        )
    }
}

/// The worker's options: set by the master (or a unit file), never typed
/// by a person in daily use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerArgs {
    pub log_level: Level,
    /// `Some(fd)`: the log file is on `fd`; `None`: log to standard error.
    pub log_fd: Option<i32>,
    pub idle_timeout: IdleTimeout,
}

/// An argument the worker does not understand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgError<'a> {
    NotUtf8,
    UnknownLevel(&'a str),
    BadFd(&'a str),
    BadIdleTimeout(BadIdleTimeout<'a>),
    Unknown(&'a str),
}

impl fmt::Display for ArgError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgError::NotUtf8 => f.write_str("an option is not valid UTF-8"),
            ArgError::UnknownLevel(name) => write!(f, "unknown log level {name:?}"),
            ArgError::BadFd(fd) => write!(f, "bad descriptor {fd:?}"),
            ArgError::BadIdleTimeout(e) => write!(f, "bad idle timeout: {e}"),
            ArgError::Unknown(arg) => write!(f, "unknown option {arg:?}"),
        }
    }
}

impl WorkerArgs {
    /// What a worker runs with when nothing says otherwise (a worker
    /// started by systemd for an `Accept=yes` socket has no master to say
    /// anything): `mpecho serve`'s defaults, level info, stderr,
    /// [`IdleTimeout::DEFAULT`].
    pub const DEFAULT: WorkerArgs = WorkerArgs {
        log_level: Level::Info,
        log_fd: None,
        idle_timeout: IdleTimeout::DEFAULT,
    };

    /// Hands each option after the program name to `push`, in order, as
    /// it is written on the command line.
    pub fn write_options(&self, mut push: impl FnMut(fmt::Arguments<'_>)) {
        push(format_args!("{LOG_LEVEL}{}", self.log_level.name()));
        push(format_args!("{IDLE_TIMEOUT}{}", self.idle_timeout));
        if let Some(fd) = self.log_fd {
            push(format_args!("{LOG_FD}{fd}"));
        }
    }

    /// Reads the arguments after the program name back, refusing anything
    /// the master never writes; what is not given keeps its
    /// [`WorkerArgs::DEFAULT`].
    pub fn parse<'a>(args: impl IntoIterator<Item = &'a [u8]>) -> Result<WorkerArgs, ArgError<'a>> {
        let mut parsed = WorkerArgs::DEFAULT;
        for arg in args {
            let arg = core::str::from_utf8(arg).map_err(|_| ArgError::NotUtf8)?;
            if let Some(name) = arg.strip_prefix(LOG_LEVEL) {
                parsed.log_level = Level::from_name(name).ok_or(ArgError::UnknownLevel(name))?;
            } else if let Some(fd) = arg.strip_prefix(LOG_FD) {
                parsed.log_fd = Some(fd.parse().map_err(|_| ArgError::BadFd(fd))?);
            } else if let Some(secs) = arg.strip_prefix(IDLE_TIMEOUT) {
                parsed.idle_timeout = IdleTimeout::parse(secs).map_err(ArgError::BadIdleTimeout)?;
            } else {
                return Err(ArgError::Unknown(arg));
            }
        }
        Ok(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::{String, ToString};
    use std::vec::Vec;

    fn written(args: &WorkerArgs) -> Vec<String> {
        let mut out = Vec::new();
        args.write_options(|a| out.push(a.to_string()));
        out
    }

    #[test]
    fn what_the_master_writes_the_worker_reads_back() {
        for args in [
            WorkerArgs {
                log_level: Level::Trace,
                log_fd: Some(crate::LOG_FD),
                idle_timeout: IdleTimeout::from_secs(300),
            },
            WorkerArgs {
                log_level: Level::Warn,
                log_fd: None,
                idle_timeout: IdleTimeout::OFF,
            },
        ] {
            let options = written(&args);
            assert_eq!(
                WorkerArgs::parse(options.iter().map(|o| o.as_bytes())),
                Ok(args)
            );
        }
        assert_eq!(
            written(&WorkerArgs {
                log_level: Level::Debug,
                log_fd: Some(4),
                idle_timeout: IdleTimeout::from_secs(7),
            }),
            ["--log-level=debug", "--idle-timeout=7", "--log-fd=4"]
        );
    }

    #[test]
    fn zero_seconds_is_off_and_nonsense_is_refused() {
        assert_eq!(IdleTimeout::parse("0"), Ok(IdleTimeout::OFF));
        assert_eq!(IdleTimeout::OFF.as_secs(), 0);
        assert_eq!(
            IdleTimeout::parse("7").map(IdleTimeout::duration),
            Ok(Some(Duration::from_secs(7)))
        );
        for bad in ["-1", "1.5", "soon", ""] {
            assert!(IdleTimeout::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    /// Each refusal quotes what was wrong.
    #[test]
    fn bad_arguments_are_refused_saying_why() {
        let refused = |arg: &'static [u8]| WorkerArgs::parse([arg]).unwrap_err().to_string();
        assert_eq!(refused(b"--verbose"), "unknown option \"--verbose\"");
        assert_eq!(refused(b"--log-level=loud"), "unknown log level \"loud\"");
        assert_eq!(refused(b"--log-fd=x"), "bad descriptor \"x\"");
        assert_eq!(
            refused(b"--idle-timeout=soon"),
            "bad idle timeout: \"soon\" is not a whole number of seconds (0 turns it off)"
        );
        assert_eq!(refused(b"--log-level=\xff"), "an option is not valid UTF-8");
    }

    /// A worker no master started (systemd's `Accept=yes`) gets `serve`'s
    /// defaults, not an idle timeout turned off.
    #[test]
    fn no_options_means_the_defaults_of_serve() {
        assert_eq!(WorkerArgs::parse([]), Ok(WorkerArgs::DEFAULT));
        assert_eq!(WorkerArgs::DEFAULT.log_level, Level::Info);
        assert_eq!(WorkerArgs::DEFAULT.log_fd, None);
        assert_eq!(IdleTimeout::DEFAULT.as_secs(), 300);
    }
}
