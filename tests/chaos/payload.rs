//! The stream each chaos connection sends: a deterministic function of the
//! connection's id and the byte offset, so that loss, duplication and
//! cross-talk all show, and any stretch can be made or checked without the
//! bytes before it.
//!
//! This must stay in step with the load generator's payload
//! (`src/bench/payload.rs`, moving to the `mpecho-bench` crate), and will
//! be replaced by it once both branches are merged. They differ today: the
//! bench derives each request's bytes from its sequence number, chaos a
//! stream's bytes from their offset; the shared generator must offer both.
//! Never allocate here beyond the caller's scratch buffer.

/// Fills `buf` with bytes `offset..` of connection `id`'s stream: 8-byte
/// words of a counter-based mix, so any stretch can be made without the
/// ones before it, and no two connections (or offsets) share a stretch.
pub(crate) fn fill(id: u64, offset: u64, buf: &mut [u8]) {
    let seed = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xC0FF_EE00_0000_0000;
    let mut pos = offset;
    let mut i = 0;
    while i < buf.len() {
        let word = mix(seed ^ (pos / 8)).to_le_bytes();
        let start = (pos % 8) as usize;
        let n = (8 - start).min(buf.len() - i);
        buf[i..i + n].copy_from_slice(&word[start..start + n]);
        i += n;
        pos += n as u64;
    }
}

/// splitmix64's finaliser.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Checks that `got` is bytes `offset..` of connection `id`'s stream.
pub(crate) fn check(id: u64, offset: u64, got: &[u8], scratch: &mut Vec<u8>) -> Result<(), String> {
    scratch.resize(got.len(), 0);
    fill(id, offset, scratch);
    match got.iter().zip(scratch.iter()).position(|(a, b)| a != b) {
        None => Ok(()),
        Some(i) => Err(format!(
            "connection {id}: byte {} is {:#04x}, expected {:#04x} (a read of {} bytes at \
             offset {offset}): lost, duplicated or foreign data",
            offset + i as u64,
            got[i],
            scratch[i],
            got.len()
        )),
    }
}
