//! The metrics endpoint (`--metrics ADDR`): its listening socket and the
//! table of scrapers' connections, served by the master's own event loop
//! (`Master::serve_metrics`, one call per wake-up with metrics events, and
//! `Endpoint::on_tick` for deadlines).
//!
//! A connection gets one request and one response (`Connection: close`):
//! read the head ([`http`], at most [`http::MAX_REQUEST`] bytes), render the
//! [`exposition`] of a [`Snapshot`](super::monitor::Snapshot) into a buffer,
//! write it as the socket takes it, shut the write side, then throw away
//! whatever the client still sends until it closes (so that it reads the
//! whole response instead of a reset). Every connection is closed at its
//! [`DEADLINE`] whatever it is doing, and at most [`MAX_CONNECTIONS`] are
//! open at once: more are accepted and closed at once, and counted.
//!
//! What this module must never do: block (every socket is non-blocking and
//! each readiness event gets one read, or the writes the socket takes, so a
//! slow, silent or flooding scraper cannot hold up accepting or reaping);
//! spawn, or touch workers, the echo listener or the counters (it reads a
//! snapshot and counts only its own connections); allocate per byte or per
//! request (each slot's buffers are kept and reused); or write a client's
//! bytes unescaped into the log.

mod exposition;
mod http;

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use crate::log::{self, Level, debug, error};
use crate::net::display_addr;
use crate::sys::{Epoll, EpollEvent, Interest};

use super::accept::{Accept, Acceptor, BACKOFF};
use super::event_loop::Master;
use super::listener::{self, Listener, State};
use http::{Progress, RequestBuffer, Status};

/// Scrape connections open at once at most. Prometheus opens one per
/// target per scrape; 16 leaves room for a few servers scraping (and a
/// person with curl) while bounding the master's memory for them (16 ×
/// 4 KiB of request buffers plus the responses) and the descriptors they
/// take from workers. The 17th connection is closed at once and counted
/// (`mpecho_metrics_connections_rejected_total`).
pub const MAX_CONNECTIONS: usize = 16;

/// How long a connection may stay open, from accept: long enough for any
/// scraper on a working network to send a request and read a response of
/// a few kilobytes (a scrape takes about a millisecond), short enough that
/// silent or stalled connections cannot keep every slot for long. A
/// connection that has not sent a complete request by then, or has not
/// read its response, is closed (counted as timed out unless its response
/// went out in full).
pub const DEADLINE: Duration = Duration::from_secs(2);

/// Connections accepted per wake-up at most, as `accept::ACCEPT_BATCH` for
/// clients: a flood of connections to this port cannot keep the loop from
/// reaping and accepting clients.
const ACCEPT_BATCH: usize = 32;

/// The kernel's queue of scrape connections not yet accepted: many more
/// than [`MAX_CONNECTIONS`], so that a burst is accepted and closed (the
/// scraper sees an orderly close) rather than left in SYN retries.
const BACKLOG: u32 = 64;

/// Bytes a client may send after its request before the connection is
/// closed without waiting for it to close first.
const MAX_DISCARD: usize = 64 * 1024;

/// Epoll tokens: workers are registered by pid (at most 2^22 on Linux)
/// and the echo listener as `u64::MAX`; the endpoint takes the
/// [`MAX_CONNECTIONS`] + 1 numbers just below.
const LISTENER_TOKEN: u64 = u64::MAX - 1;
const FIRST_CONNECTION_TOKEN: u64 = LISTENER_TOKEN - MAX_CONNECTIONS as u64;

/// Whether an epoll token belongs to the metrics endpoint.
pub fn owns(token: u64) -> bool {
    (FIRST_CONNECTION_TOKEN..=LISTENER_TOKEN).contains(&token)
}

/// Binds the endpoint's listening socket (non-blocking, close-on-exec),
/// at boot, beside the echo listener.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    listener::bind(addr, BACKLOG)
}

