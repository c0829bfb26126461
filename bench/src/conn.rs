//! One client connection of the load generator and its state machine:
//! non-blocking connect, send one request, receive and verify its echo,
//! wait idle; or (churn `--expect-close`) send nothing and wait for the
//! server's orderly close.
//!
//! A `Conn` is a slot that is reused: its request buffer is allocated once
//! when the run starts, and each new connection in it (churn opens one per
//! operation) only replaces the socket. It never sleeps, never blocks and
//! never decides what happens next (the scenario does); it reports each
//! step, and on a failure it closes itself and says why.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use crate::payload;
use crate::stats::ErrorKind;

/// Where a connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// No socket.
    Closed,
    /// connect() issued, not yet established.
    Connecting,
    /// A request is out (partly sent, or its echo partly back).
    Echoing,
    /// Established, nothing outstanding: any byte that arrives is an error.
    Idle,
    /// Established, nothing sent, waiting for the server to close (EOF):
    /// any byte that arrives is an error.
    AwaitingClose,
}

/// What a connection does once it is established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterConnect {
    /// Sends its first request at once, in the same `drive`.
    Echo,
    /// Waits idle for the scenario to start a request.
    Idle,
    /// Sends nothing and waits for the server's close (with a deadline).
    AwaitClose,
}

/// What `Conn::drive` achieved.
#[derive(Debug)]
pub enum Step {
    /// Nothing finished: wait for the next readiness event.
    Pending,
    /// The connection was established, this long after connect().
    Connected(Duration),
    /// The server closed the connection with nothing sent back, as
    /// awaited (`AfterConnect::AwaitClose`).
    Closed {
        /// From connect() to the end of file.
        since_connect: Duration,
    },
    /// The current request's echo is back, whole and verified.
    Echoed {
        /// From the request's first byte out to its last byte back.
        round_trip: Duration,
        /// From connect() to the last byte back.
        since_connect: Duration,
    },
    /// The connection failed and is now closed.
    Failed(Failure),
}

/// Why a connection failed; the message names the connection and request
/// so that a mismatch can be traced.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("connection {conn}: could not connect: {error}")]
    Connect { conn: u64, error: io::Error },
    #[error("connection {conn}: not established after {:.1} s", waited.as_secs_f64())]
    ConnectTimeout { conn: u64, waited: Duration },
    #[error("connection {conn}, request {seq}: {error}")]
    Io {
        conn: u64,
        seq: u64,
        error: io::Error,
    },
    #[error(
        "connection {conn}, request {seq}: the server closed the connection \
         after echoing {received} of {size} bytes"
    )]
    Eof {
        conn: u64,
        seq: u64,
        received: usize,
        size: usize,
    },
    #[error("connection {conn}: the server closed the connection while it was idle")]
    IdleEof { conn: u64 },
    #[error("connection {conn}: not closed by the server after {:.1} s", waited.as_secs_f64())]
    CloseTimeout { conn: u64, waited: Duration },
    #[error(
        "connection {conn}, request {seq}: byte {offset} of {size} came back as \
         {got:#04x}, {sent:#04x} was sent"
    )]
    Changed {
        conn: u64,
        seq: u64,
        offset: usize,
        size: usize,
        sent: u8,
        got: u8,
    },
    #[error("connection {conn}, request {seq}: {received} bytes came back for the {size} sent")]
    TooMuch {
        conn: u64,
        seq: u64,
        received: usize,
        size: usize,
    },
    #[error("connection {conn}: {bytes} bytes arrived while no request was outstanding")]
    Unsolicited { conn: u64, bytes: usize },
    #[error(
        "connection {conn}, request {seq}: {received} of {size} bytes back \
         after {:.1} s", waited.as_secs_f64()
    )]
    EchoTimeout {
        conn: u64,
        seq: u64,
        received: usize,
        size: usize,
        waited: Duration,
    },
}

impl Failure {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Failure::Connect { error, .. } | Failure::Io { error, .. } => ErrorKind::of_io(error),
            Failure::ConnectTimeout { .. }
            | Failure::EchoTimeout { .. }
            | Failure::CloseTimeout { .. } => ErrorKind::Timeout,
            Failure::Eof { .. } | Failure::IdleEof { .. } => ErrorKind::Eof,
            Failure::Changed { .. } | Failure::TooMuch { .. } | Failure::Unsolicited { .. } => {
                ErrorKind::Mismatch
            }
        }
    }

    /// Whether the connection never got established: what tells an
    /// unreachable target from a misbehaving server.
    pub fn before_connect(&self) -> bool {
        matches!(
            self,
            Failure::Connect { .. } | Failure::ConnectTimeout { .. }
        )
    }
}

