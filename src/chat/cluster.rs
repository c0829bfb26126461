//! Relays that share one room through Redis pub/sub (`chat-server
//! --redis`): the two Redis connections, their state, the reconnection
//! back-off and the cluster's figures.
//!
//! Why a small RESP client of our own (`resp.rs`) and not the `redis`
//! crate: the relay is one thread around one `ppoll`, and the crate's sync
//! API blocks on connect, read and write. Here both connections are
//! non-blocking sockets whose descriptors join the relay's own `ppoll`, so
//! a slow, dead or unreachable Redis costs the loop nothing: a connect in
//! progress, an unsent command or a half-read reply simply waits for the
//! next wake-up. Two connections because a connection that has SUBSCRIBEd
//! can do nothing but (un)subscribe: one listens, the other PUBLISHes.
//!
//! Once up, neither connection is trusted to report its own death: a
//! Redis that is stopped or hung, or a network cut that sends no reset,
//! keeps a socket open and silent. So every command waits for its reply
//! under `REPLY_TIMEOUT`, and a connection silent for `PING_INTERVAL` is
//! sent a `PING` that does too; a reply overdue ends both connections as a
//! lost one would. These deadlines, the attempt's and the back-off's are
//! the one `next_deadline` the loop sleeps until.
//!
//! This module never sends to a chat client and never blocks. What it
//! holds is bounded: at most `OUTBOX_LIMIT` bytes of unsent PUBLISH
//! commands (beyond that, messages are dropped and counted) and at most
//! `READ_BUDGET` bytes read per wake-up (a backlog stays in the kernel,
//! and Redis's own output-buffer limit for subscribers disconnects a
//! relay that cannot keep up; it then reconnects).

use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockRef, Socket, Type};

use crate::log::{info, warning};

use super::resp::{self, Value};
use super::wire::{self, Kind};
use super::{JOINED, LEFT};

/// First wait before reconnecting; doubled after each failure.
const BACKOFF_START: Duration = Duration::from_millis(100);
/// The longest wait between attempts: Redis back after an outage is found
/// within this, while a long outage costs one connect every few seconds.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long an attempt may take from connect to confirmed subscription
/// before it counts as failed (a silently dropped SYN would otherwise
/// hang for the kernel's two minutes).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long Redis may leave a command unanswered (a PUBLISH, the
/// SUBSCRIBE, a PING), counted from the command or from the last sign of
/// life on its connection, whichever is later, before the cluster counts
/// as down. A healthy Redis answers in well under a millisecond and even
/// a busy one (a slow command, a large fork) within a few hundred, so 3 s
/// is not a false alarm; and it is short enough that `cluster=down` in
/// the figures and the log tell an operator the truth while it matters,
/// instead of `cluster=up` over a Redis that is gone.
const REPLY_TIMEOUT: Duration = Duration::from_secs(3);
/// A connection with nothing owed and nothing heard for this long is sent
/// a `PING`: without traffic, a cut connection is silent forever. One
/// small command per connection every 5 s costs nothing, and a cut is
/// found within `PING_INTERVAL + REPLY_TIMEOUT` (8 s) even in a quiet room.
const PING_INTERVAL: Duration = Duration::from_secs(5);
/// Unsent PUBLISH bytes kept while Redis is slow to read: about sixty
/// full-size datagrams. Past it a message is dropped and counted, so that
/// a stalled Redis cannot grow the relay's memory.
const OUTBOX_LIMIT: usize = 4 * 1024 * 1024;
/// Bytes read from one connection per wake-up, so a flood from the room
/// cannot starve local clients and signals.
const READ_BUDGET: usize = 256 * 1024;
/// Bad messages from the channel are logged at most once per interval
/// (with how many were dropped), so garbage cannot flood the log.
const BAD_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Where the room is: `redis://HOST:PORT[/DB]` and `--room`.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub addr: SocketAddr,
    pub db: u32,
    pub room: String,
}

/// A datagram from another relay, tagged and ready for local clients.
pub struct Incoming {
    pub datagram: Vec<u8>,
}

#[derive(Debug, Default)]
struct Counters {
    published: u64,
    received: u64,
    dropped: u64,
    bad: u64,
}

/// One non-blocking connection to Redis.
struct Link {
    stream: TcpStream,
    connected: bool,
    input: Vec<u8>,
    output: Vec<u8>,
    /// Replies Redis owes: commands queued or sent, not yet answered.
    owed: usize,
    /// When `owed` last went from 0 to 1.
    owed_since: Instant,
    /// The last sign of life: a reply or message read (or the connect).
    heard_at: Instant,
}

