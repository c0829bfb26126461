//! Address prefixes: a network of either family and its length, in the one
//! canonical form that rules are matched, compared and shown in.
//!
//! Owns parsing `ADDR` and `ADDR/LEN`, the IPv4-mapped rule (a prefix inside
//! `::ffff:0:0/96` *is* the IPv4 prefix, as a mapped client address is the
//! IPv4 client), and the canonical display `NETWORK/LEN`. It never accepts
//! bits set past the length (`10.1.2.3/8`): such a rule more likely holds a
//! typo than the network it would silently stand for.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A network: the address bits that matter and how many of them do.
/// IPv4-mapped IPv6 prefixes are always stored as `V4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Prefix {
    V4 { bits: u32, len: u8 },
    V6 { bits: u128, len: u8 },
}

/// Where IPv4-mapped IPv6 addresses start (`::ffff:0:0/96`), as a mask test.
const MAPPED_TOP: u128 = 0xffff << 32;

impl Prefix {
    /// `addr/len`, refused when `addr` has bits set past `len`.
    pub fn new(addr: IpAddr, len: u8) -> Result<Prefix, String> {
        let prefix = match addr {
            IpAddr::V4(v4) => Prefix::v4(u32::from(v4), len)?,
            IpAddr::V6(v6) => Prefix::v6(u128::from(v6), len)?,
        };
        if prefix.network_bits_differ(addr) {
            return Err(format!(
                "{addr}/{len} has bits set past the prefix length: the network is {prefix}"
            ));
        }
        Ok(prefix)
    }

    /// Parses `ADDR` (a single address: /32 or /128) or `ADDR/LEN`.
    pub fn parse(text: &str) -> Result<Prefix, String> {
        let (addr_text, len_text) = match text.split_once('/') {
            Some((addr, len)) => (addr, Some(len)),
            None => (text, None),
        };
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| format!("{addr_text:?} is not an IPv4 or IPv6 address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len_text {
            Some(len) => parse_len(len, max)?,
            None => max,
        };
        Prefix::new(addr, len)
    }

    fn v4(bits: u32, len: u8) -> Result<Prefix, String> {
        if len > 32 {
            return Err(format!("/{len} is longer than an IPv4 address (32 bits)"));
        }
        Ok(Prefix::V4 {
            bits: bits & mask32(len),
            len,
        })
    }

    fn v6(bits: u128, len: u8) -> Result<Prefix, String> {
        if len > 128 {
            return Err(format!("/{len} is longer than an IPv6 address (128 bits)"));
        }
        let bits = bits & mask128(len);
        // A mapped client is looked up as IPv4, so a mapped rule must be
        // stored as IPv4 to ever match it.
        if len >= 96 && bits >> 32 == MAPPED_TOP >> 32 {
            return Prefix::v4(bits as u32, len - 96);
        }
        Ok(Prefix::V6 { bits, len })
    }

    /// Whether the address given had bits that the network cleared.
    fn network_bits_differ(self, addr: IpAddr) -> bool {
        match (self, addr) {
            (Prefix::V4 { bits, .. }, IpAddr::V4(a)) => u32::from(a) != bits,
            (Prefix::V4 { bits, .. }, IpAddr::V6(a)) => u128::from(a) as u32 != bits,
            (Prefix::V6 { bits, .. }, IpAddr::V6(a)) => u128::from(a) != bits,
            (Prefix::V6 { .. }, IpAddr::V4(_)) => true,
        }
    }

    /// Bits of the prefix that matter.
    pub fn length(self) -> u8 {
        match self {
            Prefix::V4 { len, .. } | Prefix::V6 { len, .. } => len,
        }
    }

    /// Whether `ip` (IPv4-mapped counted as IPv4) lies in this network.
    pub fn contains(self, ip: IpAddr) -> bool {
        match (self, ip.to_canonical()) {
            (Prefix::V4 { bits, len }, IpAddr::V4(a)) => u32::from(a) & mask32(len) == bits,
            (Prefix::V6 { bits, len }, IpAddr::V6(a)) => u128::from(a) & mask128(len) == bits,
            _ => false,
        }
    }

    /// The first and last address of an IPv4 network.
    pub(super) fn v4_span(bits: u32, len: u8) -> (u32, u32) {
        (bits, bits | !mask32(len))
    }

    /// The first and last address of an IPv6 network.
    pub(super) fn v6_span(bits: u128, len: u8) -> (u128, u128) {
        (bits, bits | !mask128(len))
    }
}

/// A prefix length: decimal digits only (no sign, no spaces), at most `max`.
pub(super) fn parse_len(text: &str, max: u8) -> Result<u8, String> {
    let digits_only = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    match text.parse::<u8>() {
        Ok(len) if digits_only && len <= max => Ok(len),
        _ => Err(format!(
            "prefix length /{text} is not a number from 0 to {max}"
        )),
    }
}

fn mask32(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

fn mask128(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Prefix::V4 { bits, len } => write!(f, "{}/{len}", Ipv4Addr::from(bits)),
            Prefix::V6 { bits, len } => write!(f, "{}/{len}", Ipv6Addr::from(bits)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> String {
        Prefix::parse(text)
            .map(|p| p.to_string())
            .unwrap_or_else(|e| format!("error: {e}"))
    }

    #[test]
    fn single_addresses_are_full_length_prefixes() {
        assert_eq!(p("192.0.2.7"), "192.0.2.7/32");
        assert_eq!(p("2001:db8::1"), "2001:db8::1/128");
    }

    #[test]
    fn networks_print_canonically() {
        assert_eq!(p("10.0.0.0/8"), "10.0.0.0/8");
        assert_eq!(p("0.0.0.0/0"), "0.0.0.0/0");
        assert_eq!(p("2001:0db8:0::/32"), "2001:db8::/32");
        assert_eq!(p("::/0"), "::/0");
    }

    #[test]
    fn mapped_prefixes_are_ipv4() {
        assert_eq!(p("::ffff:10.1.2.3"), "10.1.2.3/32");
        assert_eq!(p("::ffff:10.0.0.0/104"), "10.0.0.0/8");
        assert_eq!(p("::ffff:0:0/96"), "0.0.0.0/0");
        // Wider than the mapped range: stays IPv6.
        assert_eq!(p("::/80"), "::/80");
    }

    #[test]
    fn host_bits_and_bad_lengths_are_refused() {
        assert!(
            p("10.1.2.3/8").contains("the network is 10.0.0.0/8"),
            "{}",
            p("10.1.2.3/8")
        );
        assert!(p("10.0.0.0/33").starts_with("error"));
        assert!(p("10.0.0.0/+8").starts_with("error"));
        assert!(p("10.0.0.0/").starts_with("error"));
        assert!(p("::/129").starts_with("error"));
        assert!(p("10.0.0").starts_with("error"));
        assert!(p("host.example").starts_with("error"));
    }

    #[test]
    fn contains_counts_mapped_clients_as_ipv4() {
        let net = Prefix::parse("10.0.0.0/8").unwrap();
        assert!(net.contains("10.9.9.9".parse().unwrap()));
        assert!(net.contains("::ffff:10.9.9.9".parse().unwrap()));
        assert!(!net.contains("11.0.0.0".parse().unwrap()));
        assert!(
            !Prefix::parse("::/0")
                .unwrap()
                .contains("10.0.0.1".parse().unwrap())
        );
    }
}
