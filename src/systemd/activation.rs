//! Socket activation: the sockets a service manager opened and passed to
//! this process, as sd_listen_fds(3) describes them. They sit on
//! descriptors 3, 4, … ([`FIRST_PASSED_FD`]); `LISTEN_FDS` says how many,
//! `LISTEN_PID` whom they are for (a variable inherited by a child is not
//! meant for it), `LISTEN_FDNAMES` their names (`FileDescriptorName=`,
//! `systemd-socket-activate --fdname`), colon-separated.
//!
//! Two users:
//! - `mpecho serve` ([`take_listener`]): serves the listening socket passed
//!   (the first, or the one named with `--listen-fd-name`) instead of
//!   binding one, after checking that it is a listening TCP socket; the
//!   other sockets passed are closed, and the variables are removed from
//!   the environment;
//! - `mpecho worker` ([`connection_passed`]): under an `Accept=yes` unit
//!   the connection itself is on descriptor 3 with `LISTEN_FDS=1`, the same
//!   hand-over the master gives a worker. The worker reads two variables
//!   and nothing else (DESIGN §11), and leaves them set: it execs nothing.
//!
//! This module owns the parsing, the choice and the check. It never binds,
//! never logs (the master's log is not open yet when it runs: the caller
//! says what happened), and never touches a descriptor that was not passed.

use std::fmt;
use std::net::TcpListener;
use std::os::fd::{AsFd, OwnedFd, RawFd};

use socket2::{Domain, Protocol, Socket, Type};

use crate::handoff::FIRST_FREE_FD;
use crate::sys;

/// The first descriptor passed (`SD_LISTEN_FDS_START`).
pub const FIRST_PASSED_FD: RawFd = 3;

/// The variables of the protocol, removed once read.
pub const LISTEN_VARS: [&str; 3] = ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"];

/// Descriptors a service manager can pass at most: far more than anyone
/// does, and a bound on a garbled `LISTEN_FDS` before a loop over it.
const MAX_PASSED: usize = 4096;

/// What went wrong with the sockets passed in: each message names the
/// variable or descriptor at fault and what to change.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ActivationError {
    #[error(
        "LISTEN_PID={0:?} is not a process id: the socket-activation variables are garbled \
         (start mpecho from a .socket unit, or with no LISTEN_* variable set)"
    )]
    BadPid(String),
    #[error(
        "LISTEN_FDS={0:?} is not a number of descriptors (1 to {MAX_PASSED}): the \
         socket-activation variables are garbled (start mpecho from a .socket unit, or with \
         no LISTEN_* variable set)"
    )]
    BadCount(String),
    #[error(
        "LISTEN_FDNAMES={names:?} names {named} descriptors but LISTEN_FDS={count}: give \
         every socket a name (FileDescriptorName= in the .socket unit) or none"
    )]
    NamesMismatch {
        names: String,
        named: usize,
        count: usize,
    },
    #[error(
        "no socket passed is named {wanted:?} (LISTEN_FDNAMES={names:?}): fix \
         --listen-fd-name, or FileDescriptorName= in the .socket unit"
    )]
    NoSuchName { wanted: String, names: String },
    #[error(
        "--listen-fd-name {0} needs a socket passed by systemd, but none was passed to this \
         process (no LISTEN_FDS, or LISTEN_PID is not ours): start it from its .socket unit, \
         or drop --listen-fd-name to bind --listen"
    )]
    NameWithoutSockets(String),
    #[error(
        "LISTEN_FDS={count} but descriptor {fd} {what}: mpecho serve needs a listening TCP \
         socket (ListenStream= in the .socket unit, with Accept=no)"
    )]
    NotListeningTcp {
        count: usize,
        fd: RawFd,
        what: Found,
    },
    #[error(
        "LISTEN_FDS={0}: mpecho worker serves exactly one connection, on descriptor 3 (a \
         .socket unit for it needs Accept=yes, which passes one connection per instance)"
    )]
    NotOneConnection(usize),
    #[error("could not take the socket passed on descriptor {fd}: {reason}")]
    Adopt { fd: RawFd, reason: String },
}

/// What was found on a passed descriptor that is not a listening TCP
/// socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    NotOpen,
    NotASocket,
    Udp,
    Unix,
    /// A TCP socket that is not listening: a connection.
    Connection,
    Other(String),
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Found::NotOpen => f.write_str("is not open"),
            Found::NotASocket => f.write_str("is not a socket"),
            Found::Udp => f.write_str("is a UDP socket"),
            Found::Unix => f.write_str("is a Unix socket"),
            Found::Connection => f.write_str(
                "is a TCP connection, not a listening socket (Accept=yes passes connections: \
                 such a unit runs `mpecho worker`)",
            ),
            Found::Other(what) => write!(f, "is {what}"),
        }
    }
}

