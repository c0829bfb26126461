//! Overload (issue 4, items 1, 2 and 4): `--on-full defer` leaves clients
//! waiting in the kernel's backlog until a slot frees, `--max-per-ip` turns
//! away the connection one address has too many of (IPv4-mapped IPv6
//! counted as IPv4) and releases its slot exactly once however the worker
//! ends, and repeated warnings are written at most once per second per kind
//! with a `suppressed N more …` line for the rest, while the figures count
//! every event.
//!
//! This module holds what its three files share: turned-away clients, the
//! figures and log lines they must produce, and the wait for a summary.

mod on_full_defer;
mod per_address_limit;
mod throttled_warnings;

use std::io::{ErrorKind, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use mpecho_testkit::{Server, assert_connection_ended, wait_for};

/// How soon after a burst its `suppressed N more` line must be written: the
/// throttle's second, plus generous room for a loaded machine.
pub(crate) const SUMMARY_WITHIN: Duration = Duration::from_secs(3);

/// Marks the master's lines rejecting a connection, whatever the limit.
pub(crate) const REJECTED: &str = "]: rejected peer=";

pub(crate) fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// Sends `data` to a client the server must turn away, then asserts that
/// the connection ends (EOF, or a reset since the data was never read)
/// without any byte coming back.
pub(crate) fn send_and_assert_turned_away(client: &mut TcpStream, data: &[u8], whose: &str) {
    // The master may have closed the connection before the data arrives, in
    // which case the kernel answers it with a reset: the write may fail.
    match client.write_all(data) {
        Ok(()) => {}
        Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {}
        Err(e) => panic!("unexpected error sending as {whose}: {e}"),
    }
    assert_connection_ended(client, true, whose);
}

/// Connects a client from 127.0.0.1 that must be turned away at once and
/// never echoed.
pub(crate) fn connect_turned_away(server: &Server, whose: &str) -> TcpStream {
    let mut client = server.connect();
    send_and_assert_turned_away(&mut client, b"must never come back\n", whose);
    client
}

/// Asserts the SIGUSR1 figures' rejection and acceptance counters.
pub(crate) fn assert_figures(server: &Server, expected: &[(&str, u64)]) {
    let figures = server.figures();
    for &(name, value) in expected {
        assert_eq!(figures.get(name), value, "{name} in {figures:?}");
    }
}

/// The master's WARN line rejecting `peer` for the per-IP limit.
pub(crate) fn per_ip_rejection(
    server: &Server,
    peer: SocketAddr,
    active: usize,
    max: usize,
) -> String {
    format!(
        " WARN master[{}]: rejected peer={peer}: per-IP limit reached ({active} active from {}, max_per_ip={max})",
        server.pid,
        peer.ip()
    )
}

/// Waits, at most `SUMMARY_WITHIN` after `since`, for a log line with
/// `needle`, and returns it.
pub(crate) fn wait_for_summary(server: &Server, needle: &str, since: Instant) -> String {
    wait_for(
        &format!("{needle:?} within {SUMMARY_WITHIN:?} of the burst"),
        SUMMARY_WITHIN.saturating_sub(since.elapsed()),
        || {
            server
                .log()
                .lines()
                .find(|l| l.contains(needle))
                .map(str::to_string)
        },
    )
}
