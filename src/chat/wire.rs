//! What one relay tells the others through Redis: the one definition of a
//! relayed message on the room's channel, its encoding and its defensive
//! parsing.
//!
//! Layout (version 1), all integers big-endian:
//!
//! ```text
//! "MPCH" | version u8 = 1 | kind u8 (0 message, 1 joined, 2 left)
//!        | relay id u64 | tag length u16 | tag | payload
//! ```
//!
//! The tag is the `IP: PORT>> ` the origin relay computed, carried as is so
//! that every relay shows the same sender. Announcements carry no payload:
//! each relay adds its own `joined`/`left`. This module never touches a
//! socket and never trusts a payload: anything else on the channel (another
//! version, a truncated or oversized message, a stray `PUBLISH`) is refused
//! with a reason, never half-used.

use super::MAX_DATAGRAM;

const MAGIC: &[u8; 4] = b"MPCH";
const VERSION: u8 = 1;
/// Magic, version, kind, relay id, tag length.
const HEADER: usize = 4 + 1 + 1 + 8 + 2;
/// The longest tag a relay makes: `[` + an IPv6 address (45) + `]: ` +
/// a port (5) + `>> `; anything longer did not come from a relay.
const MAX_TAG: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Message,
    Joined,
    Left,
}

/// A relayed message as read from the channel, borrowing its bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct Relayed<'a> {
    pub relay_id: u64,
    pub kind: Kind,
    pub tag: &'a [u8],
    pub payload: &'a [u8],
}

/// Encodes one relayed message. The caller has already applied the
/// oversize rule, so `tag + payload` fits one datagram.
pub fn encode(relay_id: u64, kind: Kind, tag: &[u8], payload: &[u8]) -> Vec<u8> {
    debug_assert!(tag.len() <= MAX_TAG, "a relay's tag is short");
    debug_assert!(
        tag.len() + payload.len() <= MAX_DATAGRAM,
        "oversized datagrams are dropped before they are published"
    );
    let mut out = Vec::with_capacity(HEADER + tag.len() + payload.len());
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(match kind {
        Kind::Message => 0,
        Kind::Joined => 1,
        Kind::Left => 2,
    });
    out.extend_from_slice(&relay_id.to_be_bytes());
    // MAX_TAG fits a u16, so the cast cannot truncate.
    out.extend_from_slice(&(tag.len() as u16).to_be_bytes());
    out.extend_from_slice(tag);
    out.extend_from_slice(payload);
    out
}

/// Parses one message from the channel, or says why it is refused.
pub fn decode(bytes: &[u8]) -> Result<Relayed<'_>, &'static str> {
    if bytes.len() < HEADER {
        return Err("shorter than the header");
    }
    let (header, rest) = bytes.split_at(HEADER);
    if &header[..4] != MAGIC {
        return Err("not an mpecho relay message");
    }
    if header[4] != VERSION {
        return Err("unknown version");
    }
    let kind = match header[5] {
        0 => Kind::Message,
        1 => Kind::Joined,
        2 => Kind::Left,
        _ => return Err("unknown kind"),
    };
    let mut id = [0u8; 8];
    id.copy_from_slice(&header[6..14]);
    let tag_len = usize::from(u16::from_be_bytes([header[14], header[15]]));
    if tag_len == 0 || tag_len > MAX_TAG || tag_len > rest.len() {
        return Err("bad tag length");
    }
    let (tag, payload) = rest.split_at(tag_len);
    if !tag.ends_with(b">> ") {
        return Err("tag does not end with `>> `");
    }
    if kind != Kind::Message && !payload.is_empty() {
        return Err("an announcement with a payload");
    }
    if kind == Kind::Message && payload.is_empty() {
        return Err("an empty message");
    }
    if tag.len() + payload.len() > MAX_DATAGRAM {
        return Err("too large to relay as one datagram");
    }
    Ok(Relayed {
        relay_id: u64::from_be_bytes(id),
        kind,
        tag,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_survives_the_round_trip() {
        let payload: Vec<u8> = (0..=255u8).collect();
        let bytes = encode(42, Kind::Message, b"127.0.0.1: 5000>> ", &payload);
        let got = decode(&bytes).unwrap();
        assert_eq!(got.relay_id, 42);
        assert_eq!(got.kind, Kind::Message);
        assert_eq!(got.tag, b"127.0.0.1: 5000>> ");
        assert_eq!(got.payload, payload.as_slice());
        let joined = encode(7, Kind::Left, b"[::1]: 9>> ", b"");
        assert_eq!(decode(&joined).unwrap().kind, Kind::Left);
    }

    #[test]
    fn anything_else_is_refused() {
        let good = encode(1, Kind::Message, b"1.2.3.4: 5>> ", b"hi");
        assert!(decode(b"garbage").is_err());
        assert!(decode(&good[..HEADER]).is_err());
        let mut v2 = good.clone();
        v2[4] = 2;
        assert!(decode(&v2).is_err());
        let mut kind = good.clone();
        kind[5] = 9;
        assert!(decode(&kind).is_err());
        let mut long_tag = good.clone();
        long_tag[14] = 0xff;
        assert!(decode(&long_tag).is_err());
        assert!(decode(&encode(1, Kind::Joined, b"1.2.3.4: 5>> ", b"x")).is_err());
        assert!(decode(&encode(1, Kind::Message, b"1.2.3.4: 5>> ", b"")).is_err());
        assert!(decode(&encode(1, Kind::Message, b"no tag end", b"x")).is_err());
    }
}
