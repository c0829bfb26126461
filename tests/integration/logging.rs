//! The log: line shape, what the master and each worker report under their
//! own pids, figures lines, whole lines under 200 concurrent writers, client
//! bytes that cannot forge lines, and a log file that is appended to.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::net::TcpStream;

use mpecho_testkit::{
    Server, ServerOptions, TIMEOUT, assert_connection_ended, count_lines, echo,
    is_well_formed_log_line, log_field, wait_for,
};

/// Asserts that every line of `log` has the standard shape.
fn assert_all_well_formed(log: &str) {
    assert!(
        log.is_empty() || log.ends_with('\n'),
        "the log ends in the middle of a line:\n{log}"
    );
    for line in log.lines() {
        assert!(
            is_well_formed_log_line(line),
            "malformed log line {line:?} in:\n{log}"
        );
    }
}

/// The one line containing every one of `needles`; fails if there are none
/// or several.
fn only_line<'a>(log: &'a str, needles: &[&str]) -> &'a str {
    let found: Vec<&str> = log
        .lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one log line with {needles:?}, found {found:?} in:\n{log}"
    );
    found[0]
}

/// The message part of a log line (after `component[pid]: `).
fn message(line: &str) -> &str {
    line.split_once("]: ").map_or("", |(_, m)| m)
}

/// The master logs start-up, each accept, each rejection, each worker's exit
/// and its shutdown; the worker logs its connect and disconnect (peer, bytes
/// echoed, duration) under its own pid.
#[test]
fn master_and_worker_log_each_event_under_their_own_pids() {
    let mut server = Server::start(&["--max-workers", "1"]);
    let master = server.pid;
    let mut served = server.connect_served();
    let peer = served.local_addr().unwrap();
    let worker = server.wait_for_workers(1)[0];
    assert_eq!(echo(&mut served, &[b'x'; 1000]), vec![b'x'; 1000]);

    let mut rejected = server.connect();
    let rejected_peer = rejected.local_addr().unwrap();
    server.wait_for_log_line(&["rejected", &format!("peer={rejected_peer}:")]);
    assert_connection_ended(&mut rejected, true, "a rejected client");

    drop(served);
    server.wait_for_log_line(&[&format!("worker {worker} exited status=0")]);
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit(TIMEOUT).success());

    let log = server.log();
    assert_all_well_formed(&log);
    let m = format!("master[{master}]: ");
    let w = format!("worker[{worker}]: ");
    only_line(
        &log,
        &[&format!("INFO {m}started: listening on {}", server.addr)],
    );
    only_line(
        &log,
        &[&format!(
            "INFO {m}accept peer={peer} worker={worker} active=1"
        )],
    );
    only_line(
        &log,
        &[&format!(
            "WARN {m}rejected peer={rejected_peer}: worker limit reached (1 active, max_workers=1)"
        )],
    );

    let connect = only_line(&log, &[&format!("{w}connect peer=")]);
    assert_eq!(message(connect), format!("connect peer={peer}"));
    assert!(connect.contains(&format!("INFO {w}")), "{connect:?}");
    let disconnect = only_line(&log, &[&format!("{w}disconnect ")]);
    assert!(
        message(disconnect).starts_with(&format!("disconnect peer={peer} bytes=1005 duration=")),
        "{disconnect:?}"
    );
    assert!(
        message(disconnect).ends_with(" reason=client closed"),
        "{disconnect:?}"
    );
    let duration = log_field(disconnect, "duration");
    let secs: f64 = duration
        .strip_suffix('s')
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("duration {duration:?} is not seconds"));
    assert!(
        (0.0..TIMEOUT.as_secs_f64()).contains(&secs),
        "duration {secs}"
    );
    assert_eq!(
        count_lines(&log, &w),
        2,
        "the worker logs exactly its connect and disconnect at info level:\n{log}"
    );

    let exited = only_line(&log, &[&format!("{m}worker {worker} exited")]);
    assert!(
        message(exited).starts_with(&format!(
            "worker {worker} exited status=0 peer={peer} lived="
        )),
        "{exited:?}"
    );
    assert!(exited.contains(&format!("INFO {m}")), "{exited:?}");
    assert_eq!(log_field(exited, "active"), "0");
    only_line(
        &log,
        &[&format!("INFO {m}shutting down (SIGTERM received)")],
    );
    only_line(
        &log,
        &[&format!(
            "INFO {m}final figures active=0 peak=1 accepted=1 rejected=1 "
        )],
    );
    let last = log.lines().last().unwrap_or_default();
    assert_eq!(
        message(last),
        "exiting: all workers reaped",
        "last line {last:?}"
    );
}

