//! The client on descriptor 3: checking that it is a connected TCP
//! socket, and telling a worker started wrongly (nothing there, a file, a
//! listening socket) from a client that connected and left before the
//! worker could look at it.
//!
//! Only looks: it never reads, writes or closes the socket, and never
//! treats anything but an accepted TCP connection as one to serve.

use core::net::SocketAddr;

use mpecho_handoff::{CLIENT_FD, Errno};

use crate::sys::{self, Found};

/// What was found on descriptor 3.
pub enum Client {
    Connected(SocketAddr),
    /// An accepted connection whose client already reset it.
    AlreadyGone(Errno),
}

/// Why descriptor 3 cannot be served.
pub enum NotAConnection {
    Os(Errno),
    NotIp,
}

impl core::fmt::Display for NotAConnection {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NotAConnection::Os(e) => write!(f, "{e}"),
            NotAConnection::NotIp => f.write_str("not an IP connection"),
        }
    }
}

/// Looks at descriptor 3. The common case costs one `getpeername`; only
/// when that fails does it look closer, to tell a worker started by hand
/// (no socket, a listening or a never-connected one: a usage error) from
/// a client that connected and reset before the worker started
/// (`ENOTCONN` on a stream socket with a bound local port: the connection
/// was real).
pub fn take() -> Result<Client, NotAConnection> {
    match sys::peer_address(CLIENT_FD) {
        Ok(Found::Ip(peer)) => Ok(Client::Connected(peer)),
        Ok(Found::NotIp) => Err(NotAConnection::NotIp),
        Err(e) if e == Errno::ENOTCONN && was_accepted() => Ok(Client::AlreadyGone(e)),
        Err(e) => Err(NotAConnection::Os(e)),
    }
}

/// Whether descriptor 3 looks like a socket returned by `accept`: a
/// stream socket, not listening, bound to a local port.
fn was_accepted() -> bool {
    sys::socket_type(CLIENT_FD).is_ok_and(|t| t == sys::SOCK_STREAM)
        && sys::is_listening(CLIENT_FD).is_ok_and(|listening| !listening)
        && matches!(sys::local_address(CLIENT_FD), Ok(Found::Ip(local)) if local.port() != 0)
}
