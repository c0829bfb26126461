//! The master's single-threaded event loop: wait, then act on what woke us.
//!
//! One `epoll_pwait` waits for the listener, a worker's pidfd (readable when
//! it exits), a pool process's report (`--model prefork`, `pool/`), the
//! iterative model's session, the metrics endpoint's sockets
//! (`--metrics`), connections waiting for their PROXY header
//! (`--proxy-protocol`, `pending.rs`), a handled signal, or the next timer
//! (monitor tick, end of an accept pause, warning summaries, end of the
//! grace period, a scrape's or a PROXY header's deadline, an `--exec`
//! program's idle check, the pool's next retirement or fork retry). Each
//! turn starts by keeping the pool's spares (`maintain_pool`). After each
//! wake-up the loop reaps first (so the worker count is exact), then handles
//! shutdown, reload, report and upgrade requests, then accepts a bounded batch
//! (`accept.rs`), then serves scrapes (`metrics/`), then runs the timers.
//! Every decision about workers is taken here, in order, never in a signal
//! handler. The service manager hears about the rare events (ready,
//! figures, reload, stopping, the watchdog's keep-alive) through
//! `notifier`, one call each.
//!
//! Why pidfds in epoll rather than `waitpid(-1)` on SIGCHLD: `waitpid(-1)`
//! scans every child in the kernel, so with 5,000 workers held each reap
//! cost about 70 µs and a connection through a fresh worker 1.4 times as
//! much as with none; `waitid(P_PIDFD)` looks at the one child that ended.

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use crate::cli::Model;
use crate::log::{self, Level, error, info};
use crate::net;
use crate::rules::Rules;
use crate::signals::Signals;
use crate::sys::{self, Epoll, EpollEvent, pid_t};
use crate::systemd::Notifier;

use super::accept::{Acceptor, BACKOFF};
use super::config::Config;
use super::error::ServeError;
use super::fork::Forker;
use super::idle::IdleWatch;
use super::iterative::{SESSION, Session};
use super::listener::{Listener, State};
use super::metrics::{self, Endpoint};
use super::monitor::{Counters, ProcessFigures, Schedule, Snapshot};
use super::pending::{self, Pending};
use super::pool::{Pool, control_owner};
use super::rates::Rates;
use super::shutdown::{Draining, begin_shutdown};
use super::spawn::{Spawner, Starter, pidfd_base};
use super::throttle::{Kind, Throttle};
use super::workers::Workers;

/// Signals the master handles; all of them are reset to their defaults in
/// workers, together with SIGPIPE, which `main` ignores. SIGHUP (logrotate,
/// a closed terminal, `systemctl reload`) reloads and never stops the master;
/// SIGUSR2 upgrades it in place (`upgrade.rs`).
pub(super) const HANDLED: [libc::c_int; 6] = [
    libc::SIGCHLD,
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGUSR1,
    libc::SIGHUP,
    libc::SIGUSR2,
];

/// The listener's token in epoll; workers are registered by pid, the
/// metrics endpoint's sockets just below this (`metrics::owns`).
const LISTENER: u64 = u64::MAX;

/// Room in the workers table at start.
const INITIAL_WORKERS: usize = 256;

/// Readiness events taken per wake-up.
const EVENTS_PER_WAKE: usize = 256;

/// The master's whole state. Its fields are shared with the modules that
/// implement the loop's steps (`accept.rs`, `spawn.rs`), and with no one else.
pub struct Master {
    pub(super) config: Config,
    signals: Signals,
    pub(super) epoll: Epoll,
    events: Vec<EpollEvent>,
    pub(super) listener: Listener,
    /// Starts workers (`--model exec` or `fork`); `None` in the other
    /// models.
    pub(super) starter: Option<Starter>,
    /// The pool of processes that serve one client after another
    /// (`--model prefork`).
    pub(super) pool: Option<Pool>,
    /// Where workers' pidfds are placed (`spawn::PIDFD_BASE`).
    pub(super) pidfd_base: i32,
    /// The client the master serves itself (`--model iterative`).
    pub(super) session: Option<Session>,
    /// Connections waiting for their PROXY header (`--proxy-protocol`).
    pub(super) pending: Option<Pending>,
    /// 1 once the iterative model has served a client (its `peak`).
    pub(super) session_peak: usize,
    pub(super) workers: Workers,
    /// The access rules in force (`--rules`; none: everyone is allowed).
    pub(super) rules: Rules,
    /// Every address's connection rate (`--max-rate-per-ip`).
    pub(super) rates: Rates,
    /// The idle timeout of `--exec` programs (`None`: no program, or no
    /// timeout).
    pub(super) idle_watch: Option<IdleWatch>,
    pub(super) counters: Counters,
    monitor: Schedule,
    pub(super) throttle: Throttle,
    /// The `--metrics` endpoint, if asked for. It stays open while draining
    /// (a scrape then shows the workers leaving), and is closed when the
    /// loop ends, as soon as the last worker is reaped.
    pub(super) metrics: Option<Endpoint>,
    pub(super) draining: Option<Draining>,
    pub(super) started: Instant,
    pub(super) started_at: SystemTime,
    pub(super) notifier: Notifier,
    /// The executable this master was started from, resolved once at the
    /// first boot and handed on by every upgrade: what SIGUSR2 execs
    /// (`None`: /proc/self/exe could not be read, upgrades are refused).
    pub(super) exe: Option<PathBuf>,
}

