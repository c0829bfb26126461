//! `mpecho client [HOST] [PORT]`: line handling (empty lines, `END`, end of
//! input, long and unterminated lines), IPv6 and host names, and how it
//! reports a refused or closed connection and a closed stdout.

use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::thread;

use mpecho_testkit::{ChildGuard, Server, mpecho_bin, run_mpecho, text};

/// Runs `mpecho client HOST PORT` against `server` with `input` on stdin.
fn run_client(server: &Server, host: &str, input: &[u8]) -> Output {
    run_mpecho(&["client", host, &server.addr.port().to_string()], input)
}

/// Asserts a clean session: exactly `expected` on stdout, nothing on
/// stderr, status 0.
fn assert_clean(output: &Output, expected: &[u8]) {
    assert_eq!(text(&output.stderr), "", "stderr must be empty");
    assert_eq!(output.status.code(), Some(0));
    assert!(
        output.stdout == expected,
        "stdout: expected {:?}, got {:?}",
        text(expected),
        text(&output.stdout)
    );
}

/// Asserts a failed session: status 1, nothing on stdout, and on stderr a
/// message (not a panic) containing `needle`, which must say `what`.
fn assert_fails_saying(output: &Output, needle: &str, what: &str) {
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains(needle),
        "the message must say {what}: {stderr:?}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(text(&output.stdout), "");
}

/// The worker's disconnect line for the one session the server has seen.
fn disconnect_line(server: &Server) -> String {
    server.wait_for_log_line(&["]: disconnect peer="])
}

/// Runs a session with `input` against a new server on 127.0.0.1, asserts
/// that it was clean with exactly `expected` on stdout, and returns the
/// worker's disconnect line.
fn clean_session(input: &[u8], expected: &[u8]) -> String {
    let server = Server::start(&[]);
    let output = run_client(&server, "127.0.0.1", input);
    assert_clean(&output, expected);
    disconnect_line(&server)
}

/// Empty lines are skipped, `END` ends the session, and stdout carries
/// exactly the echo.
#[test]
fn prints_exactly_the_echo_and_skips_empty_lines() {
    let line = clean_session(b"hello\n\nworld\nEND\n", b"hello\nworld\n");
    // "hello\n" + "world\n": the empty line was never sent.
    assert!(line.contains(" bytes=12 "), "{line:?}");
}

/// Lines after `END` are not sent.
#[test]
fn lines_after_end_are_not_sent() {
    let line = clean_session(b"a\nEND\nb\n", b"a\n");
    assert!(
        line.contains(" bytes=2 "),
        "only \"a\\n\" may reach the server: {line:?}"
    );
    assert!(line.ends_with(" reason=client closed"), "{line:?}");
}

/// End of input without `END` ends the session cleanly.
#[test]
fn end_of_input_ends_the_session_cleanly() {
    let line = clean_session(b"one\ntwo\n", b"one\ntwo\n");
    assert!(line.contains(" bytes=8 "), "{line:?}");
    assert!(line.ends_with(" reason=client closed"), "{line:?}");
}

/// A 1 MiB line (any bytes but newline) comes back exactly.
#[test]
fn a_one_mebibyte_line_comes_back_exactly() {
    let server = Server::start(&[]);
    let mut input: Vec<u8> = (0..1024 * 1024u32)
        .map(|i| match (i * 31 + i / 7) as u8 {
            b'\n' => b'x',
            b => b,
        })
        .collect();
    input.push(b'\n');
    let output = run_client(&server, "127.0.0.1", &input);
    assert_eq!(text(&output.stderr), "");
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(output.stdout.len(), input.len());
    assert!(
        output.stdout == input,
        "the 1 MiB echo differs from the line sent"
    );
}

/// A last line without a newline is sent with one, and its echo printed.
#[test]
fn last_line_without_newline_gets_one() {
    let line = clean_session(b"first\nlast", b"first\nlast\n");
    assert!(line.contains(" bytes=11 "), "{line:?}");
}

/// The IPv6 literal `::1` reaches a server listening on `[::1]`.
#[test]
fn ipv6_literal_host_works() {
    if TcpListener::bind("[::1]:0").is_err() {
        eprintln!("NOTE: skipping ipv6_literal_host_works: ::1 is not available on this machine");
        return;
    }
    let server = Server::start(&["-l", "[::1]:0"]);
    let output = run_client(&server, "::1", b"over six\nEND\n");
    assert_clean(&output, b"over six\n");
    let line = disconnect_line(&server);
    assert!(line.contains(" peer=[::1]:"), "{line:?}");
}

/// The host name `localhost` is resolved and reaches a server on 127.0.0.1
/// (even where `localhost` resolves to `::1` first).
#[test]
fn host_name_localhost_works() {
    let server = Server::start(&[]);
    let output = run_client(&server, "localhost", b"by name\nEND\n");
    assert_clean(&output, b"by name\n");
}

/// A port where nothing listens: status 1 and a message saying the
/// connection was refused.
#[test]
fn refused_connection_is_reported() {
    let port = {
        let listener =
            TcpListener::bind("127.0.0.1:0").expect("bind a listener to find a free port");
        listener.local_addr().unwrap().port()
    };
    let output = run_mpecho(&["client", "127.0.0.1", &port.to_string()], b"hello\nEND\n");
    assert_fails_saying(&output, "refused", "the connection was refused");
}

/// A server at its worker limit closes the connection: status 1 and a
/// message saying the server closed it.
#[test]
fn connection_closed_by_the_server_is_reported() {
    let server = Server::start(&["--max-workers", "1"]);
    let _holder = server.connect_served();
    let output = run_client(&server, "127.0.0.1", b"hello\nEND\n");
    server.wait_for_log_line(&["rejected peer="]);
    assert_fails_saying(
        &output,
        "server closed the connection",
        "the server closed the connection",
    );
}

/// The reader of the client's stdout goes away before the echoes arrive:
/// the client ends quietly with status 0, no panic, no error message.
#[test]
fn closed_stdout_is_not_an_error() {
    let server = Server::start(&[]);
    let mut child = ChildGuard(
        Command::new(mpecho_bin())
            .args(["client", "127.0.0.1", &server.addr.port().to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start mpecho client"),
    );
    drop(child.0.stdout.take());
    let mut stdin = child.0.stdin.take().expect("stdin is piped");
    // The client stops reading its input once stdout is gone; the writer
    // then gets EPIPE and stops too.
    let writer = thread::spawn(move || {
        for i in 0..10_000 {
            if writeln!(stdin, "line {i}").is_err() {
                break;
            }
        }
    });
    let output = child.wait_output();
    let _ = writer.join();
    let stderr = text(&output.stderr);
    assert!(
        !stderr.contains("panicked"),
        "the client panicked:\n{stderr}"
    );
    assert_eq!(stderr, "", "a closed stdout is not an error to report");
    assert_eq!(output.status.code(), Some(0));
    // The session really started: the client had sent a line before it
    // found its stdout closed.
    let line = disconnect_line(&server);
    assert!(!line.contains(" bytes=0 "), "{line:?}");
}
