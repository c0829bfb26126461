//! Accepting connections: a batch of `accept` calls when the listener is
//! readable, each client admitted to a worker or turned away, and what to do
//! when `accept` fails.
//!
//! The [`Acceptor`] owns the listening socket together with one spare
//! descriptor (an open `/dev/null`). When the process runs out of descriptors
//! (EMFILE/ENFILE) the kernel keeps the pending connection in the backlog and
//! the listener stays readable, so a naive loop spins at 100 % CPU while the
//! client hangs. Instead we give up the spare, accept every connection
//! waiting at that moment and close each at once (the clients see an
//! orderly close, not a hang), take the spare back, and pause accepting
//! briefly. This module never blocks; whether a client
//! gets a worker is `admission.rs`'s answer, and starting one is
//! `spawn.rs`'s job. Under `--proxy-protocol` a new connection first
//! waits for its balancer's header (`pending.rs`), and is admitted under
//! the client's address the header gives.

use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use crate::cli::Model;
use crate::handoff::{self, Relay};
use crate::log::Level;
use crate::net::display_addr;
use crate::sys;

use super::admission::Refusal;
use super::event_loop::Master;
use super::rates::Rates;
use super::throttle::Kind;
use crate::rules::Rate;

/// Connections accepted per wake-up at most, so that a flood cannot starve
/// signal handling and reaping in the same loop.
pub const ACCEPT_BATCH: usize = 64;

/// How long accepting pauses after a failure that an immediate retry would
/// only repeat (no descriptors, no memory, no processes).
pub const BACKOFF: Duration = Duration::from_millis(100);

/// Most waiting clients closed in one go while out of descriptors: the
/// default `net.core.somaxconn`, so a full default backlog is emptied, yet
/// clients arriving as fast as they are closed cannot hold the loop (each
/// costs an accept and a close, about 10 µs).
const SHED_LIMIT: usize = 4096;

/// The result of one `accept` attempt, sorted by what the loop must do.
pub enum Accept {
    /// A new client.
    Client(TcpStream, SocketAddr),
    /// Nothing is waiting: the batch is done.
    Empty,
    /// The connection died before we took it (ECONNABORTED, EPROTO, …):
    /// count it and go on.
    Aborted(io::Error),
    /// Out of descriptors or kernel memory: the clients waiting were turned
    /// away (`shed` of them, when the spare descriptor allowed it) and
    /// accepting must pause.
    Exhausted { error: io::Error, shed: usize },
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
                let shed = self.shed_waiting_connections();
                Accept::Exhausted { error, shed }
            }
            Some(libc::ENOBUFS | libc::ENOMEM) => Accept::Exhausted { error, shed: 0 },
            // ECONNABORTED, EPROTO, EPERM (a firewall), EINTR and the
            // network errors accept(2) says to treat like EAGAIN: the
            // listener itself is fine.
            _ => Accept::Aborted(error),
        }
    }

    /// Uses the spare descriptor to accept and close every client waiting
    /// now (at most `SHED_LIMIT`): each accepted socket is closed at once,
    /// which frees the number for the next. Returns how many were closed.
    fn shed_waiting_connections(&mut self) -> usize {
        if self.spare.take().is_none() {
            return 0;
        }
        let mut shed = 0;
        while shed < SHED_LIMIT && self.listener.accept().is_ok() {
            shed += 1;
        }
        self.spare = open_spare();
        shed
    }
}

fn open_spare() -> Option<File> {
    File::open("/dev/null").ok()
}

