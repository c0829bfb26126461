//! `mpecho chat-server`: relaying among clients, the sender tag, joined and
//! left announcements, binary and oversized datagrams, the bounded list and
//! its `server full` reply, `END` and idle expiry, the reflection guard,
//! signals and start-up errors — driven by plain `UdpSocket` clients.
//!
//! Silence cannot be observed directly, so "nothing arrived" is proved with
//! a fence: another client sends a datagram afterwards, and it must be the
//! very next thing received. The relay handles datagrams one at a time and
//! sends on one socket, so anything wrongly sent before the fence would be
//! queued ahead of it. A datagram that gets no visible effect at all is
//! known to be handled once the SIGUSR1 figures count it.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use mpecho_testkit::{Server, ServerOptions, TIMEOUT, count_peer_lines, run_mpecho, wait_for};

/// The largest datagram the relay sends, tag included (the largest UDP
/// payload over IPv4).
const MAX_DATAGRAM: usize = 65_507;

/// Starts `mpecho chat-server ARGS` (on 127.0.0.1:0 unless ARGS say where).
pub(crate) fn start_relay(args: &[&str]) -> Server {
    Server::start_with(ServerOptions {
        subcommand: "chat-server",
        args: args.iter().map(|s| s.to_string()).collect(),
        ..ServerOptions::default()
    })
}

/// The tag the relay puts before what `sender` sent: `IP: PORT>> `, IPv6
/// in brackets.
pub(crate) fn tag(sender: SocketAddr) -> String {
    match sender {
        SocketAddr::V4(a) => format!("{}: {}>> ", a.ip(), a.port()),
        SocketAddr::V6(a) => format!("[{}]: {}>> ", a.ip(), a.port()),
    }
}

/// Bytes as a reader can compare them in a failure message.
fn show(bytes: &[u8]) -> String {
    if bytes.len() > 200 {
        format!(
            "{} bytes starting {:?}",
            bytes.len(),
            String::from_utf8_lossy(&bytes[..200])
        )
    } else {
        format!("{:?}", String::from_utf8_lossy(bytes))
    }
}

/// A chat client: one UDP socket on loopback (port >= 1024, chosen by the
/// kernel) that talks to the relay.
pub(crate) struct Peer {
    pub(crate) socket: UdpSocket,
    pub(crate) addr: SocketAddr,
    relay: SocketAddr,
}

impl Peer {
    /// A new client of `relay`, on the loopback address of the same family.
    pub(crate) fn new(relay: &Server) -> Peer {
        let local = if relay.addr.is_ipv4() {
            "127.0.0.1:0"
        } else {
            "[::1]:0"
        };
        Peer::on(UdpSocket::bind(local).expect("bind a client socket"), relay)
    }

    fn on(socket: UdpSocket, relay: &Server) -> Peer {
        socket.set_read_timeout(Some(TIMEOUT)).unwrap();
        let addr = socket.local_addr().unwrap();
        let relay = if relay.addr.ip().is_unspecified() {
            SocketAddr::from(([127, 0, 0, 1], relay.addr.port()))
        } else {
            relay.addr
        };
        Peer {
            socket,
            addr,
            relay,
        }
    }

    pub(crate) fn send(&self, data: &[u8]) {
        let sent = self
            .socket
            .send_to(data, self.relay)
            .unwrap_or_else(|e| panic!("{} could not send {}: {e}", self.addr, show(data)));
        assert_eq!(sent, data.len());
    }

    /// The next datagram, within `TIMEOUT`.
    pub(crate) fn recv(&self) -> Vec<u8> {
        let mut buf = vec![0u8; 70_000];
        match self.socket.recv_from(&mut buf) {
            Ok((n, from)) => {
                assert_eq!(
                    from, self.relay,
                    "{} got a datagram from a stranger",
                    self.addr
                );
                buf.truncate(n);
                buf
            }
            Err(e) => panic!("{} received nothing within {TIMEOUT:?}: {e}", self.addr),
        }
    }

