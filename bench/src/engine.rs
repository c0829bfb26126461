//! The event loop every load scenario runs on: one thread, one `mio` poll
//! (epoll, edge-triggered), the slots' connections, the counters, the
//! timeout scan and the progress line.
//!
//! It owns the mechanics shared by churn, steady and hold (start a connect,
//! drive a connection and account for what it did, expire what is late,
//! open many connections with a bounded number in flight); the scenarios
//! own the policy (what a slot does next). Nothing here allocates per
//! operation: the event buffer, the ready list and the read buffer are
//! sized once. It never blocks longer than one scan interval.

use std::io::{self, IsTerminal, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};

use crate::conn::{AfterConnect, Conn, Failure, Phase, Step};
use crate::scenario::{BenchError, Settings};
use crate::stats::{ErrorCounts, ErrorKind, Histogram};

/// Readiness events taken per wait; any more are taken by the next wait.
/// 1024 keeps a wait cheap while one round covers a thousand sockets.
const EVENTS_PER_WAIT: usize = 1024;

/// How often deadlines are checked: a timeout fires up to this late, and
/// the loop wakes at least this often when nothing happens.
const SCAN_INTERVAL: Duration = Duration::from_millis(50);

/// The read buffer shared by every connection. Larger than the default
/// echo so that a server sending back too much is usually caught in the
/// same read; a larger echo simply takes several reads.
const SCRATCH_SIZE: usize = 64 * 1024;

/// Connections being opened (connect plus first echo) at once by
/// `open_all`. Opening 10,000 at once would overflow the server's listen
/// backlog (1024 by default) and turn the open phase into a measurement of
/// SYN retransmission timers; 256 keeps the backlog far from full while
/// still giving a process-per-connection server plenty to accept.
pub const MAX_OPENING: usize = 256;

/// How long `open_all` may take: ten seconds plus five milliseconds per
/// connection (10,000 connections: 60 s). mpecho opened 10,000 in about
/// 17 s on the 2-core development machine (its master slows down as
/// workers accumulate), so this leaves room for a slower server while
/// still bounding one that has stalled; what is still opening then fails
/// as a timeout.
pub fn open_budget(connections: usize) -> Duration {
    Duration::from_secs(10) + Duration::from_millis(5 * connections as u64)
}

/// What `Engine::pump` saw a connection do.
pub enum Outcome {
    /// Still waiting for the network.
    Pending,
    /// Established and idle (it was opened without a first request).
    Connected,
    /// A request's echo came back whole and verified.
    Echoed {
        round_trip: Duration,
        since_connect: Duration,
    },
    /// The server closed the connection with nothing sent, as expected
    /// (`Settings::expect_close`).
    Closed { since_connect: Duration },
    /// It failed (counted) and is closed.
    Failed,
}

pub struct Engine {
    poll: Poll,
    events: Events,
    /// Slots whose sockets became ready in the last wait.
    ready: Vec<usize>,
    scratch: Box<[u8]>,
    target: SocketAddr,
    /// Connections send nothing and wait for the server's close
    /// (`Settings::expect_close`).
    expect_close: bool,
    /// Latencies of the scenario's operations.
    pub latency: Histogram,
    /// Time from connect() to established, for every connection.
    pub connect: Histogram,
    pub errors: ErrorCounts,
    /// Bytes that came back and matched what was sent.
    pub bytes_verified: u64,
    next_id: u64,
    ever_connected: bool,
    unreachable: Option<String>,
    next_scan: Instant,
    progress: Option<Progress>,
}

impl Engine {
    pub fn new(settings: &Settings, scenario: &'static str) -> Result<Engine, BenchError> {
        let now = Instant::now();
        let progress = (settings.duration > Duration::from_secs(2) && io::stderr().is_terminal())
            .then(|| Progress {
                scenario,
                started: now,
                next: now + Duration::from_secs(1),
            });
        Ok(Engine {
            poll: Poll::new().map_err(BenchError::Poll)?,
            events: Events::with_capacity(EVENTS_PER_WAIT),
            ready: Vec::with_capacity(EVENTS_PER_WAIT),
            scratch: vec![0; SCRATCH_SIZE.max(settings.size)].into_boxed_slice(),
            target: settings.target,
            expect_close: settings.expect_close,
            latency: Histogram::new(),
            connect: Histogram::new(),
            errors: ErrorCounts::default(),
            bytes_verified: 0,
            next_id: 0,
            ever_connected: false,
            unreachable: None,
            next_scan: now + SCAN_INTERVAL,
            progress,
        })
    }

    /// Why the target is considered unreachable: no connection to it was
    /// ever established and a connect failed. The scenario then stops.
    pub fn unreachable(&self) -> Option<&str> {
        self.unreachable.as_deref()
    }

