//! The v2 header: the 12-byte signature, a version and command byte, a
//! family and transport byte, a 16-bit big-endian length, then that many
//! bytes of addresses and TLVs (spec §2.2).
//!
//! It owns: which commands and families are accepted (LOCAL with any
//! defined family; PROXY only over TCP on IPv4 or IPv6), the size limit,
//! and reading the addresses.
//!
//! What it must never do: read the addresses or TLVs past the declared
//! length or the bytes received, or wait for bytes once the fixed part
//! already says the header is invalid (a bad version, command or family, an
//! oversized length, a TLV that overruns it are refused as they arrive).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use super::tlv::{self, Walk};
use super::{Command, Decoded, MAX_V2_LEN, ProxyHeader, Reason, Tlvs, V2_FIXED_LEN, Version};

/// `\r\n\r\n\0\r\nQUIT\n`: made to fail at once in HTTP, TLS, SMTP and
/// others, and never valid text.
pub(super) const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

const VERSION_AND_COMMAND_AT: usize = 12;
const FAMILY_AT: usize = 13;
const LENGTH_AT: usize = 14;

/// The only version the spec defines (the high nibble).
const VERSION: u8 = 2;
const LOCAL: u8 = 0x0;
const PROXY: u8 = 0x1;

/// Family (high nibble) and transport (low) the PROXY command may carry.
const TCP_OVER_IPV4: u8 = 0x11;
const TCP_OVER_IPV6: u8 = 0x21;
/// The highest family (AF_UNIX) and transport (DGRAM) the spec defines.
const LAST_FAMILY: u8 = 0x3;
const LAST_TRANSPORT: u8 = 0x2;

/// A relayed connection's address block: what the family announces.
#[derive(Debug, Clone, Copy)]
enum Block {
    Inet4,
    Inet6,
}

impl Block {
    /// Two addresses and two ports.
    fn len(self) -> usize {
        match self {
            Block::Inet4 => 2 * 4 + 2 * 2,
            Block::Inet6 => 2 * 16 + 2 * 2,
        }
    }
}

/// Decodes a buffer whose first byte is `\r`.
pub(super) fn decode(buf: &[u8]) -> Decoded {
    parse(buf).unwrap_or_else(Decoded::Invalid)
}

fn parse(buf: &[u8]) -> Result<Decoded, Reason> {
    let signature = buf.get(..SIGNATURE.len()).unwrap_or(buf);
    if !SIGNATURE.starts_with(signature) {
        return Err(Reason::BadSignature);
    }
    let Some(&version_and_command) = buf.get(VERSION_AND_COMMAND_AT) else {
        return Ok(incomplete(V2_FIXED_LEN));
    };
    let proxied = is_proxy_command(version_and_command)?;
    let Some(&family) = buf.get(FAMILY_AT) else {
        return Ok(incomplete(V2_FIXED_LEN));
    };
    let block = address_block(proxied, family)?;
    let Some(&[high, low]) = buf.get(LENGTH_AT..V2_FIXED_LEN) else {
        return Ok(incomplete(V2_FIXED_LEN));
    };
    let total = V2_FIXED_LEN + usize::from(u16::from_be_bytes([high, low]));
    if total > MAX_V2_LEN {
        return Err(Reason::Oversized);
    }
    match block {
        Some(block) => relayed(buf, block, total),
        None => Ok(local(buf, total)),
    }
}

/// Asks for the whole of a header of `total` bytes (its fixed part first).
fn incomplete(total: usize) -> Decoded {
    Decoded::Incomplete {
        need_at_least: total,
    }
}

/// Whether the command is PROXY (rather than LOCAL); any other version or
/// command must be refused (spec §2.2).
fn is_proxy_command(byte: u8) -> Result<bool, Reason> {
    let (version, command) = (byte >> 4, byte & 0x0F);
    if version != VERSION {
        return Err(Reason::BadVersion(version));
    }
    match command {
        LOCAL => Ok(false),
        PROXY => Ok(true),
        _ => Err(Reason::BadCommand(command)),
    }
}