impl Master {
    /// Installs signal handling, prepares spawning, starts watching the
    /// listener (and the metrics one, if given) and announces readiness
    /// (`listening on ADDR` on stdout, then `READY=1` to the service
    /// manager) once nothing can fail any more.
    pub fn boot(
        listener: TcpListener,
        metrics: Option<TcpListener>,
        config: Config,
        notifier: Notifier,
    ) -> Result<Master, ServeError> {
        let mut master = Master::assemble(listener, metrics, config, notifier)?;
        // Resolved now, once: a later upgrade execs this path even after
        // the file there has been replaced (then /proc/self/exe says
        // `(deleted)`).
        master.exe = std::fs::read_link("/proc/self/exe").ok();
        let addr = master.listener_addr()?;
        let metrics_addr = match &mut master.metrics {
            Some(endpoint) => Some(endpoint.local_addr().map_err(ServeError::LocalAddr)?),
            None => None,
        };
        let admission = &master.config.admission;
        info!(
            "started: listening on {addr}, model={} max_workers={} max_per_ip={} on_full={} idle_timeout={}s grace={}s",
            master.config.model.name(),
            admission.max_workers,
            admission.max_per_ip,
            admission.on_full.name(),
            master.config.worker.idle_timeout,
            master.config.grace.as_secs_f64()
        );
        if let Some(addr) = metrics_addr {
            info!("metrics on {addr}");
        }
        if let Some(proxy) = &master.config.proxy {
            let trusted: Vec<String> = proxy.trusted.iter().map(ToString::to_string).collect();
            info!(
                "PROXY protocol: a header is required, from {} only, within {}s",
                trusted.join(" "),
                proxy.timeout.as_secs()
            );
        }
        net::announce_listening(addr).map_err(ServeError::Announce)?;
        master.notifier.ready(format_args!("listening on {addr}"));
        Ok(master)
    }

    /// The listening socket's address.
    fn listener_addr(&self) -> Result<std::net::SocketAddr, ServeError> {
        self.listener
            .local_addr()
            .ok_or_else(|| ServeError::LocalAddr(std::io::Error::other("the listener is closed")))?
            .map_err(ServeError::LocalAddr)
    }