/// What the endpoint counts about its own connections.
#[derive(Debug, Default)]
pub struct Stats {
    /// Responses sent, by [`Status::index`].
    responses: [u64; Status::ALL.len()],
    /// Connections closed at once because [`MAX_CONNECTIONS`] were open.
    rejected: u64,
    /// Connections closed at the deadline before their response went out.
    timed_out: u64,
}

pub struct Endpoint {
    listener: Listener,
    slots: Vec<Slot>,
    stats: Stats,
    /// The exposition of the latest scrape, kept for its capacity.
    body: Vec<u8>,
}

/// A place for one connection, with buffers kept across connections.
#[derive(Default)]
struct Slot {
    connection: Option<Connection>,
    request: RequestBuffer,
    response: Vec<u8>,
    /// How much of `response` the socket has taken.
    sent: usize,
}

struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    deadline: Instant,
    phase: Phase,
    /// What epoll watches the socket for.
    interest: Interest,
    /// Bytes thrown away after the request.
    discarded: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Collecting the request head.
    Reading,
    /// Sending the response, as fast as the client takes it.
    Writing,
    /// Response sent and write side shut: waiting for the client to close.
    Lingering,
}

/// What a slot needs from the endpoint and the loop to make progress.
struct Context<'a, R> {
    epoll: &'a Epoll,
    stats: &'a mut Stats,
    body: &'a mut Vec<u8>,
    /// Appends the exposition, given the endpoint's counts so far.
    render: &'a mut R,
}

impl Endpoint {
    /// The listening socket, for an upgrade in place to hand over.
    pub fn listener_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.listener.fd()
    }

    /// Whether a scrape is being served (an upgrade would cut it off).
    pub fn busy(&self) -> bool {
        self.slots.iter().any(|slot| slot.connection.is_some())
    }

    /// Starts watching `listener` in `epoll`.
    pub fn open(listener: TcpListener, epoll: &Epoll) -> io::Result<Endpoint> {
        let listener = Listener::open(Acceptor::new(listener), epoll, LISTENER_TOKEN)?;
        Ok(Endpoint {
            listener,
            slots: (0..MAX_CONNECTIONS).map(|_| Slot::default()).collect(),
            stats: Stats::default(),
            body: Vec::new(),
        })
    }

    pub fn local_addr(&mut self) -> io::Result<SocketAddr> {
        match self.listener.acceptor() {
            Some(acceptor) => acceptor.local_addr(),
            None => Err(io::Error::other("the metrics listener is not listening")),
        }
    }

    /// Acts on one readiness event of the endpoint's: accepts a batch, or
    /// moves one connection forward. `render` appends the exposition.
    fn on_event<R>(&mut self, token: u64, epoll: &Epoll, now: Instant, render: &mut R)
    where
        R: FnMut(&mut Vec<u8>, &Stats),
    {
        if token == LISTENER_TOKEN {
            self.accept_batch(epoll, now);
            return;
        }
        let index = token.wrapping_sub(FIRST_CONNECTION_TOKEN) as usize;
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        let mut context = Context {
            epoll,
            stats: &mut self.stats,
            body: &mut self.body,
            render,
        };
        // A connection closed earlier in this wake-up may have left an
        // event behind (or its slot be reused by now): a read or write that
        // would block is then all that happens.
        slot.on_ready(token, &mut context);
    }

    fn accept_batch(&mut self, epoll: &Epoll, now: Instant) {
        for _ in 0..ACCEPT_BATCH {
            let Some(acceptor) = self.listener.acceptor() else {
                return;
            };
            match acceptor.accept() {
                Accept::Client(stream, peer) => self.admit(stream, display_addr(peer), epoll, now),
                Accept::Empty => return,
                Accept::Aborted(e) => debug!("metrics: accept failed: {e}; continuing"),
                Accept::Exhausted { error, shed } => {
                    self.stats.rejected += shed as u64;
                    debug!(
                        "metrics: accept failed: {error}; pausing for {}ms",
                        BACKOFF.as_millis()
                    );
                    if let Err(e) = self.listener.set_state(State::Paused(now + BACKOFF), epoll) {
                        error!("metrics: could not pause accepting: {e}");
                    }
                    return;
                }
            }
        }
    }

    /// Gives a new connection a slot, or closes it at once when all are
    /// taken.
    fn admit(&mut self, stream: TcpStream, peer: SocketAddr, epoll: &Epoll, now: Instant) {
        let Some((index, slot)) = self
            .slots
            .iter_mut()
            .enumerate()
            .find(|(_, slot)| slot.connection.is_none())
        else {
            self.stats.rejected += 1;
            debug!("metrics: closed peer={peer} at once: {MAX_CONNECTIONS} connections open");
            return;
        };
        let token = FIRST_CONNECTION_TOKEN + index as u64;
        let watched = stream
            .set_nonblocking(true)
            .and_then(|()| epoll.add_for(stream.as_fd(), token, Interest::Read));
        if let Err(e) = watched {
            debug!("metrics: could not watch peer={peer}: {e}; closed");
            return;
        }
        slot.request.clear();
        slot.sent = 0;
        slot.connection = Some(Connection {
            stream,
            peer,
            deadline: now + DEADLINE,
            phase: Phase::Reading,
            interest: Interest::Read,
            discarded: 0,
        });
    }

    /// When the loop must wake next for the endpoint: the earliest
    /// connection deadline, or the end of an accept pause.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.slots
            .iter()
            .filter_map(|slot| slot.connection.as_ref().map(|c| c.deadline))
            .chain(self.listener.resumes_at())
            .min()
    }

    /// Closes every connection past its deadline, and ends an accept pause
    /// that is over.
    pub fn on_tick(&mut self, now: Instant, epoll: &Epoll) {
        for slot in &mut self.slots {
            let Some(connection) = &slot.connection else {
                continue;
            };
            if now < connection.deadline {
                continue;
            }
            if connection.phase != Phase::Lingering {
                self.stats.timed_out += 1;
                debug!(
                    "metrics: closed peer={} at the {}s deadline ({:?})",
                    connection.peer,
                    DEADLINE.as_secs(),
                    connection.phase
                );
            }
            slot.connection = None;
        }
        if self.listener.resumes_at().is_some_and(|until| now >= until)
            && let Err(e) = self.listener.set_state(State::Listening, epoll)
        {
            error!("metrics: could not resume accepting: {e}");
        }
    }
}

