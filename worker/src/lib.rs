//! The worker, as a library: serving the client on descriptor 3 until it
//! leaves (DESIGN §2), shared by the two processes that do it:
//! - `mpecho-worker` (`src/main.rs`), the program `mpecho serve` execs
//!   per connection (`--model exec`, the default), or systemd starts;
//! - a child `mpecho` forks without exec (`--model fork`), which calls
//!   [`serve`] once its descriptors and signals are set up as an exec'd
//!   worker's are, then exits with the status it returned;
//! - a pool process of `--model prefork`, which calls [`serve`] once per
//!   connection the master passes it, with [`install_stop_handler`] and
//!   [`stop_requested`] to hear the master's request to finish between
//!   connections too.
//!
//! Without std, libc or an allocator (its whole cost is what a
//! connection costs), it must build both for the no_std executable and
//! linked into the std `mpecho`: so it has no `_start`, no memory
//! functions and no `#[panic_handler]` (the executable's, `src/start/`),
//! and its statics are in .bss (a forked child gets them copy-on-write,
//! untouched by the master, which never serves). Everything that touches
//! the machine is in `sys/`; the rest is safe Rust. It must never open a
//! descriptor of its own (the master's tests count them), never block in
//! a call it cannot abandon on SIGTERM or after the idle timeout, never
//! log client bytes unescaped, and never panic.
//!
//! - `client.rs`: what is on descriptor 3;
//! - `session.rs`: the echo and the `disconnect` line;
//! - `sigterm.rs`: the master's request to finish;
//! - `log.rs`: the log lines, as `worker[PID]`;
//! - `sys/`: system calls, signals, the buffers.

#![no_std]

mod client;
mod log;
mod session;
mod sigterm;
pub mod sys;

use core::net::SocketAddr;
use core::time::Duration;

use mpecho_handoff::{CLIENT_FD, Level, WorkerExit};

use crate::client::Client;
pub use crate::client::NotAConnection;
use crate::log::{info, warning};
use crate::session::Session;
use crate::sys::Direction;

/// Serves the client on descriptor 3, logging to descriptor `log_fd` at
/// `log_level` and below, with `idle_timeout` (`None`: none), naming the
/// client `peer` in its lines when the caller knows better than the socket
/// (behind a load balancer the socket's peer is the balancer; `None`: the
/// socket's peer, `getpeername`): starts the
/// log (its lines name this process's pid, asked of the kernel now),
/// checks the client, installs the SIGTERM handler, sets the socket's
/// timeouts, then `connect`, the echo and `disconnect`. Returns how the
/// worker is to exit, or why descriptor 3 is not a connection to serve
/// (nothing logged: the caller says it, as it was started).
///
/// The caller has set the process up first: the client on 3, the log on
/// `log_fd`, no other descriptor of anyone else's, default signal
/// dispositions (or the SIGTERM handler of [`install_stop_handler`]) and
/// an empty mask. A process may serve one client after another; each call
/// serves the one on descriptor 3 then.
pub fn serve(
    log_fd: i32,
    log_level: Level,
    idle_timeout: Option<Duration>,
    peer: Option<SocketAddr>,
) -> Result<WorkerExit, NotAConnection> {
    log::init(log_fd, log_level);
    // Descriptor 3 is checked either way: a peer given is no connection.
    let peer = match client::take()? {
        Client::Connected(connected) => peer.unwrap_or(connected),
        Client::AlreadyGone(e) => {
            // The client connected and reset before we could look at it:
            // a normal (if short) session, not a misuse of the worker.
            info!("client left before it could be served ({e})");
            return Ok(WorkerExit::Done);
        }
    };
    if let Err(e) = sigterm::install() {
        warning!("could not install the SIGTERM handler: {e}");
        return Ok(WorkerExit::IoError);
    }
    if let Err(e) = sys::set_timeout(CLIENT_FD, Direction::Receive, idle_timeout)
        .and_then(|()| sys::set_timeout(CLIENT_FD, Direction::Send, idle_timeout))
    {
        warning!("could not set the idle timeout on the connection: {e}");
        return Ok(WorkerExit::IoError);
    }
    Ok(sys::BUFFERS
        .echo
        .with(|buf| Session::new(idle_timeout).serve(peer, buf))
        // Lent already: only a second session in one process could be.
        .unwrap_or(WorkerExit::IoError))
}

/// Installs the SIGTERM handler [`serve`] installs, ahead of the first
/// connection: for a process that waits for connections between sessions
/// (`--model prefork`), so that the master's request to finish is recorded
/// whenever it comes (see [`stop_requested`]).
pub fn install_stop_handler() -> Result<(), mpecho_handoff::Errno> {
    sigterm::install()
}

/// Whether SIGTERM (the master's request to finish) arrived since the last
/// call, clearing the record.
pub fn stop_requested() -> bool {
    sigterm::take()
}
