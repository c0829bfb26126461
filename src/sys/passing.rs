//! Passing descriptors between processes (`--model prefork`): a pair of
//! connected `SOCK_SEQPACKET` Unix sockets, a short message carrying a
//! descriptor (`SCM_RIGHTS`), and one-byte messages without one.
//!
//! Sequenced packets rather than a stream: each message arrives whole and
//! alone, so a byte and the descriptor sent with it can never be split or
//! merged with the next one, and a peer that closes its end is seen as a
//! zero-length read (end of file), as on a pipe.
//!
//! Never decides what the bytes mean (the caller's protocol), and never
//! leaves a received descriptor without exactly one owner: it arrives
//! close-on-exec (`MSG_CMSG_CLOEXEC`) and is handed back as an `OwnedFd`.

use std::io;
use std::mem::{self, MaybeUninit};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;

use super::{check, retry_eintr};

/// A connected pair of sequenced-packet Unix sockets, both close-on-exec.
pub fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds: [RawFd; 2] = [-1; 2];
    // SAFETY: socketpair writes two new descriptors into `fds`, which has
    // room for exactly two.
    check(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    // SAFETY: both descriptors were just created and are owned by no one else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Room for one descriptor's control message, aligned as `cmsghdr` wants.
#[repr(C)]
union OneFdControl {
    header: libc::cmsghdr,
    bytes: [u8; 32],
}

/// Sends the one byte `tag` with a copy of `fd` (`SCM_RIGHTS`) as one
/// message. The receiver gets its own descriptor for the same open file;
/// the caller's copy stays the caller's.
pub fn send_fd(socket: BorrowedFd<'_>, tag: u8, fd: BorrowedFd<'_>) -> io::Result<()> {
    send_fd_with(socket, &[tag], fd)
}

/// Sends `bytes` (at least one) with a copy of `fd`, as [`send_fd`] sends
/// its byte: one message, which arrives whole and alone.
pub fn send_fd_with(socket: BorrowedFd<'_>, bytes: &[u8], fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut iov = libc::iovec {
        // sendmsg only reads through it, whatever the pointer's type says.
        iov_base: bytes.as_ptr().cast_mut().cast(),
        iov_len: bytes.len(),
    };
    // SAFETY: a zeroed union of plain integers is a valid value.
    let mut control: OneFdControl = unsafe { mem::zeroed() };
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(mem::size_of::<RawFd>() as u32) } as usize;
    debug_assert!(space <= mem::size_of::<OneFdControl>());
    // SAFETY: a zeroed msghdr (null pointers, zero lengths) is valid; the
    // fields set below point into locals that outlive the sendmsg call.
    let mut message: libc::msghdr = unsafe { mem::zeroed() };
    message.msg_iov = &mut iov;
    message.msg_iovlen = 1;
    message.msg_control = (&raw mut control).cast();
    message.msg_controllen = space as _;
    // SAFETY: msg_control points at `space` writable, aligned bytes, so
    // CMSG_FIRSTHDR returns a header inside them, and CMSG_DATA a place
    // with room for one descriptor number (CMSG_LEN of its size).
    unsafe {
        let header = libc::CMSG_FIRSTHDR(&message);
        (*header).cmsg_level = libc::SOL_SOCKET;
        (*header).cmsg_type = libc::SCM_RIGHTS;
        (*header).cmsg_len = libc::CMSG_LEN(mem::size_of::<RawFd>() as u32) as _;
        ptr::write_unaligned(libc::CMSG_DATA(header).cast::<RawFd>(), fd.as_raw_fd());
    }
    // SAFETY: `message` and everything it points to are valid for the call;
    // MSG_NOSIGNAL: a peer gone is an EPIPE to handle, not a SIGPIPE.
    retry_eintr(|| unsafe { libc::sendmsg(socket.as_raw_fd(), &message, libc::MSG_NOSIGNAL) })?;
    Ok(())
}

/// What one [`recv_fd`] brought.
pub enum Received {
    /// A message: its byte and the descriptor that came with it, if any.
    Message(u8, Option<OwnedFd>),
    /// The other end was closed.
    Closed,
}