    /// Opens a new connection in `conn` (slot `slot`). Returns false if the
    /// connect failed at once (counted). When the run expects the server
    /// to close, the connection waits for that instead of any echo.
    pub fn open(&mut self, conn: &mut Conn, slot: usize, echo_on_connect: bool) -> bool {
        let id = self.next_id;
        self.next_id += 1;
        let then = match self.expect_close {
            true => AfterConnect::AwaitClose,
            false if echo_on_connect => AfterConnect::Echo,
            false => AfterConnect::Idle,
        };
        match conn.open(self.poll.registry(), self.target, Token(slot), id, then) {
            Ok(()) => true,
            Err(failure) => {
                self.count_failure(&failure);
                false
            }
        }
    }

    /// Drives `conn` as far as the socket allows: a finished connect is
    /// timed and, if the connection was opened so, followed at once by its
    /// first request; a finished echo is returned for the scenario to
    /// account; a failure is counted.
    pub fn pump(&mut self, conn: &mut Conn) -> Outcome {
        loop {
            match conn.drive(&mut self.scratch) {
                Step::Pending => return Outcome::Pending,
                Step::Connected(took) => {
                    self.connect.record(took);
                    self.ever_connected = true;
                    match conn.after_connect() {
                        AfterConnect::Echo => conn.begin_echo(),
                        // The close may have come with the same edge:
                        // drive again, or it would never be seen.
                        AfterConnect::AwaitClose => {}
                        AfterConnect::Idle => return Outcome::Connected,
                    }
                }
                Step::Closed { since_connect } => return Outcome::Closed { since_connect },
                Step::Echoed {
                    round_trip,
                    since_connect,
                } => {
                    self.bytes_verified += conn.size() as u64;
                    return Outcome::Echoed {
                        round_trip,
                        since_connect,
                    };
                }
                Step::Failed(failure) => {
                    self.count_failure(&failure);
                    return Outcome::Failed;
                }
            }
        }
    }

    fn count_failure(&mut self, failure: &Failure) {
        let kind = failure.kind();
        self.errors.add(kind, || failure.to_string());
        if !self.ever_connected && failure.before_connect() && self.unreachable.is_none() {
            let hint = if kind == ErrorKind::Refused {
                " (is a server listening there?)"
            } else {
                ""
            };
            self.unreachable = Some(format!(
                "could not connect to {}: {}{hint}",
                self.target,
                match failure {
                    Failure::Connect { error, .. } => error.to_string(),
                    other => other.to_string(),
                }
            ));
        }
    }

