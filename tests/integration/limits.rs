//! The worker limit (`--max-workers`, DESIGN §4): a connection past it is
//! accepted and closed at once (EOF or reset, never an echo), logged as
//! rejected and counted in the figures, and a slot freed by a leaving client
//! serves the next one.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use mpecho_testkit::{Server, assert_connection_ended, assert_log_lines, echo, run_mpecho, text};

/// Waits for the WARN line rejecting `client` and returns it.
fn rejected_line(server: &Server, client: &TcpStream, active: usize, max: usize) -> String {
    let peer = client.local_addr().expect("client's local address");
    server.wait_for_log_line(&[&format!(
        " WARN master[{}]: rejected peer={peer}: worker limit reached ({active} active, max_workers={max})",
        server.pid
    )])
}

/// Connects a client past the limit, which must be turned away at once
/// (EOF before its read timeout, never an echoed byte) and logged as
/// rejected with `active` workers of `max`.
fn connect_past_the_limit(server: &Server, active: usize, max: usize) -> TcpStream {
    let mut client = server.connect();
    assert_connection_ended(&mut client, false, "a rejected client");
    rejected_line(server, &client, active, max);
    client
}

/// Asserts that no worker was started past the limit of two.
fn assert_two_workers(server: &Server) {
    assert_eq!(
        server.worker_pids().len(),
        2,
        "a worker was started past the limit"
    );
}

/// With `--max-workers 2` and two clients served, a third connection is
/// accepted and closed at once: it reads EOF, no worker is started for it,
/// a WARN `rejected` line names it, and the first two are still served.
#[test]
fn connection_past_the_limit_reads_eof_and_is_logged() {
    let server = Server::start(&["--max-workers", "2"]);
    let mut first = server.connect_served();
    let mut second = server.connect_served();

    let third = connect_past_the_limit(&server, 2, 2);

    assert_two_workers(&server);
    assert_log_lines(&server, "]: accept peer=", 2);
    // No worker logged a connect for the rejected client.
    let third_peer = format!("connect peer={}", third.local_addr().unwrap());
    assert_log_lines(&server, &third_peer, 0);
    assert_eq!(echo(&mut first, b"still here 1\n"), b"still here 1\n");
    assert_eq!(echo(&mut second, b"still here 2\n"), b"still here 2\n");
}

/// A client past the limit that sends data before reading gets EOF or a
/// reset, never its data back, and is logged as rejected.
#[test]
fn connection_past_the_limit_that_sends_first_is_never_echoed() {
    let server = Server::start(&["--max-workers", "2", "--log-level", "trace"]);
    let _first = server.connect_served();
    let _second = server.connect_served();

    let mut third = server.connect();
    // The master may have closed the connection before the data arrives, in
    // which case the kernel answers it with a reset: the write may fail.
    match third.write_all(b"must never come back\n") {
        Ok(()) => {}
        Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {}
        Err(e) => panic!("unexpected error sending to a rejected connection: {e}"),
    }
    assert_connection_ended(&mut third, true, "a rejected client");
    rejected_line(&server, &third, 2, 2);

    assert_two_workers(&server);
    // At trace level every worker logs what it reads: nobody read these bytes.
    assert_log_lines(&server, "must never come back", 0);
}

/// Once one of two served clients leaves (its worker's exit is logged), the
/// next connection is served again instead of rejected.
#[test]
fn slot_freed_by_a_leaving_client_serves_the_next_one() {
    let server = Server::start(&["--max-workers", "2"]);
    let first = server.connect_served();
    let mut second = server.connect_served();
    connect_past_the_limit(&server, 2, 2);

    let first_worker = server.worker_serving(&first);
    let first_peer = first.local_addr().unwrap();
    drop(first);
    server.wait_for_log_line(&[&format!(
        "master[{}]: worker {first_worker} exited status=0 peer={first_peer} ",
        server.pid
    )]);

    let mut next = server.connect();
    assert_eq!(echo(&mut next, b"served again\n"), b"served again\n");
    let next_peer = next.local_addr().unwrap();
    server.wait_for_log_line(&[&format!("]: accept peer={next_peer} worker="), " active=2"]);
    assert_eq!(echo(&mut second, b"and me\n"), b"and me\n");
    assert_log_lines(&server, "]: rejected peer=", 1);
}

