//! `--on-full defer`: at the worker limit the master stops accepting, so a
//! new client waits in the kernel's backlog (its connect succeeds, nothing
//! is echoed) and is served as soon as a slot frees; the pause is logged,
//! throttled and counted as `deferred`, never as a rejection; a client
//! still waiting at shutdown is refused with the listener.

use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use mpecho_testkit::{
    Server, TIMEOUT, assert_connection_ended, assert_log_lines, count_lines, count_peer_lines,
    echo, log_time_ms, suppressed_total, text, wait_for,
};

use super::{REJECTED, SUMMARY_WITHIN, assert_figures};

/// How long a deferred client is watched for an echo that must not come.
/// Proving that nothing arrives needs a bounded negative wait; this is the
/// one place the suite uses one, kept short.
const NO_ECHO_WINDOW: Duration = Duration::from_millis(300);

/// With `--on-full defer` and both slots taken, a third client's connection
/// completes in the backlog and what it sends is not echoed; the pause is
/// logged and counted (`deferred=`), nothing is rejected, and once one of
/// the two leaves the third gets its echo on the same connection (and a
/// fourth, waiting behind it, once the other leaves). Every pause is
/// counted; their lines are throttled like any repeated warning.
#[test]
fn deferred_client_waits_in_the_backlog_and_is_served_when_a_slot_frees() {
    let server = Server::start(&[
        "--max-workers",
        "2",
        "--on-full",
        "defer",
        "--monitor-interval",
        "0",
    ]);
    let (first, first_worker) = server.connect_served_worker();
    let (second, second_worker) = server.connect_served_worker();
    let pause = format!(
        " WARN master[{}]: worker limit reached (2 active, max_workers=2): new connections wait in the backlog",
        server.pid
    );
    server.wait_for_log_line(&[&pause]);

    // The kernel completes the handshake itself: the connect succeeds.
    let mut third = server.connect();
    third
        .write_all(b"waiting in the backlog\n")
        .expect("send while waiting in the backlog");
    // A fourth waits behind it, for the second pause-and-resume below.
    let mut fourth = server.connect();
    fourth
        .write_all(b"waiting behind\n")
        .expect("send while waiting in the backlog");
    third.set_read_timeout(Some(NO_ECHO_WINDOW)).unwrap();
    let mut buf = [0u8; 64];
    match third.read(&mut buf) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        Ok(0) => panic!("the deferred client was closed instead of left waiting"),
        Ok(n) => panic!(
            "the deferred client was served at the limit: {:?}",
            text(&buf[..n])
        ),
        Err(e) => panic!("the deferred client's connection failed: {e}"),
    }
    third.set_read_timeout(Some(TIMEOUT)).unwrap();
    assert_figures(
        &server,
        &[
            ("active", 2),
            ("accepted", 2),
            ("deferred", 1),
            ("rejected", 0),
        ],
    );
    assert_eq!(server.worker_pids().len(), 2);

    // One leaves: the third is served, which reaches the limit again (a
    // second pause); the other leaves: the fourth likewise (a third pause).
    let mut backlog = [
        (third, "waiting in the backlog\n"),
        (fourth, "waiting behind\n"),
    ];
    for ((leaving, worker), (waiting, sent)) in [(first, first_worker), (second, second_worker)]
        .into_iter()
        .zip(&mut backlog)
    {
        let peer = leaving.local_addr().unwrap();
        drop(leaving);
        server.wait_for_log_line(&[&format!("]: worker {worker} exited status=0 peer={peer} ")]);
        let mut back = vec![0u8; sent.len()];
        waiting
            .read_exact(&mut back)
            .expect("the deferred client's echo once a slot freed");
        assert_eq!(text(&back), *sent);
    }
    let last_pause = Instant::now();
    let [(mut third, _), (mut fourth, _)] = backlog;
    server.worker_serving(&third);
    server.worker_serving(&fourth);
    assert_eq!(echo(&mut third, b"and more\n"), b"and more\n");
    assert_eq!(echo(&mut fourth, b"still here\n"), b"still here\n");
    assert_figures(
        &server,
        &[
            ("active", 2),
            ("accepted", 4),
            ("deferred", 3),
            ("rejected", 0),
            ("rejected_full", 0),
        ],
    );
    assert_log_lines(&server, REJECTED, 0);

    // Throttled: each of the three pauses is told by its own line or
    // counted in a `suppressed N more` line, and a line is written at most
    // once a second. Whether the second pause falls within the second of
    // the first depends on how fast this test gets through its checks; the
    // third comes moments after the second (the fourth client was already
    // waiting), so at least one pause falls within a throttling second
    // whatever the machine's speed, and is suppressed, then summarised.
    let pid = server.pid;
    let what = "deferrals (worker limit)";
    let log = wait_for(
        &format!("the three pauses told within {SUMMARY_WITHIN:?} of the last"),
        SUMMARY_WITHIN.saturating_sub(last_pause.elapsed()),
        || {
            let log = server.log();
            (count_lines(&log, &pause) as u64 + suppressed_total(&log, what) == 3).then_some(log)
        },
    );
    let suppressed = suppressed_total(&log, what);
    assert!(suppressed >= 1, "no pause was suppressed:\n{log}");
    for line in log.lines().filter(|l| l.contains(" more deferrals ")) {
        assert!(
            line.contains(&format!(" WARN master[{pid}]: suppressed "))
                && line.ends_with(&format!(" more {what} in the last 1s")),
            "a deferrals summary: {line}"
        );
    }
    let written: Vec<i64> = log
        .lines()
        .filter(|l| l.contains(&pause))
        .map(log_time_ms)
        .collect();
    for pair in written.windows(2) {
        assert!(
            pair[1] - pair[0] >= 990,
            "two pause lines {} ms apart:\n{log}",
            pair[1] - pair[0]
        );
    }
}

/// With `--on-full defer`, a client still waiting in the backlog when the
/// master is asked to stop is refused with the listener (reset or EOF,
/// never an echo, never a worker), and the master exits 0.
#[test]
fn deferred_client_still_waiting_at_shutdown_is_refused() {
    let mut server = Server::start(&[
        "--max-workers",
        "1",
        "--on-full",
        "defer",
        "--monitor-interval",
        "0",
    ]);
    let mut held = server.connect_served();
    server.wait_for_log_line(&[&format!(
        " WARN master[{}]: worker limit reached (1 active, max_workers=1): new connections wait in the backlog",
        server.pid
    )]);
    let mut waiting = server.connect();
    let waiting_peer = waiting.local_addr().unwrap();
    waiting
        .write_all(b"never echoed\n")
        .expect("send while waiting in the backlog");

    server.signal(libc::SIGTERM);
    assert_connection_ended(&mut waiting, true, "a client waiting at shutdown");
    assert_connection_ended(&mut held, false, "the served client at shutdown");
    let status = server.wait_exit(TIMEOUT);
    assert_eq!(status.code(), Some(0), "the master's exit: {status:?}");

    let log = server.log();
    assert_eq!(
        count_peer_lines(&log, waiting_peer),
        0,
        "the waiting client was taken from the backlog:\n{log}"
    );
    assert!(
        log.contains("]: final figures active=0 peak=1 accepted=1 rejected=0 "),
        "final figures:\n{log}"
    );
}