    /// Asserts that the next datagram is exactly `expected`.
    pub(crate) fn expect(&self, expected: &[u8]) {
        let got = self.recv();
        assert!(
            got == expected,
            "{}: expected {}, got {}",
            self.addr,
            show(expected),
            show(&got)
        );
    }

    /// Asserts that the next datagram is what `from` sent, tagged.
    pub(crate) fn expect_from(&self, from: &Peer, data: &[u8]) {
        self.expect(&tagged(from, data));
    }

    /// Asserts that nothing is waiting in the socket right now.
    pub(crate) fn expect_nothing_queued(&self) {
        self.socket.set_nonblocking(true).unwrap();
        let mut buf = vec![0u8; 70_000];
        let got = self.socket.recv_from(&mut buf);
        self.socket.set_nonblocking(false).unwrap();
        match got {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Ok((n, _)) => panic!("{} unexpectedly received {}", self.addr, show(&buf[..n])),
            Err(e) => panic!("{}: unexpected receive error {e}", self.addr),
        }
    }

    /// Sends `data` and asserts that each of `others` receives it tagged,
    /// as its next datagram.
    pub(crate) fn says(&self, data: &[u8], others: &[&Peer]) {
        self.send(data);
        for other in others {
            other.expect_from(self, data);
        }
    }
}

pub(crate) fn tagged(from: &Peer, data: &[u8]) -> Vec<u8> {
    let mut out = tag(from.addr).into_bytes();
    out.extend_from_slice(data);
    out
}

/// Joins `peers` in order with an empty datagram each; every peer already
/// known must hear exactly `joined` about each newcomer, and nothing else.
pub(crate) fn join_all(relay: &Server, peers: &[&Peer]) {
    for (i, peer) in peers.iter().enumerate() {
        peer.send(b"");
        if i == 0 {
            relay.wait_for_log_line(&[&format!("joined peer={} ", peer.addr)]);
        }
        for earlier in &peers[..i] {
            earlier.expect_from(peer, b"joined");
        }
    }
}

/// Joins `newcomer` with an empty datagram; each of `known` must hear
/// exactly `joined` about it.
fn join_after(newcomer: &Peer, known: &[&Peer]) {
    newcomer.send(b"");
    for peer in known {
        peer.expect_from(newcomer, b"joined");
    }
}

/// Asks for a figures line (SIGUSR1) and returns its `name=value` pairs.
pub(crate) fn figures(relay: &Server) -> HashMap<String, u64> {
    let before = figures_lines(relay).len();
    relay.signal(libc::SIGUSR1);
    let line = wait_for("a new figures line", TIMEOUT, || {
        figures_lines(relay).get(before).cloned()
    });
    let fields = line.split_once("figures ").expect("figures in the line").1;
    let parsed: HashMap<String, u64> = fields
        .split(' ')
        .map(|pair| {
            let (name, value) = pair
                .split_once('=')
                .unwrap_or_else(|| panic!("not name=value: {pair:?} in {line:?}"));
            let value = value
                .parse()
                .unwrap_or_else(|_| panic!("not a number: {pair:?} in {line:?}"));
            (name.to_string(), value)
        })
        .collect();
    let mut names: Vec<&str> = parsed.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "bytes_in",
            "clients",
            "datagrams_in",
            "datagrams_out",
            "drops"
        ],
        "{line:?}"
    );
    parsed
}

fn figures_lines(relay: &Server) -> Vec<String> {
    relay
        .log()
        .lines()
        .filter(|l| l.contains("]: figures "))
        .map(str::to_string)
        .collect()
}

/// Waits until the relay has handled at least `count` datagrams in all, so
/// that the effects of the ones sent so far (if any) have happened.
fn wait_until_handled(relay: &Server, count: u64) -> HashMap<String, u64> {
    wait_for(
        &format!("the relay to have handled {count} datagrams"),
        TIMEOUT,
        || {
            let f = figures(relay);
            (f["datagrams_in"] >= count).then_some(f)
        },
    )
}

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

