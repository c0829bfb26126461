//! The spec's own examples, every kind of malformed header, and the
//! helpers' answers; `properties.rs` holds the random-bytes checks.

use std::net::SocketAddr;

use mpecho_testkit::proxy::{PP2_TYPE_NOOP, PP2_TYPE_SSL};
use mpecho_testkit::{
    encode_tlvs, proxy_v1, proxy_v2, proxy_v2_checksummed, proxy_v2_local, proxy_v2_raw,
};

use super::*;

mod properties;

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

/// A complete header's length and contents; any other answer fails.
fn header(buf: &[u8]) -> (usize, ProxyHeader) {
    match decode(buf) {
        Decoded::Header { consumed, header } => (consumed, header),
        other => panic!("{:?} decoded as {other:?}", String::from_utf8_lossy(buf)),
    }
}

fn invalid(buf: &[u8]) -> Reason {
    match decode(buf) {
        Decoded::Invalid(reason) => reason,
        other => panic!("{:?} decoded as {other:?}", String::from_utf8_lossy(buf)),
    }
}

fn need(buf: &[u8]) -> usize {
    match decode(buf) {
        Decoded::Incomplete { need_at_least } => need_at_least,
        other => panic!("{:?} decoded as {other:?}", String::from_utf8_lossy(buf)),
    }
}

fn proxied(source: &str, destination: &str) -> Command {
    Command::Proxy {
        source: addr(source),
        destination: addr(destination),
    }
}

/// The spec's v1 example: the line, then an HTTP request that is not ours.
#[test]
fn the_specs_v1_example_leaves_the_request_untouched() {
    let buf = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\nHost: 192.168.0.11\r\n\r\n";
    let (consumed, decoded) = header(buf);
    assert_eq!(
        &buf[consumed..],
        b"GET / HTTP/1.1\r\nHost: 192.168.0.11\r\n\r\n"
    );
    assert_eq!(decoded.version, Version::V1);
    assert_eq!(
        decoded.command,
        proxied("192.168.0.1:56324", "192.168.0.11:443")
    );
    assert_eq!(decoded.tlvs, Tlvs::default());
}

/// The spec's longest lines: 56 bytes for TCP4, 104 for TCP6, 107 for
/// UNKNOWN with every optional field; and the 15-byte short UNKNOWN.
#[test]
fn the_specs_longest_and_shortest_v1_lines_are_accepted() {
    let tcp4 = b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n";
    assert_eq!(tcp4.len(), 56);
    let (consumed, decoded) = header(tcp4);
    assert_eq!(consumed, 56);
    assert_eq!(
        decoded.command,
        proxied("255.255.255.255:65535", "255.255.255.255:65535")
    );

    let full = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    let tcp6 = format!("PROXY TCP6 {full} {full} 65535 65535\r\n");
    assert_eq!(tcp6.len(), 104);
    let (consumed, decoded) = header(tcp6.as_bytes());
    assert_eq!(consumed, 104);
    let everything = format!("[{full}]:65535");
    assert_eq!(decoded.command, proxied(&everything, &everything));

    let unknown = format!("PROXY UNKNOWN {full} {full} 65535 65535\r\n");
    assert_eq!(unknown.len(), MAX_V1_LEN);
    assert_eq!(header(unknown.as_bytes()), (107, local_v1()));
    assert_eq!(header(b"PROXY UNKNOWN\r\nrest"), (15, local_v1()));
}

fn local_v1() -> ProxyHeader {
    ProxyHeader {
        version: Version::V1,
        command: Command::Local,
        tlvs: Tlvs::default(),
    }
}

/// IPv6 as HAProxy writes it with inet_ntop: compressed, and IPv4-mapped.
#[test]
fn compressed_and_ipv4_mapped_v1_addresses_are_accepted() {
    let (_, decoded) = header(b"PROXY TCP6 2001:db8::1 ::ffff:192.0.2.7 0 8080\r\n");
    assert_eq!(
        decoded.command,
        proxied("[2001:db8::1]:0", "[::ffff:192.0.2.7]:8080")
    );
    let built = proxy_v1(addr("[fe80::1]:1"), addr("[::1]:2"));
    assert_eq!(header(&built).1.command, proxied("[fe80::1]:1", "[::1]:2"));
}

