//! Relaying: each datagram reaches every other known client exactly once,
//! in order, tagged with its sender (`IP: PORT>> `, IPv6 in brackets,
//! IPv4-mapped as IPv4), byte for byte, never back to its sender; one too
//! large once tagged is dropped whole; one from a privileged port is
//! dropped before anything else.

use std::net::{SocketAddr, UdpSocket};

use mpecho_testkit::{TIMEOUT, count_peer_lines};

use super::peer::{
    Peer, figures, join_after, join_all, start_relay, tag, tagged, wait_until_handled,
};

/// The largest datagram the relay sends, tag included (the largest UDP
/// payload over IPv4).
const MAX_DATAGRAM: usize = 65_507;

/// A free UDP port on 127.0.0.1 below 1024, bound.
fn privileged_socket() -> UdpSocket {
    (600..1000)
        .find_map(|port| UdpSocket::bind(("127.0.0.1", port)).ok())
        .expect("bind a UDP socket to a port below 1024 (tests run as root)")
}

/// Three clients: each message reaches both others, tagged with its
/// sender's address, exactly once and in order.
#[test]
fn three_clients_relay_to_each_other() {
    let relay = start_relay(&[]);
    let (a, b, c) = (Peer::new(&relay), Peer::new(&relay), Peer::new(&relay));
    join_all(&relay, &[&a, &b, &c]);
    a.says(b"hello from a", &[&b, &c]);
    b.says(b"hello from b", &[&a, &c]);
    c.says(b"hello from c", &[&a, &b]);
    a.says(b"second from a", &[&b, &c]);
    // Fences: each client's next datagram is the one sent after its own
    // last message, so it received nothing of its own in between.
    b.says(b"fence", &[&a, &c]);
    a.says(b"fence", &[&b, &c]);
}

/// The sender never receives its own message, even when it is the only
/// client, and an empty datagram from a known client relays nothing.
#[test]
fn the_sender_never_receives_its_own_message() {
    let relay = start_relay(&[]);
    let (a, b) = (Peer::new(&relay), Peer::new(&relay));
    join_all(&relay, &[&a]);
    // Alone: relayed to nobody, and not back.
    a.send(b"anyone there?");
    a.send(b"");
    wait_until_handled(&relay, 3);
    a.expect_nothing_queued();

    join_after(&b, &[&a]);
    for i in 0..5 {
        a.says(format!("message {i}").as_bytes(), &[&b]);
    }
    a.send(b"");
    b.says(b"fence", &[&a]);
    // The keep-alive was not relayed: b's next datagram is a's next line.
    a.says(b"after the keep-alive", &[&b]);
    let f = figures(&relay);
    assert_eq!(f["drops"], 0, "{f:?}");
}

/// Every byte value, NUL and line endings included, is relayed unchanged,
/// and announcements and `server full` carry no trailing newline.
#[test]
fn binary_payloads_survive() {
    let relay = start_relay(&[]);
    let (a, b) = (Peer::new(&relay), Peer::new(&relay));
    join_all(&relay, &[&a, &b]);
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let mut reversed = all_bytes.clone();
    reversed.reverse();
    let payloads: [&[u8]; 6] = [
        &all_bytes,
        &reversed,
        b"\0",
        b"\n",
        b"\r\n\r\n",
        b"\xff\xfe invalid UTF-8 \xc3\x28",
    ];
    for payload in payloads {
        a.says(payload, &[&b]);
        b.says(payload, &[&a]);
    }
}

