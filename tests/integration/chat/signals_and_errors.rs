//! The relay's lifecycle: SIGTERM and SIGINT end it with status 0,
//! SIGUSR1 logs exact figures, and a port in use or bad arguments are
//! refused with status 1 or 2.

use std::collections::HashMap;
use std::net::UdpSocket;

use mpecho_testkit::{TIMEOUT, run_mpecho};

use super::peer::{Peer, figures, join_all, start_relay};

/// SIGTERM, and SIGINT, end the relay cleanly with status 0.
#[test]
fn sigterm_and_sigint_end_the_server_with_status_0() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let mut relay = start_relay(&[]);
        let (a, b) = (Peer::new(&relay), Peer::new(&relay));
        join_all(&relay, &[&a, &b]);
        a.says(b"about to stop", &[&b]);
        relay.signal(sig);
        let status = relay.wait_exit(TIMEOUT);
        assert_eq!(status.code(), Some(0), "signal {sig}: {}", relay.log());
        assert!(relay.log().contains("shutting down"), "{}", relay.log());
        assert_eq!(relay.extra_stdout(), Vec::<String>::new());
    }
}

/// A figures line on SIGUSR1 counts what came in and went out.
#[test]
fn sigusr1_logs_exact_figures() {
    let relay = start_relay(&[]);
    let (a, b) = (Peer::new(&relay), Peer::new(&relay));
    join_all(&relay, &[&a, &b]);
    a.says(b"12345", &[&b]);
    b.says(b"678", &[&a]);
    let f = figures(&relay);
    let expected: HashMap<String, u64> = [
        ("clients", 2),
        ("datagrams_in", 4),
        // `joined` to a, then one relay each way.
        ("datagrams_out", 3),
        ("bytes_in", 8),
        ("drops", 0),
        ("log_write_errors", 0),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(f, expected);
}

/// An address in use is a clear error with status 1.
#[test]
fn address_in_use_is_a_clear_error_with_status_1() {
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = run_mpecho(&["chat-server", "-l", &addr], b"");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&addr), "{stderr}");
    assert!(stderr.contains("in use"), "{stderr}");
    assert!(output.stdout.is_empty(), "{:?}", output.stdout);
}

/// An unparsable address or number, or `--max-clients 0`, is a usage error
/// with status 2.
#[test]
fn bad_arguments_are_usage_errors_with_status_2() {
    for args in [
        &["chat-server", "-l", "nowhere"][..],
        &["chat-server", "-l", "127.0.0.1"],
        &["chat-server", "--max-clients", "0"],
        &["chat-server", "--max-clients", "ten"],
        &["chat-server", "--idle-timeout", "-1"],
        &["chat-server", "--idle-timeout", "soon"],
    ] {
        let output = run_mpecho(args, b"");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("Usage"), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
}