/// The sockets passed to this process, as its environment describes them.
#[derive(Debug, PartialEq, Eq)]
pub struct Passed {
    /// How many, on descriptors `FIRST_PASSED_FD..FIRST_PASSED_FD + count`.
    pub count: usize,
    /// Their names in order, or empty when `LISTEN_FDNAMES` is unset.
    pub names: Vec<String>,
}

/// Reads the protocol's variables (given as found in the environment)
/// for process `own_pid`: `None` when nothing was passed to it, as
/// sd_listen_fds(3) returns 0 (no `LISTEN_PID`, another process's pid, no
/// `LISTEN_FDS`, or 0 sockets).
pub fn parse(
    pid: Option<&str>,
    count: Option<&str>,
    names: Option<&str>,
    own_pid: u32,
) -> Result<Option<Passed>, ActivationError> {
    let Some(pid) = pid else { return Ok(None) };
    let pid: u32 = pid
        .parse()
        .map_err(|_| ActivationError::BadPid(pid.to_string()))?;
    let Some(count_text) = count else {
        return Ok(None);
    };
    if pid != own_pid {
        return Ok(None);
    }
    let count: usize = count_text
        .parse()
        .ok()
        .filter(|&n| n <= MAX_PASSED)
        .ok_or_else(|| ActivationError::BadCount(count_text.to_string()))?;
    if count == 0 {
        return Ok(None);
    }
    let names: Vec<String> = match names {
        None => Vec::new(),
        Some(list) => {
            let names: Vec<String> = list.split(':').map(str::to_string).collect();
            if names.len() != count {
                return Err(ActivationError::NamesMismatch {
                    names: list.to_string(),
                    named: names.len(),
                    count,
                });
            }
            names
        }
    };
    Ok(Some(Passed { count, names }))
}

/// A variable of the environment as text (a value that is not UTF-8 is
/// garbled, and is read as such).
fn var(name: &str) -> Option<String> {
    std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
}

/// The listening socket `mpecho serve` was given, checked and taken.
#[derive(Debug)]
pub struct Activated {
    pub listener: TcpListener,
    /// The descriptor it was passed on.
    pub fd: RawFd,
    /// Its name in `LISTEN_FDNAMES`, if named.
    pub name: Option<String>,
    /// How many sockets were passed in all (the others are closed).
    pub count: usize,
}

/// For `mpecho serve`: the listening socket passed by a service manager,
/// or `None` when none was passed (then the server binds `--listen`).
///
/// Without `wanted` the first socket is taken (systemd passes them in the
/// order of the `Listen*=` lines); with it, the one of that name. The
/// other sockets passed are closed: the master holds only what it serves,
/// and no passed descriptor can reach a worker. `LISTEN_*` are removed
/// from the environment in every case, as sd_listen_fds(3) does.
///
/// Call it before anything opens a descriptor: the passed ones are 3, 4, …
pub fn take_listener(wanted: Option<&str>) -> Result<Option<Activated>, ActivationError> {
    let passed = parse(
        var("LISTEN_PID").as_deref(),
        var("LISTEN_FDS").as_deref(),
        var("LISTEN_FDNAMES").as_deref(),
        std::process::id(),
    );
    sys::unset_env(&LISTEN_VARS);
    let Some(passed) = passed? else {
        return match wanted {
            Some(name) => Err(ActivationError::NameWithoutSockets(name.to_string())),
            None => Ok(None),
        };
    };
    let index = match wanted {
        None => 0,
        Some(name) => passed.names.iter().position(|n| n == name).ok_or_else(|| {
            ActivationError::NoSuchName {
                wanted: name.to_string(),
                names: passed.names.join(":"),
            }
        })?,
    };
    let fd = FIRST_PASSED_FD + index as RawFd;
    let mut chosen = None;
    for i in 0..passed.count {
        let this = FIRST_PASSED_FD + i as RawFd;
        // Dropping the others closes them; one that is not open is not ours
        // to worry about.
        let adopted = sys::adopt_inherited_fd(this);
        if this == fd {
            chosen = Some(adopted);
        }
    }
    let not_open = || ActivationError::NotListeningTcp {
        count: passed.count,
        fd,
        what: Found::NotOpen,
    };
    let socket = chosen.ok_or_else(not_open)?.map_err(|_| not_open())?;
    let listener =
        check_listening_tcp(socket).map_err(|what| ActivationError::NotListeningTcp {
            count: passed.count,
            fd,
            what,
        })?;
    // Moved up and close-on-exec, like a socket the master binds itself:
    // it must never reach a worker (DESIGN §2), and 3 and 4 stay free.
    let listener = sys::dup_at_least(listener.as_fd(), FIRST_FREE_FD)
        .and_then(|fd| {
            let socket = Socket::from(fd);
            socket.set_nonblocking(true)?;
            Ok(TcpListener::from(socket))
        })
        .map_err(|e| ActivationError::Adopt {
            fd,
            reason: e.to_string(),
        })?;
    Ok(Some(Activated {
        listener,
        fd,
        name: passed.names.get(index).cloned(),
        count: passed.count,
    }))
}