/// A datagram that would exceed 65,507 bytes once tagged is dropped whole
/// with a warning; exactly 65,507 bytes tagged still goes through.
#[test]
fn oversized_datagram_is_dropped_but_the_largest_fitting_one_is_relayed() {
    let mut relay = start_relay(&[]);
    let (a, b) = (Peer::new(&relay), Peer::new(&relay));
    join_all(&relay, &[&a, &b]);
    let room = MAX_DATAGRAM - tag(a.addr).len();
    let too_large: Vec<u8> = (0..room + 1).map(|i| (i % 251) as u8).collect();
    a.send(&too_large);
    let warning = relay.wait_for_log_line(&[
        " WARN ",
        &format!("{}-byte", too_large.len()),
        &format!("from {}:", a.addr),
    ]);
    assert!(warning.contains("too large"), "{warning:?}");
    // Dropped, not truncated: b's next datagram is the marker.
    a.says(b"marker", &[&b]);

    let largest = &too_large[..room];
    a.send(largest);
    let got = b.recv();
    assert_eq!(got.len(), MAX_DATAGRAM);
    assert!(got == tagged(&a, largest), "the largest datagram changed");
    b.says(b"fence", &[&a]);

    assert!(relay.is_running(), "the relay died: {}", relay.stderr());
    let f = figures(&relay);
    assert_eq!(f["drops"], 1, "{f:?}");
    assert_eq!(f["clients"], 2, "{f:?}");
}

/// Datagrams from a privileged source port are dropped before anything
/// else: not relayed, not registered, no `server full` even when the list is
/// full, and counted in `drops`.
#[test]
fn reflection_guard_drops_datagrams_from_privileged_ports() {
    let relay = start_relay(&["--max-clients", "3"]);
    let (a, b) = (Peer::new(&relay), Peer::new(&relay));
    let attacker = Peer::on(privileged_socket(), &relay);
    assert!(attacker.addr.port() < 1024);
    join_all(&relay, &[&a, &b]);

    // Room on the list: neither a join nor a relay.
    attacker.send(b"");
    attacker.send(b"reflect me");
    wait_until_handled(&relay, 4);
    a.says(b"fence", &[&b]);
    b.says(b"fence", &[&a]);

    // List full: still no `server full` reply.
    let c = Peer::new(&relay);
    join_after(&c, &[&a, &b]);
    attacker.send(b"reflect me again");
    let f = wait_until_handled(&relay, 8);
    attacker.expect_nothing_queued();
    assert_eq!(f["drops"], 3, "{f:?}");
    assert_eq!(f["clients"], 3, "{f:?}");
    c.says(b"fence", &[&a, &b]);
    assert!(
        count_peer_lines(&relay.log(), attacker.addr) == 0,
        "{}",
        relay.log()
    );
}

/// IPv6 works: the tag names the sender as `[addr]: PORT>> `.
#[test]
fn ipv6_senders_are_tagged_in_brackets() {
    let relay = start_relay(&["-l", "[::1]:0"]);
    assert!(relay.addr.is_ipv6(), "{}", relay.addr);
    let (a, b) = (Peer::new(&relay), Peer::new(&relay));
    join_all(&relay, &[&a, &b]);
    b.send(b"over IPv6");
    let expected = format!("[::1]: {}>> over IPv6", b.addr.port());
    a.expect(expected.as_bytes());
}

/// An IPv4 client of an IPv6 socket arrives as an IPv4-mapped address and
/// is tagged as plain IPv4.
#[test]
fn ipv4_mapped_senders_are_tagged_as_ipv4() {
    let relay = start_relay(&["-l", "[::ffff:127.0.0.1]:0"]);
    assert!(relay.addr.is_ipv6(), "{}", relay.addr);
    let port = relay.addr.port();
    let v4 = |socket: UdpSocket| {
        socket.set_read_timeout(Some(TIMEOUT)).unwrap();
        let addr = socket.local_addr().unwrap();
        Peer {
            socket,
            addr,
            relay: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    };
    let a = v4(UdpSocket::bind("127.0.0.1:0").unwrap());
    let b = v4(UdpSocket::bind("127.0.0.1:0").unwrap());
    a.send(b"");
    relay.wait_for_log_line(&[&format!("joined peer={} ", a.addr)]);
    b.send(b"mapped");
    // Replies come from the mapped address: compare bytes only.
    let mut buf = [0u8; 128];
    let n = a.socket.recv(&mut buf).expect("a hears b");
    assert_eq!(
        String::from_utf8_lossy(&buf[..n]),
        format!("127.0.0.1: {}>> joined", b.addr.port())
    );
    let n = a.socket.recv(&mut buf).expect("a hears b");
    assert_eq!(
        String::from_utf8_lossy(&buf[..n]),
        format!("127.0.0.1: {}>> mapped", b.addr.port())
    );
}
