//! Readiness and status through a real `NOTIFY_SOCKET`: the test binds
//! the datagram socket a service manager would (a path, or an abstract
//! `@name`), starts the server with `NOTIFY_SOCKET` naming it, and reads
//! what arrives, one datagram per message: `READY=1` once accepting,
//! `STATUS=` with the figures, `RELOADING=1` (with `MONOTONIC_USEC=`) then
//! `READY=1` around SIGHUP, `STOPPING=1` on SIGTERM, `WATCHDOG=1` at half
//! of `WATCHDOG_USEC`. A socket nobody reads, or nobody listens on, never
//! stops or slows the server. Every wait is for a datagram or a log line,
//! bounded.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mpecho_testkit::{Server, ServerOptions, TIMEOUT, count_lines, echo, environ};

/// The service manager's end: a datagram socket the server notifies.
struct Manager {
    socket: UnixDatagram,
    /// `NOTIFY_SOCKET` for it.
    name: String,
    _dir: tempfile::TempDir,
}

impl Manager {
    /// Bound to a path in a temporary directory.
    fn at_path() -> Manager {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let path: PathBuf = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        Manager {
            socket,
            name: path.display().to_string(),
            _dir: dir,
        }
    }

    /// Bound to an abstract name (`@…` in NOTIFY_SOCKET).
    fn abstract_name() -> Manager {
        let name = format!("mpecho-test-{}-{}", std::process::id(), nanos_now());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("an abstract address");
        let socket = UnixDatagram::bind_addr(&addr).expect("bind the abstract notify socket");
        Manager {
            socket,
            name: format!("@{name}"),
            _dir: tempfile::tempdir().expect("create a temporary directory"),
        }
    }

    /// Starts a server (`subcommand`, with `args`) notifying this socket,
    /// with `env` added.
    fn start(&self, subcommand: &'static str, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut vars = vec![("NOTIFY_SOCKET".to_string(), self.name.clone())];
        vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Server::start_with(ServerOptions {
            subcommand,
            args: args.iter().map(|a| a.to_string()).collect(),
            env: vars,
            ..ServerOptions::default()
        })
    }

    /// The next datagram, within `within`; `None` when none came.
    fn next_within(&self, within: Duration) -> Option<String> {
        self.socket
            .set_read_timeout(Some(within.max(Duration::from_millis(1))))
            .expect("set the read timeout");
        let mut buf = [0u8; 4096];
        loop {
            match self.socket.recv(&mut buf) {
                Ok(n) => return Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
                // A freeze and thaw of this process interrupts the wait
                // (the socket has a timeout): it says nothing of the server.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return None,
            }
        }
    }

    /// Datagrams as they come until one satisfies `done` (returned last),
    /// within `TIMEOUT`.
    fn until(&self, what: &str, done: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = Instant::now() + TIMEOUT;
        let mut seen = Vec::new();
        while let Some(message) =
            self.next_within(deadline.saturating_duration_since(Instant::now()))
        {
            let finished = done(&message);
            seen.push(message);
            if finished {
                return seen;
            }
        }
        panic!("no {what} within {TIMEOUT:?}; received: {seen:?}");
    }
}

/// Nanoseconds since the epoch: part of a name no other run uses.
fn nanos_now() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// The first message is `READY=1` with the address as status, sent once
/// the server prints `listening on` (start_with has read it) and accepts;
/// the workers never see NOTIFY_SOCKET.
#[test]
fn ready_once_accepting_with_the_address_as_status() {
    let manager = Manager::at_path();
    let server = manager.start("serve", &[], &[]);
    let first = manager.until("READY=1", |m| m.contains("READY=1"));
    assert_eq!(
        first,
        vec![format!("READY=1\nSTATUS=listening on {}", server.addr)]
    );
    let (mut client, worker) = server.connect_served_worker();
    assert_eq!(echo(&mut client, b"ready\n"), b"ready\n");
    let env = environ(worker);
    assert!(
        !env.iter()
            .any(|v| v.starts_with("NOTIFY_SOCKET=") || v.starts_with("WATCHDOG_")),
        "a worker saw the notification variables: {env:?}"
    );
}

/// Every monitor tick sends the figures as `STATUS=`, the same figures
/// the log line has.
#[test]
fn status_carries_the_figures_on_each_monitor_tick() {
    let manager = Manager::at_path();
    let server = manager.start("serve", &["--monitor-interval", "1"], &[]);
    let mut client = server.connect_served();
    assert_eq!(echo(&mut client, b"count me\n"), b"count me\n");
    let messages = manager.until("STATUS= with accepted=1", |m| {
        m.starts_with("STATUS=active=") && m.contains(" accepted=1 ")
    });
    let status = messages.last().expect("a message");
    assert!(!status.contains('\n'), "one line only: {status:?}");
    let figures = status.strip_prefix("STATUS=").expect("a status");
    server.wait_for_log_line(&[&format!("]: figures {figures}")]);
}

