//! Starting a worker: executing `mpecho-worker`, opened and checked once
//! at boot (`worker_exe.rs`), with the client on descriptor 3 and (when
//! logging to a file) the log on 4, as `handoff.rs` defines; or an
//! `--exec` program, found at boot (`program.rs`), with the client on 0
//! and 1; or, with `--model fork`, forking one that serves without exec
//! (`fork.rs`); then, every way, watching it through a pidfd and entering
//! it in the workers table (and, for a program, in the idle watch,
//! `idle.rs`). A start that fails is counted here, with the client's
//! last word (`--reject-message`).
//!
//! The argument vector and environment are built once at boot, and the
//! connection's variables are written into a buffer of the spawner's, so a
//! spawn allocates nothing: what it costs is the kernel's work. `sys::SpawnTemplate` uses a
//! vfork-style clone, so neither the master's page tables nor its
//! descriptor table are copied per connection.
//! This module never keeps the client's descriptor: the caller closes its
//! copy right after the spawn, so the connection's life belongs to the
//! worker alone.

use std::ffi::{CStr, CString};
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Instant;

use crate::handoff::{self, CLIENT_FD, ConnectionEnv, FIRST_FREE_FD, LOG_FD, Relay, WorkerArgs};
use crate::log::{Level, debug, info, warning};
use crate::net::display_addr;
use crate::sys::{self, Argv, Program, SpawnTemplate, pid_t};

use super::config::WorkerSettings;
use super::event_loop::Master;
use super::fork::Forker;
use super::throttle::Kind;
use super::worker_exe::{self, WorkerExeError};
use super::workers::Worker;

/// Pidfds are kept at or above this number (or a quarter of the
/// descriptor limit, if that is lower), clear of the low descriptors
/// (listener, log, the client being handed over): `spawn` copies only the
/// descriptors below the highest one the child needs, so a master holding
/// ten thousand pidfds spawns as cheaply as an idle one (measured: 0.80 ms
/// per connection with 10,000 held, 0.84 ms with none). `--model fork`
/// relies on it too: once many are held its child copies only what lies
/// below them (`fork.rs`, `SPARE_TABLE_FROM`).
const PIDFD_BASE: i32 = 1024;

/// How workers are started: exec'd (`--model exec`, a [`Spawner`]) or
/// forked without exec (`--model fork`, a [`Forker`]). Everything after
/// the start (pidfd, table, log line) is the same for both.
pub enum Starter {
    /// Boxed: one allocation at boot, and the enum stays small.
    Exec(Box<Spawner>),
    Fork(Forker),
}

/// An admitted connection, as a worker is started for it.
pub struct Admitted<'a> {
    pub client: &'a TcpStream,
    /// The client's address (a PROXY header's, when `relay` says one came).
    pub peer: SocketAddr,
    /// How a balancer relayed it, if one did.
    pub relay: Option<Relay>,
    /// Connections open from `peer`'s address, this one included.
    pub connections: usize,
    /// The variables the access rule that allowed it adds.
    pub rule_env: &'a [CString],
}

impl Starter {
    fn start(&mut self, conn: &Admitted<'_>) -> io::Result<pid_t> {
        match self {
            Starter::Exec(spawner) => spawner.spawn_worker(conn),
            Starter::Fork(forker) => forker.fork_worker(conn.client, conn.peer),
        }
    }
}

pub struct Spawner {
    template: SpawnTemplate,
    argv: Argv,
    /// Where the connection goes in the child: 3 for the worker (and the
    /// log on 4), 0 and 1 for an `--exec` program.
    hand_over: HandOver,
    /// The per-spawn variables, written into one buffer.
    env: ConnectionEnv,
}

impl Spawner {
    /// Opens and checks the worker executable (see `worker_exe.rs`) and
    /// prepares its command line for the process's log (`log_fd` is the
    /// log file, `None` when logging to the inherited stderr).
    ///
    /// `reset_signals` are the signals the master handles or ignores, which
    /// the worker must start with at their defaults; `listener` is the
    /// listening socket's address (see `ConnectionEnv`).
    pub fn new(
        log_fd: Option<BorrowedFd<'static>>,
        settings: &WorkerSettings,
        reset_signals: Vec<libc::c_int>,
        listener: SocketAddr,
    ) -> Result<Spawner, WorkerExeError> {
        let env = ConnectionEnv::new(display_addr(listener));
        if let Some(program) = &settings.program {
            let path = program.resolve()?;
            let path = sys::c_string(path.into_os_string().into_encoded_bytes())
                .map_err(WorkerExeError::Argv)?;
            let template =
                SpawnTemplate::new(Program::Path(path), handoff::inherited_env(), reset_signals);
            return Ok(Spawner {
                template,
                argv: Argv::new(program.argv()?),
                hand_over: HandOver::Program,
                env,
            });
        }
        let args = WorkerArgs {
            log_level: settings.log_level,
            log_fd: log_fd.map(|_| LOG_FD),
            idle_timeout: settings.idle_timeout,
        };
        let argv = if settings.do_nothing {
            warning!(
                "workers do nothing (--do-nothing-workers): every connection is closed unserved"
            );
            handoff::do_nothing_argv(&args)
        } else {
            handoff::worker_argv(&args)
        }
        .map_err(WorkerExeError::Argv)?;
        let (program, what) = worker_exe::open(settings.executable.as_deref())?;
        let mut template = SpawnTemplate::new(program, handoff::inherited_env(), reset_signals);
        worker_exe::check(&mut template, &what, settings.executable.is_none())?;
        Ok(Spawner {
            template,
            argv: Argv::new(argv),
            hand_over: HandOver::Worker(log_fd),
            env,
        })
    }

