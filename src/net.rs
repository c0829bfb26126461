//! Address and socket conventions shared by every subcommand: how addresses
//! are shown, how a failed bind is explained, and the `listening on` line.
//!
//! Nothing here opens a socket.

use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

use crate::sys;

/// How an address is shown (IPv4-mapped IPv6 as IPv4): one definition,
/// shared with the worker executable, whose `peer=` must match the
/// master's.
pub use mpecho_handoff::display_addr;

/// The addresses of `host` (a name or an IP literal) at `port`, as a
/// sentence-ready error when there are none.
pub fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    // Before the first lookup: keep the static binary away from external
    // NSS modules (see sys::resolve_hosts_with_files_and_dns). A failure
    // leaves nsswitch.conf in charge, which is what a dynamic build does.
    let _ = sys::resolve_hosts_with_files_and_dns();
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("could not resolve {host}: {e}"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("{host} has no address"));
    }
    Ok(addrs)
}

/// The wildcard address of `peer`'s family, port 0: where a client socket
/// binds before it talks to `peer`.
pub fn unspecified_for(peer: SocketAddr) -> SocketAddr {
    match peer {
        SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    }
}

/// A bind error as a sentence with a hint about what to do; `option` is the
/// command-line option that names the address (`--listen`).
pub fn explain_bind_error(e: &io::Error, option: &str) -> String {
    match e.kind() {
        io::ErrorKind::AddrInUse => format!(
            "address already in use (another server is listening there; \
             stop it or choose another port with {option})"
        ),
        io::ErrorKind::AddrNotAvailable => {
            "address not available (no interface of this machine has that IP)".to_string()
        }
        io::ErrorKind::PermissionDenied => {
            "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)".to_string()
        }
        _ => e.to_string(),
    }
}

/// The readiness line scripts and tests wait for: exactly one line on
/// stdout, flushed, with the real bound address (IPv6 as `[::1]:PORT`).
pub fn announce_listening(addr: SocketAddr) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "listening on {addr}")?;
    out.flush()
}
