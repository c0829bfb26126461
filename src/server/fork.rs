//! `--model fork`: the textbook fork server's way of starting a worker.
//! The master forks, and the child serves the connection without exec,
//! with the worker's own code (the `mpecho_worker` library, the one
//! `mpecho-worker` runs): the same idle timeout, SIGTERM handling and
//! `connect`/`disconnect` lines under its own pid, component `worker`.
//!
//! Before serving, the child is set up as an exec'd worker starts
//! (`sys::fork_worker`): the client on 3, the log on 4 (or its lines on
//! the inherited stderr), nothing else of the master's open (listener,
//! epoll set, pidfds, spare descriptor, metrics socket), default signal
//! dispositions, an empty mask, its own process group, the name
//! `mpecho-worker`. It inherits the master's environment, not the UCSPI
//! variables an exec'd worker gets: the echo needs only the client's
//! address (which an exec'd worker reads from `TCPREMOTEIP`), and that is
//! handed to it as an argument.
//!
//! How it forks depends on how many workers are held: with few, a plain
//! fork (the child copies the master's small descriptor table and closes
//! it); once the master keeps `SPARE_TABLE_FROM` pidfds or more, the child
//! shares the table and copies only what lies below the pidfds
//! (`sys::fork_worker_sparing_table`), so a new connection costs the same
//! with 10,000 held as with none.
//!
//! Everything else (admission, the table, pidfds, reaping, shutdown,
//! figures) is the exec model's (`spawn.rs`). This module never keeps the
//! client's descriptor, and its child never returns into the master.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, BorrowedFd, RawFd};
use std::time::Duration;

use crate::handoff::{CLIENT_FD, LOG_FD, WORKER_PROGRAM, WorkerExit};
use crate::log::Level;
use crate::sys::{self, pid_t};

use super::config::WorkerSettings;
use super::spawn::{moved_clear_of_handoff, pidfd_base};

/// Standard error: where a worker logs when the master has no log file.
const STDERR: i32 = 2;

/// How many pidfds (one per held worker, from `pidfd_base`) make a fork
/// share the descriptor table instead of copying it. A plain fork's child
/// copies and closes every pidfd (about 0.2 µs each here, on the new
/// connection's path: 25 µs at 128); sharing costs the master a wait until
/// the child has been scheduled and has unshared (a few tens of µs, far
/// more on a loaded machine: every fork sharing made churn `-c 16` with
/// none held 10–30 % slower). At this size either costs about as much.
const SPARE_TABLE_FROM: RawFd = 128;

/// What a forked worker is started with, prepared once at boot.
/// Its fields are shared with the pool (`pool/member.rs`), whose
/// processes are forked workers too.
pub struct Forker {
    /// The log file, `None` when logging to the inherited stderr.
    pub(super) log_fd: Option<BorrowedFd<'static>>,
    pub(super) log_level: Level,
    pub(super) idle_timeout: Option<Duration>,
    /// `--do-nothing-workers`: the child exits at once, closing the client.
    pub(super) do_nothing: bool,
    /// The signals the master handles or ignores, back to their defaults
    /// in the child.
    pub(super) reset_signals: Vec<libc::c_int>,
    /// Open once `SPARE_TABLE_FROM` pidfds are (they fill the numbers from
    /// `pidfd_base` up, lowest free first): fork sparing the table.
    pub(super) large_table_mark: RawFd,
}

impl Forker {
    pub fn new(
        log_fd: Option<BorrowedFd<'static>>,
        settings: &WorkerSettings,
        reset_signals: Vec<libc::c_int>,
    ) -> Forker {
        Forker {
            log_fd,
            log_level: settings.log_level,
            idle_timeout: settings.idle_timeout.duration(),
            do_nothing: settings.do_nothing,
            reset_signals,
            large_table_mark: pidfd_base() + SPARE_TABLE_FROM,
        }
    }

    /// Forks a worker for `client`, the client at `peer` (whose lines name
    /// it: behind a load balancer, the socket's own peer is the balancer),
    /// returning its pid.
    pub fn fork_worker(&self, client: &TcpStream, peer: SocketAddr) -> io::Result<pid_t> {
        let moved = moved_clear_of_handoff(client)?;
        let client_fd = moved.as_ref().map_or(client.as_fd(), AsFd::as_fd);
        let (level, idle_timeout, do_nothing) =
            (self.log_level, self.idle_timeout, self.do_nothing);
        let serve = |log_fd: i32| {
            move || -> i32 {
                if do_nothing {
                    // The exit closes the client: an orderly close, status 0.
                    return WorkerExit::Done.code();
                }
                // As mpecho-worker does first: a log line to a pipe whose
                // reader died must not kill the worker.
                let _ = mpecho_worker::sys::ignore(mpecho_worker::sys::Signal::Pipe);
                match mpecho_worker::serve(log_fd, level, idle_timeout, Some(peer)) {
                    Ok(exit) => exit,
                    // Never for a client just accepted; the exit status
                    // tells the master.
                    Err(_) => WorkerExit::Usage,
                }
                .code()
            }
        };
        match self.log_fd {
            Some(log) => sys::fork_worker_sparing_table(
                self.large_table_mark,
                &[(client_fd, CLIENT_FD), (log, LOG_FD)],
                &self.reset_signals,
                WORKER_PROGRAM,
                serve(LOG_FD),
            ),
            None => sys::fork_worker_sparing_table(
                self.large_table_mark,
                &[(client_fd, CLIENT_FD)],
                &self.reset_signals,
                WORKER_PROGRAM,
                serve(STDERR),
            ),
        }
    }
}
