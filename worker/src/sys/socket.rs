//! The calls the worker makes on its client socket: its addresses and
//! kind, the idle timeout as the socket's own send and receive timeouts,
//! one `recv` or `send` at a time, and shutting it down (which a signal
//! handler does too: `shutdown` is async-signal-safe).
//!
//! Takes descriptor numbers and closes one only for the do-nothing
//! ceiling (`close`): in service, the socket is the process's for its
//! whole life.

use core::mem::size_of;
use core::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use core::time::Duration;

use mpecho_handoff::Errno;

use super::syscall::{self, result, syscall};

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const SOL_SOCKET: usize = 1;
const SO_TYPE: usize = 3;
const SO_RCVTIMEO: usize = 20;
const SO_SNDTIMEO: usize = 21;
const SO_ACCEPTCONN: usize = 30;
pub const SOCK_STREAM: i32 = 1;
/// No SIGPIPE for a peer that is gone: EPIPE instead (as std sends).
const MSG_NOSIGNAL: usize = 0x4000;

/// What an address query found.
pub enum Found {
    Ip(SocketAddr),
    /// A socket of another family (a Unix socket, say).
    NotIp,
}

/// The address at the other end (`getpeername`).
pub fn peer_address(fd: i32) -> Result<Found, Errno> {
    address(syscall::GETPEERNAME, fd)
}

/// The address at this end (`getsockname`).
pub fn local_address(fd: i32) -> Result<Found, Errno> {
    address(syscall::GETSOCKNAME, fd)
}

/// A `struct sockaddr_storage`: 128 bytes, 8-aligned.
#[repr(C, align(8))]
struct Storage([u8; 128]);

fn address(call: usize, fd: i32) -> Result<Found, Errno> {
    let mut storage = Storage([0; 128]);
    let mut len = size_of::<Storage>() as u32;
    // SAFETY: getpeername/getsockname write at most `len` bytes into
    // `storage`, which has that size, and the length actually used into
    // `len`.
    result(unsafe {
        syscall(
            call,
            [
                fd as usize,
                &raw mut storage as usize,
                &raw mut len as usize,
                0,
                0,
                0,
            ],
        )
    })?;
    let bytes = &storage.0;
    let family = u16::from_ne_bytes([bytes[0], bytes[1]]);
    let port = u16::from_be_bytes([bytes[2], bytes[3]]);
    let word =
        |at: usize| u32::from_ne_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    Ok(match family {
        // struct sockaddr_in: family, port, 4-byte address.
        AF_INET => Found::Ip(SocketAddr::V4(SocketAddrV4::new(
            Ipv4Addr::new(bytes[4], bytes[5], bytes[6], bytes[7]),
            port,
        ))),
        // struct sockaddr_in6: family, port, flow info, 16-byte address,
        // scope id.
        AF_INET6 => {
            let mut ip = [0u8; 16];
            ip.copy_from_slice(&bytes[8..24]);
            Found::Ip(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(ip),
                port,
                word(4),
                word(24),
            )))
        }
        _ => Found::NotIp,
    })
}

fn get_int_option(fd: i32, option: usize) -> Result<i32, Errno> {
    let mut value: i32 = 0;
    let mut len = size_of::<i32>() as u32;
    // SAFETY: getsockopt writes at most `len` (4) bytes into `value` and
    // the length used into `len`.
    result(unsafe {
        syscall(
            syscall::GETSOCKOPT,
            [
                fd as usize,
                SOL_SOCKET,
                option,
                &raw mut value as usize,
                &raw mut len as usize,
                0,
            ],
        )
    })?;
    Ok(value)
}

/// The socket's type (`SO_TYPE`: `SOCK_STREAM`, …).
pub fn socket_type(fd: i32) -> Result<i32, Errno> {
    get_int_option(fd, SO_TYPE)
}

/// Whether it is a listening socket (`SO_ACCEPTCONN`).
pub fn is_listening(fd: i32) -> Result<bool, Errno> {
    get_int_option(fd, SO_ACCEPTCONN).map(|v| v != 0)
}

/// Which way a timeout applies.
#[derive(Clone, Copy)]
pub enum Direction {
    Receive,
    Send,
}

/// Sets the socket's receive or send timeout (`SO_RCVTIMEO`,
/// `SO_SNDTIMEO`); `None` clears it. A blocked call that makes no
/// progress for that long fails with EAGAIN.
pub fn set_timeout(fd: i32, direction: Direction, timeout: Option<Duration>) -> Result<(), Errno> {
    // struct timeval; as std does, a timeout below a microsecond is one
    // microsecond (all zeros would mean "none").
    let timeval: [i64; 2] = match timeout {
        None => [0, 0],
        Some(t) => {
            let secs = i64::try_from(t.as_secs()).unwrap_or(i64::MAX);
            let usecs = i64::from(t.subsec_micros());
            if secs == 0 && usecs == 0 {
                [0, 1]
            } else {
                [secs, usecs]
            }
        }
    };
    let option = match direction {
        Direction::Receive => SO_RCVTIMEO,
        Direction::Send => SO_SNDTIMEO,
    };
    // SAFETY: setsockopt reads `size_of_val(&timeval)` bytes from it.
    result(unsafe {
        syscall(
            syscall::SETSOCKOPT,
            [
                fd as usize,
                SOL_SOCKET,
                option,
                timeval.as_ptr() as usize,
                size_of::<[i64; 2]>(),
                0,
            ],
        )
    })
    .map(drop)
}

/// One `recv` into `buf` (no flags); 0 is the end of the stream.
pub fn recv(fd: i32, buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: `buf` is valid for writes of its length; no source address
    // is asked for (NULL, NULL).
    result(unsafe {
        syscall(
            syscall::RECVFROM,
            [fd as usize, buf.as_mut_ptr() as usize, buf.len(), 0, 0, 0],
        )
    })
}

/// One `send` of `buf`, without SIGPIPE; how much the kernel took.
pub fn send(fd: i32, buf: &[u8]) -> Result<usize, Errno> {
    // SAFETY: `buf` is valid for reads of its length; no destination
    // address (NULL, 0): the socket is connected.
    result(unsafe {
        syscall(
            syscall::SENDTO,
            [
                fd as usize,
                buf.as_ptr() as usize,
                buf.len(),
                MSG_NOSIGNAL,
                0,
                0,
            ],
        )
    })
}

/// Which way to shut a connection down.
#[derive(Clone, Copy)]
pub enum Shutdown {
    /// Our FIN: we will send nothing more (`SHUT_WR`).
    Write = 1,
    /// Both ways (`SHUT_RDWR`): any call blocked on the socket returns.
    Both = 2,
}

/// `shutdown(fd, how)`. Async-signal-safe: SIGTERM's handler calls it.
pub fn shutdown(fd: i32, how: Shutdown) -> Result<(), Errno> {
    // SAFETY: shutdown takes two numbers and touches no memory of ours.
    result(unsafe { syscall(syscall::SHUTDOWN, [fd as usize, how as usize, 0, 0, 0, 0]) }).map(drop)
}

/// Closes `fd`: only `--do-nothing` does (mpecho_handoff's
/// `DO_NOTHING_OPTION`), to hand the client its orderly close before the
/// exit.
pub fn close(fd: i32) -> Result<(), Errno> {
    // SAFETY: close takes a number and touches no memory of ours; nothing
    // in this process uses the descriptor afterwards.
    result(unsafe { syscall(syscall::CLOSE, [fd as usize, 0, 0, 0, 0, 0]) }).map(drop)
}
