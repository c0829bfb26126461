//! Address helpers shared by the server, the worker and the client.
//!
//! Pure functions on `std::net` types: nothing here opens a socket.

use std::net::{IpAddr, SocketAddr};

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
    fn mapped_ipv6_is_shown_as_ipv4() {
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:5000".parse().unwrap();
        assert_eq!(display_addr(mapped).to_string(), "127.0.0.1:5000");
        let v6: SocketAddr = "[::1]:5000".parse().unwrap();
        assert_eq!(display_addr(v6).to_string(), "[::1]:5000");
    }
}
