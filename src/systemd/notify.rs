//! Telling a service manager how the server is doing: the `NOTIFY_SOCKET`
//! protocol of sd_notify(3), one datagram per message, on a path or an
//! abstract socket (`@name`), with std's `UnixDatagram` and no libsystemd.
//!
//! What it sends, when its callers say so: `READY=1` once accepting (and
//! again after a reload), `STATUS=` with the figures, `RELOADING=1` with
//! `MONOTONIC_USEC=` before a reload, `STOPPING=1` when shutdown begins,
//! and `WATCHDOG=1` every half of `WATCHDOG_USEC` when the manager asks for
//! it (`WATCHDOG_PID` unset or ours): the caller's event loop wakes for
//! [`Notifier::next_watchdog`], never a thread.
//!
//! It reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` once and
//! removes them from the environment, as sd_notify(3) does with
//! `unset_environment`: nothing the server starts later (workers already
//! get a filtered environment; a future `--exec` program) can talk to the
//! service manager in the server's name.
//!
//! It must never block or fail its caller: the socket is non-blocking, a
//! full socket buffer drops the message, and a socket that is missing or
//! refuses is ignored; each case is one DEBUG line, once.

use std::cell::Cell;
use std::fmt::Display;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

use crate::log::debug;
use crate::sys;

/// The variables of the protocol, removed once read.
pub const NOTIFY_VARS: [&str; 3] = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

/// Sends notifications to the service manager, if there is one.
pub struct Notifier {
    target: Option<Target>,
    watchdog: Option<Watchdog>,
    /// `WATCHDOG_USEC` as given, handed over with `NOTIFY_SOCKET` on an
    /// upgrade in place (the variables are gone from the environment).
    watchdog_usec: Option<String>,
}

struct Target {
    socket: UnixDatagram,
    addr: SocketAddr,
    /// `NOTIFY_SOCKET` as given, for the DEBUG lines.
    name: String,
    /// Whether the one DEBUG line about a refused message was written.
    told_unreachable: Cell<bool>,
    /// Whether the one DEBUG line about a full socket buffer was written.
    told_full: Cell<bool>,
}

struct Watchdog {
    interval: Duration,
    next: Instant,
}

impl Notifier {
    /// A notifier that sends nothing: no service manager.
    pub fn disabled() -> Notifier {
        Notifier {
            target: None,
            watchdog: None,
            watchdog_usec: None,
        }
    }

    /// Reads the environment once (and removes the variables), at `now`,
    /// the time the watchdog counts from. Without `NOTIFY_SOCKET` it sends
    /// nothing; the log must be set up already (for the DEBUG lines).
    pub fn from_env(now: Instant) -> Notifier {
        let get = |name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned());
        let (socket, usec, pid) = (
            get("NOTIFY_SOCKET"),
            get("WATCHDOG_USEC"),
            get("WATCHDOG_PID"),
        );
        sys::unset_env(&NOTIFY_VARS);
        Notifier::from_vars(socket, usec, pid, now)
    }

    /// The notifier the variables describe, as [`Notifier::from_env`]
    /// found them, or as an upgraded master was handed them (`pid`: `None`,
    /// the watchdog is this process's).
    pub fn from_vars(
        socket: Option<String>,
        usec: Option<String>,
        pid: Option<String>,
        now: Instant,
    ) -> Notifier {
        let Some(name) = socket else {
            return Notifier::disabled();
        };
        let target = match Target::open(&name) {
            Ok(target) => target,
            Err(e) => {
                debug!("NOTIFY_SOCKET={name:?} ignored: {e}");
                return Notifier::disabled();
            }
        };
        let watchdog = match watchdog_interval(usec.as_deref(), pid.as_deref(), std::process::id())
        {
            Ok(interval) => interval.map(|interval| Watchdog {
                interval,
                next: now + interval,
            }),
            Err(why) => {
                debug!("no watchdog keep-alive: {why}");
                None
            }
        };
        Notifier {
            target: Some(target),
            watchdog,
            watchdog_usec: usec,
        }
    }

    /// `NOTIFY_SOCKET` and `WATCHDOG_USEC` as read, for the next image of
    /// an upgraded master; `(None, None)` without a service manager.
    pub fn handover(&self) -> (Option<String>, Option<String>) {
        match &self.target {
            Some(target) => (Some(target.name.clone()), self.watchdog_usec.clone()),
            None => (None, None),
        }
    }

    /// `READY=1`: accepting (after boot, or after a reload), with a status
    /// line.
    pub fn ready(&self, status: impl Display) {
        self.send(format_args!("READY=1\nSTATUS={status}"));
    }

    /// `STATUS=`: one line `systemctl status` shows.
    pub fn status(&self, status: impl Display) {
        self.send(format_args!("STATUS={status}"));
    }

    /// `RELOADING=1` with the time the reload began, before a reload; send
    /// [`Notifier::ready`] when it is done.
    pub fn reloading(&self) {
        if self.target.is_none() {
            return;
        }
        match sys::monotonic_usec() {
            Ok(usec) => self.send(format_args!("RELOADING=1\nMONOTONIC_USEC={usec}")),
            Err(_) => self.send(format_args!("RELOADING=1")),
        }
    }

    /// `STOPPING=1`: shutdown has begun, with a status line.
    pub fn stopping(&self, status: impl Display) {
        self.send(format_args!("STOPPING=1\nSTATUS={status}"));
    }

    /// When the next `WATCHDOG=1` is due, if the manager asked for them.
    pub fn next_watchdog(&self) -> Option<Instant> {
        self.watchdog.as_ref().map(|w| w.next)
    }

    /// Sends `WATCHDOG=1` if it is due at `now`, and schedules the next.
    pub fn on_tick(&mut self, now: Instant) {
        let Some(watchdog) = &mut self.watchdog else {
            return;
        };
        if now >= watchdog.next {
            watchdog.next = now + watchdog.interval;
            self.send(format_args!("WATCHDOG=1"));
        }
    }

    fn send(&self, message: std::fmt::Arguments<'_>) {
        if let Some(target) = &self.target {
            target.send(&message.to_string());
        }
    }
}

