//! Execution models (`--model`): what makes each one that model. `exec`
//! serves every connection in a worker process of its own, a child of the
//! master; `iterative` serves one client at a time in the master itself,
//! the next waiting in the backlog, as the first server of the original.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use mpecho_testkit::{Server, TIMEOUT, echo, run_mpecho, text};

/// How long a waiting client is watched to show that nothing arrives while
/// another is served: long enough for an echo that was going to come (a
/// round trip here takes well under a millisecond), bounded.
const NOTHING_YET: Duration = Duration::from_millis(300);

/// Whether anything arrives on `client` within `NOTHING_YET`.
fn arrives_within_a_moment(client: &mut TcpStream) -> bool {
    client
        .set_read_timeout(Some(NOTHING_YET))
        .expect("set a read timeout");
    let mut byte = [0u8; 1];
    let arrived = match client.peek(&mut byte) {
        Ok(_) => true,
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
        Err(e) => panic!("peek failed: {e}"),
    };
    client
        .set_read_timeout(Some(TIMEOUT))
        .expect("set a read timeout");
    arrived
}

/// `exec` (the default): each client is served by a worker process, a child
/// of the master, and the model is named in the startup and figures lines.
#[test]
fn exec_serves_each_client_in_a_child_process() {
    let server = Server::start(&[]);
    let (_a, first) = server.connect_served_worker();
    let (_b, second) = server.connect_served_worker();
    assert_ne!(first, second);
    let mut children = server.worker_pids();
    children.sort_unstable();
    let mut expected = vec![first, second];
    expected.sort_unstable();
    assert_eq!(children, expected, "the workers are the master's children");
    server.wait_for_log_line(&["]: started: listening on ", " model=exec "]);
    assert!(server.figures().line().ends_with(" model=exec"));
}

/// `iterative`: the master serves one client itself, with no child at all;
/// a second client's data, sent meanwhile, is echoed only once the first
/// has left, and then all at once.
#[test]
fn iterative_serves_one_client_at_a_time_in_the_master() {
    let server = Server::start(&["--model", "iterative"]);
    let mut first = server.connect();
    assert_eq!(echo(&mut first, b"first\n"), b"first\n");
    assert!(server.worker_pids().is_empty(), "the master forked a child");

    let mut second = server.connect();
    second.write_all(b"one\n").expect("send while waiting");
    second.write_all(b"two\n").expect("send while waiting");
    assert!(
        !arrives_within_a_moment(&mut second),
        "the second client was served while the first was"
    );
    assert_eq!(echo(&mut first, b"still first\n"), b"still first\n");

    drop(first);
    let mut both = [0u8; 8];
    second
        .read_exact(&mut both)
        .expect("the waiting client's echo");
    assert_eq!(&both, b"one\ntwo\n");
    assert!(server.worker_pids().is_empty(), "the master forked a child");

    let pid = server.pid;
    let log = server.log();
    assert_eq!(
        log.matches(&format!("INFO master[{pid}]: connect peer="))
            .count(),
        2,
        "{log}"
    );
    assert!(
        log.contains(" served by the master (model iterative) active=1"),
        "{log}"
    );
    assert!(!log.contains(" worker["), "{log}");
    let figures = server.figures();
    assert_eq!(figures.get("accepted"), 2, "{figures:?}");
    assert_eq!(figures.get("active"), 1, "{figures:?}");
    assert_eq!(figures.get("peak"), 1, "{figures:?}");
    assert!(figures.line().ends_with(" model=iterative"), "{figures:?}");
}

/// `iterative` keeps the idle timeout: a silent client is closed, and the
/// one waiting behind it is served.
#[test]
fn iterative_closes_a_silent_client_and_serves_the_next() {
    let server = Server::start(&["--model", "iterative", "--idle-timeout", "1"]);
    let mut silent = server.connect();
    let mut next = server.connect();
    next.write_all(b"next\n").expect("send while waiting");
    let mut buf = [0u8; 5];
    next.read_exact(&mut buf)
        .expect("served after the silent client");
    assert_eq!(&buf, b"next\n");
    assert_eq!(silent.read(&mut [0u8; 1]).expect("an orderly close"), 0);
    server.wait_for_log_line(&["]: disconnect peer=", "reason=idle timeout (1s)"]);
    drop(next);
    assert_eq!(server.figures().get("exited_idle"), 1);
}

/// `iterative` honours SIGTERM: the client being served is closed at once,
/// the master exits 0 and writes its final figures.
#[test]
fn iterative_shuts_down_closing_the_client_being_served() {
    let mut server = Server::start(&["--model", "iterative"]);
    let mut client = server.connect();
    assert_eq!(echo(&mut client, b"hello\n"), b"hello\n");
    server.signal(libc::SIGTERM);
    assert_eq!(client.read(&mut [0u8; 1]).expect("an orderly close"), 0);
    let status = server.wait_exit(TIMEOUT);
    assert!(status.success(), "{status:?}");
    let log = server.log();
    assert!(log.contains("reason=server shutting down"), "{log}");
    assert!(
        log.contains("]: final figures active=0 peak=1 accepted=1 "),
        "{log}"
    );
}

/// Options that make no sense with one client at a time are refused with
/// status 2 and a sentence saying why.
#[test]
fn iterative_refuses_options_that_make_no_sense_with_it() {
    for (option, value) in [
        ("--max-workers", "2"),
        ("--max-per-ip", "1"),
        ("--on-full", "defer"),
    ] {
        let output = run_mpecho(&["serve", "--model", "iterative", option, value], b"");
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{option}: {stderr}");
        assert!(
            stderr.contains(option)
                && stderr.contains("--model iterative serves one client at a time"),
            "{option}: {stderr}"
        );
        assert!(stderr.contains("Usage: mpecho serve"), "{option}: {stderr}");
        assert!(output.stdout.is_empty());
    }
    // A limit of 1 is what the model means: not refused (the bad address
    // after it is what stops this one).
    let output = run_mpecho(
        &[
            "serve",
            "--model",
            "iterative",
            "--max-workers",
            "1",
            "-l",
            "nonsense",
        ],
        b"",
    );
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("nonsense") && !stderr.contains("cannot be used"),
        "{stderr}"
    );
}
