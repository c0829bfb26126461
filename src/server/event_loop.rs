//! The master's single-threaded event loop: wait, then act on what woke us.
//!
//! One `epoll_pwait` waits for the listener, a worker's pidfd (readable when
//! it exits), a handled signal, or the next timer (monitor tick, end of an
//! accept pause, warning summaries, end of the grace period). After each
//! wake-up the loop reaps first (so the worker count is exact), then handles
//! shutdown and report requests, then accepts a bounded batch. Every
//! decision about workers is taken here, in order, never in a handler.
//!
//! Why pidfds in epoll rather than `waitpid(-1)` on SIGCHLD: `waitpid(-1)`
//! scans every child in the kernel, so with 5,000 workers held each reap
//! cost about 70 µs and a connection through a fresh worker 1.4 times as
//! much as with none; `waitid(P_PIDFD)` looks at the one child that ended.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant;

use crate::log::{self, Level, debug, info};
use crate::net::{self, display_addr};
use crate::signals::Signals;
use crate::sys::{self, Epoll, EpollEvent, pid_t};

use super::accept::{ACCEPT_BATCH, Accept, Acceptor, BACKOFF};
use super::monitor::{Counters, Figures, Schedule};
use super::reap::{reap_children, reap_worker};
use super::shutdown::{Draining, begin_shutdown};
use super::spawn::Spawner;
use super::throttle::{Kind, Throttle};
use super::workers::{Worker, Workers};
use super::{Config, OnFull, ServeError};

/// Signals the master handles; all of them are reset to their defaults in
/// workers, together with SIGPIPE, which the Rust runtime ignores.
const HANDLED: [libc::c_int; 4] = [libc::SIGCHLD, libc::SIGTERM, libc::SIGINT, libc::SIGUSR1];

/// Pidfds are kept at or above this number (or a quarter of the
/// descriptor limit, if that is lower), clear of the low descriptors
/// (listener, log, the client being handed over): `spawn` copies only the
/// descriptors below the highest one the child needs, so a master holding
/// ten thousand pidfds spawns as cheaply as an idle one (measured: 0.80 ms
/// per connection with 10,000 held, 0.84 ms with none).
const PIDFD_BASE: i32 = 1024;

/// The listener's token in epoll; workers are registered by pid.
const LISTENER: u64 = u64::MAX;

/// Readiness events taken per wake-up.
const EVENTS_PER_WAKE: usize = 256;

pub struct Master {
    config: Config,
    signals: Signals,
    epoll: Epoll,
    /// Whether the listener is registered in `epoll` right now.
    listener_registered: bool,
    events: Vec<EpollEvent>,
    /// Where pidfds are placed (see PIDFD_BASE).
    pidfd_base: i32,
    /// `None` once shutdown began: closing it is what refuses new clients.
    acceptor: Option<Acceptor>,
    spawner: Spawner,
    workers: Workers,
    counters: Counters,
    monitor: Schedule,
    /// Accepting resumes at this time after a failure worth backing off from.
    paused_until: Option<Instant>,
    /// `--on-full defer` and at the limit: the listener is not watched, so
    /// new clients wait in the kernel's backlog until a worker exits.
    deferring: bool,
    throttle: Throttle,
    draining: Option<Draining>,
    started: Instant,
}

impl Master {
    /// Installs signal handling, prepares spawning and announces readiness
    /// (`listening on ADDR` on stdout) once nothing can fail any more.
    pub fn boot(listener: TcpListener, config: Config) -> Result<Master, ServeError> {
        let signals = Signals::install(&HANDLED).map_err(ServeError::Signals)?;
        let epoll = Epoll::new().map_err(ServeError::Epoll)?;
        let log_fd = log::logger().and_then(|l| l.sink().file_fd());
        let mut reset = HANDLED.to_vec();
        reset.push(libc::SIGPIPE);
        let spawner = Spawner::new(log_fd, &config.worker, reset).map_err(ServeError::Spawner)?;
        let acceptor = Acceptor::new(listener);
        let addr = acceptor.local_addr().map_err(ServeError::LocalAddr)?;
        let now = Instant::now();
        let master = Master {
            monitor: Schedule::new(config.monitor_interval, now),
            workers: Workers::with_capacity(config.max_workers.min(65_536)),
            config,
            signals,
            epoll,
            listener_registered: false,
            events: vec![EpollEvent { events: 0, u64: 0 }; EVENTS_PER_WAKE],
            pidfd_base: pidfd_base(),
            acceptor: Some(acceptor),
            spawner,
            counters: Counters::default(),
            paused_until: None,
            deferring: false,
            throttle: Throttle::default(),
            draining: None,
            started: now,
        };
        info!(
            "started: listening on {addr}, max_workers={} max_per_ip={} on_full={} idle_timeout={}s grace={}s",
            master.config.max_workers,
            master.config.max_per_ip,
            master.config.on_full.name(),
            master.config.worker.idle_timeout.as_secs(),
            master.config.grace.as_secs_f64()
        );
        net::announce_listening(addr).map_err(ServeError::Announce)?;
        Ok(master)
    }