/// A newcomer is announced as `joined` before its first datagram; `END`
/// (bare, with `\n` or `\r\n`) removes a client, is announced as `left` and
/// is never relayed; `END` from an unknown sender is ignored.
#[test]
fn joined_and_left_announcements() {
    let relay = start_relay(&[]);
    let (a, b, c) = (Peer::new(&relay), Peer::new(&relay), Peer::new(&relay));
    join_all(&relay, &[&a, &b]);
    // b hears nothing about a, who was there first: its next datagram is
    // a's.
    a.says(b"hi b", &[&b]);

    // A first datagram with content: `joined` first, then the content.
    c.send(b"hi all");
    for other in [&a, &b] {
        other.expect_from(&c, b"joined");
        other.expect_from(&c, b"hi all");
    }

    for end in [&b"END"[..], b"END\n", b"END\r\n"] {
        c.send(end);
        a.expect_from(&c, b"left");
        b.expect_from(&c, b"left");
        // c is unknown again: no relay reaches it, and a fresh datagram
        // makes it join again.
        a.says(b"c is gone", &[&b]);
        c.expect_nothing_queued();
        c.send(b"back");
        for other in [&a, &b] {
            other.expect_from(&c, b"joined");
            other.expect_from(&c, b"back");
        }
    }

    // END from a stranger announces nothing and does not register it: its
    // next datagram makes it join.
    let d = Peer::new(&relay);
    d.send(b"END");
    d.send(b"END\n");
    a.says(b"fence", &[&b, &c]);
    d.expect_nothing_queued();
    d.send(b"hello");
    for other in [&a, &b, &c] {
        other.expect_from(&d, b"joined");
        other.expect_from(&d, b"hello");
    }
    assert!(
        !relay.log().contains(&format!("left peer={} ", d.addr)),
        "{}",
        relay.log()
    );
}

/// Only `END`, `END\n` and `END\r\n` leave: anything else that merely looks
/// like it is an ordinary message, relayed unchanged.
#[test]
fn only_an_exact_end_leaves() {
    let relay = start_relay(&[]);
    let (a, b) = (Peer::new(&relay), Peer::new(&relay));
    join_all(&relay, &[&a, &b]);
    for not_end in [
        &b"END\n\n"[..],
        b" END",
        b"ENDS",
        b"end",
        b"END\r",
        b"END\n\r",
        b"END\r\r\n",
        b"\nEND",
    ] {
        b.says(not_end, &[&a]);
    }
    a.says(b"b is still here", &[&b]);
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

/// With the list full, a newcomer's datagram is dropped, it gets exactly
/// `server full` (at most once a second), a warning is logged, and the
/// known clients keep relaying.
#[test]
fn full_list_turns_newcomers_away_with_server_full() {
    let relay = start_relay(&["--max-clients", "2"]);
    let (a, b, c) = (Peer::new(&relay), Peer::new(&relay), Peer::new(&relay));
    join_all(&relay, &[&a, &b]);

    let first_try = Instant::now();
    c.send(b"let me in");
    c.expect(b"server full");
    relay.wait_for_log_line(&[" WARN ", "server full", &format!("{}", c.addr)]);
    // Within the second: dropped without a reply (empty join attempts too).
    c.send(b"again");
    c.send(b"");
    let f = wait_until_handled(&relay, 5);
    assert_eq!(f["clients"], 2, "{f:?}");
    assert_eq!(f["drops"], 3, "{f:?}");
    c.expect_nothing_queued();
    // Nothing of c's reached the known clients, not even `joined`.
    a.says(b"still here", &[&b]);
    b.says(b"me too", &[&a]);
    assert!(
        !relay.log().contains(&format!("joined peer={} ", c.addr)),
        "{}",
        relay.log()
    );

    // After a second, another try gets another reply.
    let second_reply = wait_for("a second `server full` reply", TIMEOUT, || {
        c.send(b"knock");
        c.socket.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 64];
        let got = c.socket.recv(&mut buf).ok().map(|n| buf[..n].to_vec());
        c.socket.set_nonblocking(false).unwrap();
        got
    });
    assert_eq!(second_reply, b"server full");
    assert!(
        first_try.elapsed() >= Duration::from_secs(1),
        "two `server full` replies within {:?}",
        first_try.elapsed()
    );
    // The known clients were never evicted.
    a.says(b"fence", &[&b]);
    b.says(b"fence", &[&a]);
    assert_eq!(figures(&relay)["clients"], 2);
}

