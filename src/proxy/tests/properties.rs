//! Random bytes, random valid headers and corrupted ones, thrown at
//! `decode` by a seeded generator (the same cases on every run; no
//! dependency, nothing to install): it never panics, never claims bytes it
//! was not given, asks only for more of what may still be a header, never
//! needs more than `MAX_HEADER_LEN` bytes to decide, and a valid header
//! decodes the same however its bytes arrive.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use mpecho_testkit::proxy::{PP2_TYPE_AUTHORITY, PP2_TYPE_NOOP, PP2_TYPE_SSL, V2_SIGNATURE};
use mpecho_testkit::{proxy_v1, proxy_v1_unknown, proxy_v2, proxy_v2_checksummed, proxy_v2_local};

use super::super::*;

/// The testkit's seeded generator, with the shapes these tests draw.
struct Rng(mpecho_testkit::Random);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(mpecho_testkit::Random::new(seed))
    }

    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.byte()).collect()
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Whether `buf` is, or begins with, one of the two ways a header starts.
fn begins_like_a_header(buf: &[u8]) -> bool {
    let like = |start: &[u8]| start.starts_with(buf) || buf.starts_with(start);
    like(b"PROXY ") || like(&V2_SIGNATURE)
}

/// Decodes `buf` and checks what must hold of any answer.
fn decode_checked(buf: &[u8]) -> Decoded {
    let decoded = decode(buf);
    match &decoded {
        Decoded::Header { consumed, .. } => {
            assert!(
                *consumed <= buf.len() && *consumed <= MAX_HEADER_LEN,
                "{buf:?}"
            );
            assert!(
                *consumed >= 15,
                "no header is shorter than 15 bytes: {buf:?}"
            );
        }
        Decoded::Incomplete { need_at_least } => {
            assert!(*need_at_least > buf.len(), "asks for no more: {buf:?}");
            assert!(*need_at_least <= MAX_HEADER_LEN, "{buf:?}");
            assert!(begins_like_a_header(buf), "waits on a non-header: {buf:?}");
            if buf.first() == Some(&b'P') {
                assert!(*need_at_least <= MAX_V1_LEN, "{buf:?}");
            }
        }
        Decoded::Invalid(_) => {}
    }
    decoded
}

/// Bytes that reach deep into either format more often than uniform ones.
fn header_like_bytes(rng: &mut Rng) -> Vec<u8> {
    const TEXT: &[u8] = b"0123456789abcdefABCDEF.: PROXYTCP46UNKOW\r\n";
    let starts: [&[u8]; 6] = [
        b"",
        b"PROXY ",
        b"PROXY TCP4 ",
        b"PROXY TCP6 ",
        &V2_SIGNATURE,
        b"\r\n\r\n\0\r\nQUIT\n\x21\x11",
    ];
    let mut buf = rng.pick(&starts).to_vec();
    let len = rng.below(160);
    if rng.below(2) == 0 {
        buf.extend((0..len).map(|_| *rng.pick(TEXT)));
    } else {
        buf.extend(rng.bytes(len));
    }
    buf
}

#[test]
fn random_bytes_never_panic_and_keep_the_invariants() {
    let mut rng = Rng::new(0x5EED_0001);
    for _ in 0..50_000 {
        let buf = header_like_bytes(&mut rng);
        for end in 0..=buf.len() {
            decode_checked(&buf[..end]);
        }
    }
}

/// With `MAX_HEADER_LEN` bytes there is always a decision: no header can
/// keep the master waiting past its limit, whatever its first bytes say.
#[test]
fn the_maximum_size_always_decides() {
    let mut rng = Rng::new(0x5EED_0002);
    for _ in 0..2_000 {
        let mut buf = match rng.below(3) {
            0 => header_like_bytes(&mut rng),
            1 => valid_header(&mut rng).0,
            _ => {
                // A v2 fixed part with a random length, the rest random.
                let mut fixed = V2_SIGNATURE.to_vec();
                fixed.extend_from_slice(&[*rng.pick(&[0x20, 0x21]), *rng.pick(&[0x11, 0x21])]);
                fixed.extend_from_slice(&(rng.next() as u16).to_be_bytes());
                fixed
            }
        };
        while buf.len() < MAX_HEADER_LEN {
            buf.push(rng.byte());
        }
        let decoded = decode_checked(&buf);
        assert!(
            !matches!(decoded, Decoded::Incomplete { .. }),
            "{decoded:?}"
        );
    }
}

fn random_ip(rng: &mut Rng, v6: bool) -> IpAddr {
    if !v6 {
        return Ipv4Addr::from(rng.next() as u32).into();
    }
    match rng.below(3) {
        0 => Ipv6Addr::from(u128::from(rng.next()) << 64 | u128::from(rng.next())).into(),
        // Zero runs, compressed as `::` when displayed.
        1 => Ipv6Addr::from(u128::from(rng.next() & 0xFFFF_0000_0000_FFFF)).into(),
        _ => Ipv4Addr::from(rng.next() as u32).to_ipv6_mapped().into(),
    }
}

