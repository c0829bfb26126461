//! Unbuffered reads and writes on descriptors the caller owns, one system
//! call per attempt, so callers know exactly what reached the kernel: the
//! log's one-write-per-line rule and readiness-driven readers rely on it;
//! and how long a TCP connection has been quiet, asked of the kernel.
//!
//! Never buffers, never retries anything but EINTR, never takes ownership
//! of a descriptor it is given.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use super::retry_eintr;

/// Writes `buf` with a single `write(2)` (one attempt, retried only on
/// EINTR), returning how much the kernel took.
///
/// The log relies on this: a whole line goes to the kernel in one call, so
/// lines written by many processes to one `O_APPEND` file never interleave.
pub fn write_once(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a valid, initialised slice for its whole length.
    let n = retry_eintr(|| unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) })?;
    Ok(n as usize)
}

/// One `read(2)` into `buf`, retried only on EINTR; 0 means end of input.
///
/// For descriptors watched for readiness (`ppoll`, epoll), where a buffered
/// reader would hide data it already pulled in from the next check.
pub fn read_once(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a valid, writable slice for its whole length.
    let n =
        retry_eintr(|| unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) })?;
    Ok(n as usize)
}

/// Writes all of `buf`, one `write(2)` at a time, giving up on an error
/// or a zero-length write. Used where output must not sit in a buffer
/// (log lines, the chat receiver's output).
pub fn write_all_unbuffered(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<()> {
    let mut rest = buf;
    while !rest.is_empty() {
        match write_once(fd, rest)? {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            n => rest = &rest[n..],
        }
    }
    Ok(())
}

/// One `recv(2)` on a socket without ever blocking (`MSG_DONTWAIT`, so the
/// descriptor's own flags, which a worker inherits, stay as they are),
/// retried only on EINTR; 0 means the peer closed with nothing left.
/// With `peek` the bytes stay in the socket for the next reader
/// (`MSG_PEEK`): how the master looks at a PROXY header without taking
/// the data that follows it.
pub fn recv_nowait(fd: BorrowedFd<'_>, buf: &mut [u8], peek: bool) -> io::Result<usize> {
    let flags = libc::MSG_DONTWAIT | if peek { libc::MSG_PEEK } else { 0 };
    // SAFETY: `buf` is a valid, writable slice for its whole length.
    let n = retry_eintr(|| unsafe {
        libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), flags)
    })?;
    Ok(n as usize)
}

/// One `send(2)` that never blocks (`MSG_DONTWAIT`) and never raises
/// SIGPIPE (`MSG_NOSIGNAL`): whatever the socket takes now, how much.
pub fn send_nowait(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
    // SAFETY: `buf` is a valid, initialised slice for its whole length.
    let n = retry_eintr(|| unsafe {
        libc::send(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), flags)
    })?;
    Ok(n as usize)
}

/// How long a TCP connection has carried no data either way: the shorter
/// of the times since data was last received and last sent (`TCP_INFO`,
/// milliseconds), so a client that only sends, or only reads, is busy.
pub fn tcp_quiet_for(socket: BorrowedFd<'_>) -> io::Result<std::time::Duration> {
    // SAFETY: a zeroed tcp_info is a valid value for the kernel to fill.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` is writable for `len` bytes, and `len` says so; the
    // kernel writes at most that and updates `len`.
    super::check(unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &mut len,
        )
    })?;
    let quiet_ms = info.tcpi_last_data_recv.min(info.tcpi_last_data_sent);
    Ok(std::time::Duration::from_millis(u64::from(quiet_ms)))
}