    /// Runs until shutdown has completed: every worker reaped.
    pub fn run(mut self) -> Result<(), ServeError> {
        loop {
            let now = Instant::now();
            if self.draining.is_some() && self.workers.is_empty() {
                break;
            }
            let listening = self.listener_watched(now);
            self.watch_listener(listening)?;
            let timeout = self
                .next_deadline()
                .map(|d| d.saturating_duration_since(now));
            let mut events = std::mem::take(&mut self.events);
            let ready = self
                .signals
                .wait_epoll(&self.epoll, &mut events, timeout)
                .map_err(ServeError::Wait)?;
            let mut listener_ready = false;
            for event in &events[..ready] {
                match event.u64 {
                    LISTENER => listener_ready = true,
                    pid => reap_worker(pid as pid_t, &mut self.workers, &mut self.counters),
                }
            }
            self.events = events;

            self.handle_signals();
            if listener_ready && self.listener_registered && self.acceptor.is_some() {
                self.accept_batch();
            }
            self.on_timers(Instant::now());
        }
        self.throttle.flush_all();
        info!("final figures {}", self.figures());
        info!("exiting: all workers reaped");
        Ok(())
    }

    /// Registers or unregisters the listener so that epoll reports it only
    /// while we want to accept (it is level-triggered: a listener left
    /// registered during a pause would wake the loop in a spin).
    fn watch_listener(&mut self, wanted: bool) -> Result<(), ServeError> {
        let Some(acceptor) = &self.acceptor else {
            // Closing the listener removed it from epoll.
            self.listener_registered = false;
            return Ok(());
        };
        if wanted != self.listener_registered {
            if wanted {
                self.epoll.add(acceptor.fd(), LISTENER)
            } else {
                self.epoll.delete(acceptor.fd())
            }
            .map_err(ServeError::Epoll)?;
            self.listener_registered = wanted;
        }
        Ok(())
    }

    fn listener_watched(&mut self, now: Instant) -> bool {
        if self.paused_until.is_some_and(|until| now >= until) {
            self.paused_until = None;
        }
        self.update_deferral(now);
        self.acceptor.is_some() && self.paused_until.is_none() && !self.deferring
    }

    /// In `defer` mode, stops watching the listener while at the limit (new
    /// clients wait in the backlog, the tcpserver behaviour) and resumes as
    /// soon as a worker has exited.
    fn update_deferral(&mut self, now: Instant) {
        let at_limit = self.config.on_full == OnFull::Defer
            && self.acceptor.is_some()
            && self.workers.len() >= self.config.max_workers;
        if at_limit && !self.deferring {
            self.counters.deferred += 1;
            self.throttle.log(
                Kind::Deferral,
                Level::Warn,
                now,
                format_args!(
                    "worker limit reached ({} active, max_workers={}): new connections wait in the backlog",
                    self.workers.len(),
                    self.config.max_workers
                ),
            );
        }
        self.deferring = at_limit;
    }

