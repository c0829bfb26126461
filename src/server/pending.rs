//! Connections waiting for their PROXY header (`--proxy-protocol`): what
//! the master does between accepting a balancer's connection and admitting
//! the real client it names.
//!
//! It owns the table of waiting connections (bounded by [`MAX_PENDING`],
//! each under an epoll token of its own, [`PENDING`]` | slot`, with its
//! `--proxy-timeout` deadline), looking at what each has sent so far
//! (`recv` with `MSG_PEEK`, at most `proxy::MAX_HEADER_LEN` bytes, decoded
//! by `proxy::decode`), taking exactly the header's bytes off the socket,
//! and the refusals of the protocol (an untrusted source, a bad, slow or
//! abandoned header, a full table).
//!
//! It must never block (every `recv` is `MSG_DONTWAIT`), never take a byte
//! past the header (what follows is the client's, for the worker), never
//! let a connection out of its table still registered under its token,
//! and never admit anyone itself: a complete header goes to `admit`, with
//! the real client's address, like any other connection.

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use crate::cli::Model;
use crate::handoff::Relay;
use crate::log::{debug, info};
use crate::net::display_addr;
use crate::proxy::{self, Decoded, MAX_HEADER_LEN, ProxyHeader, Reason};
use crate::sys::{self, Interest};

use super::admission::Refusal;
use super::event_loop::Master;

/// The first token of waiting connections: a slot number is added to it.
/// Above every pid (at most 2^22), the iterative session's `1 << 40` and
/// the pool's control sockets (`1 << 41 | pid`), far below the listener's
/// and the metrics endpoint's tokens (near `u64::MAX`).
pub const PENDING: u64 = 1 << 42;

/// Most connections waiting for their header at once; one more is closed
/// at once and counted (`rejected_proxy`).
///
/// Why 4096: a balancer sends its header with its first bytes, so a
/// healthy one keeps a handful waiting at any moment; a few thousand is
/// room for bursts of thousands of connections a second. The bound is
/// what keeps a flood of silent connections (from a trusted address
/// gone wrong, since untrusted ones are closed unread) from taking the
/// master's descriptors and memory: each waiting connection costs a
/// descriptor and about 100 bytes here (the bytes themselves wait in the
/// kernel's socket buffer), and lasts at most `--proxy-timeout`.
pub const MAX_PENDING: usize = 4096;

/// The slot of a waiting connection's token, if `token` is one.
pub fn owns(token: u64) -> Option<usize> {
    let slot = token.checked_sub(PENDING)?;
    (slot < MAX_PENDING as u64).then_some(slot as usize)
}

/// Why a connection was closed before its header was in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyRefusal {
    /// It does not come from a `--trusted-proxy` address: nothing is read.
    Untrusted,
    /// [`MAX_PENDING`] connections are waiting already.
    TooMany,
    /// What it sent can never become a valid header.
    Invalid(Reason),
    /// No whole header within `--proxy-timeout`.
    TimedOut(Duration),
    /// The peer closed its side before a whole header.
    Closed,
    /// The connection failed (a reset) while we waited.
    Lost(io::ErrorKind),
}

impl std::fmt::Display for ProxyRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProxyRefusal::Untrusted => f.write_str("not a trusted proxy (--trusted-proxy)"),
            ProxyRefusal::TooMany => write!(
                f,
                "{MAX_PENDING} connections are already waiting for their PROXY header"
            ),
            ProxyRefusal::Invalid(reason) => write!(f, "bad PROXY header: {reason}"),
            ProxyRefusal::TimedOut(limit) => write!(
                f,
                "no whole PROXY header within {}s (--proxy-timeout)",
                limit.as_secs()
            ),
            ProxyRefusal::Closed => f.write_str("closed before sending a whole PROXY header"),
            ProxyRefusal::Lost(kind) => {
                write!(
                    f,
                    "connection lost while waiting for its PROXY header ({kind})"
                )
            }
        }
    }
}

/// One connection waiting for its header.
struct Waiting {
    stream: TcpStream,
    /// The connection's own peer: the balancer.
    peer: SocketAddr,
    /// Tells this connection from a later one in the same slot, for the
    /// expiry queue.
    serial: u64,
}

/// The waiting connections, and when each times out.
pub struct Pending {
    slots: Vec<Option<Waiting>>,
    free: Vec<usize>,
    /// `(deadline, slot, serial)` in the order they were accepted, which is
    /// the order of their deadlines (one timeout for all); entries of
    /// connections gone since are skipped when they reach the front.
    expiries: VecDeque<(Instant, usize, u64)>,
    next_serial: u64,
    timeout: Duration,
    /// Where headers are peeked into: one buffer for all, since the bytes
    /// stay in each socket until its header is whole.
    buf: Box<[u8; MAX_HEADER_LEN]>,
}

/// What the bytes of one connection amount to so far.
enum Look {
    /// Not a whole header yet: wait for more.
    Wait,
    /// A whole header, now taken off the socket.
    Header(ProxyHeader),
    Refuse(ProxyRefusal),
}