    /// Starts a worker for an admitted connection, returning its pid.
    fn spawn_worker(&mut self, conn: &Admitted<'_>) -> io::Result<pid_t> {
        let &Admitted {
            client,
            peer,
            relay,
            connections,
            rule_env,
        } = conn;
        let moved = moved_clear_of_handoff(client)?;
        let client_fd = moved.as_ref().map_or(client.as_fd(), AsFd::as_fd);
        let vars = self.env.describe(peer, connections, relay, || {
            client.local_addr().map(display_addr)
        })?;
        let env = vars.as_slice();
        let map = match self.hand_over {
            HandOver::Worker(Some(log)) => &[(client_fd, CLIENT_FD), (log, LOG_FD)][..],
            HandOver::Worker(None) => &[(client_fd, CLIENT_FD)][..],
            HandOver::Program => &[(client_fd, STDIN), (client_fd, STDOUT)][..],
        };
        if rule_env.is_empty() {
            return self.template.spawn(&self.argv, map, env);
        }
        let env: Vec<&CStr> = env
            .iter()
            .copied()
            .chain(rule_env.iter().map(CString::as_c_str))
            .collect();
        self.template.spawn(&self.argv, map, &env)
    }
}

/// Standard input and output: where an `--exec` program finds its client.
const STDIN: i32 = 0;
const STDOUT: i32 = 1;

/// What a spawned child is given besides its environment.
enum HandOver {
    /// The worker: the client on 3 and, when logging to a file, the log
    /// on 4 (`None`: it logs on the inherited stderr).
    Worker(Option<BorrowedFd<'static>>),
    /// An `--exec` program: the client on 0 and 1, stderr inherited.
    Program,
}

impl Master {
    /// Starts a worker for an admitted client and enters it in the table;
    /// a failure closes the connection and is counted.
    pub(super) fn start_worker(
        &mut self,
        client: &TcpStream,
        peer: SocketAddr,
        relay: Option<Relay>,
        rule_env: &[CString],
        now: Instant,
    ) {
        let Some(starter) = self.starter.as_mut() else {
            debug_assert!(
                false,
                "start_worker is only called in a model that starts workers"
            );
            return;
        };
        let admitted = Admitted {
            client,
            peer,
            relay,
            connections: self.workers.count_from(peer.ip()) + 1,
            rule_env,
        };
        match starter.start(&admitted) {
            Ok(pid) => {
                let pidfd = self.watch_worker(pid, self.pidfd_base);
                if let Some(watch) = &mut self.idle_watch {
                    watch.watch(pid, client, self.pidfd_base, now);
                }
                self.enter_worker(pid, peer, pidfd, now);
            }
            Err(e) => {
                self.say_refused(client);
                self.start_failed(peer, &e, now);
            }
        }
    }

    /// Process `pid` serves the client at `peer` from `now` on: it enters
    /// the table (the limits count it), the figures and the log.
    pub(super) fn enter_worker(
        &mut self,
        pid: pid_t,
        peer: SocketAddr,
        pidfd: Option<OwnedFd>,
        now: Instant,
    ) {
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

    /// A worker could not be started for the client at `peer`: the
    /// connection is closed (by the caller), counted and logged, and
    /// accepting pauses when retrying at once would fail the same way.
    pub(super) fn start_failed(&mut self, peer: SocketAddr, e: &io::Error, now: Instant) {
        self.counters.spawn_failures += 1;
        self.throttle.log(
            Kind::SpawnFailure,
            Level::Error,
            now,
            format_args!("could not start a worker for peer={peer}: {e}; connection closed"),
        );
        if is_resource_shortage(e) {
            self.pause_accepting();
        }
    }

    /// A pidfd for a new worker, kept high and registered in epoll, or
    /// `None` (the worker is then reaped by the SIGCHLD scan and signalled
    /// by pid, which is safe: its pid stays ours until we reap it).
    pub(super) fn watch_worker(&self, pid: pid_t, pidfd_base: i32) -> Option<OwnedFd> {
        let pidfd = sys::pidfd_open(pid)
            .and_then(|fd| sys::dup_at_least(fd.as_fd(), pidfd_base))
            .and_then(|fd| self.epoll.add(fd.as_fd(), pid as u64).map(|()| fd));
        match pidfd {
            Ok(fd) => Some(fd),
            Err(e) => {
                debug!("no pidfd for worker {pid} ({e}); reaping and signalling it by pid");
                None
            }
        }
    }
}

/// A copy of `client` above the hand-over's numbers, when it sits on one.
/// The client is normally far above 4 (the listener, the log and the spare
/// descriptor come first), but if it landed on 3 or 4 the child's dup2
/// sequence would clobber it or leave close-on-exec set on it (`dup2(3, 3)`
/// is a no-op), so it is moved up first. `None`: use `client` as it is.
pub(super) fn moved_clear_of_handoff(client: &TcpStream) -> io::Result<Option<OwnedFd>> {
    if client.as_raw_fd() < FIRST_FREE_FD {
        sys::dup_at_least(client.as_fd(), FIRST_FREE_FD).map(Some)
    } else {
        Ok(None)
    }
}

/// Where pidfds are placed (see PIDFD_BASE), from the descriptor limit.
pub fn pidfd_base() -> i32 {
    let soft = sys::get_limit(sys::Resource::OpenFiles).map_or(0, |l| l.soft);
    (soft / 4).clamp(8, PIDFD_BASE as u64) as i32
}

/// EAGAIN from process creation (RLIMIT_NPROC, pid or thread limits) and
/// ENOMEM: retrying at once would fail the same way, so accepting pauses
/// (`accept::BACKOFF`).
fn is_resource_shortage(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EAGAIN | libc::ENOMEM | libc::EMFILE | libc::ENFILE)
    )
}