    fn next_deadline(&self) -> Option<Instant> {
        [
            self.monitor.next(),
            self.paused_until,
            self.throttle.next_flush(),
            self.draining.as_ref().and_then(Draining::deadline),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn handle_signals(&mut self) {
        // Workers with a pidfd are reaped through epoll; SIGCHLD matters
        // only for those without one (pidfd_open failed, e.g. EMFILE).
        if self.signals.take(libc::SIGCHLD) && self.workers.without_pidfd() > 0 {
            reap_children(&mut self.workers, &mut self.counters);
        }
        for sig in [libc::SIGTERM, libc::SIGINT] {
            if self.signals.take(sig) {
                self.on_stop_signal(&sys::signal_name(sig));
            }
        }
        if self.signals.take(libc::SIGUSR1) {
            info!("figures {}", self.figures());
        }
    }

    fn on_stop_signal(&mut self, name: &str) {
        match &mut self.draining {
            Some(draining) => {
                draining.escalate(&self.workers, &format!("second stop signal ({name})"))
            }
            None => {
                // Dropping the acceptor closes the listener: from now on the
                // kernel refuses new connections, including any still
                // waiting in the backlog.
                self.acceptor = None;
                self.paused_until = None;
                self.deferring = false;
                self.draining = Some(begin_shutdown(
                    &self.workers,
                    &format!("{name} received"),
                    self.config.grace,
                ));
            }
        }
    }

    fn on_timers(&mut self, now: Instant) {
        self.throttle.flush(now);
        if self.monitor.is_due(now) {
            info!("figures {}", self.figures());
        }
        if let Some(draining) = &mut self.draining {
            draining.on_tick(now, &self.workers);
        }
    }

    fn accept_batch(&mut self) {
        for _ in 0..ACCEPT_BATCH {
            if self.config.on_full == OnFull::Defer && self.workers.len() >= self.config.max_workers
            {
                return;
            }
            let Some(acceptor) = self.acceptor.as_mut() else {
                return;
            };
            let now = Instant::now();
            match acceptor.accept() {
                Accept::Client(stream, peer) => self.admit(stream, display_addr(peer), now),
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
                    self.counters.accept_errors += 1;
                    let what = if shed {
                        "closed one waiting connection"
                    } else {
                        "could not close the waiting connection"
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

    /// Hands a new connection to a worker, or turns it away at a limit.
    /// Either way the master's copy of the socket is closed on return.
    fn admit(&mut self, client: TcpStream, peer: SocketAddr, now: Instant) {
        if self.workers.len() >= self.config.max_workers {
            self.counters.rejected_full += 1;
            self.throttle.log(
                Kind::RejectedFull,
                Level::Warn,
                now,
                format_args!(
                    "rejected peer={peer}: worker limit reached ({} active, max_workers={})",
                    self.workers.len(),
                    self.config.max_workers
                ),
            );
            return;
        }
        let from_peer = self.workers.count_from(peer.ip());
        if self.config.max_per_ip > 0 && from_peer >= self.config.max_per_ip {
            self.counters.rejected_per_ip += 1;
            self.throttle.log(
                Kind::RejectedPerIp,
                Level::Warn,
                now,
                format_args!(
                    "rejected peer={peer}: per-IP limit reached ({from_peer} active from {}, max_per_ip={})",
                    peer.ip(),
                    self.config.max_per_ip
                ),
            );
            return;
        }
        match self.spawner.spawn_worker(&client, peer) {
            Ok(pid) => {
                let pidfd = self.watch_worker(pid);
                self.workers.insert(
                    pid,
                    Worker {
                        peer,
                        started: now,
                        pidfd,
                    },
                );
                self.counters.accepted += 1;
                info!(
                    "accept peer={peer} worker={pid} active={}",
                    self.workers.len()
                );
            }
            Err(e) => {
                self.counters.spawn_failures += 1;
                self.throttle.log(
                    Kind::SpawnFailure,
                    Level::Error,
                    now,
                    format_args!(
                        "could not start a worker for peer={peer}: {e}; connection closed"
                    ),
                );
                if is_resource_shortage(&e) {
                    self.pause_accepting();
                }
            }
        }
    }

    /// A pidfd for a new worker, kept high and registered in epoll, or
    /// `None` (the worker is then reaped by the SIGCHLD scan and signalled
    /// by pid, which is safe: its pid stays ours until we reap it).
    fn watch_worker(&self, pid: pid_t) -> Option<OwnedFd> {
        let pidfd = sys::pidfd_open(pid)
            .and_then(|fd| sys::dup_at_least(fd.as_fd(), self.pidfd_base))
            .and_then(|fd| self.epoll.add(fd.as_fd(), pid as u64).map(|()| fd));
        match pidfd {
            Ok(fd) => Some(fd),
            Err(e) => {
                debug!("no pidfd for worker {pid} ({e}); reaping and signalling it by pid");
                None
            }
        }
    }

    fn pause_accepting(&mut self) {
        self.paused_until = Some(Instant::now() + BACKOFF);
    }

    fn figures(&self) -> Figures<'_> {
        Figures {
            counters: &self.counters,
            active: self.workers.len(),
            peak: self.workers.peak(),
            uptime: self.started.elapsed(),
        }
    }
}

fn pidfd_base() -> i32 {
    let soft = sys::get_limit(sys::Resource::OpenFiles).map_or(0, |l| l.soft);
    (soft / 4).clamp(8, PIDFD_BASE as u64) as i32
}

/// EAGAIN from process creation (RLIMIT_NPROC, pid or thread limits) and
/// ENOMEM: retrying at once would fail the same way.
fn is_resource_shortage(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EAGAIN | libc::ENOMEM | libc::EMFILE | libc::ENFILE)
    )
}
