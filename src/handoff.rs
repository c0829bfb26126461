//! The hand-over from master to worker: everything the two sides of an exec
//! must agree on, defined once.
//!
//! - the worker's command line, built by the master ([`WorkerArgs::argv`])
//!   and read back by the worker ([`WorkerArgs::parse`]):
//!   `mpecho worker --log-level=L --idle-timeout=SECS [--log-fd=4]`;
//! - the descriptor numbers: the client on [`CLIENT_FD`], the log on
//!   [`LOG_FD`], and [`FIRST_FREE_FD`], below which the master keeps nothing
//!   it hands over (a source descriptor there would be clobbered while the
//!   child arranges its own);
//! - the environment: what is inherited ([`INHERITED_ENV`]) and how the
//!   connection is described ([`connection_env`], the UCSPI variables);
//! - the worker's exit statuses ([`WorkerExit`]), written by the worker and
//!   read by the master's reaper;
//! - the name the worker goes by in `ps`, `top` and `pgrep` ([`PROCESS_NAME`]).
//!
//! This module only defines and converts: it opens, spawns and logs nothing.
//! The worker reaches it before clap or any runtime starts (DESIGN §11), so
//! it must stay cheap to use: no allocation beyond the argument strings.

use std::ffi::{CStr, CString, OsString};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

use crate::log::Level;
use crate::sys;

/// The client connection, always: the master `dup2`s it here (DESIGN §2).
pub const CLIENT_FD: RawFd = 3;
/// The log file, when the master logs to one (otherwise standard error).
pub const LOG_FD: RawFd = 4;
/// The lowest descriptor the master may hand over from: anything it passes
/// to a worker sits at or above this, so setting up 3 and 4 in the child
/// never overwrites a source still to be copied.
pub const FIRST_FREE_FD: RawFd = LOG_FD + 1;

/// What the worker calls itself (`PR_SET_NAME`): exec'd through
/// `/proc/self/exe`, it would otherwise show up as `exe` in `ps`, `top` and
/// `pgrep`, and an operator looking for the processes serving clients
/// would not find them under the server's name.
pub const PROCESS_NAME: &CStr = c"mpecho";

/// The subcommand that makes the executable a worker; `main.rs` dispatches
/// on it before anything else runs.
pub const SUBCOMMAND: &str = "worker";

/// The only variables a worker inherits from the master's environment: no
/// secrets a service manager or shell may have set reach a connection's
/// process (the connection itself is described by [`connection_env`]).
pub const INHERITED_ENV: [&str; 4] = ["PATH", "LANG", "LC_ALL", "TZ"];

/// How a worker ended, as its exit status. The master's reaper reads these
/// back; any other status (or a signal) is a failure it did not plan for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum WorkerExit {
    /// The client left, or the master asked the worker to finish.
    Done = 0,
    /// An I/O error on the connection.
    IoError = 1,
    /// Started wrongly: by hand, without a socket on [`CLIENT_FD`], or with
    /// options the master never writes.
    Usage = 2,
    /// The client neither sent nor consumed anything for the idle timeout.
    IdleTimeout = 3,
}

impl WorkerExit {
    pub const fn code(self) -> i32 {
        self as i32
    }

    /// The status `code` stands for, if a worker ever exits with it.
    pub fn from_code(code: i32) -> Option<WorkerExit> {
        [
            WorkerExit::Done,
            WorkerExit::IoError,
            WorkerExit::Usage,
            WorkerExit::IdleTimeout,
        ]
        .into_iter()
        .find(|status| status.code() == code)
    }
}

impl From<WorkerExit> for ExitCode {
    fn from(status: WorkerExit) -> ExitCode {
        ExitCode::from(status as u8)
    }
}

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

    /// The timeout, `None` when off.
    pub fn duration(self) -> Option<Duration> {
        self.0
    }

    /// Whole seconds, 0 when off (the command-line form).
    pub fn as_secs(self) -> u64 {
        self.0.map_or(0, |d| d.as_secs())
    }
}

impl FromStr for IdleTimeout {
    type Err = String;

    fn from_str(text: &str) -> Result<IdleTimeout, String> {
        text.parse()
            .map(IdleTimeout::from_secs)
            .map_err(|_| format!("{text:?} is not a whole number of seconds (0 turns it off)"))
    }
}

impl fmt::Display for IdleTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_secs())
    }
}

/// The worker's options: set by the master, never by a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerArgs {
    pub log_level: Level,
    /// `Some(fd)`: the log file is on `fd`; `None`: log to standard error.
    pub log_fd: Option<RawFd>,
    pub idle_timeout: IdleTimeout,
}

impl WorkerArgs {
    /// The complete argument vector the master execs a worker with.
    pub fn argv(&self) -> io::Result<Vec<CString>> {
        let mut argv = vec![
            sys::c_string(PROCESS_NAME.to_bytes())?,
            sys::c_string(SUBCOMMAND)?,
            sys::c_string(format!("--log-level={}", self.log_level.name()))?,
            sys::c_string(format!("--idle-timeout={}", self.idle_timeout))?,
        ];
        if let Some(fd) = self.log_fd {
            argv.push(sys::c_string(format!("--log-fd={fd}"))?);
        }
        Ok(argv)
    }