impl Slot {
    fn on_ready<R>(&mut self, token: u64, cx: &mut Context<'_, R>)
    where
        R: FnMut(&mut Vec<u8>, &Stats),
    {
        let Some(connection) = &mut self.connection else {
            return;
        };
        let keep = match connection.phase {
            Phase::Reading => self.read_request(token, cx),
            Phase::Writing => self.write_response(token, cx.epoll),
            Phase::Lingering => self.discard(),
        };
        if !keep {
            self.connection = None;
        }
    }

    /// One read of the request head; answers once it is complete. Returns
    /// whether the connection stays open.
    fn read_request<R>(&mut self, token: u64, cx: &mut Context<'_, R>) -> bool
    where
        R: FnMut(&mut Vec<u8>, &Stats),
    {
        let Some(connection) = &mut self.connection else {
            return false;
        };
        let progress = match connection.stream.read(self.request.spare()) {
            // The client closed (or shut its write side) before the end of
            // its head: nothing to answer if it sent nothing.
            Ok(0) if self.request.is_empty() => return false,
            Ok(0) => None,
            Ok(n) => Some(self.request.filled(n)),
            Err(e) if would_block(&e) => return true,
            Err(_) => return false,
        };
        let answer = match progress {
            Some(Progress::Incomplete) => return true,
            Some(Progress::Complete(n)) => http::answer(self.request.head(n)),
            Some(Progress::TooLarge) => http::Answer {
                status: Status::HeadTooLarge,
                head_only: false,
            },
            None => http::Answer {
                status: Status::BadRequest,
                head_only: false,
            },
        };
        self.respond(answer, cx);
        self.write_response(token, cx.epoll)
    }

    /// Builds the response to `answer` and counts it.
    fn respond<R>(&mut self, answer: http::Answer, cx: &mut Context<'_, R>)
    where
        R: FnMut(&mut Vec<u8>, &Stats),
    {
        let status = answer.status;
        if status == Status::Ok {
            cx.body.clear();
            (cx.render)(cx.body, cx.stats);
            let content_type = exposition::CONTENT_TYPE;
            http::write_response(
                &mut self.response,
                status,
                content_type,
                cx.body,
                answer.head_only,
            );
        } else {
            let text = status.error_text().as_bytes();
            let content_type = "text/plain; charset=utf-8";
            http::write_response(
                &mut self.response,
                status,
                content_type,
                text,
                answer.head_only,
            );
        }
        cx.stats.responses[status.index()] += 1;
        self.sent = 0;
        if let Some(connection) = &mut self.connection {
            connection.phase = Phase::Writing;
            if log::enabled(Level::Debug) {
                debug!(
                    "metrics: answered peer={} with {} ({} bytes) to {}",
                    connection.peer,
                    status.code(),
                    self.response.len(),
                    mpecho_handoff::EscapedBytes(request_line(&self.request)),
                );
            }
        }
    }

    /// Writes what the socket takes of the response; once all is sent,
    /// shuts the write side and lingers. Returns whether the connection
    /// stays open.
    fn write_response(&mut self, token: u64, epoll: &Epoll) -> bool {
        let Some(connection) = &mut self.connection else {
            return false;
        };
        while self.sent < self.response.len() {
            match connection.stream.write(&self.response[self.sent..]) {
                Ok(0) => return false,
                Ok(n) => self.sent += n,
                Err(e) if would_block(&e) => {
                    return connection.watch(Interest::Write, token, epoll);
                }
                Err(_) => return false,
            }
        }
        // The FIN goes out after the response; the client's own close ends
        // the lingering.
        let _ = connection.stream.shutdown(Shutdown::Write);
        connection.phase = Phase::Lingering;
        connection.watch(Interest::Read, token, epoll)
    }

    /// Throws away what the client sends after its request, until it
    /// closes or has sent too much. Returns whether the connection stays
    /// open.
    fn discard(&mut self) -> bool {
        let Some(connection) = &mut self.connection else {
            return false;
        };
        match connection.stream.read(self.request.scratch()) {
            Ok(0) => false,
            Ok(n) => {
                connection.discarded += n;
                connection.discarded <= MAX_DISCARD
            }
            Err(e) => would_block(&e),
        }
    }
}

impl Connection {
    /// Has epoll watch the socket for `interest`; returns whether that
    /// worked (if not, the connection is closed: nothing would wake it).
    fn watch(&mut self, interest: Interest, token: u64, epoll: &Epoll) -> bool {
        if self.interest == interest {
            return true;
        }
        match epoll.modify(self.stream.as_fd(), token, interest) {
            Ok(()) => {
                self.interest = interest;
                true
            }
            Err(e) => {
                debug!("metrics: could not watch peer={}: {e}; closed", self.peer);
                false
            }
        }
    }
}

/// The request line as received, at most 100 bytes, for a DEBUG line (it
/// is escaped there).
fn request_line(request: &RequestBuffer) -> &[u8] {
    let head = request.head(http::MAX_REQUEST);
    let line = head.split(|&b| b == b'\n').next().unwrap_or(head);
    &line[..line.len().min(100)]
}

fn would_block(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted)
}

impl Master {
    /// Serves the endpoint's events of this wake-up (after reaping and
    /// accepting, so a scrape sees this wake-up's exits). Each scrape
    /// renders a fresh snapshot.
    pub(super) fn serve_metrics(&mut self, events: &[EpollEvent]) {
        let Some(mut endpoint) = self.metrics.take() else {
            return;
        };
        let now = Instant::now();
        let mut render = |out: &mut Vec<u8>, stats: &Stats| {
            exposition::render(out, &self.snapshot(), stats);
        };
        for event in events.iter().filter(|event| owns(event.u64)) {
            endpoint.on_event(event.u64, &self.epoll, now, &mut render);
        }
        self.metrics = Some(endpoint);
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::thread;

    use super::*;
    use crate::sys::SignalSet;

    /// More than loopback's socket buffers hold on both sides together
    /// (a few MB each at most), so that writing it must wait for the reader.
    const HUGE: usize = 32 << 20;

    fn huge_body(out: &mut Vec<u8>, _: &Stats) {
        out.resize(HUGE, b'#');
    }

    /// One turn of a loop: waits up to 10 ms, then hands every event to
    /// the endpoint, as `Master::serve_metrics` does.
    fn turn(endpoint: &mut Endpoint, epoll: &Epoll, now: Instant) {
        let mut events = [EpollEvent { events: 0, u64: 0 }; 16];
        let ready = epoll
            .wait(
                &mut events,
                Some(Duration::from_millis(10)),
                &SignalSet::of(&[]),
            )
            .expect("epoll_pwait");
        for event in &events[..ready] {
            endpoint.on_event(event.u64, epoll, now, &mut huge_body);
        }
    }

    fn open() -> (Epoll, Endpoint, SocketAddr) {
        let epoll = Epoll::new().expect("epoll");
        let listener = bind("127.0.0.1:0".parse().expect("an address")).expect("bind");
        let mut endpoint = Endpoint::open(listener, &epoll).expect("open the endpoint");
        let addr = endpoint.local_addr().expect("its address");
        (epoll, endpoint, addr)
    }

    fn phase(endpoint: &Endpoint) -> Option<(Phase, Interest)> {
        let connection = endpoint.slots[0].connection.as_ref()?;
        Some((connection.phase, connection.interest))
    }

    /// A client that stops reading a response too large for the socket
    /// buffers leaves the connection waiting for room to write (never
    /// blocking the loop) until the deadline closes it, counted as timed
    /// out.
    #[test]
    fn a_reader_that_stalls_is_dropped_at_the_deadline() {
        let (epoll, mut endpoint, addr) = open();
        let mut client = TcpStream::connect(addr).expect("connect");
        client
            .write_all(b"GET /metrics HTTP/1.1\r\n\r\n")
            .expect("send the request");
        let start = Instant::now();
        while phase(&endpoint) != Some((Phase::Writing, Interest::Write)) {
            assert!(start.elapsed() < Duration::from_secs(10), "no full socket");
            turn(&mut endpoint, &epoll, start);
        }
        endpoint.on_tick(start + DEADLINE - Duration::from_millis(1), &epoll);
        assert!(phase(&endpoint).is_some(), "closed before its deadline");
        endpoint.on_tick(start + DEADLINE, &epoll);
        assert!(phase(&endpoint).is_none(), "still open at its deadline");
        assert_eq!(endpoint.stats.timed_out, 1);
        assert_eq!(endpoint.next_deadline(), None);
    }

    /// The same response reaches a client that reads it: all of it, in as
    /// many writes as the socket takes, then the end of the connection.
    #[test]
    fn a_response_larger_than_the_socket_buffers_goes_out_as_it_is_read() {
        let (epoll, mut endpoint, addr) = open();
        let reader = thread::spawn(move || {
            let mut client = TcpStream::connect(addr).expect("connect");
            client
                .write_all(b"GET /metrics HTTP/1.1\r\n\r\n")
                .expect("send the request");
            let mut response = Vec::new();
            client.read_to_end(&mut response).expect("read it all");
            response
        });
        let start = Instant::now();
        while !reader.is_finished() {
            assert!(start.elapsed() < Duration::from_secs(30), "not delivered");
            turn(&mut endpoint, &epoll, start);
        }
        let response = reader.join().expect("the reader");
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {HUGE}\r\nConnection: close\r\n\r\n",
            exposition::CONTENT_TYPE
        );
        assert_eq!(response.len(), head.len() + HUGE);
        assert!(response.starts_with(head.as_bytes()));
        assert_eq!(endpoint.stats.responses[Status::Ok.index()], 1);
        assert_eq!(endpoint.stats.timed_out, 0);
    }
}
