//! v2's TLVs (a type byte, a 16-bit big-endian length, the value), which
//! follow the address block up to the header's declared end, and the
//! CRC32C one of them may carry over the whole header (spec §2.2).
//!
//! It owns walking them with every length checked against both the
//! header's declared end and the bytes received, keeping the few that are
//! exported or checked, and verifying that checksum.
//!
//! What it must never do: read past either bound, trust a TLV's length
//! because a type is known, or copy a value while walking (values stay
//! borrowed from the buffer; only a complete header's exported ones are
//! copied, by the caller). Unknown types, NOOP, SSL and authority are
//! skipped: mpecho has no use for them, and skipping is what the spec
//! allows.

use super::{MAX_UNIQUE_ID_LEN, Reason};

/// `PP2_TYPE_ALPN`: the application protocol negotiated with the client.
pub(super) const ALPN: u8 = 0x01;
/// `PP2_TYPE_CRC32C`: a checksum of the whole header, its own value zeroed.
pub(super) const CRC32C: u8 = 0x03;
/// `PP2_TYPE_UNIQUE_ID`: the proxy's opaque ID for the connection.
pub(super) const UNIQUE_ID: u8 = 0x05;

/// Type and length: a TLV's fixed part.
const TLV_HEAD_LEN: usize = 3;
const CRC32C_LEN: usize = 4;

/// The TLVs that matter, borrowed from the buffer.
#[derive(Debug, Default)]
pub(super) struct Seen<'a> {
    pub(super) alpn: Option<&'a [u8]>,
    pub(super) unique_id: Option<&'a [u8]>,
    /// Where the checksum's value starts in the TLV area, and the value.
    pub(super) crc32c: Option<(usize, u32)>,
}

/// How far a walk got.
pub(super) enum Walk<'a> {
    /// Every TLV up to the declared end was received and is well formed.
    Complete(Seen<'a>),
    /// What was received is well formed, but more is declared.
    Partial,
}

/// Walks the TLV area: `received` is what has arrived of it (never more
/// than `declared`), `declared` its length according to the header. A TLV
/// that would end past `declared` is refused at once, even before its
/// bytes arrive: no amount of waiting can fix it.
pub(super) fn walk(received: &[u8], declared: usize) -> Result<Walk<'_>, Reason> {
    let mut seen = Seen::default();
    let mut at = 0;
    while at < declared {
        let value_at = at + TLV_HEAD_LEN;
        if value_at > declared {
            return Err(Reason::TlvOverrun);
        }
        let Some(&[kind, high, low]) = received.get(at..value_at) else {
            return Ok(Walk::Partial);
        };
        let end = value_at + usize::from(u16::from_be_bytes([high, low]));
        if end > declared {
            return Err(Reason::TlvOverrun);
        }
        let Some(value) = received.get(value_at..end) else {
            return Ok(Walk::Partial);
        };
        seen.record(kind, value, value_at)?;
        at = end;
    }
    Ok(Walk::Complete(seen))
}

impl<'a> Seen<'a> {
    fn record(&mut self, kind: u8, value: &'a [u8], value_at: usize) -> Result<(), Reason> {
        match kind {
            ALPN => keep_once(&mut self.alpn, kind, value),
            UNIQUE_ID if value.len() > MAX_UNIQUE_ID_LEN => Err(Reason::BadTlvLength(kind)),
            UNIQUE_ID => keep_once(&mut self.unique_id, kind, value),
            CRC32C => {
                let bytes =
                    <[u8; CRC32C_LEN]>::try_from(value).map_err(|_| Reason::BadTlvLength(kind))?;
                keep_once(
                    &mut self.crc32c,
                    kind,
                    (value_at, u32::from_be_bytes(bytes)),
                )
            }
            _ => Ok(()),
        }
    }
}

/// Two values for one exported TLV would leave the log and the program
/// disagreeing on which counts: refuse the header instead.
fn keep_once<T>(slot: &mut Option<T>, kind: u8, value: T) -> Result<(), Reason> {
    if slot.is_some() {
        return Err(Reason::DuplicateTlv(kind));
    }
    *slot = Some(value);
    Ok(())
}

/// Whether the CRC32C (RFC 4960 appendix B, as the spec asks) of `header`,
/// with the four bytes at `value_at` counted as zeros, is `expected`.
pub(super) fn crc32c_matches(header: &[u8], value_at: usize, expected: u32) -> bool {
    let (Some(before), Some(after)) = (header.get(..value_at), header.get(value_at + CRC32C_LEN..))
    else {
        return false;
    };
    crc32c(&[before, &[0; CRC32C_LEN], after]) == expected
}

/// CRC32C over the concatenation of `parts`. Bit by bit rather than with a
/// table: it only runs for headers that carry a checksum, over at most
/// `MAX_V2_LEN` bytes, and 1 KiB of table is not worth that.
pub(super) fn crc32c(parts: &[&[u8]]) -> u32 {
    // The reflected Castagnoli polynomial.
    const POLY: u32 = 0x82F6_3B78;
    let mut crc = !0u32;
    for &byte in parts.iter().flat_map(|part| part.iter()) {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let low_bit_mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (POLY & low_bit_mask);
        }
    }
    !crc
}
