//! The PROXY protocol header (HAProxy's `doc/proxy-protocol.txt`, versions
//! 1 and 2), decoded from the bytes a connection has sent so far.
//!
//! It owns: telling a v1 line from a v2 block by their first bytes, the
//! strict syntax of each, the size limits, the TLVs that are exported, and
//! which peer address admission must use once a header is in.
//!
//! What it must never do: touch a socket, a clock or the log (it is a pure
//! function of a byte slice: the caller reads, buffers and keeps the
//! deadline), panic, index past the buffer, trust a length field beyond the
//! bytes it covers, allocate more than a header's own bounded size, or
//! guess: a buffer that cannot begin a valid header is refused at once,
//! never waited on, and the header is only decoded where the operator
//! configured it (the spec forbids auto-detection: a client could spoof
//! its address).
//!
//! - `v1.rs`: the text line (`PROXY TCP4 …\r\n`);
//! - `v2.rs`: the binary block (signature, command, family, addresses);
//! - `tlv.rs`: v2's type-length-value extensions, CRC32C;
//! - `reason.rs`: why a header was refused.

mod reason;
mod tlv;
mod v1;
mod v2;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;

pub use reason::Reason;

/// The longest v1 line, CRLF included: `PROXY UNKNOWN` followed by two
/// full-length IPv6 addresses and two ports (spec §2.1). A line with no
/// CRLF in its first 107 bytes is invalid, so a v1 header never needs more.
pub const MAX_V1_LEN: usize = 107;

/// The fixed part of a v2 header: signature (12), version and command,
/// family and transport, and the big-endian length of what follows (2).
pub const V2_FIXED_LEN: usize = 16;

/// The longest v2 header accepted, fixed part included; a longer one is
/// refused as [`Reason::Oversized`] as soon as its length field arrives.
///
/// Why 4096: what load balancers send is far smaller (an IPv6 block is 36
/// bytes; HAProxy's unique ID is at most 128, its authority at most 255,
/// its SSL TLV a few short strings, and its own receiver refuses any TLV
/// value over 1024 bytes), so 4 KiB leaves room for several of HAProxy's
/// largest TLVs at once. It is also what the master holds per connection
/// still waiting for its header (only trusted proxies', and only until
/// `--proxy-timeout`), so it stays one page rather than HAProxy's 16 KiB
/// receive buffer. What it refuses: headers carrying a whole client
/// certificate chain (`PP2_SUBTYPE_SSL_CLIENT_CERT`) of more than about
/// 4 KB.
pub const MAX_V2_LEN: usize = 4096;

/// The most bytes a caller ever needs to hold to get a decision: with this
/// many, [`decode`] never answers [`Decoded::Incomplete`].
pub const MAX_HEADER_LEN: usize = MAX_V2_LEN;

/// Longest unique ID accepted (`PP2_TYPE_UNIQUE_ID`): the spec's "up to
/// 128 bytes", which is also HAProxy's limit.
pub const MAX_UNIQUE_ID_LEN: usize = 128;

/// What the bytes received so far amount to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// They begin a header that may still be valid: read until the buffer
    /// holds at least `need_at_least` bytes in all (always more than it
    /// holds now, never more than the header itself needs, never more than
    /// [`MAX_HEADER_LEN`]), then decode again from the start.
    Incomplete { need_at_least: usize },
    /// A complete, valid header of `consumed` bytes. Whatever follows it
    /// in the buffer is the application's and must reach it untouched.
    Header {
        consumed: usize,
        header: ProxyHeader,
    },
    /// These bytes can never become a valid header: close the connection.
    Invalid(Reason),
}

/// A decoded header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyHeader {
    pub version: Version,
    pub command: Command,
    /// The v2 TLVs exported (always empty for v1 and for LOCAL).
    pub tlvs: Tlvs,
}

/// Which of the two formats the header was in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// What the proxy says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Relayed on behalf of a client (v1 `TCP4`/`TCP6`, v2 `PROXY` over
    /// TCP): these are the real endpoints.
    Proxy {
        source: SocketAddr,
        destination: SocketAddr,
    },
    /// The proxy's own connection (v2 `LOCAL`: a health check) or one it
    /// could not describe (v1 `UNKNOWN`): the connection's own addresses
    /// apply, as if there had been no header.
    Local,
}

/// The v2 TLVs worth passing on; every other type is skipped (after its
/// bounds are checked). Each is at most one header long.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tlvs {
    /// `PP2_TYPE_UNIQUE_ID` (0x05): the proxy's ID for the connection, to
    /// correlate logs across layers; at most [`MAX_UNIQUE_ID_LEN`] bytes.
    pub unique_id: Option<Vec<u8>>,
    /// `PP2_TYPE_ALPN` (0x01): the protocol negotiated with the client.
    pub alpn: Option<Vec<u8>>,
}

impl ProxyHeader {
    /// The real client, when the proxy relayed one.
    pub fn source(&self) -> Option<SocketAddr> {
        match self.command {
            Command::Proxy { source, .. } => Some(source),
            Command::Local => None,
        }
    }

    /// The address the client connected to, when the proxy relayed one.
    pub fn destination(&self) -> Option<SocketAddr> {
        match self.command {
            Command::Proxy { destination, .. } => Some(destination),
            Command::Local => None,
        }
    }

    /// The peer every admission decision (limits, rules, rates) and the
    /// worker's `TCPREMOTEIP`/`TCPREMOTEPORT` must use: the real client
    /// for a relayed connection, the connection's own peer (the proxy) for
    /// LOCAL and UNKNOWN.
    pub fn admission_peer(&self, connection_peer: SocketAddr) -> SocketAddr {
        self.source().unwrap_or(connection_peer)
    }

    /// The local address the worker must be told (`TCPLOCALIP`/`PORT`):
    /// what the client connected to, or the connection's own.
    pub fn local_address(&self, connection_local: SocketAddr) -> SocketAddr {
        self.destination().unwrap_or(connection_local)
    }
}

/// Decodes the header at the start of `buf`, the bytes a connection has
/// sent so far (from its first byte).
///
/// The first byte decides: `P` can only begin v1, `\r` only v2, anything
/// else is refused at once. Decoding is from scratch on every call, so the
/// caller may call it after each read with the whole buffer; with
/// [`MAX_HEADER_LEN`] bytes it always decides.
pub fn decode(buf: &[u8]) -> Decoded {
    match buf.first() {
        None => Decoded::Incomplete {
            need_at_least: v1::MIN_LEN,
        },
        Some(b'P') => v1::decode(buf),
        Some(b'\r') => v2::decode(buf),
        Some(_) => Decoded::Invalid(Reason::BadSignature),
    }
}