/// `END` frees a slot: the next newcomer takes it and is announced.
#[test]
fn end_frees_a_slot_that_a_new_client_then_takes() {
    let relay = start_relay(&["--max-clients", "2"]);
    let (a, b, c) = (Peer::new(&relay), Peer::new(&relay), Peer::new(&relay));
    join_all(&relay, &[&a, &b]);
    c.send(b"hello");
    c.expect(b"server full");

    b.send(b"END\n");
    a.expect_from(&b, b"left");
    c.send(b"hello again");
    a.expect_from(&c, b"joined");
    a.expect_from(&c, b"hello again");
    a.says(b"welcome", &[&c]);
    // b is now the one turned away.
    b.send(b"can I come back?");
    b.expect(b"server full");
    c.says(b"fence", &[&a]);
}

/// A client silent for longer than `--idle-timeout` is expired and
/// announced as `left`; a client that keeps sending (empty datagrams
/// included) stays; the freed slot is taken by a newcomer.
#[test]
fn idle_expiry_frees_a_slot_that_a_new_client_then_takes() {
    let relay = start_relay(&["--max-clients", "2", "--idle-timeout", "1"]);
    let (a, b, c) = (Peer::new(&relay), Peer::new(&relay), Peer::new(&relay));
    // Taken before b's only datagram: the relay heard b after this.
    let b_last_sent = Instant::now();
    join_all(&relay, &[&a, &b]);
    c.send(b"hello");
    c.expect(b"server full");

    // a keeps itself known with empty datagrams only; b says nothing.
    let expired = format!("expired peer={} ", b.addr);
    let line = wait_for("b to be expired", TIMEOUT, || {
        a.send(b"");
        relay
            .log()
            .lines()
            .find(|l| l.contains(&expired))
            .map(str::to_string)
    });
    assert!(
        b_last_sent.elapsed() > Duration::from_secs(1),
        "b expired after only {:?}: {line:?}",
        b_last_sent.elapsed()
    );
    a.expect_from(&b, b"left");
    assert!(
        !relay.log().contains(&format!("expired peer={} ", a.addr)),
        "a kept sending keep-alives yet was expired:\n{}",
        relay.log()
    );

    c.send(b"hello again");
    a.expect_from(&c, b"joined");
    a.expect_from(&c, b"hello again");
    a.says(b"welcome", &[&c]);
}

/// Only what a client *sends* keeps it known: one that only receives is
/// expired all the same.
#[test]
fn receiving_does_not_keep_a_silent_client_known() {
    let relay = start_relay(&["--idle-timeout", "1"]);
    let (a, b) = (Peer::new(&relay), Peer::new(&relay));
    join_all(&relay, &[&a, &b]);
    let expired = format!("expired peer={} ", b.addr);
    // a talks (every fifth poll, so that b's receive buffer cannot fill up)
    // and b hears it, but b itself sends nothing.
    let mut polls = 0;
    let mut ticks = 0u64;
    wait_for("b to be expired", TIMEOUT, || {
        if relay.log().contains(&expired) {
            return Some(());
        }
        if polls % 5 == 0 {
            a.send(format!("tick {ticks}").as_bytes());
            ticks += 1;
        }
        polls += 1;
        None
    });
    a.expect_from(&b, b"left");
    // b no longer receives a's messages.
    a.send(b"b cannot hear this");
    wait_until_handled(&relay, 2 + ticks + 1);
    // What b got: the ticks relayed while it was known, in order, and
    // nothing after.
    let mut heard = 0;
    b.socket.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 128];
    while let Ok(n) = b.socket.recv(&mut buf) {
        assert_eq!(buf[..n], tagged(&a, format!("tick {heard}").as_bytes()));
        heard += 1;
    }
    assert!(heard > 0, "b heard no tick before it expired");
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
