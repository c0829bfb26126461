//! PROXY protocol headers made by hand, as a load balancer sends them
//! (HAProxy's `doc/proxy-protocol.txt`), for tests that must send good and
//! bad headers byte for byte.
//!
//! Written from the spec and independently of mpecho's decoder, so that
//! each checks the other. What it must never do: be used by the server, or
//! quietly "fix" what a test asked for: a header with addresses of two
//! families cannot be written in either format, and asking for one is a
//! bug in the test (it panics).

use std::net::SocketAddr;

/// The v2 signature, `\r\n\r\n\0\r\nQUIT\n`.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// v2 TLV types (spec §2.2).
pub const PP2_TYPE_ALPN: u8 = 0x01;
pub const PP2_TYPE_AUTHORITY: u8 = 0x02;
pub const PP2_TYPE_CRC32C: u8 = 0x03;
pub const PP2_TYPE_NOOP: u8 = 0x04;
pub const PP2_TYPE_UNIQUE_ID: u8 = 0x05;
pub const PP2_TYPE_SSL: u8 = 0x20;

/// A v1 line for a relayed TCP connection: `PROXY TCP4 …\r\n` or
/// `PROXY TCP6 …\r\n`, addresses as Rust displays them (which is what
/// `inet_ntop` writes, IPv4-mapped IPv6 as `::ffff:a.b.c.d` included).
pub fn proxy_v1(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let protocol = match (src, dst) {
        (SocketAddr::V4(_), SocketAddr::V4(_)) => "TCP4",
        (SocketAddr::V6(_), SocketAddr::V6(_)) => "TCP6",
        _ => panic!("a PROXY header cannot mix address families: {src} and {dst}"),
    };
    format!(
        "PROXY {protocol} {} {} {} {}\r\n",
        src.ip(),
        dst.ip(),
        src.port(),
        dst.port()
    )
    .into_bytes()
}

/// The short v1 line for a connection the proxy cannot describe.
pub fn proxy_v1_unknown() -> Vec<u8> {
    b"PROXY UNKNOWN\r\n".to_vec()
}

/// A v2 PROXY header over TCP (family byte 0x11 or 0x21) followed by
/// `tlvs`, each `(type, value)`, in order.
pub fn proxy_v2(src: SocketAddr, dst: SocketAddr, tlvs: &[(u8, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    let family = match (src, dst) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            body.extend_from_slice(&s.ip().octets());
            body.extend_from_slice(&d.ip().octets());
            0x11
        }
        (SocketAddr::V6(s), SocketAddr::V6(d)) => {
            body.extend_from_slice(&s.ip().octets());
            body.extend_from_slice(&d.ip().octets());
            0x21
        }
        _ => panic!("a PROXY header cannot mix address families: {src} and {dst}"),
    };
    body.extend_from_slice(&src.port().to_be_bytes());
    body.extend_from_slice(&dst.port().to_be_bytes());
    body.extend(encode_tlvs(tlvs));
    proxy_v2_raw(0x21, family, &body)
}

/// A v2 LOCAL header (a health check): family UNSPEC, no addresses.
pub fn proxy_v2_local() -> Vec<u8> {
    proxy_v2_raw(0x20, 0x00, &[])
}

/// A v2 header with any version/command byte, family byte and body, its
/// length field set to the body's length: for headers that are wrong on
/// purpose.
pub fn proxy_v2_raw(version_and_command: u8, family: u8, body: &[u8]) -> Vec<u8> {
    let length = u16::try_from(body.len()).expect("a v2 body fits its 16-bit length");
    let mut header = V2_SIGNATURE.to_vec();
    header.push(version_and_command);
    header.push(family);
    header.extend_from_slice(&length.to_be_bytes());
    header.extend_from_slice(body);
    header
}

/// `tlvs` as v2 writes them: type, big-endian length, value.
pub fn encode_tlvs(tlvs: &[(u8, &[u8])]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for (kind, value) in tlvs {
        let length = u16::try_from(value.len()).expect("a TLV value fits its 16-bit length");
        bytes.push(*kind);
        bytes.extend_from_slice(&length.to_be_bytes());
        bytes.extend_from_slice(value);
    }
    bytes
}

/// `proxy_v2(src, dst, tlvs)` with a CRC32C TLV appended, computed as the
/// spec says: over the whole header with the checksum's value zeroed.
pub fn proxy_v2_checksummed(src: SocketAddr, dst: SocketAddr, tlvs: &[(u8, &[u8])]) -> Vec<u8> {
    let mut all = tlvs.to_vec();
    all.push((PP2_TYPE_CRC32C, &[0; 4]));
    let mut header = proxy_v2(src, dst, &all);
    let value_at = header.len() - 4;
    let checksum = crc32c(&header);
    header[value_at..].copy_from_slice(&checksum.to_be_bytes());
    header
}

/// CRC32C (Castagnoli, reflected), as RFC 4960 appendix B defines it.
pub fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    crc ^ 0xFFFF_FFFF
}