/// The socket, if it is a listening TCP socket (IPv4 or IPv6); otherwise
/// what it is.
fn check_listening_tcp(fd: OwnedFd) -> Result<TcpListener, Found> {
    let socket = Socket::from(fd);
    let socket_type = socket.r#type().map_err(|e| match e.raw_os_error() {
        Some(libc::ENOTSOCK) => Found::NotASocket,
        Some(libc::EBADF) => Found::NotOpen,
        _ => Found::Other(format!("unreadable ({e})")),
    })?;
    let domain = socket
        .domain()
        .map_err(|e| Found::Other(format!("a socket of unknown family ({e})")))?;
    if domain == Domain::UNIX {
        return Err(Found::Unix);
    }
    if domain != Domain::IPV4 && domain != Domain::IPV6 {
        return Err(Found::Other(format!("a socket of family {domain:?}")));
    }
    if socket_type == Type::DGRAM {
        return Err(Found::Udp);
    }
    let protocol = socket.protocol().ok().flatten();
    if socket_type != Type::STREAM || protocol.is_some_and(|p| p != Protocol::TCP) {
        return Err(Found::Other(format!(
            "an IP socket of type {socket_type:?} and protocol {protocol:?}, not TCP"
        )));
    }
    match socket.is_listener() {
        Ok(true) => Ok(TcpListener::from(socket)),
        Ok(false) => Err(Found::Connection),
        Err(e) => Err(Found::Other(format!("a TCP socket of unknown state ({e})"))),
    }
}

/// For `mpecho worker`: whether a service manager passed this process one
/// connection (`LISTEN_FDS=1` for our pid, as an `Accept=yes` unit does).
/// Anything else passed to us is an error the worker explains; variables
/// meant for another process are not ours to judge.
pub fn connection_passed() -> Result<bool, ActivationError> {
    let pid = std::env::var_os("LISTEN_PID");
    let count = std::env::var_os("LISTEN_FDS");
    let (pid, count) = match (pid, count) {
        (Some(pid), Some(count)) => (pid, count),
        // The common case, a worker of the master's: nothing to read.
        _ => return Ok(false),
    };
    let passed = parse(
        Some(&pid.to_string_lossy()),
        Some(&count.to_string_lossy()),
        None,
        std::process::id(),
    )?;
    match passed {
        None => Ok(false),
        Some(Passed { count: 1, .. }) => Ok(true),
        Some(Passed { count, .. }) => Err(ActivationError::NotOneConnection(count)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: u32 = 4242;

    #[test]
    fn sockets_are_ours_only_with_our_pid_and_a_count() {
        assert_eq!(parse(None, Some("1"), None, ME), Ok(None));
        assert_eq!(parse(Some("4242"), None, None, ME), Ok(None));
        assert_eq!(parse(Some("1"), Some("1"), None, ME), Ok(None));
        assert_eq!(parse(Some("4242"), Some("0"), None, ME), Ok(None));
        assert_eq!(
            parse(Some("4242"), Some("2"), None, ME),
            Ok(Some(Passed {
                count: 2,
                names: vec![]
            }))
        );
    }

    #[test]
    fn names_go_with_descriptors_in_order() {
        assert_eq!(
            parse(Some("4242"), Some("2"), Some("http:admin"), ME),
            Ok(Some(Passed {
                count: 2,
                names: vec!["http".into(), "admin".into()]
            }))
        );
        assert!(matches!(
            parse(Some("4242"), Some("2"), Some("http"), ME),
            Err(ActivationError::NamesMismatch {
                named: 1,
                count: 2,
                ..
            })
        ));
    }

    #[test]
    fn garbled_variables_are_errors_that_name_them() {
        let err = parse(Some("me"), Some("1"), None, ME).unwrap_err();
        assert!(err.to_string().starts_with("LISTEN_PID=\"me\""), "{err}");
        for bad in ["-1", "two", "99999"] {
            let err = parse(Some("4242"), Some(bad), None, ME).unwrap_err();
            assert_eq!(err, ActivationError::BadCount(bad.into()));
        }
    }

    #[test]
    fn what_is_found_reads_as_a_sentence() {
        let err = ActivationError::NotListeningTcp {
            count: 2,
            fd: 3,
            what: Found::Udp,
        };
        assert_eq!(
            err.to_string(),
            "LISTEN_FDS=2 but descriptor 3 is a UDP socket: mpecho serve needs a listening \
             TCP socket (ListenStream= in the .socket unit, with Accept=no)"
        );
    }
}