pub struct Conn {
    stream: Option<TcpStream>,
    phase: Phase,
    /// Unique within the run; part of every payload on this connection.
    id: u64,
    /// The current (or, when idle, the last) request's sequence number.
    seq: u64,
    /// Requests started on this connection so far.
    requests: u64,
    /// The current request's bytes, SIZE long, allocated once per slot.
    request: Box<[u8]>,
    sent: usize,
    received: usize,
    connect_started: Instant,
    echo_started: Instant,
    /// When the current connect or echo times out; `None` when idle.
    deadline: Option<Instant>,
    timeout: Duration,
    /// What happens once the connection is established.
    after_connect: AfterConnect,
}

impl Conn {
    pub fn new(size: usize, timeout: Duration) -> Conn {
        let now = Instant::now();
        Conn {
            stream: None,
            phase: Phase::Closed,
            id: 0,
            seq: 0,
            requests: 0,
            request: vec![0; size].into_boxed_slice(),
            sent: 0,
            received: 0,
            connect_started: now,
            echo_started: now,
            deadline: None,
            timeout,
            after_connect: AfterConnect::Idle,
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether a connect or an echo is outstanding.
    pub fn is_busy(&self) -> bool {
        matches!(
            self.phase,
            Phase::Connecting | Phase::Echoing | Phase::AwaitingClose
        )
    }

    /// Starts a non-blocking connect to `target` as connection `id`,
    /// registered for readiness under `token`; `then` says what it does
    /// once it is up.
    pub fn open(
        &mut self,
        registry: &Registry,
        target: SocketAddr,
        token: Token,
        id: u64,
        then: AfterConnect,
    ) -> Result<(), Failure> {
        debug_assert!(
            self.phase == Phase::Closed,
            "a slot is reopened only when closed"
        );
        self.id = id;
        self.requests = 0;
        self.after_connect = then;
        self.connect_started = Instant::now();
        let fail = |error| Failure::Connect { conn: id, error };
        let mut stream = TcpStream::connect(target).map_err(fail)?;
        // Requests are small and answered one at a time: Nagle's algorithm
        // would hold each one back waiting for an ACK.
        stream.set_nodelay(true).map_err(fail)?;
        registry
            .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
            .map_err(fail)?;
        self.stream = Some(stream);
        self.phase = Phase::Connecting;
        self.deadline = Some(self.connect_started + self.timeout);
        Ok(())
    }

    /// Closes the socket (the kernel removes it from the poller).
    pub fn close(&mut self) {
        self.stream = None;
        self.phase = Phase::Closed;
        self.deadline = None;
    }

    /// Puts the next request on an idle connection; the caller then
    /// drives it.
    pub fn begin_echo(&mut self) {
        debug_assert!(
            self.phase == Phase::Idle,
            "a request starts only on an idle connection"
        );
        self.seq = self.requests;
        self.requests += 1;
        payload::fill(self.id, self.seq, &mut self.request);
        self.sent = 0;
        self.received = 0;
        self.phase = Phase::Echoing;
        self.echo_started = Instant::now();
        self.deadline = Some(self.echo_started + self.timeout);
    }

    /// Fails the connection if its connect or echo is past its deadline.
    pub fn expire(&mut self, now: Instant) -> Option<Failure> {
        if self.deadline.is_some_and(|d| now >= d) {
            self.time_out()
        } else {
            None
        }
    }

    /// Fails the connection now as a timeout if a connect or an echo is
    /// outstanding (the run's hard deadline has come).
    pub fn time_out(&mut self) -> Option<Failure> {
        let failure = match self.phase {
            Phase::Connecting => Failure::ConnectTimeout {
                conn: self.id,
                waited: self.connect_started.elapsed(),
            },
            Phase::Echoing => Failure::EchoTimeout {
                conn: self.id,
                seq: self.seq,
                received: self.received,
                size: self.request.len(),
                waited: self.echo_started.elapsed(),
            },
            Phase::AwaitingClose => Failure::CloseTimeout {
                conn: self.id,
                waited: self.connect_started.elapsed(),
            },
            Phase::Idle | Phase::Closed => return None,
        };
        self.close();
        Some(failure)
    }

    /// The size of every request on this slot.
    pub fn size(&self) -> usize {
        self.request.len()
    }

    /// Does whatever the socket allows now (edge-triggered: until it would
    /// block), reading into `scratch`, and reports what finished.
    pub fn drive(&mut self, scratch: &mut [u8]) -> Step {
        // The socket is taken out while it works, so that the steps below
        // can update the rest of the slot; it goes back unless it failed.
        let Some(mut stream) = self.stream.take() else {
            return Step::Pending;
        };
        let step = match self.phase {
            Phase::Closed => Ok(Step::Pending),
            Phase::Connecting => self.finish_connect(&stream),
            Phase::Echoing => self.exchange(&mut stream, scratch),
            Phase::Idle | Phase::AwaitingClose => self.check_idle(&mut stream, scratch),
        };
        match step {
            Ok(step) => {
                self.stream = Some(stream);
                step
            }
            Err(failure) => {
                drop(stream);
                self.close();
                Step::Failed(failure)
            }
        }
    }

    /// What the connection does now that it is up (see `open`).
    pub fn after_connect(&self) -> AfterConnect {
        self.after_connect
    }

    fn finish_connect(&mut self, stream: &TcpStream) -> Result<Step, Failure> {
        let conn = self.id;
        let fail = |error| Failure::Connect { conn, error };
        if let Some(error) = stream.take_error().map_err(fail)? {
            return Err(fail(error));
        }
        match stream.peer_addr() {
            Ok(_) => {}
            Err(e)
                if e.kind() == io::ErrorKind::NotConnected
                    || e.kind() == io::ErrorKind::WouldBlock =>
            {
                return Ok(Step::Pending);
            }
            Err(error) => return Err(fail(error)),
        }
        let took = self.connect_started.elapsed();
        if self.after_connect == AfterConnect::AwaitClose {
            // The server gets one timeout from the connect to close it.
            self.phase = Phase::AwaitingClose;
            self.deadline = Some(self.connect_started + took + self.timeout);
        } else {
            self.phase = Phase::Idle;
            self.deadline = None;
        }
        Ok(Step::Connected(took))
    }

    fn exchange(&mut self, stream: &mut TcpStream, scratch: &mut [u8]) -> Result<Step, Failure> {
        let (conn, seq, size) = (self.id, self.seq, self.request.len());
        let io_fail = |error| Failure::Io { conn, seq, error };
        let fresh = self.sent == 0;
        while self.sent < size {
            match stream.write(&self.request[self.sent..]) {
                Ok(0) => return Err(io_fail(io::ErrorKind::WriteZero.into())),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_fail(e)),
            }
        }
        if fresh && self.sent == size {
            // The whole request went out just now, so its echo cannot be
            // here yet: skip the read that would only say EAGAIN. The
            // echo's arrival raises a new readiness edge.
            return Ok(Step::Pending);
        }
        loop {
            match stream.read(scratch) {
                Ok(0) => {
                    return Err(Failure::Eof {
                        conn,
                        seq,
                        received: self.received,
                        size,
                    });
                }
                Ok(n) => {
                    let end = self.received + n;
                    if end > size {
                        return Err(Failure::TooMuch {
                            conn,
                            seq,
                            received: end,
                            size,
                        });
                    }
                    if let Some(failure) = self.first_difference(&scratch[..n]) {
                        return Err(failure);
                    }
                    self.received = end;
                    if end == size {
                        let now = Instant::now();
                        self.phase = Phase::Idle;
                        self.deadline = None;
                        return Ok(Step::Echoed {
                            round_trip: now - self.echo_started,
                            since_connect: now - self.connect_started,
                        });
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Step::Pending),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_fail(e)),
            }
        }
    }

    /// The first byte of `got` (just received at offset `received`) that
    /// differs from what was sent there, if any does.
    fn first_difference(&self, got: &[u8]) -> Option<Failure> {
        let sent = self.request.get(self.received..)?;
        if sent.starts_with(got) {
            return None;
        }
        let (i, (&s, &g)) = sent
            .iter()
            .zip(got)
            .enumerate()
            .find(|(_, (s, g))| s != g)?;
        Some(Failure::Changed {
            conn: self.id,
            seq: self.seq,
            offset: self.received + i,
            size: self.request.len(),
            sent: s,
            got: g,
        })
    }

    /// An idle connection, or one awaiting the server's close, is
    /// readable: the server sent something unasked for (always an error),
    /// or closed it, which completes a connection awaiting that and ends
    /// an idle one's usefulness.
    fn check_idle(&mut self, stream: &mut TcpStream, scratch: &mut [u8]) -> Result<Step, Failure> {
        let conn = self.id;
        loop {
            return match stream.read(scratch) {
                Ok(0) if self.phase == Phase::AwaitingClose => {
                    self.phase = Phase::Idle;
                    self.deadline = None;
                    Ok(Step::Closed {
                        since_connect: self.connect_started.elapsed(),
                    })
                }
                Ok(0) => Err(Failure::IdleEof { conn }),
                Ok(bytes) => Err(Failure::Unsolicited { conn, bytes }),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Step::Pending),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => Err(Failure::Io {
                    conn,
                    seq: self.seq,
                    error,
                }),
            };
        }
    }
}