impl Pending {
    pub fn new(timeout: Duration) -> Pending {
        Pending {
            slots: Vec::new(),
            free: Vec::new(),
            expiries: VecDeque::new(),
            next_serial: 0,
            timeout,
            buf: Box::new([0; MAX_HEADER_LEN]),
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// When the oldest waiting connection times out (or a stale entry
    /// is to be cleared: a wake-up that finds nothing to do).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.expiries.front().map(|&(deadline, _, _)| deadline)
    }

    /// Enters a connection, returning its slot; `None` when the table is
    /// full.
    fn insert(&mut self, stream: TcpStream, peer: SocketAddr, now: Instant) -> Option<usize> {
        if self.len() >= MAX_PENDING {
            return None;
        }
        let serial = self.next_serial;
        self.next_serial += 1;
        let waiting = Some(Waiting {
            stream,
            peer,
            serial,
        });
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = waiting;
                slot
            }
            None => {
                self.slots.push(waiting);
                self.slots.len() - 1
            }
        };
        self.expiries.push_back((now + self.timeout, slot, serial));
        Some(slot)
    }

    fn remove(&mut self, slot: usize) -> Option<Waiting> {
        let waiting = self.slots.get_mut(slot)?.take()?;
        self.free.push(slot);
        Some(waiting)
    }

    /// Takes the next connection whose deadline has passed, clearing stale
    /// entries on the way.
    fn pop_expired(&mut self, now: Instant) -> Option<Waiting> {
        while let Some(&(deadline, slot, serial)) = self.expiries.front() {
            let current = self.slots[slot].as_ref().map(|w| w.serial) == Some(serial);
            if current && deadline > now {
                return None;
            }
            self.expiries.pop_front();
            if current {
                return self.remove(slot);
            }
        }
        None
    }
}

/// Looks at what `stream` has sent so far (peeked into `buf`); `closed`: the peer is known
/// to have closed its side, so an incomplete header stays one.
fn look(buf: &mut [u8; MAX_HEADER_LEN], stream: &TcpStream, closed: bool) -> Look {
    let seen = match sys::recv_nowait(stream.as_fd(), &mut buf[..], true) {
        Ok(0) => return Look::Refuse(ProxyRefusal::Closed),
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock && !closed => return Look::Wait,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            return Look::Refuse(ProxyRefusal::Closed);
        }
        Err(e) => return Look::Refuse(ProxyRefusal::Lost(e.kind())),
    };
    match proxy::decode(&buf[..seen]) {
        Decoded::Incomplete { .. } if closed => Look::Refuse(ProxyRefusal::Closed),
        Decoded::Incomplete { .. } => Look::Wait,
        Decoded::Invalid(reason) => Look::Refuse(ProxyRefusal::Invalid(reason)),
        Decoded::Header { consumed, header } => {
            // The bytes were peeked, so exactly these many are there
            // to take; what follows them stays for the worker.
            match sys::recv_nowait(stream.as_fd(), &mut buf[..consumed], false) {
                Ok(n) if n == consumed => Look::Header(header),
                Ok(_) => Look::Refuse(ProxyRefusal::Lost(io::ErrorKind::UnexpectedEof)),
                Err(e) => Look::Refuse(ProxyRefusal::Lost(e.kind())),
            }
        }
    }
}

impl Master {
    /// A new connection under `--proxy-protocol`: closed at once unless it
    /// comes from a trusted balancer; admitted at once if its header is
    /// already in; otherwise it waits in the table, watched for arrivals.
    pub(super) fn await_header(&mut self, stream: TcpStream, peer: SocketAddr, now: Instant) {
        let trusted = self
            .config
            .proxy
            .as_ref()
            .is_some_and(|p| p.trusts(peer.ip()));
        if !trusted {
            return self.turn_away(&Refusal::Proxy(ProxyRefusal::Untrusted), peer, now);
        }
        let Some(pending) = self.pending.as_mut() else {
            debug_assert!(false, "await_header is only called with --proxy-protocol");
            return;
        };
        // Tried before watching: the header often came with the handshake's
        // last packets, and then no wake-up is spent waiting for it.
        match look(&mut pending.buf, &stream, false) {
            Look::Wait => {}
            Look::Header(header) => return self.admit_relayed(stream, peer, &header, now),
            Look::Refuse(why) => return self.turn_away(&Refusal::Proxy(why), peer, now),
        }
        let Some(slot) = pending.insert(stream, peer, now) else {
            return self.turn_away(&Refusal::Proxy(ProxyRefusal::TooMany), peer, now);
        };
        let watched = match &pending.slots[slot] {
            Some(waiting) => self.epoll.add_for(
                waiting.stream.as_fd(),
                PENDING | slot as u64,
                Interest::Arrivals,
            ),
            None => Ok(()),
        };
        if let Err(e) = watched {
            pending.remove(slot);
            self.turn_away(&Refusal::Proxy(ProxyRefusal::Lost(e.kind())), peer, now);
        }
    }