pub struct Cluster {
    config: ClusterConfig,
    channel: Vec<u8>,
    relay_id: u64,
    sub: Option<Link>,
    publ: Option<Link>,
    subscribed: bool,
    up: bool,
    /// The loss of Redis has been logged and not yet followed by `up`.
    loss_logged: bool,
    backoff: Duration,
    retry_at: Option<Instant>,
    attempt_deadline: Option<Instant>,
    counters: Counters,
    bad_logged_at: Option<Instant>,
    bad_unlogged: u64,
}

impl Cluster {
    /// Starts connecting at once; the loop learns the outcome later.
    pub fn new(config: ClusterConfig, now: Instant) -> Cluster {
        // Redis pub/sub ignores the database number, so the channel name
        // carries it: relays in different databases stay apart.
        let channel = format!("mpecho:chat:{}:{}", config.db, config.room).into_bytes();
        let mut cluster = Cluster {
            config,
            channel,
            relay_id: random_id(),
            sub: None,
            publ: None,
            subscribed: false,
            up: false,
            loss_logged: false,
            backoff: BACKOFF_START,
            retry_at: None,
            attempt_deadline: None,
            counters: Counters::default(),
            bad_logged_at: None,
            bad_unlogged: 0,
        };
        info!(
            "cluster: relay {:016x} joining room {:?} on channel {} at redis://{}",
            cluster.relay_id,
            cluster.config.room,
            String::from_utf8_lossy(&cluster.channel),
            cluster.config.addr
        );
        cluster.connect(now);
        cluster
    }

    pub fn figures(&self) -> String {
        let c = &self.counters;
        format!(
            "cluster={} cluster_published={} cluster_received={} cluster_dropped={} cluster_bad={}",
            if self.up { "up" } else { "down" },
            c.published,
            c.received,
            c.dropped,
            c.bad
        )
    }

    /// The two descriptors to wait on (fd -1, ignored by poll, when a
    /// connection is absent), subscriber first.
    pub fn pollfds(&self) -> [libc::pollfd; 2] {
        [pollfd(self.sub.as_ref()), pollfd(self.publ.as_ref())]
    }

    /// When the loop must wake for the cluster even if nothing arrives:
    /// to reconnect, to give up an attempt, or (once up) to ping a quiet
    /// connection or give up on an overdue reply.
    pub fn next_deadline(&self) -> Option<Instant> {
        let links = [&self.sub, &self.publ]
            .into_iter()
            .flatten()
            .filter(|_| self.up)
            .map(Link::deadline);
        [self.retry_at, self.attempt_deadline]
            .into_iter()
            .flatten()
            .chain(links)
            .min()
    }

    /// Publishes one local message or announcement to the room, or counts
    /// it dropped when Redis is down or not keeping up.
    pub fn publish(&mut self, kind: Kind, tag: &[u8], payload: &[u8]) {
        let Some(link) = self.publ.as_mut().filter(|_| self.up) else {
            self.counters.dropped += 1;
            return;
        };
        if link.output.len() >= OUTBOX_LIMIT {
            self.counters.dropped += 1;
            return;
        }
        let message = wire::encode(self.relay_id, kind, tag, payload);
        let now = Instant::now();
        self.counters.published += 1;
        if let Err(e) = link.send(&[b"PUBLISH", &self.channel, &message], now) {
            self.fail(&format!("writing to redis failed: {e}"), now);
        }
    }

    /// Handles what the loop saw on the two descriptors, then timers;
    /// returns the messages from other relays to deliver locally.
    pub fn on_wake(&mut self, revents: [libc::c_short; 2], now: Instant) -> Vec<Incoming> {
        let mut incoming = Vec::new();
        if let Err(why) = self.service(revents, now, &mut incoming) {
            self.fail(&why, now);
        }
        self.on_timers(now);
        incoming
    }

    fn service(
        &mut self,
        revents: [libc::c_short; 2],
        now: Instant,
        incoming: &mut Vec<Incoming>,
    ) -> Result<(), String> {
        if revents[0] != 0 {
            self.service_subscriber(now, incoming)?;
        }
        if revents[1] != 0 {
            self.service_publisher(now)?;
        }
        self.maybe_up();
        Ok(())
    }