/// `--monitor-interval 1` writes figures lines on its own, with the number
/// of active workers at that moment.
#[test]
fn periodic_figures_report_active_workers() {
    let server = Server::start(&["--monitor-interval", "1"]);
    let idle = server.wait_for_log_line(&["]: figures active=0 "]);
    assert!(is_well_formed_log_line(&idle), "{idle:?}");
    let _client = server.connect_served();
    let busy = server.wait_for_log_line(&["]: figures active=1 peak=1 accepted=1 rejected=0 "]);
    assert!(
        busy.contains(&format!("INFO master[{}]: ", server.pid)),
        "{busy:?}"
    );
    for key in ["exited_ok", "rss_kb", "fds", "uptime_s"] {
        log_field(&busy, key);
    }
}

/// With periodic figures off, SIGUSR1 writes exactly one figures line with
/// the live count, and shutdown writes the final one.
#[test]
fn sigusr1_and_shutdown_write_figures() {
    let mut server = Server::start(&["--monitor-interval", "0"]);
    let a = server.connect_served();
    let b = server.connect_served();
    server.wait_for_workers(2);
    let figures = server.figures();
    let line = figures.line();
    assert!(
        line.contains("]: figures active=2 peak=2 accepted=2 rejected=0 "),
        "{line:?}"
    );
    assert!(
        line.contains(&format!("INFO master[{}]: ", server.pid)),
        "{line:?}"
    );

    drop((a, b));
    server.wait_for_log_count(" exited status=0 ", 2);
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit(TIMEOUT).success());
    let log = server.log();
    assert_all_well_formed(&log);
    assert_eq!(
        log.matches("]: figures ").count(),
        1,
        "one figures line per SIGUSR1:\n{log}"
    );
    only_line(
        &log,
        &["]: final figures active=0 peak=2 accepted=2 rejected=0 "],
    );
}

/// 200 clients connected at once, echoing in rounds at trace level, then all
/// closing: every line of the shared log file is whole, and each worker's
/// connect, reads and disconnect are all there.
#[test]
fn two_hundred_concurrent_writers_never_tear_a_line() {
    const CLIENTS: usize = 200;
    const ROUNDS: usize = 5;
    const SIZE: usize = 100;
    let server = Server::start(&["--log-level", "trace"]);
    let mut clients: Vec<TcpStream> = (0..CLIENTS).map(|_| server.connect()).collect();
    // Every worker is running before anyone sends, so they all log at once.
    server.wait_for_log_count("]: connect peer=", CLIENTS);
    for round in 0..ROUNDS {
        let messages: Vec<Vec<u8>> = (0..CLIENTS)
            .map(|i| {
                let mut m = format!("client {i:03} round {round} ").into_bytes();
                m.resize(SIZE - 1, b'.');
                m.push(b'\n');
                m
            })
            .collect();
        for (client, m) in clients.iter_mut().zip(&messages) {
            std::io::Write::write_all(client, m).expect("send a round");
        }
        for (client, m) in clients.iter_mut().zip(&messages) {
            let mut back = vec![0u8; SIZE];
            client.read_exact(&mut back).expect("read a round's echo");
            assert_eq!(&back, m);
        }
    }
    drop(clients);
    server.wait_for_log_count("]: disconnect peer=", CLIENTS);
    server.wait_for_log_count(" exited status=0 ", CLIENTS);

    let log = server.log();
    assert_all_well_formed(&log);
    let connects: Vec<&str> = log
        .lines()
        .filter(|l| message(l).starts_with("connect peer="))
        .collect();
    let disconnects: Vec<&str> = log
        .lines()
        .filter(|l| message(l).starts_with("disconnect peer="))
        .collect();
    assert_eq!(connects.len(), CLIENTS);
    assert_eq!(disconnects.len(), CLIENTS);
    let label = |line: &str| {
        line.split_once("]: ")
            .map(|(l, _)| l[25..].to_string())
            .unwrap_or_default()
    };
    let connected: HashSet<String> = connects.iter().map(|l| label(l)).collect();
    let disconnected: HashSet<String> = disconnects.iter().map(|l| label(l)).collect();
    assert_eq!(connected.len(), CLIENTS, "one connect line per worker pid");
    assert_eq!(
        connected, disconnected,
        "each worker logs its own connect and disconnect"
    );
    for line in &disconnects {
        assert_eq!(
            log_field(line, "bytes"),
            (ROUNDS * SIZE).to_string(),
            "{line:?}"
        );
    }
    // Every byte each worker read shows up in its trace lines.
    let mut read_per_worker: HashMap<String, usize> = HashMap::new();
    for line in log.lines().filter(|l| message(l).starts_with("read ")) {
        let n: usize = message(line)["read ".len()..]
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no byte count in {line:?}"));
        *read_per_worker.entry(label(line)).or_default() += n;
    }
    assert_eq!(
        read_per_worker.len(),
        CLIENTS,
        "every worker traced its reads"
    );
    for (worker, total) in &read_per_worker {
        assert_eq!(*total, ROUNDS * SIZE, "bytes traced by {worker}");
    }
}

