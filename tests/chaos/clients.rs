//! The client threads: each makes its connections in turn as their plans
//! say, checks every byte that comes back against what it sent, and
//! reports how each connection ended; `Tally` sums the outcomes up.
//!
//! A client never sleeps to wait for the server: it blocks in reads and
//! writes bounded by `TIMEOUT`, and stops at the load's deadline.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use mpecho_testkit::{TIMEOUT, connect_from};

use crate::load::{Hold, Load, Plan};
use crate::payload::{check, fill};

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Every round came back, then EOF answered our half-close.
    Complete,
    /// EOF or a reset came before that.
    Early,
    /// `connect` failed.
    NotConnected,
}

/// What one connection saw.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) id: u64,
    pub(crate) source: Option<IpAddr>,
    pub(crate) local: Option<SocketAddr>,
    /// When the connection was attempted.
    pub(crate) attempted: Instant,
    pub(crate) ending: Ending,
    pub(crate) sent: u64,
    /// Bytes received back, every one checked against what was sent.
    pub(crate) received: u64,
    pub(crate) planned: u64,
    /// Wrong bytes, no answer within `TIMEOUT`, or an unexpected error.
    pub(crate) fault: Option<String>,
}

impl Outcome {
    /// Closed (EOF or reset) before any echo: how a rejected client ends.
    pub(crate) fn turned_away(&self) -> bool {
        self.ending == Ending::Early && self.received == 0
    }
}

/// Client threads at work.
pub(crate) struct Clients(Vec<JoinHandle<Vec<Outcome>>>);

impl Clients {
    pub(crate) fn all_finished(&self) -> bool {
        self.0.iter().all(|h| h.is_finished())
    }

    /// Waits for every thread (each is bounded by its connections' count,
    /// the load's deadline and the sockets' timeouts), then passes on a
    /// panic of any of them.
    pub(crate) fn join(self) -> Vec<Outcome> {
        let mut outcomes = Vec::new();
        let mut panic = None;
        for handle in self.0 {
            match handle.join() {
                Ok(done) => outcomes.extend(done),
                Err(e) => panic = Some(e),
            }
        }
        if let Some(e) = panic {
            std::panic::resume_unwind(e);
        }
        outcomes
    }
}

/// One thread per list of plans, each making its connections in turn.
pub(crate) fn start_clients(load: &Arc<Load>, threads: Vec<Vec<Plan>>) -> Clients {
    Clients(
        threads
            .into_iter()
            .map(|plans| {
                let load = Arc::clone(load);
                thread::Builder::new()
                    .stack_size(256 * 1024)
                    .spawn(move || {
                        let mut outcomes = Vec::with_capacity(plans.len());
                        for plan in &plans {
                            if load.stop.is_open() || load.past_deadline() {
                                break;
                            }
                            let outcome = run_connection(&load, plan);
                            if outcome.ending == Ending::NotConnected {
                                // Refused: no server listens for a moment.
                                // Like any real client, back off a little
                                // rather than burn through every attempt.
                                thread::sleep(Duration::from_millis(5));
                            }
                            outcomes.push(outcome);
                        }
                        outcomes
                    })
                    .expect("start a client thread")
            })
            .collect(),
    )
}

/// Why a connection stopped before its plan was done.
pub(crate) enum Stop {
    /// EOF or a reset: the server ended it.
    Ended,
    Fault(String),
}

/// A client's side of one connection.
pub(crate) struct Conn {
    pub(crate) stream: TcpStream,
    pub(crate) id: u64,
    pub(crate) sent: u64,
    pub(crate) received: u64,
    pub(crate) buf: Vec<u8>,
    pub(crate) scratch: Vec<u8>,
}

pub(crate) fn open(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    match source {
        Some(ip) => Ok(connect_from(ip, addr)),
        None => {
            let stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
            stream.set_read_timeout(Some(TIMEOUT))?;
            stream.set_write_timeout(Some(TIMEOUT))?;
            Ok(stream)
        }
    }
}

/// Makes one connection as `plan` says and reports what it saw.
pub(crate) fn run_connection(load: &Load, plan: &Plan) -> Outcome {
    let mut outcome = Outcome {
        id: plan.id,
        source: plan.source,
        local: None,
        attempted: Instant::now(),
        ending: Ending::NotConnected,
        sent: 0,
        received: 0,
        planned: plan.rounds * plan.chunk as u64,
        fault: None,
    };
    let stream = match open(load.addr, plan.source) {
        Ok(stream) => stream,
        Err(e) => {
            outcome.fault = Some(format!("connect: {e}"));
            return outcome;
        }
    };
    outcome.local = stream.local_addr().ok();
    let mut conn = Conn {
        stream,
        id: plan.id,
        sent: 0,
        received: 0,
        buf: vec![0; 64 * 1024],
        scratch: Vec::new(),
    };
    let mut rounds = 0;
    let result = loop {
        if rounds >= plan.rounds || load.past_deadline() {
            break Ok(());
        }
        if let Hold::Busy(gate) = &plan.hold
            && rounds >= 1
            && gate.is_open()
        {
            break Ok(());
        }
        if let Err(stop) = conn.round(plan.chunk) {
            break Err(stop);
        }
        rounds += 1;
        load.rounds.fetch_add(1, Ordering::SeqCst);
        if rounds == 1 {
            load.served.fetch_add(1, Ordering::SeqCst);
            if let Hold::Idle(gate) = &plan.hold {
                gate.wait(load.deadline);
            }
        }
    };
    let result = result.and_then(|()| conn.finish());
    outcome.ending = match result {
        Ok(()) => Ending::Complete,
        Err(stopped) => {
            let fault = match stopped {
                Stop::Fault(f) => Some(f),
                Stop::Ended => match conn.drain() {
                    Err(Stop::Fault(f)) => Some(f),
                    _ => None,
                },
            };
            outcome.fault = fault;
            Ending::Early
        }
    };
    outcome.sent = conn.sent;
    outcome.received = conn.received;
    if outcome.turned_away() {
        load.turned_away.fetch_add(1, Ordering::SeqCst);
    }
    outcome
}

