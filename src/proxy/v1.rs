//! The v1 header: one US-ASCII line, `PROXY TCP4|TCP6 SRC DST SPORT
//! DPORT\r\n` or `PROXY UNKNOWN …\r\n`, at most 107 bytes (spec §2.1).
//!
//! It owns the line's strict syntax: exactly one space between fields,
//! dotted-quad IPv4 without leading zeros, IPv6 as `inet_ntop` writes it
//! (HAProxy sends IPv4-mapped addresses as `::ffff:a.b.c.d`), decimal ports
//! 0-65535 without leading zeros, CRLF and nothing else to end it.
//!
//! What it must never do: accept what the spec does not, or wait for a line
//! that can no longer be valid. Every field is checked as its bytes arrive
//! (a finished field fully, the one being received as a prefix), so a bad
//! byte is refused when it comes. The one exception is an IPv6 address
//! being received: only its characters and length are checked until its
//! space arrives (the line's 107-byte bound still holds).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{Command, Decoded, MAX_V1_LEN, ProxyHeader, Reason, Tlvs, Version};

/// The shortest valid line, `PROXY UNKNOWN\r\n`.
pub(super) const MIN_LEN: usize = 15;

const PREFIX: &[u8] = b"PROXY ";

/// `inet_ntop`'s longest IPv6 text (`INET6_ADDRSTRLEN` less its NUL),
/// an IPv4-mapped address written in full.
const MAX_IPV6_TEXT: usize = 45;

/// Decodes a buffer whose first byte is `P`.
pub(super) fn decode(buf: &[u8]) -> Decoded {
    let window = buf.get(..MAX_V1_LEN).unwrap_or(buf);
    match find_line_end(window) {
        Err(reason) => Decoded::Invalid(reason),
        Ok(LineEnd::Crlf(end)) => complete(window.get(..end).unwrap_or_default(), end + 2),
        Ok(LineEnd::TrailingCr(end)) if window.len() < MAX_V1_LEN => {
            // Only LF may follow: what precedes the CR must already be a
            // whole line.
            match parse_line(window.get(..end).unwrap_or_default(), true) {
                Ok(_) => incomplete(window.len()),
                Err(reason) => Decoded::Invalid(reason),
            }
        }
        Ok(LineEnd::Missing) if window.len() < MAX_V1_LEN => match parse_line(window, false) {
            Ok(_) => incomplete(window.len()),
            Err(reason) => Decoded::Invalid(reason),
        },
        Ok(_) => Decoded::Invalid(Reason::V1TooLong),
    }
}

fn complete(line: &[u8], consumed: usize) -> Decoded {
    match parse_line(line, true) {
        Ok(Some(command)) => Decoded::Header {
            consumed,
            header: ProxyHeader {
                version: Version::V1,
                command,
                tlvs: Tlvs::default(),
            },
        },
        // A whole line always yields a command; `None` only comes from a
        // prefix. Refuse rather than trust that.
        Ok(None) => Decoded::Invalid(Reason::V1Malformed),
        Err(reason) => Decoded::Invalid(reason),
    }
}

/// Asks for one more byte, or for the shortest line while shorter than it.
fn incomplete(held: usize) -> Decoded {
    Decoded::Incomplete {
        need_at_least: (held + 1).clamp(MIN_LEN, MAX_V1_LEN),
    }
}

enum LineEnd {
    /// CRLF at this offset.
    Crlf(usize),
    /// The window ends with a CR at this offset.
    TrailingCr(usize),
    Missing,
}

/// Where the line ends. The spec forbids a lone CR or LF as an end, and
/// neither can appear inside a valid line, so the first one decides.
fn find_line_end(window: &[u8]) -> Result<LineEnd, Reason> {
    let Some(at) = window.iter().position(|&b| b == b'\r' || b == b'\n') else {
        return Ok(LineEnd::Missing);
    };
    match (window.get(at), window.get(at + 1)) {
        (Some(b'\r'), Some(b'\n')) => Ok(LineEnd::Crlf(at)),
        (Some(b'\r'), None) => Ok(LineEnd::TrailingCr(at)),
        _ => Err(Reason::V1BadTerminator),
    }
}

/// Checks a line without its CRLF (`whole`) or the part of one received
/// so far (its last field may be cut short). A whole line yields its
/// command; a valid prefix yields `None`.
fn parse_line(line: &[u8], whole: bool) -> Result<Option<Command>, Reason> {
    let Some(rest) = line.strip_prefix(PREFIX) else {
        return if !whole && PREFIX.starts_with(line) {
            Ok(None)
        } else {
            Err(Reason::BadSignature)
        };
    };
    let (protocol, tail) = match rest.iter().position(|&b| b == b' ') {
        Some(space) => (rest.get(..space).unwrap_or_default(), rest.get(space + 1..)),
        None => (rest, None),
    };
    let protocol_whole = whole || tail.is_some();
    match protocol {
        // The spec: the receiver ignores whatever follows UNKNOWN.
        b"UNKNOWN" => Ok(protocol_whole.then_some(Command::Local)),
        b"TCP4" | b"TCP6" => match tail {
            Some(tail) => parse_endpoints(protocol == b"TCP6", tail, whole),
            None if whole => Err(Reason::V1Malformed),
            None => Ok(None),
        },
        _ if !protocol_whole && is_protocol_prefix(protocol) => Ok(None),
        _ => Err(Reason::V1BadProtocol),
    }
}