/// Bytes that look like a log line, with newlines, NUL and 0xff, never reach
/// the log raw at any level: every line stays well formed, none is forged,
/// and at trace level the bytes appear escaped.
#[test]
fn client_bytes_cannot_forge_log_lines_at_any_level() {
    let payload = b"\n2020-01-01T00:00:00.000Z ERROR master[1]: forged\n\x00\xff";
    for level in ["trace", "debug", "info", "warn", "error"] {
        let server = Server::start(&["--log-level", level]);
        let mut client = server.connect();
        assert_eq!(echo(&mut client, payload), payload);
        drop(client);
        // The worker has written all its lines once it has exited.
        server.wait_for_workers(0);

        let log = server.log();
        assert_all_well_formed(&log);
        for line in log.lines() {
            assert!(
                !line.starts_with("2020-"),
                "forged line at --log-level {level}: {line:?}"
            );
            assert!(
                !message(line).starts_with("forged"),
                "forged line at --log-level {level}: {line:?}"
            );
        }
        if level == "trace" {
            let escaped = format!(
                r#"read {} bytes: "\x0a2020-01-01T00:00:00.000Z ERROR master[1]: forged\x0a\x00\xff""#,
                payload.len()
            );
            let line = only_line(&log, &[&escaped]);
            assert!(line.contains(" TRACE worker["), "{line:?}");
            assert_eq!(message(line), escaped);
        }
    }
}

/// The log file is opened for appending: what it held before is kept, and
/// a second server run adds to it after the first one's lines.
#[test]
fn log_file_is_appended_to_not_truncated() {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let path = dir.path().join("shared.log");
    let before = "2020-01-01T00:00:00.000Z INFO earlier[1]: line from before\n";
    std::fs::write(&path, before).expect("write the pre-existing line");
    let read_log = || std::fs::read_to_string(&path).expect("read the log file");

    let mut pids = Vec::new();
    for _ in 0..2 {
        let mut server = Server::start_with(ServerOptions {
            args: vec!["--log-file".to_string(), path.display().to_string()],
            log_to_file: false,
            shell_prefix: None,
            subcommand: "serve",
            ..ServerOptions::default()
        });
        pids.push(server.pid);
        let mut client = server.connect();
        assert_eq!(echo(&mut client, b"hi\n"), b"hi\n");
        drop(client);
        let exited = format!("master[{}]: worker ", server.pid);
        wait_for("the worker's exit in the log", TIMEOUT, || {
            read_log()
                .lines()
                .any(|l| l.contains(&exited) && l.contains(" exited status=0 "))
                .then_some(())
        });
        server.signal(libc::SIGTERM);
        assert!(server.wait_exit(TIMEOUT).success());
    }

    let log = read_log();
    assert!(
        log.starts_with(before),
        "the earlier content must be kept:\n{log}"
    );
    assert_all_well_formed(&log);
    let position = |needle: String| {
        log.find(&needle)
            .unwrap_or_else(|| panic!("no {needle:?} in:\n{log}"))
    };
    let first_exit = position(format!("master[{}]: exiting: all workers reaped", pids[0]));
    let second_start = position(format!("master[{}]: started: listening on", pids[1]));
    assert!(
        first_exit < second_start,
        "the second run's lines follow the first's:\n{log}"
    );
}
