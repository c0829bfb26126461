//! The bytes every request carries: a deterministic function of the
//! connection's id and the request's sequence number.
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

/// Fills `buf` with the payload of request `seq` on connection `conn`.
pub fn fill(conn: u64, seq: u64, buf: &mut [u8]) {
    let seed = mix(mix(conn) ^ seq.rotate_left(32));
    for (i, chunk) in buf.chunks_mut(8).enumerate() {
        let word = mix(seed.wrapping_add(i as u64)).to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
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
}
