//! The listening socket: bound once by the master, before anything else that
//! could fail late, and never handed to a worker.
//!
//! It is created close-on-exec (socket2 does so) and non-blocking, so the
//! event loop can drain it with a batch of `accept` calls per wake-up and a
//! worker can never inherit it (DESIGN §2).

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Socket, Type};

/// Binds and listens on `addr` with the given backlog.
///
/// `SO_REUSEADDR` lets a restarted server bind at once while connections of
/// the previous one sit in TIME_WAIT; on Linux it never lets two live
/// listeners share a port, so "address in use" is still reported.
pub fn bind(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog.min(i32::MAX as u32) as i32)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}