impl Master {
    /// Accepts up to [`ACCEPT_BATCH`] clients, then returns to the loop so
    /// that a flood cannot starve signals and reaping.
    pub(super) fn accept_batch(&mut self) {
        for _ in 0..ACCEPT_BATCH {
            if self.config.admission.defers(&self.workers)
                || self.session.is_some()
                || self.header_awaited_by_session()
            {
                return;
            }
            let Some(acceptor) = self.listener.acceptor() else {
                return;
            };
            let now = Instant::now();
            match acceptor.accept() {
                Accept::Client(stream, peer) if self.pending.is_some() => {
                    self.await_header(stream, display_addr(peer), now)
                }
                Accept::Client(stream, peer) => self.admit(stream, display_addr(peer), None, now),
                Accept::Empty => return,
                Accept::Aborted(e) => {
                    self.counters.accept_errors += 1;
                    self.throttle.log(
                        Kind::AcceptError,
                        Level::Warn,
                        now,
                        format_args!("accept failed: {e}; continuing"),
                    );
                }
                Accept::Exhausted { error, shed } => {
                    // One error per client turned away (at least the one
                    // whose accept failed).
                    self.counters.accept_errors += shed.max(1) as u64;
                    let what = match shed {
                        0 => "could not close the waiting connections".to_string(),
                        1 => "closed 1 waiting connection".to_string(),
                        n => format!("closed {n} waiting connections"),
                    };
                    self.throttle.log(
                        Kind::AcceptError,
                        Level::Error,
                        now,
                        format_args!(
                            "accept failed: {error}; {what}, pausing accepts for {}ms",
                            BACKOFF.as_millis()
                        ),
                    );
                    self.pause_accepting();
                    return;
                }
            }
        }
    }

    /// Hands a new connection to a worker, or turns it away. Either way the
    /// master's copy of the socket is closed on return. `peer` is the
    /// client's address, which a PROXY header gave when `relay` says how
    /// the connection came (`pending.rs`).
    pub(super) fn admit(
        &mut self,
        client: TcpStream,
        peer: SocketAddr,
        relay: Option<Relay>,
        now: Instant,
    ) {
        let rule = self.rules.decide(peer.ip());
        let rate = self.config.admission.rate_for(&rule);
        let admitted = self
            .config
            .admission
            .admit(&self.workers, peer.ip(), &rule)
            .and_then(|()| take_rate(&mut self.rates, peer.ip(), rate, now));
        // Copied out of the rules (the start needs `self`), and only when
        // the rule sets variables: most connections allocate nothing here.
        let rule_env = handoff::rule_env(rule.env);
        match admitted {
            Ok(()) => match self.config.model {
                Model::Exec | Model::Fork => {
                    self.start_worker(&client, peer, relay, &rule_env, now)
                }
                Model::Prefork => self.hand_to_pool(&client, peer, now),
                Model::Iterative => self.begin_session(client, peer),
            },
            Err(refusal) => {
                self.say_refused(&client);
                self.turn_away(&refusal, peer, now);
            }
        }
    }

    /// `--reject-message`: a last word to a client turned away, written
    /// without waiting (a socket just accepted takes a short message
    /// whole), before the caller closes it.
    pub(super) fn say_refused(&self, client: &TcpStream) {
        if let Some(message) = &self.config.reject_message {
            let _ = sys::send_nowait(client.as_fd(), message);
        }
    }

    pub(super) fn turn_away(&mut self, refusal: &Refusal, peer: SocketAddr, now: Instant) {
        match refusal {
            Refusal::Full { .. } => self.counters.rejected_full += 1,
            Refusal::PerIp { .. } => self.counters.rejected_per_ip += 1,
            Refusal::Rule { .. } => self.counters.rejected_rule += 1,
            Refusal::Rate { .. } => self.counters.rejected_rate += 1,
            Refusal::Proxy(_) => self.counters.rejected_proxy += 1,
        }
        self.throttle.log(
            refusal.kind(),
            Level::Warn,
            now,
            format_args!("rejected peer={peer}: {refusal}"),
        );
    }
}

/// Takes a token from `ip`'s bucket under `rate` (none: no limit). Asked
/// last, so that a connection turned away for any other reason does not
/// use up its address's rate.
fn take_rate(
    rates: &mut Rates,
    ip: std::net::IpAddr,
    rate: Option<Rate>,
    now: Instant,
) -> Result<(), Refusal> {
    let Some(rate) = rate else {
        return Ok(());
    };
    rates.take(ip, rate, now).map_err(|over| Refusal::Rate {
        ip,
        rate: over.rate,
    })
}