/// A line of more than 107 bytes, or 107 bytes without CRLF, is refused
/// without waiting for more.
#[test]
fn a_v1_line_without_crlf_within_107_bytes_is_refused() {
    let long = format!("PROXY UNKNOWN {}\r\n", "x".repeat(92));
    assert_eq!(long.len(), 108);
    assert_eq!(invalid(long.as_bytes()), Reason::V1TooLong);
    assert_eq!(invalid(&long.as_bytes()[..107]), Reason::V1TooLong);
    assert_eq!(need(&long.as_bytes()[..106]), 107);
}

/// A lone CR or LF never ends a line (spec §2.1).
#[test]
fn a_lone_cr_or_lf_is_refused() {
    assert_eq!(invalid(b"PROXY UNKNOWN\n"), Reason::V1BadTerminator);
    assert_eq!(invalid(b"PROXY UNKNOWN\rX"), Reason::V1BadTerminator);
    assert_eq!(invalid(b"PROXY TCP4 1.2.3.4\n"), Reason::V1BadTerminator);
    // A CR after a whole line waits for its LF; after half a line it
    // cannot be right.
    assert_eq!(need(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r"), 32);
    assert_eq!(invalid(b"PROXY TCP4 1.2.3.4\r"), Reason::V1Malformed);
}

/// Every field is strict: family, octets, leading zeros, ports, spaces.
#[test]
fn malformed_v1_fields_are_refused_with_their_reason() {
    let cases: &[(&[u8], Reason)] = &[
        (b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", Reason::V1BadProtocol),
        (b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", Reason::V1BadProtocol),
        (b"PROXY UNKNOWNX\r\n", Reason::V1BadProtocol),
        (b"PROXY \r\n", Reason::V1BadProtocol),
        (b"PROXY\r\n", Reason::BadSignature),
        (b"PROXY TCP4\r\n", Reason::V1Malformed),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", Reason::V1Malformed),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", Reason::V1Malformed),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", Reason::V1Malformed),
        (b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", Reason::V1Malformed),
        (
            b"PROXY TCP4 192.168.0.01 5.6.7.8 1 2\r\n",
            Reason::V1BadAddress,
        ),
        (
            b"PROXY TCP4 256.1.1.1 5.6.7.8 1 2\r\n",
            Reason::V1BadAddress,
        ),
        (b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", Reason::V1BadAddress),
        (
            b"PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n",
            Reason::V1BadAddress,
        ),
        (b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", Reason::V1BadAddress),
        (b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", Reason::V1BadAddress),
        (b"PROXY TCP6 ::1 1::2::3 1 2\r\n", Reason::V1BadAddress),
        (b"PROXY TCP6 ::1%lo ::1 1 2\r\n", Reason::V1BadAddress),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", Reason::V1BadPort),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n", Reason::V1BadPort),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 +80 2\r\n", Reason::V1BadPort),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 -2\r\n", Reason::V1BadPort),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n", Reason::V1BadPort),
    ];
    for (line, reason) in cases {
        assert_eq!(
            decode(line),
            Decoded::Invalid(*reason),
            "{}",
            String::from_utf8_lossy(line)
        );
    }
}

/// A bad byte is refused when it arrives, not after the line's end.
#[test]
fn v1_is_refused_at_the_first_impossible_byte() {
    assert_eq!(invalid(b"G"), Reason::BadSignature);
    assert_eq!(invalid(b"PRoXY"), Reason::BadSignature);
    assert_eq!(invalid(b"PROXY TCP5"), Reason::V1BadProtocol);
    assert_eq!(invalid(b"PROXY TCP4 01"), Reason::V1BadAddress);
    assert_eq!(invalid(b"PROXY TCP4 1.2.3.4."), Reason::V1BadAddress);
    assert_eq!(
        invalid(b"PROXY TCP4 1.2.3.4 5.6.7.8 70000"),
        Reason::V1BadPort
    );
    assert_eq!(invalid(b"PROXY TCP6 ::g"), Reason::V1BadAddress);
    // Still possible: wait, asking for no more than the shortest line.
    assert_eq!(need(b""), 15);
    assert_eq!(need(b"PROX"), 15);
    assert_eq!(need(b"PROXY UNKNOWN"), 15);
    assert_eq!(need(b"PROXY TCP4 1.2.3.4 5.6.7.8 7000"), 32);
}

/// The spec's v2 layout written out byte by byte (not with the testkit
/// encoder): TCP over IPv4, 192.168.0.1:56324 to 192.168.0.11:443.
#[test]
fn a_v2_header_built_by_hand_decodes_and_leaves_the_payload() {
    let mut buf = vec![
        0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, // signature
        0x21, // version 2, PROXY
        0x11, // AF_INET, STREAM
        0x00, 0x0C, // 12 bytes follow
        192, 168, 0, 1, 192, 168, 0, 11, // addresses
        0xDC, 0x04, 0x01, 0xBB, // ports 56324, 443
    ];
    assert_eq!(
        buf,
        proxy_v2(addr("192.168.0.1:56324"), addr("192.168.0.11:443"), &[])
    );
    buf.extend_from_slice(b"\x16\x03\x01 client hello");
    let (consumed, decoded) = header(&buf);
    assert_eq!(consumed, 28);
    assert_eq!(&buf[consumed..], b"\x16\x03\x01 client hello");
    assert_eq!(decoded.version, Version::V2);
    assert_eq!(
        decoded.command,
        proxied("192.168.0.1:56324", "192.168.0.11:443")
    );
}

#[test]
fn a_v2_header_over_ipv6_decodes() {
    let buf = proxy_v2(addr("[2001:db8::7]:40000"), addr("[2001:db8::1]:9190"), &[]);
    assert_eq!(buf.len(), 16 + 36);
    assert_eq!(
        header(&buf).1.command,
        proxied("[2001:db8::7]:40000", "[2001:db8::1]:9190")
    );
}

/// LOCAL (a health check) carries no address to use; one that still has an
/// address block is skipped whole, as the spec requires.
#[test]
fn v2_local_uses_the_connections_own_addresses() {
    let (consumed, decoded) = header(&proxy_v2_local());
    assert_eq!(consumed, 16);
    assert_eq!(decoded.command, Command::Local);
    let with_block = proxy_v2_raw(0x20, 0x11, &[1; 12]);
    assert_eq!(header(&with_block), (28, decoded.clone()));
    assert_eq!(
        decoded.admission_peer(addr("10.0.0.9:5000")),
        addr("10.0.0.9:5000")
    );
}

/// Unique ID and ALPN are exported; NOOP, SSL and custom TLVs are skipped.
#[test]
fn v2_tlvs_are_exported_or_skipped() {
    let ssl = [
        0x01, 0, 0, 0, 0, 0x21, 0x00, 0x07, b'T', b'L', b'S', b'v', b'1', b'.', b'3',
    ];
    let tlvs: &[(u8, &[u8])] = &[
        (PP2_TYPE_NOOP, &[0; 5]),
        (tlv::ALPN, b"h2"),
        (PP2_TYPE_SSL, &ssl),
        (tlv::UNIQUE_ID, b"conn-42"),
        (0xE0, b"custom"),
        (PP2_TYPE_NOOP, &[]),
    ];
    let buf = proxy_v2(addr("1.2.3.4:5"), addr("6.7.8.9:10"), tlvs);
    let (consumed, decoded) = header(&buf);
    assert_eq!(consumed, buf.len());
    assert_eq!(decoded.tlvs.alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(decoded.tlvs.unique_id.as_deref(), Some(&b"conn-42"[..]));
}

/// A CRC32C TLV is checked over the whole header (spec §2.2.3).
#[test]
fn a_v2_checksum_is_verified() {
    assert_eq!(tlv::crc32c(&[&b"1234"[..], &b"56789"[..]]), 0xE306_9283);
    let good = proxy_v2_checksummed(addr("1.2.3.4:5"), addr("6.7.8.9:10"), &[(tlv::ALPN, b"x")]);
    assert_eq!(header(&good).0, good.len());
    let mut bad = good.clone();
    bad[17] ^= 1;
    assert_eq!(invalid(&bad), Reason::BadChecksum);
    let short = proxy_v2(
        addr("1.2.3.4:5"),
        addr("6.7.8.9:10"),
        &[(tlv::CRC32C, &[0; 3])],
    );
    assert_eq!(invalid(&short), Reason::BadTlvLength(tlv::CRC32C));
}

/// The fixed part is judged as it arrives.
#[test]
fn a_bad_v2_fixed_part_is_refused_at_once() {
    let v4 = proxy_v2(addr("1.2.3.4:5"), addr("6.7.8.9:10"), &[]);
    let with = |at: usize, byte: u8| {
        let mut buf = v4[..=at].to_vec();
        buf[at] = byte;
        decode(&buf)
    };
    assert_eq!(with(3, b'X'), Decoded::Invalid(Reason::BadSignature));
    assert_eq!(with(11, 0), Decoded::Invalid(Reason::BadSignature));
    assert_eq!(with(12, 0x11), Decoded::Invalid(Reason::BadVersion(1)));
    assert_eq!(with(12, 0x31), Decoded::Invalid(Reason::BadVersion(3)));
    assert_eq!(with(12, 0x22), Decoded::Invalid(Reason::BadCommand(2)));
    assert_eq!(with(12, 0x2F), Decoded::Invalid(Reason::BadCommand(15)));
    let family = |byte: u8| decode(&proxy_v2_raw(0x21, byte, &[0; 216])[..14]);
    assert_eq!(family(0x41), Decoded::Invalid(Reason::BadFamily(4)));
    assert_eq!(family(0x13), Decoded::Invalid(Reason::BadTransport(3)));
    assert_eq!(family(0x12), Decoded::Invalid(Reason::Unsupported(0x12)));
    assert_eq!(family(0x22), Decoded::Invalid(Reason::Unsupported(0x22)));
    assert_eq!(family(0x31), Decoded::Invalid(Reason::Unsupported(0x31)));
    assert_eq!(family(0x00), Decoded::Invalid(Reason::Unsupported(0x00)));
    // LOCAL ignores a defined family, but not an undefined one.
    assert_eq!(
        header(&proxy_v2_raw(0x20, 0x32, &[])).1.command,
        Command::Local
    );
    assert_eq!(
        invalid(&proxy_v2_raw(0x20, 0xF0, &[])),
        Reason::BadFamily(15)
    );
    // Still possible: the fixed part first, then exactly the header.
    assert_eq!(need(&v4[..1]), 16);
    assert_eq!(need(&v4[..16]), 28);
    assert_eq!(need(&v4[..27]), 28);
}

/// The length field decides the size: over the limit is refused as soon
/// as it arrives; the limit itself is accepted.
#[test]
fn v2_size_limits() {
    let mut huge = proxy_v2_raw(0x21, 0x11, &[0; 12]);
    huge[14..16].copy_from_slice(&0xFFFFu16.to_be_bytes());
    assert_eq!(invalid(&huge[..16]), Reason::Oversized);
    let padding = vec![0; MAX_V2_LEN - 16 - 12 - 3];
    let largest = proxy_v2(
        addr("1.2.3.4:5"),
        addr("6.7.8.9:10"),
        &[(PP2_TYPE_NOOP, &padding)],
    );
    assert_eq!(largest.len(), MAX_V2_LEN);
    assert_eq!(header(&largest).0, MAX_V2_LEN);
    let padding = vec![0; padding.len() + 1];
    let over = proxy_v2(
        addr("1.2.3.4:5"),
        addr("6.7.8.9:10"),
        &[(PP2_TYPE_NOOP, &padding)],
    );
    assert_eq!(invalid(&over[..16]), Reason::Oversized);
    let id = [b'i'; MAX_UNIQUE_ID_LEN + 1];
    let long_id = proxy_v2(
        addr("1.2.3.4:5"),
        addr("6.7.8.9:10"),
        &[(tlv::UNIQUE_ID, &id)],
    );
    assert_eq!(invalid(&long_id), Reason::BadTlvLength(tlv::UNIQUE_ID));
    let id = &id[..MAX_UNIQUE_ID_LEN];
    let longest_id = proxy_v2(
        addr("1.2.3.4:5"),
        addr("6.7.8.9:10"),
        &[(tlv::UNIQUE_ID, id)],
    );
    assert_eq!(header(&longest_id).1.tlvs.unique_id.as_deref(), Some(id));
}

/// Lengths are never trusted past the header: a short address block, a
/// TLV running past the end, a TLV head cut by the end, a duplicate.
#[test]
fn v2_lengths_that_lie_are_refused() {
    assert_eq!(
        invalid(&proxy_v2_raw(0x21, 0x11, &[0; 8])[..16]),
        Reason::TruncatedAddresses
    );
    assert_eq!(
        invalid(&proxy_v2_raw(0x21, 0x21, &[0; 35])),
        Reason::TruncatedAddresses
    );

    let mut body = vec![0; 12];
    body.extend(encode_tlvs(&[(tlv::ALPN, b"h2")]));
    body.extend_from_slice(&[0x04, 0x00, 0x09]); // 9 bytes declared
    body.extend_from_slice(b"abc"); // 3 remain
    let overrun = proxy_v2_raw(0x21, 0x11, &body);
    // Refused when the lying TLV's head arrives, not when the end does.
    assert_eq!(invalid(&overrun[..16 + body.len() - 3]), Reason::TlvOverrun);

    let mut body = vec![0; 12];
    body.extend_from_slice(&[0x04, 0x00]); // a TLV head cut short
    assert_eq!(
        invalid(&proxy_v2_raw(0x21, 0x11, &body)),
        Reason::TlvOverrun
    );

    let twice = proxy_v2(
        addr("1.2.3.4:5"),
        addr("6.7.8.9:10"),
        &[(tlv::ALPN, b"h2"), (tlv::ALPN, b"http/1.1")],
    );
    assert_eq!(invalid(&twice), Reason::DuplicateTlv(tlv::ALPN));
}

/// Admission uses the real client for relayed connections and the
/// connection's own peer otherwise; the worker's local address likewise.
#[test]
fn the_admission_peer_is_the_real_client_when_there_is_one() {
    let own_peer = addr("10.0.0.2:33000");
    let own_local = addr("10.0.0.1:9190");
    let relayed = header(&proxy_v1(
        addr("203.0.113.9:50000"),
        addr("198.51.100.1:443"),
    ))
    .1;
    assert_eq!(relayed.admission_peer(own_peer), addr("203.0.113.9:50000"));
    assert_eq!(relayed.local_address(own_local), addr("198.51.100.1:443"));
    assert_eq!(relayed.source(), Some(addr("203.0.113.9:50000")));
    let unknown = local_v1();
    assert_eq!(unknown.admission_peer(own_peer), own_peer);
    assert_eq!(unknown.local_address(own_local), own_local);
    assert_eq!(unknown.destination(), None);
}

/// Reasons read as short phrases and count under distinct labels.
#[test]
fn reasons_read_short_and_count_apart() {
    assert_eq!(Reason::Oversized.to_string(), "v2 header over 4096 bytes");
    assert_eq!(
        Reason::V1TooLong.to_string(),
        "v1 line without CRLF within 107 bytes"
    );
    assert_eq!(
        Reason::BadVersion(3).to_string(),
        "unsupported v2 version 3"
    );
    assert_eq!(Reason::DuplicateTlv(5).to_string(), "duplicate v2 TLV 0x05");
    let all = [
        Reason::BadSignature,
        Reason::V1TooLong,
        Reason::V1BadTerminator,
        Reason::V1BadProtocol,
        Reason::V1Malformed,
        Reason::V1BadAddress,
        Reason::V1BadPort,
        Reason::BadVersion(0),
        Reason::BadCommand(0),
        Reason::BadFamily(0),
        Reason::BadTransport(0),
        Reason::Unsupported(0),
        Reason::Oversized,
        Reason::TruncatedAddresses,
        Reason::TlvOverrun,
        Reason::BadTlvLength(0),
        Reason::DuplicateTlv(0),
        Reason::BadChecksum,
    ];
    let labels: std::collections::HashSet<_> = all.iter().map(|r| r.label()).collect();
    assert_eq!(labels.len(), all.len());
    assert!(all.iter().all(|r| r.to_string().len() <= 48));
}
