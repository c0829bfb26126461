//! Accepting connections, and what to do when `accept` fails.
//!
//! The master owns the listener here together with one spare descriptor
//! (an open `/dev/null`). When the process runs out of descriptors
//! (EMFILE/ENFILE) the kernel keeps the pending connection in the backlog and
//! the listener stays readable, so a naive loop spins at 100 % CPU while the
//! client hangs. Instead we give up the spare, accept the waiting connection,
//! close it at once (the client sees an orderly close), take the spare back,
//! and pause accepting briefly. This module never spawns and never blocks.

use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

/// Connections accepted per wake-up at most, so that a flood cannot starve
/// signal handling and reaping in the same loop.
pub const ACCEPT_BATCH: usize = 64;

/// How long accepting pauses after a failure that an immediate retry would
/// only repeat (no descriptors, no memory, no processes).
pub const BACKOFF: Duration = Duration::from_millis(100);

/// The result of one `accept` attempt, sorted by what the loop must do.
pub enum Accept {
    /// A new client.
    Client(TcpStream, SocketAddr),
    /// Nothing is waiting: the batch is done.
    Empty,
    /// The connection died before we took it (ECONNABORTED, EPROTO, …):
    /// count it and go on.
    Aborted(io::Error),
    /// Out of descriptors or kernel memory: the waiting client was turned
    /// away (when the spare descriptor allowed it) and accepting must pause.
    Exhausted { error: io::Error, shed: bool },
}

pub struct Acceptor {
    listener: TcpListener,
    spare: Option<File>,
}

impl Acceptor {
    pub fn new(listener: TcpListener) -> Acceptor {
        Acceptor {
            listener,
            spare: open_spare(),
        }
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn accept(&mut self) -> Accept {
        match self.listener.accept() {
            Ok((stream, peer)) => Accept::Client(stream, peer),
            Err(e) => self.classify(e),
        }
    }

    fn classify(&mut self, error: io::Error) -> Accept {
        if error.kind() == io::ErrorKind::WouldBlock {
            return Accept::Empty;
        }
        match error.raw_os_error() {
            Some(libc::EMFILE | libc::ENFILE) => {
                let shed = self.shed_one_connection();
                Accept::Exhausted { error, shed }
            }
            Some(libc::ENOBUFS | libc::ENOMEM) => Accept::Exhausted { error, shed: false },
            // ECONNABORTED, EPROTO, EPERM (a firewall), EINTR and the
            // network errors accept(2) says to treat like EAGAIN: the
            // listener itself is fine.
            _ => Accept::Aborted(error),
        }
    }

    /// Uses the spare descriptor to accept and close one waiting client.
    fn shed_one_connection(&mut self) -> bool {
        if self.spare.take().is_none() {
            return false;
        }
        let shed = self.listener.accept().is_ok();
        self.spare = open_spare();
        shed
    }
}

fn open_spare() -> Option<File> {
    File::open("/dev/null").ok()
}
