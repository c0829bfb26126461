//! The bytes every request carries: a deterministic function of the
//! connection's id and the request's sequence number. The chaos suite uses
//! the same generator for whole connection streams, made and checked a
//! stretch at a time by byte offset.
//!
//! Two requests never carry the same bytes (short of a 64-bit hash
//! collision), so an echo that comes back changed, from another connection
//! (cross-talk), from an earlier request of the same one (duplication) or
//! cut short (loss) never passes for the one expected. Filling allocates
//! nothing and does no I/O; the caller owns the buffer.

/// SplitMix64's finaliser: a bijection on u64 that spreads every input bit
/// over every output bit.
const fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The stream request `seq` on connection `conn` carries (a connection that
/// sends one endless stream uses `seq` 0).
pub const fn stream(conn: u64, seq: u64) -> u64 {
    mix(mix(conn) ^ seq.rotate_left(32))
}

/// Fills `buf` with the payload of request `seq` on connection `conn`.
pub fn fill(conn: u64, seq: u64, buf: &mut [u8]) {
    fill_at(stream(conn, seq), 0, buf);
}

/// Fills `buf` with bytes `offset..` of `stream`: its 8-byte word `k` is
/// `mix(stream + k)`, so any stretch can be made without the ones before it.
pub fn fill_at(stream: u64, offset: u64, buf: &mut [u8]) {
    let mut word = offset / 8;
    let mut skip = (offset % 8) as usize;
    let mut rest = buf;
    while !rest.is_empty() {
        let bytes = mix(stream.wrapping_add(word)).to_le_bytes();
        let n = (8 - skip).min(rest.len());
        rest[..n].copy_from_slice(&bytes[skip..skip + n]);
        rest = &mut rest[n..];
        skip = 0;
        word += 1;
    }
}

/// Where `got`, received as bytes `offset..` of `stream`, first differs
/// from what the stream holds there; `None` when it matches. `scratch` is
/// the caller's, so that checking allocates only while it grows.
pub fn first_difference(
    stream: u64,
    offset: u64,
    got: &[u8],
    scratch: &mut Vec<u8>,
) -> Option<usize> {
    scratch.resize(got.len(), 0);
    fill_at(stream, offset, scratch);
    got.iter().zip(scratch.iter()).position(|(a, b)| a != b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(conn: u64, seq: u64, len: usize) -> Vec<u8> {
        let mut buf = vec![0; len];
        fill(conn, seq, &mut buf);
        buf
    }

    #[test]
    fn the_same_request_always_carries_the_same_bytes() {
        assert_eq!(payload(7, 3, 100), payload(7, 3, 100));
        // A shorter request is a prefix of a longer one: sizes do not matter.
        assert_eq!(payload(7, 3, 100)[..37], payload(7, 3, 37)[..]);
    }

    #[test]
    fn other_connections_and_requests_carry_other_bytes() {
        let base = payload(1, 0, 64);
        for (conn, seq) in [(0, 0), (2, 0), (1, 1), (0, 1), (1 << 32, 0), (0, 1 << 32)] {
            assert_ne!(payload(conn, seq, 64), base, "conn {conn} seq {seq}");
        }
        // Even the first byte differs between neighbours, so a one-byte
        // echo catches cross-talk too (with high probability: checked here
        // for a few neighbours).
        let firsts: std::collections::HashSet<u8> =
            (0..8).map(|seq| payload(5, seq, 1)[0]).collect();
        assert!(firsts.len() > 4);
    }

    #[test]
    fn any_stretch_of_a_stream_is_made_without_the_bytes_before_it() {
        let whole = payload(9, 4, 100);
        let s = stream(9, 4);
        for (offset, len) in [(0, 100), (3, 20), (8, 8), (13, 1), (57, 43)] {
            let mut part = vec![0; len];
            fill_at(s, offset as u64, &mut part);
            assert_eq!(part, whole[offset..offset + len], "offset {offset}");
        }
        let mut scratch = Vec::new();
        assert_eq!(first_difference(s, 13, &whole[13..40], &mut scratch), None);
        let mut changed = whole[13..40].to_vec();
        changed[5] ^= 1;
        assert_eq!(first_difference(s, 13, &changed, &mut scratch), Some(5));
    }
}