/// The SIGUSR1 figures line counts every rejection (`rejected=N`) beside
/// the accepted connections, and keeps counting after it was reported,
/// while the log, throttled, shows the first rejection and then one
/// `suppressed N more` line for the rest of that second.
#[test]
fn sigusr1_figures_count_every_rejection() {
    let server = Server::start(&["--max-workers", "2", "--monitor-interval", "0"]);
    let _first = server.connect_served();
    let _second = server.connect_served();
    let started = Instant::now();
    for _ in 0..3 {
        // EOF means the master has closed it, hence already counted it.
        let mut turned_away = server.connect();
        assert_connection_ended(&mut turned_away, false, "a rejected client");
    }

    let figures = server.figures();
    let line = figures.line();
    assert!(
        line.contains(" INFO master[")
            && line.contains(" figures active=2 peak=2 accepted=2 rejected=3 spawn_failures=0 "),
        "unexpected figures line: {line}"
    );

    let mut one_more = server.connect();
    assert_connection_ended(&mut one_more, false, "a rejected client");
    let took = started.elapsed();
    let figures = server.figures();
    let line = figures.line();
    assert!(
        line.contains(" figures active=2 peak=2 accepted=2 rejected=4 spawn_failures=0 "),
        "unexpected second figures line: {line}"
    );

    // All four fell within the second that began with the first rejection
    // (checked, since the expected lines depend on it): one line for the
    // first, the other three in one summary when that second is over.
    assert!(
        took < Duration::from_secs(1),
        "the four rejections took {took:?}, more than one throttling interval"
    );
    server.wait_for_log_line(&[&format!(
        " WARN master[{}]: suppressed 3 more rejected connections (worker limit) in the last 1s",
        server.pid
    )]);
    assert_log_lines(&server, "]: rejected peer=", 1);
    assert_log_lines(&server, "]: suppressed ", 1);
}

/// With `--max-workers 1` clients are served strictly one at a time: the
/// second is turned away while the first is connected, and the next one is
/// served once the first has left.
#[test]
fn max_workers_one_serves_one_client_at_a_time() {
    let server = Server::start(&["--max-workers", "1"]);
    let only = server.connect_served();
    connect_past_the_limit(&server, 1, 1);

    let worker = server.worker_serving(&only);
    drop(only);
    server.wait_for_log_line(&[&format!("]: worker {worker} exited status=0 ")]);

    let mut next = server.connect();
    assert_eq!(echo(&mut next, b"my turn\n"), b"my turn\n");
    let next_peer = next.local_addr().unwrap();
    // The worker may echo before the master has logged its `accept` line.
    server.wait_for_log_line(&[&format!("]: accept peer={next_peer} worker="), " active=1"]);
    assert_log_lines(&server, "]: accept peer=", 2);
}

/// `--reject-message`: a client turned away reads the message, then the
/// close; the client being served never sees it; a bad escape is refused.
#[test]
fn a_client_turned_away_reads_the_reject_message() {
    let server = Server::start(&[
        "--max-workers",
        "1",
        "--reject-message",
        "busy, try later\\r\\n",
    ]);
    let (mut first, _worker) = server.connect_served_worker();
    let mut second = server.connect();
    let mut got = Vec::new();
    second
        .read_to_end(&mut got)
        .expect("the message, then the close");
    assert_eq!(got, b"busy, try later\r\n");
    assert_eq!(echo(&mut first, b"served\n"), b"served\n");
    let output = run_mpecho(&["serve", "--reject-message", "bad \\q"], b"");
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("a backslash followed by 'q'"));
}
