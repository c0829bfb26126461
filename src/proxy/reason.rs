//! Why a PROXY header was refused: one variant per way a header can be
//! wrong, precise enough to tell a misconfigured proxy from a hostile
//! client in the log.
//!
//! It owns the short phrase each reason reads as (`Display`, for the
//! rate-limited log line) and the stable label it is counted under. It
//! must never carry bytes from the connection: a reason is logged, and a
//! client must not be able to write into the log through it.

use super::{MAX_V1_LEN, MAX_V2_LEN};

/// Why the bytes received can never become a valid header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    /// The first bytes are neither `PROXY ` nor the v2 signature.
    #[error("no PROXY protocol signature")]
    BadSignature,
    /// No CRLF within the longest possible v1 line.
    #[error("v1 line without CRLF within {} bytes", MAX_V1_LEN)]
    V1TooLong,
    /// A CR not followed by LF, or an LF alone.
    #[error("stray CR or LF in v1 line")]
    V1BadTerminator,
    /// The protocol is not `TCP4`, `TCP6` or `UNKNOWN`.
    #[error("v1 protocol not TCP4, TCP6 or UNKNOWN")]
    V1BadProtocol,
    /// Fields missing, extra, or not separated by exactly one space.
    #[error("malformed v1 line")]
    V1Malformed,
    /// An address that does not parse, or not of the announced family.
    #[error("bad v1 address")]
    V1BadAddress,
    /// A port with a non-digit, a leading zero, or over 65535.
    #[error("bad v1 port")]
    V1BadPort,
    /// The v2 version nibble is not 2.
    #[error("unsupported v2 version {0}")]
    BadVersion(u8),
    /// The v2 command nibble is neither LOCAL (0) nor PROXY (1).
    #[error("unknown v2 command {0}")]
    BadCommand(u8),
    /// A v2 address family the spec does not define (over 3).
    #[error("undefined v2 address family {0}")]
    BadFamily(u8),
    /// A v2 transport the spec does not define (over 2).
    #[error("undefined v2 transport {0}")]
    BadTransport(u8),
    /// A PROXY command over something other than TCP over IPv4 or IPv6
    /// (UDP, UNIX sockets, UNSPEC): the byte is family and transport.
    #[error("unsupported proxied family/transport 0x{0:02x}")]
    Unsupported(u8),
    /// A v2 length beyond [`MAX_V2_LEN`].
    #[error("v2 header over {} bytes", MAX_V2_LEN)]
    Oversized,
    /// A v2 length shorter than the announced family's addresses.
    #[error("truncated v2 address block")]
    TruncatedAddresses,
    /// A TLV whose header or value runs past the v2 length.
    #[error("v2 TLV overruns the header")]
    TlvOverrun,
    /// A TLV of the wrong size for its type (a unique ID over
    /// [`MAX_UNIQUE_ID_LEN`](super::MAX_UNIQUE_ID_LEN) bytes, a CRC32C not of 4).
    #[error("v2 TLV 0x{0:02x} of a bad length")]
    BadTlvLength(u8),
    /// An exported or checked TLV given twice: which one would count?
    #[error("duplicate v2 TLV 0x{0:02x}")]
    DuplicateTlv(u8),
    /// The CRC32C TLV does not match the header.
    #[error("v2 CRC32C mismatch")]
    BadChecksum,
}

impl Reason {
    /// A stable name to count refusals under (a metrics label): unlike the
    /// phrase, it never changes with wording or carries a number.
    pub fn label(self) -> &'static str {
        match self {
            Reason::BadSignature => "bad_signature",
            Reason::V1TooLong => "v1_too_long",
            Reason::V1BadTerminator => "v1_bad_terminator",
            Reason::V1BadProtocol => "v1_bad_protocol",
            Reason::V1Malformed => "v1_malformed",
            Reason::V1BadAddress => "v1_bad_address",
            Reason::V1BadPort => "v1_bad_port",
            Reason::BadVersion(_) => "bad_version",
            Reason::BadCommand(_) => "bad_command",
            Reason::BadFamily(_) => "bad_family",
            Reason::BadTransport(_) => "bad_transport",
            Reason::Unsupported(_) => "unsupported_family",
            Reason::Oversized => "oversized",
            Reason::TruncatedAddresses => "truncated_addresses",
            Reason::TlvOverrun => "tlv_overrun",
            Reason::BadTlvLength(_) => "bad_tlv_length",
            Reason::DuplicateTlv(_) => "duplicate_tlv",
            Reason::BadChecksum => "bad_checksum",
        }
    }
}
