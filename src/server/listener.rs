//! The listening socket and its state.
//!
//! It is bound once by the master, before anything that could fail late,
//! created close-on-exec (socket2 does so) so that no worker ever inherits
//! it (DESIGN §2), and non-blocking, so that the loop can drain it with a
//! batch of `accept` calls per wake-up.
//!
//! Its state is one value, [`State`], and epoll watches the socket exactly
//! while that value is `Listening`: epoll is level-triggered, so a listener
//! left registered during a pause would wake the loop in a spin. Every
//! change of state goes through [`Listener::set_state`], which keeps the two
//! in step. This module decides no policy: the loop says which state it
//! wants.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::time::Instant;

use socket2::{Domain, Socket, Type};

use crate::sys::Epoll;

use super::accept::Acceptor;

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

/// Where the listener is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Watched: a readable listener means clients to accept.
    Listening,
    /// Not watched until then, after a failure that an immediate retry
    /// would only repeat (no descriptors, memory or processes).
    Paused(Instant),
    /// At the worker limit with `--on-full defer`: not watched, so new
    /// clients wait in the kernel's backlog until a worker exits.
    Deferred,
    /// Shutdown began and the socket is closed: the kernel refuses new
    /// clients, those still waiting in the backlog included. Final.
    Closed,
}

pub struct Listener {
    /// `None` exactly when the state is `Closed`.
    acceptor: Option<Acceptor>,
    state: State,
    /// The token epoll reports the listener with.
    token: u64,
}

impl Listener {
    /// Starts watching `acceptor` in `epoll` under `token`.
    pub fn open(acceptor: Acceptor, epoll: &Epoll, token: u64) -> io::Result<Listener> {
        epoll.add(acceptor.fd(), token)?;
        Ok(Listener {
            acceptor: Some(acceptor),
            state: State::Listening,
            token,
        })
    }

    /// The socket, whatever the state, until it is closed (an upgrade in
    /// place hands it over as it is).
    pub fn fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.acceptor.as_ref().map(Acceptor::fd)
    }

    /// The address it listens on, until it is closed.
    pub fn local_addr(&self) -> Option<io::Result<SocketAddr>> {
        self.acceptor.as_ref().map(Acceptor::local_addr)
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// The socket to accept from, while (and only while) listening.
    pub fn acceptor(&mut self) -> Option<&mut Acceptor> {
        match self.state {
            State::Listening => self.acceptor.as_mut(),
            _ => None,
        }
    }

    /// When a pause ends, if paused.
    pub fn resumes_at(&self) -> Option<Instant> {
        match self.state {
            State::Paused(until) => Some(until),
            _ => None,
        }
    }

    /// Closes the socket for good (which also takes it out of epoll).
    pub fn close(&mut self) {
        self.acceptor = None;
        self.state = State::Closed;
    }

    /// Moves to `next`, registering the socket in `epoll` exactly while
    /// listening. `Closed` is final: nothing moves out of it.
    pub fn set_state(&mut self, next: State, epoll: &Epoll) -> io::Result<()> {
        if next == self.state || self.state == State::Closed {
            return Ok(());
        }
        if next == State::Closed {
            self.close();
            return Ok(());
        }
        let acceptor = self
            .acceptor
            .as_ref()
            .ok_or_else(|| io::Error::other("the listener is closed"))?;
        match (self.state == State::Listening, next == State::Listening) {
            (false, true) => epoll.add(acceptor.fd(), self.token)?,
            (true, false) => epoll.delete(acceptor.fd())?,
            _ => {}
        }
        self.state = next;
        Ok(())
    }
}