/// Receives one message, blocking (or not, as the socket is set): its
/// first byte and the descriptor sent with it, close-on-exec. A message
/// carrying more than one descriptor is not of our protocol: the extra
/// ones are closed.
pub fn recv_fd(socket: BorrowedFd<'_>) -> io::Result<Received> {
    let mut byte = [0u8; 1];
    Ok(match recv_fd_into(socket, &mut byte)? {
        Some((_, fd)) => Received::Message(byte[0], fd),
        None => Received::Closed,
    })
}

/// Receives one message into `buf`, as [`recv_fd`] does: how many bytes
/// it held (what would not fit in `buf` is lost, as for any datagram) and
/// the descriptor sent with it; `None` when the other end was closed.
pub fn recv_fd_into(
    socket: BorrowedFd<'_>,
    buf: &mut [u8],
) -> io::Result<Option<(usize, Option<OwnedFd>)>> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = MaybeUninit::<OneFdControl>::zeroed();
    // SAFETY: as in `send_fd`: the pointers set below outlive the call.
    let mut message: libc::msghdr = unsafe { mem::zeroed() };
    message.msg_iov = &mut iov;
    message.msg_iovlen = 1;
    message.msg_control = control.as_mut_ptr().cast();
    message.msg_controllen = mem::size_of::<OneFdControl>() as _;
    // SAFETY: `message` points at a writable buffer and control buffer.
    let n = retry_eintr(|| unsafe {
        libc::recvmsg(socket.as_raw_fd(), &mut message, libc::MSG_CMSG_CLOEXEC)
    })?;
    let fd = first_received_fd(&message);
    if n == 0 && fd.is_none() {
        return Ok(None);
    }
    Ok(Some((n as usize, fd)))
}

/// The first descriptor the kernel put in `message`'s control data, owned;
/// any other is closed. Without allocating: a pool process calls this for
/// every client, and a heap it never touches stays the master's pages.
fn first_received_fd(message: &libc::msghdr) -> Option<OwnedFd> {
    let mut first = None;
    // SAFETY: `message` was filled by recvmsg: CMSG_FIRSTHDR/CMSG_NXTHDR
    // walk the control data it wrote (msg_controllen says how much), and
    // every SCM_RIGHTS payload holds descriptor numbers the kernel just
    // installed in this process, owned by no one yet.
    unsafe {
        let mut header = libc::CMSG_FIRSTHDR(message);
        while !header.is_null() {
            if (*header).cmsg_level == libc::SOL_SOCKET && (*header).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(header);
                let payload = (*header).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                for i in 0..payload / mem::size_of::<RawFd>() {
                    let fd = OwnedFd::from_raw_fd(ptr::read_unaligned(data.cast::<RawFd>().add(i)));
                    // A second one is dropped, which closes it.
                    if first.is_none() {
                        first = Some(fd);
                    }
                }
            }
            header = libc::CMSG_NXTHDR(message, header);
        }
    }
    first
}

/// Sends the one byte `byte` as a message of its own.
pub fn send_byte(socket: BorrowedFd<'_>, byte: u8) -> io::Result<()> {
    // SAFETY: a one-byte buffer valid for the call; MSG_NOSIGNAL as above.
    retry_eintr(|| unsafe {
        libc::send(
            socket.as_raw_fd(),
            (&raw const byte).cast(),
            1,
            libc::MSG_NOSIGNAL,
        )
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_descriptor_and_its_byte_arrive_together_and_end_of_file_is_seen() {
        let (a, b) = seqpacket_pair().expect("socketpair");
        let (r, w) = seqpacket_pair().expect("another pair, to pass");
        send_fd(a.as_fd(), 7, r.as_fd()).expect("send");
        send_byte(a.as_fd(), 9).expect("send a byte");
        let Received::Message(7, Some(got)) = recv_fd(b.as_fd()).expect("recv") else {
            panic!("expected byte 7 with a descriptor");
        };
        assert_ne!(got.as_raw_fd(), r.as_raw_fd());
        send_byte(w.as_fd(), 1).expect("write through the original");
        assert!(matches!(
            recv_fd(got.as_fd()).expect("read through the copy"),
            Received::Message(1, None)
        ));
        assert!(matches!(recv_fd(b.as_fd()), Ok(Received::Message(9, None))));
        drop(a);
        assert!(matches!(recv_fd(b.as_fd()), Ok(Received::Closed)));
    }
}