    /// Subscribes as soon as the connection is up, then reads pushes.
    fn service_subscriber(
        &mut self,
        now: Instant,
        incoming: &mut Vec<Incoming>,
    ) -> Result<(), String> {
        let Some(link) = self.sub.as_mut() else {
            return Ok(());
        };
        if link.progress()? {
            link.send(&[b"SUBSCRIBE", &self.channel], now)
                .map_err(|e| format!("writing to redis failed: {e}"))?;
        }
        for value in link.replies(now)? {
            self.on_subscriber_value(value, now, incoming);
        }
        Ok(())
    }

    /// Sends queued PUBLISH commands and reads their replies: the receiver
    /// counts are of no use, but an error reply means the room is broken.
    /// Every reply here answers a command (a PUBLISH's count, a PING's
    /// `PONG`), in order.
    fn service_publisher(&mut self, now: Instant) -> Result<(), String> {
        let Some(link) = self.publ.as_mut() else {
            return Ok(());
        };
        link.progress()?;
        for value in link.replies(now)? {
            link.answered();
            if let Value::Error(e) = value {
                return Err(format!("PUBLISH refused: {}", String::from_utf8_lossy(&e)));
            }
        }
        Ok(())
    }

    fn on_subscriber_value(&mut self, value: Value, now: Instant, incoming: &mut Vec<Incoming>) {
        let Value::Array(Some(items)) = value else {
            return self.bad("not a pub/sub push", now);
        };
        match items.as_slice() {
            [
                Value::Bulk(Some(k)),
                Value::Bulk(Some(_)),
                Value::Bulk(Some(data)),
            ] if k == b"message" => self.on_message(data, now, incoming),
            [Value::Bulk(Some(k)), _, Value::Integer(_)] if k == b"subscribe" => {
                self.subscribed = true;
                self.sub_answered();
            }
            // RESP2 answers PING on a subscribed connection with a push.
            [Value::Bulk(Some(k)), Value::Bulk(Some(_))] if k == b"pong" => self.sub_answered(),
            _ => self.bad("unexpected pub/sub push", now),
        }
    }

    /// The subscriber's SUBSCRIBE or PING has been answered.
    fn sub_answered(&mut self) {
        if let Some(link) = self.sub.as_mut() {
            link.answered();
        }
    }

    fn on_message(&mut self, data: &[u8], now: Instant, incoming: &mut Vec<Incoming>) {
        let relayed = match wire::decode(data) {
            Ok(relayed) => relayed,
            Err(why) => return self.bad(why, now),
        };
        // Our own publications come back on our subscription: never echo.
        if relayed.relay_id == self.relay_id {
            return;
        }
        self.counters.received += 1;
        let body = match relayed.kind {
            Kind::Message => relayed.payload,
            Kind::Joined => JOINED,
            Kind::Left => LEFT,
        };
        let mut datagram = Vec::with_capacity(relayed.tag.len() + body.len());
        datagram.extend_from_slice(relayed.tag);
        datagram.extend_from_slice(body);
        incoming.push(Incoming { datagram });
    }

    /// Counts a message from the channel that is not ours to relay, and
    /// logs it at most once per `BAD_LOG_INTERVAL`.
    fn bad(&mut self, why: &str, now: Instant) {
        self.counters.bad += 1;
        self.bad_unlogged += 1;
        if self
            .bad_logged_at
            .is_some_and(|at| now.duration_since(at) < BAD_LOG_INTERVAL)
        {
            return;
        }
        warning!(
            "cluster: dropped {} bad message(s) from the room's channel (latest: {why})",
            self.bad_unlogged
        );
        self.bad_unlogged = 0;
        self.bad_logged_at = Some(now);
    }

    fn maybe_up(&mut self) {
        let publ_ready = self.publ.as_ref().is_some_and(|l| l.connected);
        if self.up || !self.subscribed || !publ_ready {
            return;
        }
        self.up = true;
        self.loss_logged = false;
        self.backoff = BACKOFF_START;
        self.attempt_deadline = None;
        info!(
            "cluster up: subscribed to {} at redis://{}",
            String::from_utf8_lossy(&self.channel),
            self.config.addr
        );
    }

    fn on_timers(&mut self, now: Instant) {
        if self.attempt_deadline.is_some_and(|t| now >= t) {
            self.fail("redis did not answer in time", now);
        }
        if self.up
            && let Err(why) = self.keep_alive(now)
        {
            self.fail(&why, now);
        }
        if self.retry_at.is_some_and(|t| now >= t) {
            self.connect(now);
        }
    }

