//! Unbuffered reads and writes on descriptors the caller owns, one system
//! call per attempt, so callers know exactly what reached the kernel: the
//! log's one-write-per-line rule and readiness-driven readers rely on it.
//!
//! Never buffers, never retries anything but EINTR, never takes ownership
//! of a descriptor it is given. `shutdown_socket` is async-signal-safe and
//! must stay so: a signal handler calls it.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

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

/// Shuts socket `fd` down in both directions; errors are ignored.
///
/// Async-signal-safe (shutdown(2) is on the POSIX list): a signal handler
/// uses it to wake a process blocked in a read or write on that socket.
pub fn shutdown_socket(fd: RawFd) {
    // SAFETY: shutdown only changes the state of the socket behind `fd`; on
    // a descriptor that is not a socket it fails harmlessly (ENOTSOCK).
    unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
}
