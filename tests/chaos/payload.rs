//! The stream each chaos connection sends: the load generator's payload
//! (`mpecho_bench::payload`), one endless stream per connection, made and
//! checked a stretch at a time by byte offset, so that loss, duplication
//! and cross-talk all show. Never allocate here beyond the caller's scratch
//! buffer.

use mpecho_bench::payload::{self, first_difference, stream};

/// Fills `buf` with bytes `offset..` of connection `id`'s stream.
pub(crate) fn fill(id: u64, offset: u64, buf: &mut [u8]) {
    payload::fill_at(stream(id, 0), offset, buf);
}

/// Checks that `got` is bytes `offset..` of connection `id`'s stream.
pub(crate) fn check(id: u64, offset: u64, got: &[u8], scratch: &mut Vec<u8>) -> Result<(), String> {
    match first_difference(stream(id, 0), offset, got, scratch) {
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