    /// Once up: gives up on a connection whose reply is overdue, and pings
    /// one that has been quiet for `PING_INTERVAL` with nothing owed.
    fn keep_alive(&mut self, now: Instant) -> Result<(), String> {
        for (name, link) in [
            ("subscribing", &mut self.sub),
            ("publishing", &mut self.publ),
        ] {
            let Some(link) = link.as_mut().filter(|l| now >= l.deadline()) else {
                continue;
            };
            if link.owed > 0 {
                return Err(format!(
                    "redis did not answer within {}s on the {name} connection ({} bytes unsent)",
                    REPLY_TIMEOUT.as_secs(),
                    link.output.len()
                ));
            }
            link.send(&[b"PING"], now)
                .map_err(|e| format!("writing to redis failed: {e}"))?;
        }
        Ok(())
    }

    fn connect(&mut self, now: Instant) {
        self.retry_at = None;
        match (
            Link::connect(self.config.addr),
            Link::connect(self.config.addr),
        ) {
            (Ok(sub), Ok(publ)) => {
                self.sub = Some(sub);
                self.publ = Some(publ);
                self.attempt_deadline = Some(now + ATTEMPT_TIMEOUT);
            }
            (Err(e), _) | (_, Err(e)) => self.fail(&format!("could not connect: {e}"), now),
        }
    }

    /// Drops both connections and schedules the next attempt; the loss is
    /// logged once, however many attempts fail after it.
    fn fail(&mut self, why: &str, now: Instant) {
        for link in [self.sub.take(), self.publ.take()].into_iter().flatten() {
            link.abort();
        }
        self.subscribed = false;
        self.attempt_deadline = None;
        if !self.loss_logged {
            warning!(
                "cluster down: redis://{}: {why}; relaying among local clients only, reconnecting",
                self.config.addr
            );
            self.loss_logged = true;
        }
        self.up = false;
        self.retry_at = Some(now + self.backoff);
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }
}

impl Link {
    /// Starts a non-blocking connect; `EINPROGRESS` is the normal answer.
    fn connect(addr: SocketAddr) -> io::Result<Link> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_nonblocking(true)?;
        socket.set_cloexec(true)?;
        // One small PUBLISH per datagram: Nagle would hold it back for an
        // acknowledgement; failing to turn it off only costs latency.
        let _ = socket.set_tcp_nodelay(true);
        match socket.connect(&addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
        let now = Instant::now();
        Ok(Link {
            stream: socket.into(),
            connected: false,
            input: Vec::new(),
            output: Vec::new(),
            owed: 0,
            owed_since: now,
            heard_at: now,
        })
    }

    /// Closes with a reset rather than a FIN: the kernel then discards what
    /// is still unsent, instead of delivering stale PUBLISH commands for
    /// minutes to a Redis that comes back from a stall.
    fn abort(self) {
        let _ = SockRef::from(&self.stream).set_linger(Some(Duration::ZERO));
    }

    /// Queues one command, which Redis will owe a reply to, and sends what
    /// the socket takes now.
    fn send(&mut self, args: &[&[u8]], now: Instant) -> io::Result<()> {
        if self.owed == 0 {
            self.owed_since = now;
        }
        self.owed += 1;
        self.output.extend_from_slice(&resp::command(args));
        self.flush()
    }

    /// One command has been answered.
    fn answered(&mut self) {
        self.owed = self.owed.saturating_sub(1);
    }

    /// When this connection needs attention with nothing read: the
    /// deadline of the replies owed (counted from the later of the first
    /// unanswered command and the last sign of life, so a steady stream
    /// of answers keeps a busy connection alive), or the next `PING`.
    fn deadline(&self) -> Instant {
        if self.owed > 0 {
            self.owed_since.max(self.heard_at) + REPLY_TIMEOUT
        } else {
            self.heard_at + PING_INTERVAL
        }
    }

    /// Completes a pending connect and moves bytes both ways; true the
    /// moment the connection is established.
    fn progress(&mut self) -> Result<bool, String> {
        let mut just_connected = false;
        if !self.connected {
            if let Some(e) = SockRef::from(&self.stream)
                .take_error()
                .map_err(|e| e.to_string())?
            {
                return Err(format!("could not connect: {e}"));
            }
            // Writable without an error means the handshake is done; a
            // wake-up before that (none is expected) just waits again.
            if self.stream.peer_addr().is_err() {
                return Ok(false);
            }
            self.connected = true;
            just_connected = true;
        }
        self.read()?;
        self.flush()
            .map_err(|e| format!("writing to redis failed: {e}"))?;
        Ok(just_connected)
    }