    /// The master with its signal handling, spawner and listeners set up,
    /// before it says anything: shared by a boot and an upgrade's new
    /// image (`upgrade.rs`), which then fills in what it was handed.
    pub(super) fn assemble(
        listener: TcpListener,
        metrics: Option<TcpListener>,
        config: Config,
        notifier: Notifier,
    ) -> Result<Master, ServeError> {
        let rules = match &config.rules_file {
            Some(path) => load_rules(path)?,
            None => Rules::default(),
        };
        let signals = Signals::install(&HANDLED).map_err(ServeError::Signals)?;
        let epoll = Epoll::new().map_err(ServeError::Epoll)?;
        let log_fd = log::logger().and_then(|l| l.sink().file_fd());
        let mut reset = HANDLED.to_vec();
        reset.push(libc::SIGPIPE);
        let addr = listener.local_addr().map_err(ServeError::LocalAddr)?;
        let (mut starter, mut pool) = (None, None);
        match config.model {
            Model::Exec => {
                let spawner = Spawner::new(log_fd, &config.worker, reset, addr)
                    .map_err(ServeError::Spawner)?;
                starter = Some(Starter::Exec(Box::new(spawner)));
            }
            // No worker program to open or check: the child runs the
            // worker's code linked into this executable.
            Model::Fork => {
                starter = Some(Starter::Fork(Forker::new(log_fd, &config.worker, reset)))
            }
            Model::Prefork => {
                pool = Some(Pool::new(
                    Forker::new(log_fd, &config.worker, reset),
                    config.pool,
                ));
            }
            Model::Iterative => {}
        }
        let acceptor = Acceptor::new(listener);
        let listener = Listener::open(acceptor, &epoll, LISTENER).map_err(ServeError::Epoll)?;
        let metrics = metrics
            .map(|socket| Endpoint::open(socket, &epoll))
            .transpose()
            .map_err(ServeError::Epoll)?;
        let now = Instant::now();
        let master = Master {
            monitor: Schedule::new(config.monitor_interval, now),
            pending: config.proxy.as_ref().map(|p| Pending::new(p.timeout)),
            // Grown as workers come, not sized for --max-workers up front:
            // a table sized for 10,000 is 2 MB of resident pages that every
            // fork (`--model fork`, `prefork`) maps into its child and the
            // master then copies back on write (measured: 30-35 µs of CPU
            // per connection in master and worker each).
            workers: Workers::with_capacity(INITIAL_WORKERS),
            rules,
            rates: Rates::new(),
            idle_watch: config
                .worker
                .program
                .as_ref()
                .and(config.worker.idle_timeout.duration())
                .map(IdleWatch::new),
            config,
            signals,
            epoll,
            events: vec![EpollEvent { events: 0, u64: 0 }; EVENTS_PER_WAKE],
            listener,
            starter,
            pool,
            pidfd_base: pidfd_base(),
            session: None,
            session_peak: 0,
            counters: Counters::default(),
            throttle: Throttle::default(),
            metrics,
            draining: None,
            started: now,
            started_at: SystemTime::now(),
            notifier,
            exe: None,
        };
        Ok(master)
    }

    /// Runs until shutdown has completed: every worker reaped.
    pub fn run(mut self) -> Result<(), ServeError> {
        loop {
            let now = Instant::now();
            if self.draining.is_some()
                && self.workers.is_empty()
                && self.session.is_none()
                && self.pool.as_ref().is_none_or(Pool::is_empty)
            {
                break;
            }
            self.maintain_pool(now);
            self.update_listener(now)?;
            let timeout = self
                .next_deadline()
                .map(|d| d.saturating_duration_since(now));
            let mut events = std::mem::take(&mut self.events);
            let ready = self
                .signals
                .wait_epoll(&self.epoll, &mut events, timeout)
                .map_err(ServeError::Wait)?;
            let mut listener_ready = false;
            let mut metrics_ready = false;
            for event in &events[..ready] {
                // A copy: the kernel's epoll_event is packed, and a guard
                // would borrow the field.
                let (token, flags) = (event.u64, event.events);
                match token {
                    LISTENER => listener_ready = true,
                    SESSION => self.serve_session(),
                    token if let Some(slot) = pending::owns(token) => self.on_pending(slot, flags),
                    token if metrics::owns(token) => metrics_ready = true,
                    token if let Some(pid) = control_owner(token) => self.on_pool_report(pid),
                    pid => self.reap(pid as pid_t),
                }
            }

            self.handle_signals();
            if listener_ready {
                self.accept_batch();
            }
            if metrics_ready {
                self.serve_metrics(&events[..ready]);
            }
            self.events = events;
            self.on_timers(Instant::now());
        }
        self.throttle.flush_all();
        info!("final figures {}", self.snapshot().figures());
        info!("exiting: all workers reaped");
        Ok(())
    }

    /// Ends a pause that is over, and defers or resumes accepting as the
    /// worker limit says (`--on-full defer`: at the limit the listener is
    /// not watched, so new clients wait in the backlog, the tcpserver
    /// behaviour, until a worker exits).
    fn update_listener(&mut self, now: Instant) -> Result<(), ServeError> {
        let next = match self.listener.state() {
            State::Closed => return Ok(()),
            State::Paused(until) if now < until => return Ok(()),
            // The iterative model's next client waits in the backlog by
            // design: not a limit reached, nothing to warn about.
            _ if self.session.is_some() || self.header_awaited_by_session() => {
                return self
                    .listener
                    .set_state(State::Deferred, &self.epoll)
                    .map_err(ServeError::Epoll);
            }
            _ if self.config.admission.defers(&self.workers) => State::Deferred,
            _ => State::Listening,
        };
        if next == State::Deferred && self.listener.state() != State::Deferred {
            self.counters.deferred += 1;
            let full = self.config.admission.full(&self.workers);
            self.throttle.log(
                Kind::Deferral,
                Level::Warn,
                now,
                format_args!("{full}: new connections wait in the backlog"),
            );
        }
        self.listener
            .set_state(next, &self.epoll)
            .map_err(ServeError::Epoll)
    }

