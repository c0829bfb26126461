//! Throttled warnings: repeated warnings of one kind are written at most
//! once a second, the rest told by one `suppressed N more …` line about a
//! second after the burst, while the figures count every event; each kind
//! is throttled on its own.

use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use mpecho_testkit::{
    Server, assert_connection_ended, connect_from, count_lines, echo, log_time_ms, suppressed_total,
};

use super::{
    REJECTED, assert_figures, connect_turned_away, loopback, per_ip_rejection, wait_for_summary,
};

/// The throttle's interval: at most one line per kind per this.
const THROTTLE_INTERVAL: Duration = Duration::from_secs(1);

/// A bound on a burst that must fall within one throttling second (a few
/// milliseconds on loopback); the expected log lines depend on it.
const BURST_WITHIN: Duration = Duration::from_millis(900);

/// The index of the first log line containing `needle`.
fn line_index(log: &str, needle: &str) -> Option<usize> {
    log.lines().position(|l| l.contains(needle))
}

/// Connects `count` clients at once to a server that must turn each away,
/// and waits for every one to be closed (so each is counted); returns how
/// long that took from the first connect.
fn burst_of_rejections(count: usize, connect: impl Fn() -> TcpStream) -> Duration {
    let started = Instant::now();
    let clients: Vec<TcpStream> = (0..count).map(|_| connect()).collect();
    for mut client in clients {
        assert_connection_ended(&mut client, false, "a client of the burst");
    }
    started.elapsed()
}

/// With `--max-workers 1` and one client held, a burst of 50 rejections
/// within a second writes one `rejected` line, then by itself (no further
/// event) one `suppressed 49 more …` line about a second later, while the
/// figures count all 50; a rejection after a quiet second is logged again.
#[test]
fn burst_of_rejections_is_logged_once_then_summarised() {
    let server = Server::start(&["--max-workers", "1", "--monitor-interval", "0"]);
    let _held = server.connect_served();

    let took = burst_of_rejections(50, || server.connect());
    let burst_end = Instant::now();
    assert!(
        took < BURST_WITHIN,
        "the burst took {took:?}: too slow for one throttling second"
    );
    let pid = server.pid;
    let summary = wait_for_summary(
        &server,
        &format!(
            " WARN master[{pid}]: suppressed 49 more rejected connections (worker limit) in the last 1s"
        ),
        burst_end,
    );
    let summary_seen = Instant::now();
    let log = server.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(REJECTED)).collect();
    assert_eq!(lines.len(), 1, "rejected lines:\n{log}");
    assert!(
        lines[0].contains(&format!(" WARN master[{pid}]: rejected peer=127.0.0.1:"))
            && lines[0].ends_with(": worker limit reached (1 active, max_workers=1)"),
        "the rejection line: {}",
        lines[0]
    );
    let after_first = log_time_ms(&summary) - log_time_ms(lines[0]);
    assert!(
        (990..=2_500).contains(&after_first),
        "the summary came {after_first} ms after the first rejection"
    );
    assert_eq!(
        count_lines(&log, "]: suppressed "),
        1,
        "summary lines:\n{log}"
    );
    assert_figures(
        &server,
        &[
            ("accepted", 1),
            ("rejected", 50),
            ("rejected_full", 50),
            ("rejected_per_ip", 0),
        ],
    );

    // A rejection after a quiet second is logged again. The throttle counts
    // its second from its last line, the summary, which was written before
    // we saw it: from then on we wait out that second — the precondition
    // of the property, not a guess at when the server is done — with no
    // rejection in between (one would be held back and restart the count).
    let quiet_until = summary_seen + THROTTLE_INTERVAL;
    thread::sleep(quiet_until.saturating_duration_since(Instant::now()));
    let mut later = server.connect();
    assert_connection_ended(&mut later, false, "a rejection a second later");
    let later_peer = later.local_addr().unwrap();
    // The master writes the line before it closes the connection.
    let log = server.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(REJECTED)).collect();
    assert_eq!(lines.len(), 2, "rejected lines:\n{log}");
    assert!(
        lines[1].contains(&format!(
            " WARN master[{pid}]: rejected peer={later_peer}: "
        )),
        "the line for the rejection a second later: {}",
        lines[1]
    );
    assert_figures(&server, &[("rejected", 51), ("rejected_full", 51)]);
    assert_eq!(
        count_lines(&log, "]: suppressed "),
        1,
        "summary lines:\n{log}"
    );
}

/// Throttling is per kind: while a burst of worker-limit rejections is
/// being held back, a per-IP rejection in the same second still gets its
/// own line, and each kind's count stays its own.
#[test]
fn per_ip_rejection_is_logged_while_worker_limit_rejections_are_held_back() {
    let server = Server::start(&[
        "--max-workers",
        "2",
        "--max-per-ip",
        "1",
        "--monitor-interval",
        "0",
    ]);
    let _from_1 = server.connect_served();
    let mut from_2 = connect_from(loopback(2), server.addr);
    assert_eq!(echo(&mut from_2, b"from .2\n"), b"from .2\n");
    let worker_2 = server.worker_serving(&from_2);

    let started = Instant::now();
    burst_of_rejections(20, || connect_from(loopback(3), server.addr));
    // Free a slot, so that the next rejection is for the per-IP limit.
    drop(from_2);
    server.wait_for_log_line(&[&format!("]: worker {worker_2} exited status=0 ")]);
    let per_ip = connect_turned_away(&server, "a second client from 127.0.0.1");
    let per_ip_line = per_ip_rejection(&server, per_ip.local_addr().unwrap(), 1, 1);
    server.wait_for_log_line(&[&per_ip_line]);
    let took = started.elapsed();

    let full_summary = format!(
        " WARN master[{}]: suppressed 19 more rejected connections (worker limit) in the last 1s",
        server.pid
    );
    let log = server.log();
    // The per-IP line came while the worker-limit kind was still holding
    // back its burst (its summary, due a second after its first line, not
    // yet written).
    assert!(
        line_index(&log, &full_summary).is_none_or(|summary| {
            line_index(&log, &per_ip_line).is_some_and(|line| line < summary)
        }),
        "the per-IP rejection ({took:?} after the burst began) was not logged within the burst's second:\n{log}"
    );
    wait_for_summary(&server, &full_summary, started);
    let log = server.log();
    assert_eq!(
        count_lines(&log, ": worker limit reached (2 active, max_workers=2)"),
        1,
        "worker-limit rejection lines:\n{log}"
    );
    assert_eq!(
        count_lines(&log, ": per-IP limit reached ("),
        1,
        "per-IP rejection lines:\n{log}"
    );
    assert_eq!(
        suppressed_total(&log, "rejected connections (per-IP limit)"),
        0,
        "{log}"
    );
    assert_figures(
        &server,
        &[
            ("rejected", 21),
            ("rejected_full", 20),
            ("rejected_per_ip", 1),
        ],
    );
}
