//! The idle timeout (issue 4): a worker whose client has neither sent nor
//! consumed anything for `--idle-timeout` seconds closes the connection and
//! exits with status 3, logged as `idle timeout` and counted as
//! `exited_idle`; a client that keeps talking is never closed, one that
//! never reads is idle even with data left to send, and 0 turns it off.

use std::io::{ErrorKind, Read};
use std::time::{Duration, Instant};

use mpecho_testkit::{
    Server, TIMEOUT, assert_connection_ended, echo, log_field, stall_worker_writing, text,
    without_stamp,
};

/// The idle timeout most tests use: short enough to keep them quick.
const IDLE: &str = "1";

/// Bounds for "closed after the 1 s idle timeout": never early, and late
/// only by what a loaded machine can explain.
const IDLE_AT_LEAST: Duration = Duration::from_millis(900);
const IDLE_AT_MOST: Duration = Duration::from_secs(5);

/// With `--idle-timeout 1`, a client that connects and never sends anything
/// is closed by its worker after about a second: the client reads EOF, the
/// worker exits with status 3 and logs why, the master logs the status as
/// `idle timeout` and counts it as `exited_idle`.
#[test]
fn silent_client_is_closed_after_the_idle_timeout() {
    let server = Server::start(&["--idle-timeout", IDLE, "--monitor-interval", "0"]);
    let started = server.wait_for_log_line(&["started: listening on "]);
    assert!(started.contains(" idle_timeout=1s "), "{started:?}");

    let connected = Instant::now();
    let mut client = server.connect();
    let peer = client.local_addr().unwrap();
    let worker = server.worker_serving(&client);
    assert_connection_ended(&mut client, false, "a silent client");
    let waited = connected.elapsed();
    assert!(
        (IDLE_AT_LEAST..=IDLE_AT_MOST).contains(&waited),
        "a client silent since it connected was closed after {waited:?}, expected about 1s"
    );

    let exit = server.wait_for_log_line(&[&format!(" worker {worker} exited ")]);
    assert!(
        without_stamp(&exit).starts_with(&format!(
            "INFO master[{}]: worker {worker} exited status=3 (idle timeout) peer={peer} lived=",
            server.pid
        )),
        "{exit:?}"
    );
    let disconnect = server.wait_for_log_line(&[&format!("worker[{worker}]: disconnect ")]);
    let message = without_stamp(&disconnect);
    assert!(
        message.starts_with(&format!(
            "INFO worker[{worker}]: disconnect peer={peer} bytes=0 duration="
        )) && message.ends_with(" reason=idle timeout (1s)"),
        "{disconnect:?}"
    );

    let figures = server.figures();
    assert_eq!(figures.get("exited_idle"), 1, "{figures:?}");
    assert_eq!(figures.get("exited_ok"), 0, "{figures:?}");
    assert_eq!(figures.get("exited_error"), 0, "{figures:?}");
    assert_eq!(figures.get("active"), 0, "{figures:?}");
    assert!(server.zombies().is_empty());
}

/// A client that sends a line every 300 ms, eight times (2.4 s, more than
/// twice the 1 s idle timeout), is never idle and is never closed: the
/// timeout counts from the last activity, not from the connection.
#[test]
fn client_that_keeps_sending_is_not_closed() {
    let server = Server::start(&["--idle-timeout", IDLE, "--monitor-interval", "0"]);
    let (mut client, worker) = server.connect_served_worker();
    let started = Instant::now();
    for n in 0..8 {
        // The pause is the scenario (a client that talks slowly), not a
        // wait for the server: every echo is checked as it comes back.
        std::thread::sleep(Duration::from_millis(300));
        let line = format!("tick {n}\n");
        assert_eq!(
            text(&echo(&mut client, line.as_bytes())),
            line,
            "an active client after {:?}",
            started.elapsed()
        );
    }
    assert!(
        !server
            .log()
            .contains(&format!("worker[{worker}]: disconnect ")),
        "an active client was disconnected:\n{}",
        server.log()
    );
    assert_eq!(server.worker_pids(), vec![worker]);
    let figures = server.figures();
    assert_eq!(figures.get("exited_idle"), 0, "{figures:?}");
    assert_eq!(figures.get("active"), 1, "{figures:?}");
}

/// A client that sends without ever reading stalls its worker on a write
/// once the socket buffers are full; the worker must not block there
/// forever: one idle timeout after the last byte moved, it closes the
/// connection with data still unsent and exits with status 3.
#[test]
fn client_that_never_reads_is_idle_even_with_data_to_send() {
    // The worker is stalled once the kernel shows it blocked in sendto
    // (/proc/PID/syscall), not merely slow to read.
    let server = Server::start(&[
        "--idle-timeout",
        IDLE,
        "--monitor-interval",
        "0",
        "--log-level",
        "debug",
    ]);
    let mut client = server.connect();
    let worker = server.worker_serving(&client);
    let sent = stall_worker_writing(&mut client, worker);
    let stopped = Instant::now();

    let exit = server.wait_for_log_line(&[&format!(" worker {worker} exited ")]);
    let waited = stopped.elapsed();
    assert!(
        waited <= IDLE_AT_MOST,
        "the stalled worker exited {waited:?} after the client stopped, expected about 1s"
    );
    assert!(
        exit.contains(&format!(
            "]: worker {worker} exited status=3 (idle timeout) peer="
        )),
        "{exit:?}"
    );
    let disconnect = server.wait_for_log_line(&[&format!("worker[{worker}]: disconnect ")]);
    assert!(
        disconnect.ends_with(" reason=idle timeout (1s)"),
        "{disconnect:?}"
    );
    let echoed: usize = log_field(&disconnect, "bytes").parse().unwrap();
    assert!(
        echoed < sent,
        "the worker echoed {echoed} of {sent} bytes: it should have had data left to send"
    );
    let figures = server.figures();
    assert_eq!(figures.get("exited_idle"), 1, "{figures:?}");
}

/// `--idle-timeout 0` turns the timeout off: a silent client is still
/// connected (and echoed) well past the 1 s the other tests time out at.
/// Only a bounded stretch can be checked, not "never"; 2.5 s is enough to
/// catch a zero timeout taken literally (closing at once) or a default
/// of a second or two.
#[test]
fn idle_timeout_zero_keeps_silent_clients() {
    let server = Server::start(&["--idle-timeout", "0", "--monitor-interval", "0"]);
    let started = server.wait_for_log_line(&["started: listening on "]);
    assert!(started.contains(" idle_timeout=0s "), "{started:?}");

    let mut client = server.connect();
    let worker = server.worker_serving(&client);
    client
        .set_read_timeout(Some(Duration::from_millis(2_500)))
        .unwrap();
    let mut buf = [0u8; 16];
    match client.read(&mut buf) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        Ok(0) => panic!("a silent client was closed with the idle timeout off"),
        other => panic!("a silent client read {other:?}"),
    }
    client.set_read_timeout(Some(TIMEOUT)).unwrap();
    assert_eq!(echo(&mut client, b"still here\n"), b"still here\n");
    assert_eq!(server.worker_pids(), vec![worker]);
    assert!(!server.log().contains(" disconnect "), "{}", server.log());
}