impl Conn {
    /// Sends the next `chunk` bytes of the stream and reads them back.
    pub(crate) fn round(&mut self, chunk: usize) -> Result<(), Stop> {
        let mut data = vec![0u8; chunk];
        fill(self.id, self.sent, &mut data);
        let mut done = 0;
        while done < chunk {
            match self.stream.write(&data[done..]) {
                Ok(0) => return Err(Stop::Ended),
                Ok(n) => {
                    done += n;
                    self.sent += n as u64;
                }
                Err(e) => return Err(stop(e, "sending")),
            }
        }
        while self.received < self.sent {
            let want = ((self.sent - self.received) as usize).min(self.buf.len());
            match self.stream.read(&mut self.buf[..want]) {
                Ok(0) => return Err(Stop::Ended),
                Ok(n) => self.take(n)?,
                Err(e) => return Err(stop(e, "waiting for the echo")),
            }
        }
        Ok(())
    }

    /// Checks `n` bytes just read into the buffer.
    pub(crate) fn take(&mut self, n: usize) -> Result<(), Stop> {
        if self.received + n as u64 > self.sent {
            return Err(Stop::Fault(format!(
                "connection {}: {} bytes back, only {} sent",
                self.id,
                self.received + n as u64,
                self.sent
            )));
        }
        check(self.id, self.received, &self.buf[..n], &mut self.scratch).map_err(Stop::Fault)?;
        self.received += n as u64;
        Ok(())
    }

    /// Half-closes and expects EOF (the worker's answer) and nothing more.
    pub(crate) fn finish(&mut self) -> Result<(), Stop> {
        if let Err(e) = self.stream.shutdown(Shutdown::Write) {
            return Err(stop(e, "half-closing"));
        }
        loop {
            match self.stream.read(&mut self.buf) {
                Ok(0) => return Ok(()),
                Ok(n) => self.take(n)?,
                Err(e) => return Err(stop(e, "waiting for EOF")),
            }
        }
    }

    /// After the server ended the connection: reads (and checks) whatever
    /// is still on its way.
    pub(crate) fn drain(&mut self) -> Result<(), Stop> {
        loop {
            match self.stream.read(&mut self.buf) {
                Ok(0) => return Ok(()),
                Ok(n) => self.take(n)?,
                Err(e) => return Err(stop(e, "draining")),
            }
        }
    }
}

/// Sorts an I/O error: the server ending the connection, or a fault.
pub(crate) fn stop(e: io::Error, doing: &str) -> Stop {
    match e.kind() {
        ErrorKind::ConnectionReset
        | ErrorKind::ConnectionAborted
        | ErrorKind::BrokenPipe
        | ErrorKind::NotConnected => Stop::Ended,
        ErrorKind::WouldBlock | ErrorKind::TimedOut => {
            Stop::Fault(format!("no answer within {TIMEOUT:?} while {doing}"))
        }
        _ => Stop::Fault(format!("{doing}: {e}")),
    }
}

/// Totals over the outcomes of a scenario.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) connections: usize,
    pub(crate) complete: usize,
    pub(crate) turned_away: usize,
    pub(crate) not_connected: usize,
    pub(crate) bytes: u64,
    pub(crate) faults: Vec<String>,
}

impl Tally {
    pub(crate) fn of(outcomes: &[Outcome]) -> Tally {
        let mut tally = Tally::default();
        for o in outcomes {
            match o.ending {
                Ending::NotConnected => tally.not_connected += 1,
                Ending::Complete => tally.complete += 1,
                Ending::Early if o.received == 0 => tally.turned_away += 1,
                Ending::Early => {}
            }
            if o.ending != Ending::NotConnected {
                tally.connections += 1;
            }
            tally.bytes += o.received;
            if let Some(f) = &o.fault {
                tally.faults.push(f.clone());
            }
        }
        tally
    }

    pub(crate) fn assert_no_faults(&self) {
        assert!(
            self.faults.is_empty(),
            "{} of {} clients saw wrong bytes, no answer or an error; the first ones:\n{}",
            self.faults.len(),
            self.connections,
            self.faults
                .iter()
                .take(10)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
