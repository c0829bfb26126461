//! The relay: `mpecho chat-server`.
//!
//! One non-blocking UDP socket and one `ppoll` loop (a single descriptor
//! needs no epoll set). As in the echo master, signal handlers only set
//! flags, and every datagram, announcement and expiry is handled in the
//! loop. Every datagram from a known client is
//! relayed, tagged, to every *other* known client as one datagram; nothing
//! is ever sent back to its sender, truncated, or relayed from an address
//! that looks like a reflection attack. A service manager hears `READY=1`,
//! `RELOADING=1` around SIGHUP, `STOPPING=1` and the watchdog's keep-alive,
//! as from the echo master.
//!
//! With `--redis`, the two Redis connections of `cluster.rs` join the same
//! `ppoll`: what a local client sends is also published to the room once
//! (after the reflection guard and the oversize rule), and what other
//! relays publish is sent to every local client. The loop never waits for
//! Redis; without it, local relaying goes on as before.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::cli::ChatServerArgs;
use crate::log::{self, OpenLogError, Sink, debug, info, warning};
use crate::net::{self, display_addr};
use crate::signals::Signals;
use crate::sys;
use crate::systemd::Notifier;

use super::cluster::{Cluster, ClusterConfig};
use super::roster::Roster;
use super::wire::Kind;
use super::{JOINED, LEFT, MAX_DATAGRAM, SERVER_FULL, is_end, sender_tag};

/// Datagrams handled per wake-up at most, so a flood cannot starve signals
/// and idle expiry.
const RECEIVE_BATCH: usize = 64;

/// A newcomer turned away gets at most one `server full` per this interval:
/// the reply must not become an amplifier for a spoofed flood.
const FULL_REPLY_INTERVAL: Duration = Duration::from_secs(1);

/// Addresses remembered for the `server full` rate limit before old entries
/// are pruned, so a flood from many addresses cannot grow memory for good.
const FULL_REPLY_MEMORY: usize = 4096;

/// Large enough for any UDP payload, so a datagram is never silently cut.
const RECEIVE_BUFFER: usize = 65_536;

/// SIGHUP reopens the log (logrotate), never stops the relay.
const HANDLED: [libc::c_int; 4] = [libc::SIGTERM, libc::SIGINT, libc::SIGUSR1, libc::SIGHUP];

