//! Sleeping until a descriptor is ready, a timeout passes or a signal
//! arrives: `Epoll` (`epoll_pwait`) for the master, whose watched set grows
//! with its workers, and `wait_for_events` (`ppoll`) for the chat server
//! and client, which watch two or three descriptors.
//!
//! Both unblock the caller's signals only for the duration of the sleep,
//! atomically. Neither retries on EINTR: a signal is a reason to wake, and
//! is reported as "nothing ready" (0).

use std::ffi::c_int;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr;
use std::time::Duration;

use super::check;
use super::signals::SignalSet;

unsafe extern "C" {
    // glibc has exported ppoll since 2.4; the libc crate lacks it for gnu.
    fn ppoll(
        fds: *mut libc::pollfd,
        nfds: libc::nfds_t,
        timeout: *const libc::timespec,
        sigmask: *const libc::sigset_t,
    ) -> c_int;
}

/// Waits until one of `fds` is ready, `timeout` passes, or a signal arrives.
///
/// Signals that the caller keeps blocked are unblocked (to `wait_mask`)
/// only for the duration of the wait, atomically: a signal can therefore
/// never slip in between "check the flags" and "go to sleep", which is the
/// race a plain `poll` plus handlers has. Returns `Ok(0)` when woken by a
/// signal or the timeout.
pub fn wait_for_events(
    fds: &mut [libc::pollfd],
    timeout: Option<Duration>,
    wait_mask: &SignalSet,
) -> io::Result<usize> {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `fds` is a valid mutable slice of pollfd for its length, the
    // timespec (if any) lives on this frame, and the mask is a valid set.
    let n = unsafe {
        ppoll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            ts_ptr,
            &wait_mask.0,
        )
    };
    ready_count(n)
}

/// What a wait returned: how many descriptors are ready, or 0 when a signal
/// (the reason the wait unblocks them) or the timeout ended it.
fn ready_count(n: c_int) -> io::Result<usize> {
    match check(n) {
        Ok(n) => Ok(n as usize),
        Err(err) if err.kind() == io::ErrorKind::Interrupted => Ok(0),
        Err(err) => Err(err),
    }
}

/// An epoll instance: readiness for many descriptors at a cost that does
/// not grow with how many are watched.
pub struct Epoll(OwnedFd);

/// One readiness event: the token given at registration.
pub type EpollEvent = libc::epoll_event;

/// What a descriptor is watched for. Errors and hang-ups are reported
/// either way (epoll always reports them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    /// Input (or a connection) is waiting.
    Read,
    /// There is room to write.
    Write,
    /// New input arrived, or the peer closed its side, reported once per
    /// change (edge-triggered, with `EPOLLRDHUP`): for a socket whose
    /// bytes are only peeked at, which would otherwise stay readable and
    /// wake the loop for ever.
    Arrivals,
}

/// Whether an event's flags say the peer closed its side (or the
/// connection failed): nothing more will arrive.
pub fn peer_closed(events: u32) -> bool {
    events & (libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0
}

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 returns a new descriptor or -1.
        let fd = check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: the descriptor was just created for us alone.
        Ok(Epoll(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Watches `fd` for input, reporting `token` (level-triggered).
    pub fn add(&self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        self.control(libc::EPOLL_CTL_ADD, fd, token, Interest::Read)
    }

    /// Watches `fd` for `interest`, reporting `token` (level-triggered).
    pub fn add_for(&self, fd: BorrowedFd<'_>, token: u64, interest: Interest) -> io::Result<()> {
        self.control(libc::EPOLL_CTL_ADD, fd, token, interest)
    }

    /// Changes what a watched `fd` is watched for.
    pub fn modify(&self, fd: BorrowedFd<'_>, token: u64, interest: Interest) -> io::Result<()> {
        self.control(libc::EPOLL_CTL_MOD, fd, token, interest)
    }

    fn control(
        &self,
        op: c_int,
        fd: BorrowedFd<'_>,
        token: u64,
        interest: Interest,
    ) -> io::Result<()> {
        let events = match interest {
            Interest::Read => libc::EPOLLIN,
            Interest::Write => libc::EPOLLOUT,
            Interest::Arrivals => libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLET,
        };
        let mut event = libc::epoll_event {
            events: events as u32,
            u64: token,
        };
        // SAFETY: both descriptors are valid and `event` is initialised.
        check(unsafe { libc::epoll_ctl(self.0.as_raw_fd(), op, fd.as_raw_fd(), &mut event) })
            .map(drop)
    }

    /// Stops watching `fd` (closing a descriptor also stops it).
    pub fn delete(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        // SAFETY: both descriptors are valid; the event is ignored for DEL.
        check(unsafe {
            libc::epoll_ctl(
                self.0.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd.as_raw_fd(),
                ptr::null_mut(),
            )
        })
        .map(drop)
    }

    /// Waits like [`wait_for_events`] (signals unblocked to `wait_mask`
    /// only meanwhile), filling `events`; returns how many are ready, 0 when
    /// woken by a signal or the timeout.
    pub fn wait(
        &self,
        events: &mut [EpollEvent],
        timeout: Option<Duration>,
        wait_mask: &SignalSet,
    ) -> io::Result<usize> {
        // Milliseconds, rounded up: rounding down would wake early and spin
        // until the deadline.
        let ms = timeout.map_or(-1, |t| {
            t.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as c_int
        });
        // SAFETY: `events` is a valid writable slice for its length and the
        // mask a valid set.
        let n = unsafe {
            libc::epoll_pwait(
                self.0.as_raw_fd(),
                events.as_mut_ptr(),
                events.len().min(i32::MAX as usize) as c_int,
                ms,
                &wait_mask.0,
            )
        };
        ready_count(n)
    }
}