/// The address block a PROXY command announces (`None` for LOCAL, whose
/// block is ignored). Undefined families and transports are refused for
/// both commands, as the spec asks; defined ones other than TCP over IP
/// are refused for PROXY: a UDP or UNIX peer has no TCP address to admit,
/// and falling back to the proxy's address would lump all its clients
/// under one address in every limit.
fn address_block(proxied: bool, byte: u8) -> Result<Option<Block>, Reason> {
    let (family, transport) = (byte >> 4, byte & 0x0F);
    if family > LAST_FAMILY {
        return Err(Reason::BadFamily(family));
    }
    if transport > LAST_TRANSPORT {
        return Err(Reason::BadTransport(transport));
    }
    match (proxied, byte) {
        (false, _) => Ok(None),
        (true, TCP_OVER_IPV4) => Ok(Some(Block::Inet4)),
        (true, TCP_OVER_IPV6) => Ok(Some(Block::Inet6)),
        (true, _) => Err(Reason::Unsupported(byte)),
    }
}

/// LOCAL: the proxy's own connection (a health check). Its addresses and
/// TLVs are skipped unread, as the spec says, whatever the family.
fn local(buf: &[u8], total: usize) -> Decoded {
    if buf.len() < total {
        return incomplete(total);
    }
    Decoded::Header {
        consumed: total,
        header: ProxyHeader {
            version: Version::V2,
            command: Command::Local,
            tlvs: Tlvs::default(),
        },
    }
}

/// PROXY: the addresses, then the TLVs, which are checked as far as they
/// have arrived so that a bad one is refused without waiting for the rest.
fn relayed(buf: &[u8], block: Block, total: usize) -> Result<Decoded, Reason> {
    let tlvs_at = V2_FIXED_LEN + block.len();
    if total < tlvs_at {
        return Err(Reason::TruncatedAddresses);
    }
    let received = buf.get(..total).unwrap_or(buf);
    let tlv_area = received.get(tlvs_at..).unwrap_or_default();
    let (Walk::Complete(seen), Some(header)) =
        (tlv::walk(tlv_area, total - tlvs_at)?, buf.get(..total))
    else {
        return Ok(incomplete(total));
    };
    if let Some((value_at, expected)) = seen.crc32c
        && !tlv::crc32c_matches(header, tlvs_at + value_at, expected)
    {
        return Err(Reason::BadChecksum);
    }
    let addresses = header.get(V2_FIXED_LEN..tlvs_at).unwrap_or_default();
    let (source, destination) =
        read_addresses(block, addresses).ok_or(Reason::TruncatedAddresses)?;
    Ok(Decoded::Header {
        consumed: total,
        header: ProxyHeader {
            version: Version::V2,
            command: Command::Proxy {
                source,
                destination,
            },
            tlvs: Tlvs {
                unique_id: seen.unique_id.map(<[u8]>::to_vec),
                alpn: seen.alpn.map(<[u8]>::to_vec),
            },
        },
    })
}

/// Source and destination from an address block, in network byte order:
/// both addresses, then both ports.
fn read_addresses(block: Block, bytes: &[u8]) -> Option<(SocketAddr, SocketAddr)> {
    let mut reader = Reader(bytes);
    let (source, destination) = match block {
        Block::Inet4 => (
            Ipv4Addr::from(reader.take::<4>()?).into(),
            Ipv4Addr::from(reader.take::<4>()?).into(),
        ),
        Block::Inet6 => (
            Ipv6Addr::from(reader.take::<16>()?).into(),
            Ipv6Addr::from(reader.take::<16>()?).into(),
        ),
    };
    let source_port = u16::from_be_bytes(reader.take()?);
    let destination_port = u16::from_be_bytes(reader.take()?);
    Some((
        SocketAddr::new(source, source_port),
        SocketAddr::new(destination, destination_port),
    ))
}

/// Fixed-size fields taken in order, each only if it is all there.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (field, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*field)
    }
}
