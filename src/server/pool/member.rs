//! A pool process (`--model prefork`), from the fork on: it serves one
//! connection after another, each passed by the master over its control
//! socket, with the worker's own code (`mpecho_worker::serve`: the same
//! idle timeout, SIGTERM handling and `connect`/`disconnect` lines under
//! its own pid as an exec'd worker's), and reports each one's end.
//!
//! The protocol, from this side (the master's is `mod.rs`):
//! - it waits on the control socket for one message: a byte, the client's
//!   address (behind a load balancer only the master knows it: the
//!   socket's peer is the balancer) and a client descriptor, which it puts
//!   on descriptor 3 and serves;
//! - then it sends one byte, the session's `WorkerExit` code, which tells
//!   the master the connection has ended and this process is idle again;
//! - it exits instead of reporting once it has served `--max-requests`
//!   connections, or when SIGTERM came during the session: the master then
//!   learns of the connection's end from the exit status, as in `exec`;
//! - it exits 0 when the master closes its end (a surplus spare retired,
//!   a reload, shutdown, or the master gone) or sends SIGTERM while it waits.
//!
//! SIGTERM stays blocked except during a session and inside the wait
//! (`ppoll` unblocks it atomically), so a request to finish can never slip
//! in between looking at the flag and going to sleep. This code runs only
//! in the child and never returns into the master's (`sys::fork_worker`
//! ends it with `_exit`).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use crate::handoff::{CLIENT_FD, FIRST_FREE_FD, LOG_FD, WORKER_PROGRAM, WorkerExit};
use crate::sys::{self, SignalSet, pid_t};

use super::super::fork::Forker;

/// The byte the master sends with each client; anything else with a
/// descriptor is served the same (the descriptor is what counts).
pub const CLIENT_TAG: u8 = b'C';

/// The longest client message: the tag, the family (4 or 6), the port
/// (big-endian), the address's bytes.
pub const CLIENT_MESSAGE_LEN: usize = 1 + 1 + 2 + 16;

/// The message that comes with a client descriptor, naming the client at
/// `peer`; its length is the second value.
pub fn client_message(peer: SocketAddr) -> ([u8; CLIENT_MESSAGE_LEN], usize) {
    let mut message = [0u8; CLIENT_MESSAGE_LEN];
    message[0] = CLIENT_TAG;
    message[2..4].copy_from_slice(&peer.port().to_be_bytes());
    let len = match peer.ip() {
        IpAddr::V4(ip) => {
            message[1] = 4;
            message[4..8].copy_from_slice(&ip.octets());
            8
        }
        IpAddr::V6(ip) => {
            message[1] = 6;
            message[4..20].copy_from_slice(&ip.octets());
            20
        }
    };
    (message, len)
}

