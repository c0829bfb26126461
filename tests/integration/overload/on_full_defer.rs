//! `--on-full defer`: at the worker limit the master stops accepting, so a
//! new client waits in the kernel's backlog (its connect succeeds, nothing
//! is echoed) and is served as soon as a slot frees; the pause is logged,
//! throttled and counted as `deferred`, never as a rejection; a client
//! still waiting at shutdown is refused with the listener.

use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use mpecho_testkit::{
    Server, TIMEOUT, assert_connection_ended, assert_log_lines, count_peer_lines, echo,
    log_time_ms, text,
};

use super::{REJECTED, assert_figures, wait_for_summary};

/// How long a deferred client is watched for an echo that must not come.
/// Proving that nothing arrives needs a bounded negative wait; this is the
/// one place the suite uses one, kept short.
const NO_ECHO_WINDOW: Duration = Duration::from_millis(300);

/// With `--on-full defer` and both slots taken, a third client's connection
/// completes in the backlog and what it sends is not echoed; the pause is
/// logged and counted (`deferred=`), nothing is rejected, and once one of
/// the two leaves the third gets its echo on the same connection.
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
    let mut second = server.connect_served();
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

    let first_peer = first.local_addr().unwrap();
    drop(first);
    server.wait_for_log_line(&[&format!(
        "]: worker {first_worker} exited status=0 peer={first_peer} "
    )]);
    let mut back = vec![0u8; b"waiting in the backlog\n".len()];
    third
        .read_exact(&mut back)
        .expect("the deferred client's echo once a slot freed");
    assert_eq!(text(&back), "waiting in the backlog\n");
    let served_third = Instant::now();
    server.worker_serving(&third);
    assert_eq!(echo(&mut third, b"and more\n"), b"and more\n");
    assert_eq!(echo(&mut second, b"still here\n"), b"still here\n");

    // Serving the third reached the limit again: a second pause.
    assert_figures(
        &server,
        &[
            ("active", 2),
            ("accepted", 3),
            ("deferred", 2),
            ("rejected", 0),
            ("rejected_full", 0),
        ],
    );
    assert_log_lines(&server, REJECTED, 0);
    // Deferrals are throttled like any repeated warning: the second pause,
    // right after the third client's `accept` line, fell within the second
    // of the first one's line (checked, since the expected lines depend on
    // it), so it is told only by a summary when that second is over.
    let log = server.log();
    let third_peer = third.local_addr().unwrap();
    let paused_at = log_time_ms(
        log.lines()
            .find(|l| l.contains(&pause))
            .expect("the pause line"),
    );
    let resumed_at = log_time_ms(
        log.lines()
            .find(|l| l.contains(&format!("]: accept peer={third_peer} worker=")))
            .expect("the third client's accept line"),
    );
    assert!(
        resumed_at - paused_at < 900,
        "the second pause came {} ms after the first: too late for one throttling second",
        resumed_at - paused_at
    );
    wait_for_summary(
        &server,
        &format!(
            " WARN master[{}]: suppressed 1 more deferrals (worker limit) in the last 1s",
            server.pid
        ),
        served_third,
    );
    assert_log_lines(&server, &pause, 1);
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
