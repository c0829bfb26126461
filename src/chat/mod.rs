//! The UDP chat relay (DESIGN §9): `mpecho chat-server` relays every
//! datagram from a known client to every other known client, tagged with
//! the sender's address; `mpecho chat` is its two-process client.
//!
//! This module holds the wire conventions both sides share: the sender tag,
//! the `END` message and the announcements (what relays tell each other
//! through Redis is `wire.rs`). It never opens a socket.

pub mod client;
pub mod cluster;
mod resp;
mod roster;
pub mod server;
pub mod wire;

use std::net::SocketAddr;

use crate::net::display_addr;

/// The largest UDP payload over IPv4 (65,535 − 8 UDP − 20 IP header bytes):
/// a relayed datagram, tag included, must fit, or it is dropped whole.
pub const MAX_DATAGRAM: usize = 65_507;

/// Sent by a client that leaves; never relayed.
pub const END: &[u8] = b"END";
/// Relayed (tagged) when a client becomes known.
pub const JOINED: &[u8] = b"joined";
/// Relayed (tagged) when a client leaves or is expired.
pub const LEFT: &[u8] = b"left";
/// Sent back, untagged, to a newcomer when the list of clients is full.
pub const SERVER_FULL: &[u8] = b"server full";

/// The tag that precedes a relayed datagram: `IP: PORT>> ` (IPv6 in
/// brackets, IPv4-mapped IPv6 as plain IPv4).
pub fn sender_tag(sender: SocketAddr) -> String {
    let sender = display_addr(sender);
    match sender {
        SocketAddr::V4(a) => format!("{}: {}>> ", a.ip(), a.port()),
        SocketAddr::V6(a) => format!("[{}]: {}>> ", a.ip(), a.port()),
    }
}

/// Whether a datagram is the `END` message: exactly `END`, `END\n` or
/// `END\r\n`, nothing else (a stray `\r` alone is text to relay).
pub fn is_end(datagram: &[u8]) -> bool {
    [b"END".as_slice(), b"END\n", b"END\r\n"].contains(&datagram)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_name_the_sender_like_the_classic_relay() {
        let v4: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        assert_eq!(sender_tag(v4), "127.0.0.1: 5000>> ");
        let v6: SocketAddr = "[::1]:5000".parse().unwrap();
        assert_eq!(sender_tag(v6), "[::1]: 5000>> ");
        let mapped: SocketAddr = "[::ffff:10.1.2.3]:7".parse().unwrap();
        assert_eq!(sender_tag(mapped), "10.1.2.3: 7>> ");
    }

    #[test]
    fn end_allows_one_line_ending() {
        assert!(is_end(b"END"));
        assert!(is_end(b"END\n"));
        assert!(is_end(b"END\r\n"));
        assert!(!is_end(b"END\n\n"));
        assert!(!is_end(b"END\r"));
        assert!(!is_end(b"ENDS"));
        assert!(!is_end(b" END"));
    }
}