    fn read(&mut self) -> Result<(), String> {
        let mut buf = [0u8; 16 * 1024];
        let mut total = 0;
        while total < READ_BUDGET {
            match self.stream.read(&mut buf) {
                Ok(0) => return Err("redis closed the connection".to_string()),
                Ok(n) => {
                    self.input.extend_from_slice(&buf[..n]);
                    total += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("reading from redis failed: {e}")),
            }
        }
        Ok(())
    }

    /// Every complete reply read so far, in order; any of them shows that
    /// Redis is alive at `now`.
    fn replies(&mut self, now: Instant) -> Result<Vec<Value>, String> {
        let mut values = Vec::new();
        let mut at = 0;
        while let Some((value, used)) = resp::parse(&self.input[at..])
            .map_err(|e| format!("redis sent something that is not RESP: {e}"))?
        {
            values.push(value);
            at += used;
        }
        self.input.drain(..at);
        if !values.is_empty() {
            self.heard_at = now;
        }
        Ok(values)
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.connected {
            return Ok(());
        }
        while !self.output.is_empty() {
            match self.stream.write(&self.output) {
                Ok(n) => {
                    self.output.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

fn pollfd(link: Option<&Link>) -> libc::pollfd {
    let Some(link) = link else {
        return libc::pollfd {
            fd: -1,
            events: 0,
            revents: 0,
        };
    };
    let mut events = libc::POLLIN;
    if !link.connected || !link.output.is_empty() {
        events |= libc::POLLOUT;
    }
    libc::pollfd {
        fd: link.stream.as_raw_fd(),
        events,
        revents: 0,
    }
}

/// A relay id unlikely to repeat across relays and restarts: std's
/// randomly keyed hasher over the pid and the time, so no new dependency.
fn random_id() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

/// `redis://HOST:PORT[/DB]` as an address and a database number. A host
/// name is resolved here, once, at start-up: the loop itself never
/// resolves (a DNS lookup would block it).
pub fn parse_redis_url(url: &str) -> Result<(SocketAddr, u32), String> {
    let rest = url
        .strip_prefix("redis://")
        .ok_or("expected redis://HOST:PORT[/DB]")?;
    let (hostport, db) = match rest.split_once('/') {
        Some((hostport, "")) => (hostport, 0),
        Some((hostport, db)) => (
            hostport,
            db.parse()
                .map_err(|_| format!("{db:?} is not a database number"))?,
        ),
        None => (rest, 0),
    };
    if hostport
        .rsplit_once(':')
        .is_none_or(|(_, port)| port.is_empty())
    {
        return Err("expected redis://HOST:PORT[/DB], with the port".to_string());
    }
    let addr = std::net::ToSocketAddrs::to_socket_addrs(hostport)
        .map_err(|e| format!("could not resolve {hostport}: {e}"))?
        .next()
        .ok_or_else(|| format!("{hostport} has no address"))?;
    Ok((addr, db))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_urls_name_an_address_and_a_database() {
        let (addr, db) = parse_redis_url("redis://127.0.0.1:6379").unwrap();
        assert_eq!((addr.to_string().as_str(), db), ("127.0.0.1:6379", 0));
        let (addr, db) = parse_redis_url("redis://[::1]:7000/3").unwrap();
        assert_eq!((addr.to_string().as_str(), db), ("[::1]:7000", 3));
        assert!(parse_redis_url("http://127.0.0.1:1").is_err());
        assert!(parse_redis_url("redis://127.0.0.1").is_err());
        assert!(parse_redis_url("redis://127.0.0.1:1/x").is_err());
    }

    #[test]
    fn a_link_is_pinged_when_quiet_and_given_up_when_a_reply_is_overdue() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut link = Link::connect(listener.local_addr().unwrap()).unwrap();
        let t0 = link.heard_at;
        assert_eq!(link.deadline(), t0 + PING_INTERVAL);
        // A command owed long after the last sign of life gets its own 3 s.
        let later = t0 + Duration::from_secs(60);
        link.send(&[b"PING"], later).unwrap();
        assert_eq!(link.deadline(), later + REPLY_TIMEOUT);
        // A second command does not restart the clock; an answer does.
        link.send(&[b"PING"], later + Duration::from_secs(1))
            .unwrap();
        assert_eq!(link.deadline(), later + REPLY_TIMEOUT);
        let answered_at = later + Duration::from_secs(2);
        link.heard_at = answered_at;
        link.answered();
        assert_eq!(link.deadline(), answered_at + REPLY_TIMEOUT);
        link.answered();
        assert_eq!(link.deadline(), answered_at + PING_INTERVAL);
    }
}