/// The client a message names; `None` for a message without one (the
/// socket's own peer is then used).
fn client_peer(message: &[u8]) -> Option<SocketAddr> {
    let port = u16::from_be_bytes([*message.get(2)?, *message.get(3)?]);
    let ip = match message.get(1)? {
        4 => IpAddr::from(<[u8; 4]>::try_from(message.get(4..8)?).ok()?),
        6 => IpAddr::from(<[u8; 16]>::try_from(message.get(4..20)?).ok()?),
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Forks a pool process that serves the clients passed on `control` (its
/// end of the pair), for at most `max_requests` of them (0: no limit).
pub fn fork_member(
    forker: &Forker,
    control: BorrowedFd<'_>,
    max_requests: u64,
) -> io::Result<pid_t> {
    let settings = Settings {
        log_level: forker.log_level,
        idle_timeout: forker.idle_timeout,
        do_nothing: forker.do_nothing,
        max_requests,
    };
    // The log on 4 even when it is standard error: one number for the
    // lines, whichever the master writes to. The control socket goes on 3
    // for the set-up (nothing above 4 survives it) and is moved off 3 at
    // once, to leave 3 for the clients.
    let stderr = std::io::stderr();
    let log = forker.log_fd.unwrap_or(stderr.as_fd());
    // Sparing the table once the pool is large, as the fork model does:
    // the master's ends of the sockets and the pidfds all sit above the
    // mark, so a new process copies none of them.
    sys::fork_worker_sparing_table(
        forker.large_table_mark,
        &[(log, LOG_FD), (control, CLIENT_FD)],
        &forker.reset_signals,
        WORKER_PROGRAM,
        || serve_connections(&settings).code(),
    )
}

/// What a pool process serves with, copied out of the master's `Forker`.
struct Settings {
    log_level: crate::log::Level,
    idle_timeout: Option<std::time::Duration>,
    do_nothing: bool,
    max_requests: u64,
}

/// The pool process's life: serve, report, wait, until told to stop.
/// Returns how it exits.
fn serve_connections(settings: &Settings) -> WorkerExit {
    let Ok(control) = control_off_client_fd() else {
        return WorkerExit::Usage;
    };
    // As mpecho-worker does first: a log line to a pipe whose reader died
    // must not kill the process.
    let _ = mpecho_worker::sys::ignore(mpecho_worker::sys::Signal::Pipe);
    let term = SignalSet::of(&[libc::SIGTERM]);
    if mpecho_worker::install_stop_handler().is_err() || sys::block_signals(&term).is_err() {
        return WorkerExit::IoError;
    }
    let mut served = 0u64;
    loop {
        let (client, peer) = match next_client(control.as_fd()) {
            Ok(Some(client)) => client,
            Ok(None) => return WorkerExit::Done,
            Err(_) => return WorkerExit::IoError,
        };
        let exit = serve_one(client, peer, settings);
        served += 1;
        if mpecho_worker::stop_requested()
            || (settings.max_requests != 0 && served >= settings.max_requests)
            || sys::send_byte(control.as_fd(), exit.code() as u8).is_err()
        {
            return exit;
        }
    }
}

/// Moves the control socket from 3, where the fork left it, to the first
/// number above the hand-over's, closing 3.
fn control_off_client_fd() -> io::Result<OwnedFd> {
    let at_client_fd = sys::adopt_inherited_fd(CLIENT_FD)?;
    sys::dup_at_least(at_client_fd.as_fd(), FIRST_FREE_FD)
}

/// Waits for the next client (and its address, if the message gave it),
/// with SIGTERM unblocked only while asleep. `None`: the master closed its
/// end, or asked this process to finish.
fn next_client(control: BorrowedFd<'_>) -> io::Result<Option<(OwnedFd, Option<SocketAddr>)>> {
    loop {
        if mpecho_worker::stop_requested() {
            return Ok(None);
        }
        let mut fds = [libc::pollfd {
            fd: control.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        if sys::wait_for_events(&mut fds, None, &SignalSet::empty())? == 0 {
            continue;
        }
        let mut message = [0u8; CLIENT_MESSAGE_LEN];
        match sys::recv_fd_into(control, &mut message)? {
            Some((len, Some(client))) => return Ok(Some((client, client_peer(&message[..len])))),
            // Not of our protocol: nothing to serve, wait for the next.
            Some((_, None)) => {}
            None => return Ok(None),
        }
    }
}

/// Serves `client` on descriptor 3 with SIGTERM deliverable, and closes it.
fn serve_one(client: OwnedFd, peer: Option<SocketAddr>, settings: &Settings) -> WorkerExit {
    if settings.do_nothing {
        // The close is the whole service: orderly, status 0.
        return WorkerExit::Done;
    }
    let on_client_fd = if client.as_raw_fd() == CLIENT_FD {
        Ok(client)
    } else {
        sys::dup_to(client.as_fd(), CLIENT_FD)
    };
    let Ok(_client) = on_client_fd else {
        return WorkerExit::IoError;
    };
    let term = SignalSet::of(&[libc::SIGTERM]);
    if sys::set_signal_mask(&SignalSet::empty()).is_err() {
        return WorkerExit::IoError;
    }
    let exit = mpecho_worker::serve(LOG_FD, settings.log_level, settings.idle_timeout, peer)
        .unwrap_or(WorkerExit::Usage);
    // Blocked again before the client is closed and the end reported: a
    // SIGTERM from here on waits for `next_client`'s check or sleep.
    if sys::block_signals(&term).is_err() {
        return WorkerExit::IoError;
    }
    exit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_message_carries_the_address_of_either_family() {
        for peer in ["203.0.113.9:5555", "[2001:db8::7]:65535"] {
            let peer: SocketAddr = peer.parse().unwrap();
            let (message, len) = client_message(peer);
            assert_eq!(message[0], CLIENT_TAG);
            assert_eq!(client_peer(&message[..len]), Some(peer));
        }
        assert_eq!(client_peer(&[CLIENT_TAG]), None, "a bare tag names no one");
    }
}