#[derive(Debug, Clone)]
pub struct Config {
    pub max_clients: usize,
    /// `None`: clients are never expired.
    pub idle_timeout: Option<Duration>,
    /// `None`: a relay on its own.
    pub cluster: Option<ClusterConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum ChatServerError {
    #[error("could not listen on {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: String },
    #[error(transparent)]
    LogFile(#[from] OpenLogError),
    #[error("could not set up the socket: {0}")]
    Socket(io::Error),
    #[error("could not install signal handlers: {0}")]
    Signals(io::Error),
    #[error("could not write the `listening on` line to standard output: {0}")]
    Announce(io::Error),
    #[error("waiting for datagrams failed: {0}")]
    Wait(io::Error),
}

/// Entry point for `mpecho chat-server`.
pub fn main(args: ChatServerArgs) -> ExitCode {
    match serve(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mpecho chat-server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ChatServerArgs) -> Result<(), ChatServerError> {
    let sink = Sink::for_option(args.log_file.as_deref())?;
    let socket = UdpSocket::bind(args.listen).map_err(|e| ChatServerError::Bind {
        addr: args.listen,
        reason: net::explain_bind_error(&e, "--listen"),
    })?;
    log::init(sink, args.log_level, "chat-server");
    let config = Config {
        max_clients: args.max_clients as usize,
        idle_timeout: args.idle_timeout.duration(),
        cluster: args.redis.map(|url| ClusterConfig {
            addr: url.addr,
            db: url.db,
            room: args.room,
        }),
    };
    run(socket, config, Notifier::from_env(Instant::now()))
}

/// Relays on an already-bound socket until SIGTERM or SIGINT, telling
/// `notifier` (a service manager, or `Notifier::disabled()`) how it goes.
pub fn run(
    socket: UdpSocket,
    config: Config,
    mut notifier: Notifier,
) -> Result<(), ChatServerError> {
    socket
        .set_nonblocking(true)
        .map_err(ChatServerError::Socket)?;
    let signals = Signals::install(&HANDLED).map_err(ChatServerError::Signals)?;
    let addr = socket.local_addr().map_err(ChatServerError::Socket)?;
    let mut relay = Relay::new(socket, config, Instant::now());
    info!(
        "started: listening on {addr}, max_clients={} idle_timeout={}",
        relay.config.max_clients,
        relay
            .config
            .idle_timeout
            .map_or_else(|| "off".to_string(), |t| format!("{}s", t.as_secs()))
    );
    net::announce_listening(addr).map_err(ChatServerError::Announce)?;
    notifier.ready(format_args!("listening on {addr}"));

    let mut buf = vec![0u8; RECEIVE_BUFFER];
    loop {
        let now = Instant::now();
        let timeout = [
            relay.next_expiry(),
            notifier.next_watchdog(),
            relay.cluster.as_ref().and_then(Cluster::next_deadline),
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|t| t.saturating_duration_since(now));
        let mut fds = relay.pollfds();
        signals
            .wait(&mut fds, timeout)
            .map_err(ChatServerError::Wait)?;
        if let Some(sig) = [libc::SIGTERM, libc::SIGINT]
            .into_iter()
            .find(|&sig| signals.take(sig))
        {
            info!("shutting down ({} received)", sys::signal_name(sig));
            notifier.stopping(format_args!("shutting down ({})", sys::signal_name(sig)));
            break;
        }
        if signals.take(libc::SIGHUP) {
            notifier.reloading();
            log::reopen_on_sighup();
            notifier.ready(format_args!("listening on {addr}"));
        }
        if signals.take(libc::SIGUSR1) {
            info!("figures {}", relay.figures());
        }
        if fds[0].revents != 0 {
            relay.receive_batch(&mut buf);
        }
        let now = Instant::now();
        relay.serve_cluster([fds[1].revents, fds[2].revents], now);
        relay.expire_idle(now);
        notifier.on_tick(now);
    }
    info!("final figures {}", relay.figures());
    info!("exiting");
    Ok(())
}

#[derive(Debug, Default)]
struct Counters {
    datagrams_in: u64,
    datagrams_out: u64,
    bytes_in: u64,
    /// Datagrams not relayed: reflection guard, list full, too large.
    drops: u64,
}

struct Relay {
    socket: UdpSocket,
    config: Config,
    roster: Roster,
    counters: Counters,
    /// When each turned-away address last got a `server full` reply.
    full_replies: HashMap<SocketAddr, Instant>,
    cluster: Option<Cluster>,
}

impl Relay {
    fn new(socket: UdpSocket, config: Config, now: Instant) -> Relay {
        Relay {
            socket,
            cluster: config.cluster.clone().map(|c| Cluster::new(c, now)),
            roster: Roster::new(config.max_clients),
            config,
            counters: Counters::default(),
            full_replies: HashMap::new(),
        }
    }

    fn figures(&self) -> String {
        let c = &self.counters;
        format!(
            "clients={} datagrams_in={} datagrams_out={} bytes_in={} drops={} log_write_errors={}",
            self.roster.len(),
            c.datagrams_in,
            c.datagrams_out,
            c.bytes_in,
            c.drops,
            log::write_errors()
        ) + &self
            .cluster
            .as_ref()
            .map_or_else(String::new, |c| format!(" {}", c.figures()))
    }

    /// The relay's socket first, then the cluster's two connections (fd -1,
    /// which poll ignores, when there are none).
    fn pollfds(&self) -> [libc::pollfd; 3] {
        let [sub, publ] = self.cluster.as_ref().map_or(
            [libc::pollfd {
                fd: -1,
                events: 0,
                revents: 0,
            }; 2],
            Cluster::pollfds,
        );
        let own = libc::pollfd {
            fd: self.socket.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        [own, sub, publ]
    }

    /// Lets the cluster move its connections on, and sends what other
    /// relays published to every local client (none of them sent it).
    fn serve_cluster(&mut self, revents: [libc::c_short; 2], now: Instant) {
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        let incoming = cluster.on_wake(revents, now);
        let everyone: Vec<SocketAddr> = self.roster.others(UNSPECIFIED).collect();
        for message in incoming {
            for &to in &everyone {
                self.send(&message.datagram, to);
            }
        }
    }

    fn next_expiry(&self) -> Option<Instant> {
        self.config
            .idle_timeout
            .and_then(|idle| self.roster.next_expiry(idle))
    }

    fn receive_batch(&mut self, buf: &mut [u8]) {
        for _ in 0..RECEIVE_BATCH {
            match self.socket.recv_from(buf) {
                Ok((n, from)) => self.on_datagram(&buf[..n], from, Instant::now()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // An unconnected UDP socket reports no ICMP errors, so what
                // remains is transient (ENOMEM): say it and wait for the next
                // wake-up instead of spinning.
                Err(e) => {
                    warning!("receiving a datagram failed: {e}");
                    return;
                }
            }
        }
    }

    fn on_datagram(&mut self, data: &[u8], from: SocketAddr, now: Instant) {
        self.counters.datagrams_in += 1;
        self.counters.bytes_in += data.len() as u64;
        if let Some(why) = reflection_risk(from) {
            self.counters.drops += 1;
            debug!("dropped datagram from {}: {why}", display_addr(from));
            return;
        }
        if self.roster.contains(from) {
            if is_end(data) {
                self.roster.remove(from);
                info!(
                    "left peer={} clients={}",
                    display_addr(from),
                    self.roster.len()
                );
                self.announce(from, Kind::Left);
                return;
            }
            self.roster.touch(from, now);
            if !data.is_empty() {
                self.relay(from, data, Kind::Message);
            }
            return;
        }
        if is_end(data) {
            return;
        }
        if self.roster.is_full() {
            self.counters.drops += 1;
            self.turn_away(from, now);
            return;
        }
        self.roster.add(from, now);
        info!(
            "joined peer={} clients={}",
            display_addr(from),
            self.roster.len()
        );
        self.announce(from, Kind::Joined);
        if !data.is_empty() {
            self.relay(from, data, Kind::Message);
        }
    }

    /// Tells a newcomer the list is full, at most once per second per
    /// address (and logs it as often).
    fn turn_away(&mut self, from: SocketAddr, now: Instant) {
        if self
            .full_replies
            .get(&from)
            .is_some_and(|&last| now.duration_since(last) < FULL_REPLY_INTERVAL)
        {
            return;
        }
        if self.full_replies.len() >= FULL_REPLY_MEMORY {
            self.full_replies
                .retain(|_, &mut last| now.duration_since(last) < FULL_REPLY_INTERVAL);
        }
        self.full_replies.insert(from, now);
        warning!(
            "server full: dropped datagram from {} ({} clients, max_clients={})",
            display_addr(from),
            self.roster.len(),
            self.config.max_clients
        );
        self.send(SERVER_FULL, from);
    }

    fn announce(&mut self, about: SocketAddr, kind: Kind) {
        let what = if kind == Kind::Joined { JOINED } else { LEFT };
        self.relay(about, what, kind);
    }

    /// Sends `tag(sender) + data` as one datagram to every other client,
    /// and publishes it once to the room (an announcement as its kind
    /// alone) when relays share one.
    fn relay(&mut self, sender: SocketAddr, data: &[u8], kind: Kind) {
        let tag = sender_tag(sender);
        if tag.len() + data.len() > MAX_DATAGRAM {
            self.counters.drops += 1;
            warning!(
                "dropped a {}-byte datagram from {}: too large to relay once tagged (max {MAX_DATAGRAM})",
                data.len(),
                display_addr(sender)
            );
            return;
        }
        let mut tagged = Vec::with_capacity(tag.len() + data.len());
        tagged.extend_from_slice(tag.as_bytes());
        tagged.extend_from_slice(data);
        let others: Vec<SocketAddr> = self.roster.others(sender).collect();
        for to in others {
            self.send(&tagged, to);
        }
        if let Some(cluster) = self.cluster.as_mut() {
            let payload = if kind == Kind::Message { data } else { b"" };
            cluster.publish(kind, tag.as_bytes(), payload);
        }
    }

    fn send(&mut self, datagram: &[u8], to: SocketAddr) {
        match self.socket.send_to(datagram, to) {
            Ok(_) => self.counters.datagrams_out += 1,
            Err(e) => {
                self.counters.drops += 1;
                debug!("could not send to {}: {e}", display_addr(to));
            }
        }
    }

    fn expire_idle(&mut self, now: Instant) {
        let Some(idle) = self.config.idle_timeout else {
            return;
        };
        for gone in self.roster.expire(now, idle) {
            info!(
                "expired peer={} after {}s of silence clients={}",
                display_addr(gone),
                idle.as_secs(),
                self.roster.len()
            );
            self.announce(gone, Kind::Left);
        }
    }
}

/// No client has this address (the reflection guard refuses port 0), so
/// `others(UNSPECIFIED)` is every known client.
const UNSPECIFIED: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::UNSPECIFIED,
    0,
));

/// Why a datagram from `from` must not be answered or relayed: a reply to a
/// privileged or unspecified port, or to a broadcast or multicast address,
/// is how UDP services get used to reflect floods at third parties.
fn reflection_risk(from: SocketAddr) -> Option<&'static str> {
    let from = display_addr(from);
    if from.port() == 0 {
        return Some("source port 0");
    }
    if from.port() < 1024 {
        return Some("privileged source port");
    }
    match from.ip() {
        ip if ip.is_unspecified() => Some("unspecified source address"),
        ip if ip.is_multicast() => Some("multicast source address"),
        IpAddr::V4(v4) if v4.is_broadcast() => Some("broadcast source address"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflection_guard_refuses_dangerous_sources() {
        let risky = [
            "127.0.0.1:0",
            "127.0.0.1:53",
            "0.0.0.0:5000",
            "255.255.255.255:5000",
            "224.0.0.1:5000",
            "[ff02::1]:5000",
            "[::ffff:127.0.0.1]:19",
        ];
        for addr in risky {
            assert!(reflection_risk(addr.parse().unwrap()).is_some(), "{addr}");
        }
        for addr in ["127.0.0.1:1024", "[::1]:40000", "[::ffff:10.0.0.1]:5000"] {
            assert!(reflection_risk(addr.parse().unwrap()).is_none(), "{addr}");
        }
    }
}