    /// Reads the arguments after `worker` back, refusing anything the
    /// master never writes. What is not given (a worker started by systemd
    /// for an `Accept=yes` socket has no master to give it anything) is
    /// `mpecho serve`'s default: level info, stderr, [`IdleTimeout::DEFAULT`].
    pub fn parse(args: &[OsString]) -> Result<WorkerArgs, String> {
        let mut parsed = WorkerArgs {
            log_level: Level::Info,
            log_fd: None,
            idle_timeout: IdleTimeout::DEFAULT,
        };
        for arg in args {
            let arg = arg.to_str().ok_or("an option is not valid UTF-8")?;
            if let Some(name) = arg.strip_prefix("--log-level=") {
                parsed.log_level =
                    Level::from_name(name).ok_or_else(|| format!("unknown log level {name:?}"))?;
            } else if let Some(fd) = arg.strip_prefix("--log-fd=") {
                parsed.log_fd = Some(fd.parse().map_err(|_| format!("bad descriptor {fd:?}"))?);
            } else if let Some(secs) = arg.strip_prefix("--idle-timeout=") {
                parsed.idle_timeout = secs.parse().map_err(|e| format!("bad idle timeout: {e}"))?;
            } else {
                return Err(format!("unknown option {arg:?}"));
            }
        }
        Ok(parsed)
    }
}

/// The environment entries a worker inherits, read from the master's
/// environment once at boot.
pub fn inherited_env() -> Vec<CString> {
    INHERITED_ENV
        .iter()
        .filter_map(|name| {
            let value = std::env::var_os(name)?;
            let mut entry = name.as_bytes().to_vec();
            entry.push(b'=');
            entry.extend(value.into_encoded_bytes());
            sys::c_string(entry).ok()
        })
        .collect()
}

/// The connection described the way UCSPI servers (`tcpserver`) do, so
/// tools written for that interface find what they expect.
pub fn connection_env(remote: SocketAddr, local: SocketAddr) -> io::Result<[CString; 5]> {
    Ok([
        sys::c_string("PROTO=TCP")?,
        sys::c_string(format!("TCPREMOTEIP={}", remote.ip()))?,
        sys::c_string(format!("TCPREMOTEPORT={}", remote.port()))?,
        sys::c_string(format!("TCPLOCALIP={}", local.ip()))?,
        sys::c_string(format!("TCPLOCALPORT={}", local.port()))?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(argv: &[CString]) -> Vec<OsString> {
        argv.iter()
            .map(|a| OsString::from(a.to_str().unwrap()))
            .collect()
    }

    #[test]
    fn what_the_master_writes_the_worker_reads_back() {
        for args in [
            WorkerArgs {
                log_level: Level::Trace,
                log_fd: Some(LOG_FD),
                idle_timeout: IdleTimeout::from_secs(300),
            },
            WorkerArgs {
                log_level: Level::Warn,
                log_fd: None,
                idle_timeout: IdleTimeout::OFF,
            },
        ] {
            let argv = args.argv().unwrap();
            assert_eq!(argv[0].as_c_str(), PROCESS_NAME);
            assert_eq!(argv[1].to_str().unwrap(), SUBCOMMAND);
            assert_eq!(WorkerArgs::parse(&os(&argv[2..])), Ok(args));
        }
    }

    #[test]
    fn zero_seconds_is_off_and_nonsense_is_refused() {
        assert_eq!("0".parse(), Ok(IdleTimeout::OFF));
        assert_eq!(IdleTimeout::OFF.as_secs(), 0);
        assert_eq!(
            "7".parse::<IdleTimeout>().map(IdleTimeout::duration),
            Ok(Some(Duration::from_secs(7)))
        );
        for bad in ["-1", "1.5", "soon", ""] {
            assert!(bad.parse::<IdleTimeout>().is_err(), "{bad:?} accepted");
        }
        assert!(WorkerArgs::parse(&[OsString::from("--verbose")]).is_err());
    }

    /// A worker no master started (systemd's `Accept=yes`) gets `serve`'s
    /// defaults, not an idle timeout turned off.
    #[test]
    fn no_options_means_the_defaults_of_serve() {
        assert_eq!(
            WorkerArgs::parse(&[]),
            Ok(WorkerArgs {
                log_level: Level::Info,
                log_fd: None,
                idle_timeout: IdleTimeout::DEFAULT,
            })
        );
        assert_eq!(IdleTimeout::DEFAULT.as_secs(), 300);
    }

    #[test]
    fn exit_statuses_round_trip() {
        for status in [
            WorkerExit::Done,
            WorkerExit::IoError,
            WorkerExit::Usage,
            WorkerExit::IdleTimeout,
        ] {
            assert_eq!(WorkerExit::from_code(status.code()), Some(status));
        }
        assert_eq!(WorkerExit::from_code(42), None);
    }
}