/// SIGHUP sends `RELOADING=1` with MONOTONIC_USEC= between the signal and
/// its arrival (CLOCK_MONOTONIC, microseconds), then `READY=1` once the
/// log is reopened.
#[test]
fn sighup_is_reloading_then_ready() {
    let manager = Manager::at_path();
    let server = manager.start("serve", &[], &[]);
    manager.until("READY=1", |m| m.contains("READY=1"));
    let before = mpecho::sys::monotonic_usec().expect("read the monotonic clock");
    server.signal(libc::SIGHUP);
    let reloading = manager.until("RELOADING=1", |m| m.starts_with("RELOADING=1"));
    let after = mpecho::sys::monotonic_usec().expect("read the monotonic clock");
    let message = reloading.last().expect("a message");
    let usec: u64 = message
        .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not RELOADING=1 with MONOTONIC_USEC=: {message:?}"));
    assert!(
        (before..=after).contains(&usec),
        "MONOTONIC_USEC={usec} is not between {before} and {after}"
    );
    let ready = manager.until("READY=1 after the reload", |m| m.starts_with("READY=1"));
    assert_eq!(ready.len(), 1, "{ready:?}");
    assert!(
        ready[0].starts_with("READY=1\nSTATUS=active=0 "),
        "{ready:?}"
    );
    server.wait_for_log_line(&["reopened log file"]);
}

/// SIGTERM sends `STOPPING=1` as shutdown begins, and the server still
/// exits 0.
#[test]
fn sigterm_is_stopping() {
    let manager = Manager::at_path();
    let mut server = manager.start("serve", &[], &[]);
    let (_client, _worker) = server.connect_served_worker();
    manager.until("READY=1", |m| m.contains("READY=1"));
    server.signal(libc::SIGTERM);
    let stopping = manager.until("STOPPING=1", |m| m.starts_with("STOPPING=1"));
    assert_eq!(
        stopping.last().map(String::as_str),
        Some("STOPPING=1\nSTATUS=shutting down (SIGTERM): 1 workers to finish")
    );
    assert_eq!(server.wait_exit(TIMEOUT).code(), Some(0));
}

/// WATCHDOG_USEC=200000 makes the server send `WATCHDOG=1` about every
/// 100 ms: five arrive within a bound, never faster than the interval.
#[test]
fn the_watchdog_is_kept_at_half_its_timeout() {
    let manager = Manager::at_path();
    let _server = manager.start("serve", &[], &[("WATCHDOG_USEC", "200000")]);
    let mut times = Vec::new();
    while times.len() < 5 {
        manager.until("WATCHDOG=1", |m| m == "WATCHDOG=1");
        times.push(Instant::now());
    }
    let span = times[4] - times[0];
    // Four intervals of 100 ms; a datagram can be read late, not sent early
    // (the next is scheduled from when one was sent), so allow reading
    // jitter only below.
    assert!(
        span >= Duration::from_millis(300),
        "5 keep-alives in {span:?}: faster than every 100 ms"
    );
}

/// With WATCHDOG_PID naming another process the request is not ours: no
/// `WATCHDOG=1` comes before the first monitor tick's status (a second,
/// ten intervals of 100 ms).
#[test]
fn a_watchdog_for_another_process_is_not_kept() {
    let manager = Manager::at_path();
    let _server = manager.start(
        "serve",
        &["--monitor-interval", "1"],
        &[("WATCHDOG_USEC", "200000"), ("WATCHDOG_PID", "1")],
    );
    let messages = manager.until("STATUS= of a monitor tick", |m| {
        m.starts_with("STATUS=active=")
    });
    assert!(
        !messages.iter().any(|m| m.contains("WATCHDOG=1")),
        "{messages:?}"
    );
}

/// An abstract socket name (`@name`, as systemd uses in containers) works
/// the same.
#[test]
fn an_abstract_notify_socket_is_notified() {
    let manager = Manager::abstract_name();
    let server = manager.start("serve", &[], &[]);
    assert_eq!(
        manager.until("READY=1", |m| m.contains("READY=1")),
        vec![format!("READY=1\nSTATUS=listening on {}", server.addr)]
    );
}