    /// Waits for readiness until `until` at the latest (and no longer than
    /// a scan interval); returns how many slots are ready, to be read with
    /// `ready_slot`.
    pub fn wait(&mut self, until: Instant) -> Result<usize, BenchError> {
        let now = Instant::now();
        // A scan that is due (or a phase that does not scan) must not turn
        // the wait into a busy loop: then wait up to one interval.
        let to_scan = match self.next_scan.saturating_duration_since(now) {
            Duration::ZERO => SCAN_INTERVAL,
            left => left,
        };
        let timeout = until.saturating_duration_since(now).min(to_scan);
        self.ready.clear();
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(0),
            Err(e) => return Err(BenchError::Wait(e)),
        }
        self.ready
            .extend(self.events.iter().map(|event| event.token().0));
        Ok(self.ready.len())
    }

    /// The `i`th slot made ready by the last `wait`.
    pub fn ready_slot(&self, i: usize) -> usize {
        self.ready[i]
    }

    /// The end of a timed scenario's turn (churn, steady): once per scan
    /// interval, times out what is overdue and reopens every closed slot;
    /// returns how many slots are busy (`busy` when no scan was due).
    pub fn sweep(&mut self, conns: &mut [Conn], stop_at: Instant, busy: usize) -> usize {
        match self.scan(conns) {
            Some(_) => self.reopen_closed(conns, stop_at),
            None => busy,
        }
    }

    /// After a scan: opens a fresh connection in every closed slot (one that
    /// timed out, or whose connect could not even start), unless the run is
    /// past `stop_at`; returns how many slots are busy.
    fn reopen_closed(&mut self, conns: &mut [Conn], stop_at: Instant) -> usize {
        if Instant::now() < stop_at {
            for (slot, conn) in conns.iter_mut().enumerate() {
                if conn.phase() == Phase::Closed {
                    self.open(conn, slot, true);
                }
            }
        }
        conns.iter().filter(|c| c.is_busy()).count()
    }

    /// Once per scan interval (`None` between scans): fails every
    /// connection whose connect or echo is past its deadline (counted as
    /// timeouts; the scenario finds them closed) and returns how many did.
    pub fn scan(&mut self, conns: &mut [Conn]) -> Option<usize> {
        let now = Instant::now();
        if now < self.next_scan {
            return None;
        }
        self.next_scan = now + SCAN_INTERVAL;
        let mut expired = 0;
        for conn in conns.iter_mut() {
            if let Some(failure) = conn.expire(now) {
                self.count_failure(&failure);
                expired += 1;
            }
        }
        Some(expired)
    }

    /// Fails every connection still connecting or echoing, as timeouts:
    /// for the hard deadline, whatever the server does.
    /// One turn of a timed scenario (churn, steady): waits for readiness and
    /// returns how many slots are ready, or `None` when the run is over:
    /// past `stop_at` with nothing `busy`, the target unreachable, or past
    /// `hard_deadline` (then whatever is still busy is abandoned, counted
    /// as timeouts).
    pub fn next_turn(
        &mut self,
        conns: &mut [Conn],
        busy: usize,
        stop_at: Instant,
        hard_deadline: Instant,
    ) -> Result<Option<usize>, BenchError> {
        let now = Instant::now();
        if (now >= stop_at && busy == 0) || self.unreachable().is_some() {
            return Ok(None);
        }
        if now >= hard_deadline {
            self.abandon_busy(conns);
            return Ok(None);
        }
        let until = if now < stop_at {
            stop_at
        } else {
            hard_deadline
        };
        self.wait(until).map(Some)
    }

    pub fn abandon_busy(&mut self, conns: &mut [Conn]) {
        for conn in conns.iter_mut() {
            if let Some(failure) = conn.time_out() {
                self.count_failure(&failure);
            }
        }
    }

    /// Ends a scenario: what is still outstanding (only at the hard
    /// deadline) fails as a timeout, unless the target was unreachable,
    /// where the connects still pending would only repeat that and are
    /// closed uncounted.
    pub fn finish(&mut self, conns: &mut [Conn]) {
        if self.unreachable.is_some() {
            conns.iter_mut().for_each(Conn::close);
        } else {
            self.abandon_busy(conns);
        }
    }

    /// Writes a progress line (`describe` says how far the run is) if a
    /// second has passed since the last one.
    pub fn progress(&mut self, describe: impl FnOnce() -> String) {
        let Some(progress) = self.progress.as_mut() else {
            return;
        };
        let now = Instant::now();
        if now < progress.next {
            return;
        }
        progress.next += Duration::from_secs(1);
        let line = format!(
            "bench {}: {:.0} s, {}, {} errors\n",
            progress.scenario,
            (now - progress.started).as_secs_f64(),
            describe(),
            self.errors.total()
        );
        // Progress is a courtesy: a closed or full stderr must not end the run.
        let _ = io::stderr().write_all(line.as_bytes());
    }

    /// Opens a connection in every slot of `conns`, at most `MAX_OPENING`
    /// at a time, each verified with one echo (recorded in `latency` when
    /// `record_echo`), until all are idle or failed or `deadline` passes
    /// (what is still opening then fails as a timeout). Connections opened
    /// earlier are watched meanwhile: one that fails is counted and closed.
    /// Returns how long it took.
    pub fn open_all(
        &mut self,
        conns: &mut [Conn],
        deadline: Instant,
        record_echo: bool,
    ) -> Result<Duration, BenchError> {
        let started = Instant::now();
        let mut next = 0;
        let mut opening = 0;
        while next < conns.len() || opening > 0 {
            while opening < MAX_OPENING && next < conns.len() && self.unreachable.is_none() {
                if self.open(&mut conns[next], next, true) {
                    opening += 1;
                }
                next += 1;
            }
            if self.unreachable.is_some() {
                self.finish(conns);
                break;
            }
            if Instant::now() >= deadline {
                self.abandon_busy(conns);
                break;
            }
            for i in 0..self.wait(deadline)? {
                let slot = self.ready_slot(i);
                let conn = &mut conns[slot];
                let was_busy = conn.is_busy();
                match self.pump(conn) {
                    Outcome::Echoed { round_trip, .. } if record_echo => {
                        self.latency.record(round_trip)
                    }
                    _ => {}
                }
                if was_busy && !conns[slot].is_busy() {
                    opening -= 1;
                }
            }
            // Only connections being opened have a deadline.
            opening -= self.scan(conns).unwrap_or(0);
            let total = conns.len();
            self.progress(|| format!("{} of {total} connections opened", next - opening));
        }
        Ok(started.elapsed())
    }
}

struct Progress {
    scenario: &'static str,
    started: Instant,
    next: Instant,
}