fn random_port(rng: &mut Rng) -> u16 {
    let any = rng.next() as u16;
    *rng.pick(&[0, 1, 80, 65535, any])
}

/// A valid header of a random kind and the header it must decode to.
fn valid_header(rng: &mut Rng) -> (Vec<u8>, ProxyHeader) {
    let v6 = rng.below(2) == 0;
    let source = SocketAddr::new(random_ip(rng, v6), random_port(rng));
    let destination = SocketAddr::new(random_ip(rng, v6), random_port(rng));
    let relayed = Command::Proxy {
        source,
        destination,
    };
    let made = |version, command, tlvs| ProxyHeader {
        version,
        command,
        tlvs,
    };
    match rng.below(5) {
        0 => (
            proxy_v1(source, destination),
            made(Version::V1, relayed, Tlvs::default()),
        ),
        1 => (
            proxy_v1_unknown(),
            made(Version::V1, Command::Local, Tlvs::default()),
        ),
        2 => (
            proxy_v2_local(),
            made(Version::V2, Command::Local, Tlvs::default()),
        ),
        _ => {
            let (tlvs, expected) = random_tlvs(rng);
            let borrowed: Vec<(u8, &[u8])> = tlvs.iter().map(|(k, v)| (*k, &v[..])).collect();
            let bytes = if rng.below(2) == 0 {
                proxy_v2(source, destination, &borrowed)
            } else {
                proxy_v2_checksummed(source, destination, &borrowed)
            };
            (bytes, made(Version::V2, relayed, expected))
        }
    }
}

/// Up to six TLVs, the exported types at most once each.
fn random_tlvs(rng: &mut Rng) -> (Vec<(u8, Vec<u8>)>, Tlvs) {
    let mut tlvs = Vec::new();
    let mut expected = Tlvs::default();
    for _ in 0..rng.below(7) {
        let kind = *rng.pick(&[
            tlv::ALPN,
            tlv::UNIQUE_ID,
            PP2_TYPE_AUTHORITY,
            PP2_TYPE_NOOP,
            PP2_TYPE_SSL,
            0xE5,
            0xF8,
        ]);
        let len = rng.below(MAX_UNIQUE_ID_LEN + 1);
        let value = rng.bytes(len);
        let slot = match kind {
            tlv::ALPN => &mut expected.alpn,
            tlv::UNIQUE_ID => &mut expected.unique_id,
            _ => {
                tlvs.push((kind, value));
                continue;
            }
        };
        if slot.is_none() {
            *slot = Some(value.clone());
            tlvs.push((kind, value));
        }
    }
    (tlvs, expected)
}

/// However the bytes arrive, a valid header decodes to the same thing once
/// it is all there, every earlier split asks for more (never for more than
/// the header), and what follows it is left alone.
#[test]
fn valid_headers_decode_the_same_split_at_every_point() {
    let mut rng = Rng::new(0x5EED_0003);
    for _ in 0..3_000 {
        let (bytes, expected) = valid_header(&mut rng);
        let len = rng.below(40);
        let trailer = rng.bytes(len);
        let mut buf = bytes.clone();
        buf.extend_from_slice(&trailer);
        for end in 0..=buf.len() {
            match decode_checked(&buf[..end]) {
                Decoded::Incomplete { need_at_least } if end < bytes.len() => {
                    assert!(need_at_least <= bytes.len(), "{bytes:?} at {end}");
                }
                Decoded::Header { consumed, header } if end >= bytes.len() => {
                    assert_eq!(consumed, bytes.len());
                    assert_eq!(header, expected);
                    assert_eq!(&buf[consumed..end], &trailer[..end - consumed]);
                }
                other => panic!("{bytes:?} cut at {end} decoded as {other:?}"),
            }
        }
    }
}

/// Valid headers with bytes changed, cut or inserted: whatever the answer,
/// the invariants hold at every length.
#[test]
fn corrupted_headers_never_panic() {
    let mut rng = Rng::new(0x5EED_0004);
    for _ in 0..5_000 {
        let (mut buf, _) = valid_header(&mut rng);
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(buf.len());
            match rng.below(3) {
                0 => buf[at] = rng.byte(),
                1 => buf[at] ^= 1 << rng.below(8),
                _ => buf.insert(at, rng.byte()),
            }
        }
        if rng.below(4) == 0 {
            buf.truncate(rng.below(buf.len() + 1));
        }
        for end in 0..=buf.len() {
            decode_checked(&buf[..end]);
        }
    }
}