    /// Stops watching the listener for [`BACKOFF`], after a failure that an
    /// immediate retry would only repeat.
    pub(super) fn pause_accepting(&mut self) {
        let until = Instant::now() + BACKOFF;
        if let Err(e) = self.listener.set_state(State::Paused(until), &self.epoll) {
            error!("could not pause accepting: {e}");
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        [
            self.monitor.next(),
            self.listener.resumes_at(),
            self.throttle.next_flush(),
            self.draining.as_ref().and_then(Draining::deadline),
            self.metrics.as_ref().and_then(Endpoint::next_deadline),
            self.notifier.next_watchdog(),
            self.session_deadline(),
            self.pool.as_ref().and_then(Pool::next_deadline),
            self.pending.as_ref().and_then(Pending::next_deadline),
            self.idle_watch.as_ref().and_then(IdleWatch::next_deadline),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn handle_signals(&mut self) {
        // Workers with a pidfd are reaped through epoll; SIGCHLD matters
        // only for those without one (pidfd_open failed, e.g. EMFILE).
        if self.signals.take(libc::SIGCHLD) && self.reaps_by_scan() {
            self.reap_children();
        }
        for sig in [libc::SIGTERM, libc::SIGINT] {
            if self.signals.take(sig) {
                self.on_stop_signal(&sys::signal_name(sig));
            }
        }
        if self.signals.take(libc::SIGHUP) {
            self.reload();
        }
        if self.signals.take(libc::SIGUSR1) {
            info!("figures {}", self.snapshot().figures());
        }
        // Last: everything the signals above asked for is done, and the
        // figures just logged are the ones handed over.
        if self.signals.take(libc::SIGUSR2) {
            self.upgrade();
        }
    }

    fn on_stop_signal(&mut self, name: &str) {
        match &mut self.draining {
            Some(draining) => {
                draining.escalate(&self.workers, &format!("second stop signal ({name})"))
            }
            None => {
                // From now on the kernel refuses new connections, including
                // any still waiting in the backlog (a socket systemd passed
                // stays open in systemd: they wait there for the next master).
                self.listener.close();
                let workers = self.workers.len();
                self.notifier.stopping(format_args!(
                    "shutting down ({name}): {workers} workers to finish"
                ));
                self.draining = Some(begin_shutdown(
                    &self.workers,
                    &format!("{name} received"),
                    self.config.grace,
                ));
                self.close_session();
                self.close_pending();
                self.drain_pool();
            }
        }
    }

    fn on_timers(&mut self, now: Instant) {
        self.throttle.flush(now);
        self.expire_session(now);
        self.expire_pending(now);
        self.close_idle_programs(now);
        self.notifier.on_tick(now);
        if self.monitor.is_due(now) {
            // Formatted once (it reads /proc): for the log and the status.
            let figures = self.snapshot().figures().to_string();
            info!("figures {figures}");
            self.notifier.status(&figures);
        }
        if let Some(draining) = &mut self.draining {
            draining.on_tick(now, &self.workers);
            if draining.killed()
                && let Some(pool) = &self.pool
            {
                // Idle processes left at once; any still here is stuck.
                pool.signal_all(libc::SIGKILL);
            }
        }
        if let Some(metrics) = &mut self.metrics {
            metrics.on_tick(now, &self.epoll);
        }
    }

    /// Everything the figures line and the metrics report, now.
    pub(super) fn snapshot(&self) -> Snapshot<'_> {
        Snapshot {
            counters: &self.counters,
            active: self.workers.len() + usize::from(self.session.is_some()),
            peak: self.workers.peak().max(self.session_peak),
            uptime: self.started.elapsed(),
            started_at: self.started_at,
            listener: self.listener.state(),
            config: &self.config,
            process: ProcessFigures::read(),
            log_write_errors: log::write_errors(),
            pool: self.pool.as_ref().map(Pool::counts),
        }
    }
}

/// Reads the rules file, saying in the log what is in force.
pub(super) fn load_rules(path: &std::path::Path) -> Result<Rules, crate::rules::LoadError> {
    let rules = Rules::load(path)?;
    let default = rules
        .default_rule()
        .map_or("allow", |rule| rule.verdict.name());
    info!(
        "rules: {} from {} (default {default})",
        rules.rules().len(),
        path.display()
    );
    Ok(rules)
}