    /// Something arrived on waiting connection `slot` (`events`: epoll's
    /// flags): its header is whole, wrong, abandoned, or still to come.
    pub(super) fn on_pending(&mut self, slot: usize, events: u32) {
        let Some(pending) = self.pending.as_mut() else {
            return;
        };
        let Some(waiting) = pending.slots.get(slot).and_then(Option::as_ref) else {
            // Ended earlier in this wake-up (a timer or shutdown cannot run
            // between, so this is only defensive).
            return;
        };
        let look = look(&mut pending.buf, &waiting.stream, sys::peer_closed(events));
        if matches!(look, Look::Wait) {
            return;
        }
        let Some(waiting) = pending.remove(slot) else {
            return;
        };
        // Out of the epoll set before anything else holds the socket: a
        // worker's copy would keep the registration alive, and its reads
        // would wake us under a token that is no longer this connection's.
        let _ = self.epoll.delete(waiting.stream.as_fd());
        let now = Instant::now();
        match look {
            Look::Header(header) => self.admit_relayed(waiting.stream, waiting.peer, &header, now),
            Look::Refuse(why) => self.turn_away(&Refusal::Proxy(why), waiting.peer, now),
            Look::Wait => {}
        }
    }

    /// Closes and counts every waiting connection past its deadline.
    pub(super) fn expire_pending(&mut self, now: Instant) {
        let Some(timeout) = self.pending.as_ref().map(|p| p.timeout) else {
            return;
        };
        while let Some(waiting) = self.pending.as_mut().and_then(|p| p.pop_expired(now)) {
            drop(waiting.stream);
            self.turn_away(
                &Refusal::Proxy(ProxyRefusal::TimedOut(timeout)),
                waiting.peer,
                now,
            );
        }
    }

    /// Shutdown: every waiting connection is closed at once (the listener
    /// is closed too, and none of them has a worker to wait for).
    pub(super) fn close_pending(&mut self) {
        let Some(pending) = self.pending.as_mut() else {
            return;
        };
        let closed = pending.len();
        pending.slots.clear();
        pending.free.clear();
        pending.expiries.clear();
        if closed > 0 {
            info!("closed {closed} connections still waiting for their PROXY header");
        }
    }

    /// Whether `--model iterative` must not take another connection: one
    /// waiting for its header will be the next session.
    pub(super) fn header_awaited_by_session(&self) -> bool {
        self.config.model == Model::Iterative && self.pending.as_ref().is_some_and(|p| p.len() > 0)
    }

    /// A whole header from the balancer at `proxy`: the connection is the
    /// real client's from here on, for admission, the log and the worker.
    fn admit_relayed(
        &mut self,
        stream: TcpStream,
        proxy: SocketAddr,
        header: &ProxyHeader,
        now: Instant,
    ) {
        let client = display_addr(header.admission_peer(proxy));
        let relay = Relay {
            proxy,
            destination: header.destination().map(display_addr),
        };
        debug!(
            "PROXY {:?} header from {proxy}: client {client}",
            header.version
        );
        self.admit(stream, client, Some(relay), now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_of_waiting_connections_collide_with_no_other() {
        assert_eq!(owns(PENDING), Some(0));
        assert_eq!(owns(PENDING | 4095), Some(4095));
        assert_eq!(owns(PENDING + MAX_PENDING as u64), None);
        assert_eq!(owns(1 << 40), None, "the iterative session");
        assert_eq!(owns(1 << 41 | 4_194_304), None, "a pool control socket");
        assert_eq!(owns(u64::MAX), None, "the listener");
        assert_eq!(owns(4_194_304), None, "a pid");
    }

    /// Expiry follows acceptance order, skips connections gone since, and
    /// never hands out a later occupant of a reused slot.
    #[test]
    fn expired_connections_come_out_in_order_and_reused_slots_are_not_mistaken() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let connect = || {
            let _client = TcpStream::connect(addr).unwrap();
            listener.accept().unwrap()
        };
        let t0 = Instant::now();
        let mut pending = Pending::new(Duration::from_secs(3));
        let (a, peer) = connect();
        let first = pending.insert(a, peer, t0).unwrap();
        let (b, _) = connect();
        pending
            .insert(b, peer, t0 + Duration::from_secs(1))
            .unwrap();
        pending.remove(first);
        let (c, _) = connect();
        let reused = pending
            .insert(c, peer, t0 + Duration::from_secs(2))
            .unwrap();
        assert_eq!(reused, first);
        assert!(pending.pop_expired(t0 + Duration::from_secs(3)).is_none());
        let expired = pending.pop_expired(t0 + Duration::from_secs(4)).unwrap();
        assert_eq!(expired.serial, 1);
        assert!(pending.pop_expired(t0 + Duration::from_secs(4)).is_none());
        assert_eq!(pending.len(), 1);
        assert_eq!(
            pending.next_deadline(),
            Some(t0 + Duration::from_secs(5)),
            "the reused slot keeps its own deadline"
        );
    }
}