/// A NOTIFY_SOCKET where nothing listens leaves the server working
/// (serving, reloading, ticking, its watchdog timer running), after
/// exactly one DEBUG line.
#[test]
fn an_unreachable_notify_socket_is_ignored_after_one_debug_line() {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let nobody = dir.path().join("nobody-listens");
    let server = Server::start_with(ServerOptions {
        args: ["--log-level", "debug", "--monitor-interval", "1"]
            .map(String::from)
            .to_vec(),
        env: vec![
            ("NOTIFY_SOCKET".into(), nobody.display().to_string()),
            ("WATCHDOG_USEC".into(), "100000".into()),
        ],
        ..ServerOptions::default()
    });
    let mut client = server.connect();
    assert_eq!(echo(&mut client, b"alone\n"), b"alone\n");
    server.signal(libc::SIGHUP);
    server.wait_for_log_line(&["reopened log file"]);
    server.wait_for_log_count("]: figures ", 2);
    let log = server.log();
    assert_eq!(
        count_lines(&log, "could not notify the service manager"),
        1,
        "{log}"
    );
    server.wait_for_log_line(&[" DEBUG master[", "cannot be reached", "(said once)"]);
    assert_eq!(echo(&mut client, b"still\n"), b"still\n");
}

/// A service manager that stops reading: the socket's queue fills, the
/// messages that do not fit are dropped with one DEBUG line, and the
/// server never blocks (its keep-alives every 10 ms overflow the queue at
/// once; it goes on serving and ticking).
#[test]
fn a_full_notify_socket_drops_messages_with_one_debug_line() {
    let manager = Manager::at_path();
    let server = manager.start(
        "serve",
        &["--log-level", "debug", "--monitor-interval", "1"],
        &[("WATCHDOG_USEC", "20000")],
    );
    server.wait_for_log_line(&[" DEBUG master[", "its socket buffer is full", "(said once)"]);
    server.wait_for_log_count("]: figures ", 2);
    let mut client = server.connect();
    assert_eq!(echo(&mut client, b"not blocked\n"), b"not blocked\n");
    assert_eq!(
        count_lines(&server.log(), "could not notify the service manager"),
        1,
        "{}",
        server.log()
    );
    drop(manager);
}

/// The chat relay speaks the same protocol: READY=1 with its address,
/// WATCHDOG=1 when asked, RELOADING=1 then READY=1 on SIGHUP, STOPPING=1
/// on SIGTERM.
#[test]
fn the_chat_relay_is_ready_reloads_and_stops() {
    let manager = Manager::at_path();
    let mut relay = manager.start("chat-server", &[], &[("WATCHDOG_USEC", "200000")]);
    assert_eq!(
        manager.until("READY=1", |m| m.contains("READY=1")),
        vec![format!("READY=1\nSTATUS=listening on {}", relay.addr)]
    );
    manager.until("WATCHDOG=1", |m| m == "WATCHDOG=1");
    relay.signal(libc::SIGHUP);
    let mut reload = manager.until("READY=1 after the reload", |m| m.starts_with("READY=1"));
    reload.retain(|m| m != "WATCHDOG=1");
    assert_eq!(reload.len(), 2, "{reload:?}");
    assert!(
        reload[0].starts_with("RELOADING=1\nMONOTONIC_USEC="),
        "{reload:?}"
    );
    relay.signal(libc::SIGTERM);
    manager.until("STOPPING=1", |m| m.starts_with("STOPPING=1"));
    assert_eq!(relay.wait_exit(TIMEOUT).code(), Some(0));
}

/// SIGUSR2 under systemd: `RELOADING=1` before the check, `READY=1` from
/// the new image, which was handed `NOTIFY_SOCKET` and `WATCHDOG_USEC`
/// in the state (they left the environment at the first start, so the
/// exec did not carry them) and keeps the watchdog fed.
#[test]
fn sigusr2_is_reloading_then_ready_from_the_new_image() {
    let manager = Manager::at_path();
    let server = manager.start("serve", &[], &[("WATCHDOG_USEC", "200000")]);
    manager.until("READY=1", |m| m.contains("READY=1"));
    server.signal(libc::SIGUSR2);
    manager.until("RELOADING=1", |m| m.starts_with("RELOADING=1"));
    let ready = manager.until("READY=1 after the upgrade", |m| m.starts_with("READY=1"));
    assert!(
        ready
            .last()
            .is_some_and(|m| m.starts_with("READY=1\nSTATUS=active=0 ")),
        "{ready:?}"
    );
    server.wait_for_log_line(&["upgraded from"]);
    manager.until("WATCHDOG=1 from the new image", |m| m == "WATCHDOG=1");
    // /proc/PID/environ is the block the exec was given.
    assert!(
        !environ(server.pid)
            .iter()
            .any(|v| v.starts_with("NOTIFY_SOCKET=") || v.starts_with("WATCHDOG_")),
        "{:?}",
        environ(server.pid)
    );
}
