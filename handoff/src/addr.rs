//! How an address is shown, in the master's lines and the worker's alike
//! (the two are matched by `peer=`). Only converts.

use core::net::{IpAddr, SocketAddr};

/// The address as people expect to read it: an IPv4 client reaching a
/// dual-stack (`[::]`) listener arrives as `::ffff:a.b.c.d`, and is shown
/// (and later counted) as the plain IPv4 address it really is.
pub fn display_addr(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), addr.port()),
            None => addr,
        },
        IpAddr::V4(_) => addr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_addresses_show_as_ipv4_and_others_as_they_are() {
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:9".parse().unwrap();
        assert_eq!(display_addr(mapped).to_string(), "127.0.0.1:9");
        let v6: SocketAddr = "[::1]:9".parse().unwrap();
        assert_eq!(display_addr(v6), v6);
    }
}