impl Target {
    fn open(name: &str) -> io::Result<Target> {
        let addr = match name.strip_prefix('@') {
            Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name.as_bytes())?,
            None if name.starts_with('/') => SocketAddr::from_pathname(name)?,
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "neither an absolute path nor an abstract @name",
                ));
            }
        };
        // Close-on-exec (std opens everything so): no worker inherits it.
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        Ok(Target {
            socket,
            addr,
            name: name.to_string(),
            told_unreachable: Cell::new(false),
            told_full: Cell::new(false),
        })
    }

    /// One datagram, never waiting: a message that cannot go now is dropped.
    fn send(&self, message: &str) {
        let Err(e) = self.socket.send_to_addr(message.as_bytes(), &self.addr) else {
            return;
        };
        let (told, what) = if e.kind() == io::ErrorKind::WouldBlock {
            (&self.told_full, "its socket buffer is full")
        } else {
            (&self.told_unreachable, "it cannot be reached")
        };
        if !told.replace(true) {
            debug!(
                "could not notify the service manager at NOTIFY_SOCKET={:?} ({e}): {what}; this \
                 message and others like it are dropped (said once)",
                self.name
            );
        }
    }
}

/// Half of `WATCHDOG_USEC`, when the manager asks process `own_pid` for
/// keep-alives (`WATCHDOG_PID` unset or ours): `Ok(None)` when it does not
/// ask, `Err` saying why a request cannot be read.
pub fn watchdog_interval(
    usec: Option<&str>,
    pid: Option<&str>,
    own_pid: u32,
) -> Result<Option<Duration>, String> {
    let Some(usec) = usec else { return Ok(None) };
    if let Some(pid) = pid {
        match pid.parse::<u32>() {
            Ok(pid) if pid == own_pid => {}
            Ok(_) => return Ok(None),
            Err(_) => return Err(format!("WATCHDOG_PID={pid:?} is not a process id")),
        }
    }
    match usec.parse::<u64>() {
        Ok(usec) if usec > 0 => Ok(Some(Duration::from_micros(usec) / 2)),
        _ => Err(format!(
            "WATCHDOG_USEC={usec:?} is not a positive number of microseconds"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_is_kept_at_half_its_timeout_for_us_only() {
        assert_eq!(
            watchdog_interval(Some("200000"), None, 7),
            Ok(Some(Duration::from_millis(100)))
        );
        assert_eq!(
            watchdog_interval(Some("200000"), Some("7"), 7),
            Ok(Some(Duration::from_millis(100)))
        );
        assert_eq!(watchdog_interval(Some("200000"), Some("8"), 7), Ok(None));
        assert_eq!(watchdog_interval(None, Some("7"), 7), Ok(None));
        assert!(watchdog_interval(Some("0"), None, 7).is_err());
        assert!(watchdog_interval(Some("soon"), None, 7).is_err());
        assert!(watchdog_interval(Some("200000"), Some("me"), 7).is_err());
    }

    #[test]
    fn messages_arrive_one_datagram_each_and_the_watchdog_waits_its_turn() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let receiver = UnixDatagram::bind(&path).unwrap();
        let start = Instant::now();
        let mut notifier = Notifier {
            target: Some(Target::open(path.to_str().unwrap()).unwrap()),
            watchdog: Some(Watchdog {
                interval: Duration::from_millis(100),
                next: start + Duration::from_millis(100),
            }),
            watchdog_usec: Some("200000".into()),
        };
        notifier.ready("listening on 127.0.0.1:9190");
        notifier.on_tick(start + Duration::from_millis(50));
        notifier.on_tick(start + Duration::from_millis(100));
        assert_eq!(
            notifier.next_watchdog(),
            Some(start + Duration::from_millis(200))
        );
        let mut buf = [0u8; 256];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=listening on 127.0.0.1:9190");
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"WATCHDOG=1");
    }

    #[test]
    fn a_relative_path_is_not_a_notify_socket() {
        assert!(Target::open("run/notify").is_err());
        assert!(Target::open("@abstract-name").is_ok());
    }
}