fn is_protocol_prefix(text: &[u8]) -> bool {
    [&b"TCP4"[..], b"TCP6", b"UNKNOWN"]
        .iter()
        .any(|name| name.starts_with(text))
}

/// The four fields after `TCP4 ` or `TCP6 `: source, destination, source
/// port, destination port.
fn parse_endpoints(ipv6: bool, text: &[u8], whole: bool) -> Result<Option<Command>, Reason> {
    let mut fields = [None; 4];
    let mut count = 0;
    for field in text.split(|&b| b == b' ') {
        let slot = fields.get_mut(count).ok_or(Reason::V1Malformed)?;
        *slot = Some(field);
        count += 1;
    }
    if whole && count < fields.len() {
        return Err(Reason::V1Malformed);
    }
    let mut ips = [None; 2];
    let mut ports = [None; 2];
    for (index, field) in fields.iter().enumerate() {
        let Some(field) = field else { break };
        // Only the last field received so far can be cut short.
        let partial = !whole && index + 1 == count;
        match index {
            0 | 1 => ips[index] = parse_ip(ipv6, field, partial)?,
            _ => ports[index - 2] = parse_port(field, partial)?,
        }
    }
    match (ips, ports) {
        ([Some(src), Some(dst)], [Some(sport), Some(dport)]) => Ok(Some(Command::Proxy {
            source: SocketAddr::new(src, sport),
            destination: SocketAddr::new(dst, dport),
        })),
        _ if whole => Err(Reason::V1Malformed),
        _ => Ok(None),
    }
}

fn parse_ip(ipv6: bool, text: &[u8], partial: bool) -> Result<Option<IpAddr>, Reason> {
    if ipv6 {
        Ok(parse_ipv6(text, partial)?.map(IpAddr::V6))
    } else {
        Ok(parse_ipv4(text, partial)?.map(IpAddr::V4))
    }
}

/// Exactly four decimal octets, 0-255, no leading zero (the spec forbids
/// them: they would read as octal elsewhere). A partial text must be a
/// prefix of such an address.
fn parse_ipv4(text: &[u8], partial: bool) -> Result<Option<Ipv4Addr>, Reason> {
    let groups = text.split(|&b| b == b'.').count();
    if groups > 4 || (!partial && groups < 4) {
        return Err(Reason::V1BadAddress);
    }
    let mut octets = [0u8; 4];
    for (index, (group, slot)) in text.split(|&b| b == b'.').zip(&mut octets).enumerate() {
        // Only the group being received may still be empty.
        let receiving = partial && index + 1 == groups;
        let value = decimal(group, 3, receiving).ok_or(Reason::V1BadAddress)?;
        *slot = u8::try_from(value).map_err(|_| Reason::V1BadAddress)?;
    }
    Ok((!partial).then(|| Ipv4Addr::from(octets)))
}

/// Decimal digits, at most `max_digits`, no leading zero; `partial` allows
/// an empty text (nothing of the number has arrived yet). Its value, or
/// `None` for a bad one.
fn decimal(text: &[u8], max_digits: usize, partial: bool) -> Option<u32> {
    if text.is_empty() {
        return partial.then_some(0);
    }
    let leading_zero = text.len() > 1 && text.first() == Some(&b'0');
    if text.len() > max_digits || leading_zero || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        text.iter()
            .fold(0, |value, &digit| value * 10 + u32::from(digit - b'0')),
    )
}

fn parse_port(text: &[u8], partial: bool) -> Result<Option<u16>, Reason> {
    let value = decimal(text, 5, partial).ok_or(Reason::V1BadPort)?;
    let port = u16::try_from(value).map_err(|_| Reason::V1BadPort)?;
    Ok((!partial).then_some(port))
}

/// An IPv6 address as `inet_pton` reads it (what HAProxy accepts); a
/// partial text is only checked for its characters, its length, and a
/// second `::` (or a `:::`), which no completion can repair.
fn parse_ipv6(text: &[u8], partial: bool) -> Result<Option<Ipv6Addr>, Reason> {
    let allowed = |b: &u8| b.is_ascii_hexdigit() || *b == b':' || *b == b'.';
    // Overlapping pairs: `:::` counts twice, and is as unrepairable.
    let double_colons = text.windows(2).filter(|pair| pair == b"::").count();
    if text.len() > MAX_IPV6_TEXT || !text.iter().all(allowed) || double_colons > 1 {
        return Err(Reason::V1BadAddress);
    }
    if partial {
        return Ok(None);
    }
    let text = std::str::from_utf8(text).map_err(|_| Reason::V1BadAddress)?;
    text.parse().map(Some).map_err(|_| Reason::V1BadAddress)
}
