//! The chat tests' client and relay: a `Peer` is one plain `UdpSocket`
//! client, the relay is `mpecho chat-server` started through the testkit's
//! `Server`. A `Peer` proves what arrived (exact bytes, tagged with the
//! sender) and, with fences, what did not.
//!
//! Every receive is bounded by `TIMEOUT`; nothing here sleeps to wait for
//! the relay: figures (SIGUSR1) say when a datagram has been handled.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};

use mpecho_testkit::{Server, ServerOptions, TIMEOUT, wait_for};

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
    pub(crate) relay: SocketAddr,
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

    pub(crate) fn on(socket: UdpSocket, relay: &Server) -> Peer {
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
pub(crate) fn join_after(newcomer: &Peer, known: &[&Peer]) {
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
            "drops",
            "log_write_errors"
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
pub(crate) fn wait_until_handled(relay: &Server, count: u64) -> HashMap<String, u64> {
    wait_for(
        &format!("the relay to have handled {count} datagrams"),
        TIMEOUT,
        || {
            let f = figures(relay);
            (f["datagrams_in"] >= count).then_some(f)
        },
    )
}
