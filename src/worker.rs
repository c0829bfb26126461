//! The worker: one process per connection, serving the client found on
//! descriptor 3 until it leaves.
//!
//! `mpecho serve` starts it with the command line, descriptors and
//! environment that `handoff.rs` defines (DESIGN §2). systemd can start it
//! too, for a socket with `Accept=yes`: the connection on descriptor 3 with
//! `LISTEN_FDS=1`, the same hand-over, no master and no options (so
//! `serve`'s defaults, and the log on stderr: the journal). Its path to the first
//! `read` is deliberately short: main.rs dispatches here before clap runs,
//! the options are parsed by hand, and the only allocation is the echo
//! buffer. It must never open a descriptor of its own (the master's tests
//! count them), never block in a call it cannot abandon on SIGTERM or after
//! the idle timeout, and never log client bytes unescaped.
//!
//! It echoes with plain blocking `read`/`write`, two system calls per round
//! trip, like inetd's built-in echo: the idle timeout is the socket's own
//! receive and send timeout, and SIGTERM's handler shuts the socket down
//! (see `signals::wake_socket_on`), which ends any blocked call at once.
//! How it ends is its exit status, a [`WorkerExit`].

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use socket2::Socket;

use crate::handoff::{CLIENT_FD, PROCESS_NAME, WorkerArgs, WorkerExit};
use crate::log::{self, Level, Sink, debug, info, trace, warning};
use crate::net::display_addr;
use crate::signals;
use crate::sys;
use crate::systemd::activation;

/// Echo buffer. Large enough that a bulk transfer moves in few system calls,
/// small enough that ten thousand idle workers cost little (DESIGN §11).
const BUFFER_SIZE: usize = 16 * 1024;

/// How many client bytes a trace line shows.
const TRACE_PREVIEW: usize = 64;

/// Entry point for `mpecho worker`, given the arguments after `worker`.
pub fn main(args: &[OsString]) -> ExitCode {
    // Ignored on failure: a worker under another name still serves.
    let _ = sys::set_process_name(PROCESS_NAME);
    // Two variables read, nothing else: the master's workers have neither.
    let started_by = match activation::connection_passed() {
        Ok(true) => StartedBy::SocketUnit,
        Ok(false) => StartedBy::Master,
        Err(e) => return usage_error(&e.to_string(), StartedBy::SocketUnit),
    };
    let options = match WorkerArgs::parse(args) {
        Ok(options) => options,
        Err(message) => return usage_error(&message, started_by),
    };
    let sink = match options.log_fd {
        Some(fd) => match sys::adopt_inherited_fd(fd) {
            Ok(fd) => Sink::Inherited(fd),
            Err(e) => {
                return usage_error(
                    &format!("log descriptor {fd} is not open ({e})"),
                    started_by,
                );
            }
        },
        None => Sink::Stderr,
    };
    log::init(sink, options.log_level, "worker");

    let (stream, peer) = match take_client_socket() {
        Ok(Client::Connected(stream, peer)) => (stream, peer),
        Ok(Client::AlreadyGone(e)) => {
            // The client connected and reset before we could look at it:
            // a normal (if short) session, not a misuse of the worker.
            info!("client left before it could be served ({e})");
            return WorkerExit::Done.into();
        }
        Err(e) => {
            return usage_error(
                &format!("descriptor {CLIENT_FD} is not a connected TCP socket ({e})"),
                started_by,
            );
        }
    };
    if let Err(e) = signals::wake_socket_on(libc::SIGTERM, CLIENT_FD) {
        warning!("could not install the SIGTERM handler: {e}");
        return WorkerExit::IoError.into();
    }
    let idle_timeout = options.idle_timeout.duration();
    if let Err(e) = stream
        .set_read_timeout(idle_timeout)
        .and_then(|()| stream.set_write_timeout(idle_timeout))
    {
        warning!("could not set the idle timeout on the connection: {e}");
        return WorkerExit::IoError.into();
    }
    Session {
        stream,
        idle_timeout,
        echoed: 0,
    }
    .serve(peer)
}

/// Who the environment says started this worker, for what it says when it
/// cannot serve.
#[derive(Clone, Copy)]
enum StartedBy {
    /// `mpecho serve` (or a person, by hand: nothing tells them apart).
    Master,
    /// systemd, for a socket unit (`LISTEN_FDS` and `LISTEN_PID` are ours).
    SocketUnit,
}

fn usage_error(problem: &str, started_by: StartedBy) -> ExitCode {
    match started_by {
        StartedBy::Master => eprintln!(
            "mpecho worker: {problem}.\n\
             A worker serves one connection handed to it on descriptor {CLIENT_FD}; \
             `mpecho serve` starts one for each client. To run the server, use `mpecho serve`."
        ),
        StartedBy::SocketUnit => eprintln!(
            "mpecho worker: {problem}.\n\
             Started by a socket unit, a worker needs Accept=yes there (systemd then passes \
             each connection on descriptor {CLIENT_FD}); for a unit with Accept=no, run \
             `mpecho serve`, which serves the listening socket itself."
        ),
    }
    WorkerExit::Usage.into()
}

/// What was found on descriptor 3.
enum Client {
    Connected(TcpStream, SocketAddr),
    /// An accepted connection whose client already reset it.
    AlreadyGone(io::Error),
}

/// Adopts descriptor 3 and checks that it is a connected TCP socket.
///
/// The common case costs one `getpeername`. Only when that fails do we look
/// closer, to tell a worker started by hand (no socket, a listening or a
/// never-connected one: a usage error) from a client that connected and
/// reset before the worker started (`ENOTCONN` on a stream socket that has
/// a bound local address: the connection was real).
fn take_client_socket() -> io::Result<Client> {
    let socket = Socket::from(sys::adopt_inherited_fd(CLIENT_FD)?);
    match socket.peer_addr() {
        Ok(peer) => {
            let peer = peer
                .as_socket()
                .ok_or_else(|| io::Error::other("not an IP connection"))?;
            Ok(Client::Connected(TcpStream::from(socket), peer))
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) && was_accepted(&socket) => {
            Ok(Client::AlreadyGone(e))
        }
        Err(e) => Err(e),
    }
}

/// Whether `socket` looks like one returned by `accept`: a TCP stream
/// socket, not listening, bound to a local port.
fn was_accepted(socket: &Socket) -> bool {
    socket.r#type().is_ok_and(|t| t == socket2::Type::STREAM)
        && socket.is_listener().is_ok_and(|listening| !listening)
        && socket
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .is_some_and(|a| a.port() != 0)
}

/// Why the session ended.
enum End {
    ClientClosed,
    PeerReset,
    Shutdown,
    IdleTimeout(Duration),
    Failed(io::Error),
}

/// One client's connection and what the worker knows about it.
struct Session {
    stream: TcpStream,
    idle_timeout: Option<Duration>,
    echoed: u64,
}

impl Session {
    fn serve(mut self, peer: SocketAddr) -> ExitCode {
        let peer = display_addr(peer);
        let started = Instant::now();
        info!("connect peer={peer}");
        let end = self.echo();
        let elapsed = started.elapsed().as_secs_f64();
        let (reason, status) = match &end {
            End::ClientClosed => ("client closed".to_string(), WorkerExit::Done),
            End::PeerReset => ("connection reset by client".to_string(), WorkerExit::Done),
            End::Shutdown => ("server shutting down".to_string(), WorkerExit::Done),
            End::IdleTimeout(t) => (
                format!("idle timeout ({}s)", t.as_secs()),
                WorkerExit::IdleTimeout,
            ),
            End::Failed(e) => (format!("error: {e}"), WorkerExit::IoError),
        };
        info!(
            "disconnect peer={peer} bytes={} duration={elapsed:.3}s reason={reason}",
            self.echoed
        );
        status.into()
    }

    /// Copies everything the client sends back to it until it closes,
    /// resets, idles out, or the master asks us to finish.
    ///
    /// Every call ends by itself: a read or write that makes no progress for
    /// the idle timeout fails with EAGAIN (the socket's timeouts), and
    /// SIGTERM shuts the socket down under any blocked call. So a client
    /// that stops reading can never keep the worker from finishing.
    fn echo(&mut self) -> End {
        let mut buf = vec![0u8; BUFFER_SIZE];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) if signals::take(libc::SIGTERM) => return End::Shutdown,
                Ok(0) => {
                    // Everything received has been written back already (we
                    // write before reading again), so a half-close can be
                    // answered with our own FIN now.
                    let _ = self.stream.shutdown(Shutdown::Write);
                    return End::ClientClosed;
                }
                Ok(n) => {
                    if log::enabled(Level::Trace) {
                        trace!(
                            "read {n} bytes: \"{}\"{}",
                            log::escape_bytes(&buf[..n.min(TRACE_PREVIEW)]),
                            if n > TRACE_PREVIEW { "..." } else { "" }
                        );
                    }
                    if let Err(end) = self.write_all(&buf[..n]) {
                        return end;
                    }
                }
                Err(e) => {
                    if let Some(end) = self.stopped(e) {
                        return end;
                    }
                }
            }
        }
    }

    fn write_all(&mut self, mut data: &[u8]) -> Result<(), End> {
        while !data.is_empty() {
            match self.stream.write(data) {
                Ok(n) => {
                    data = &data[n..];
                    self.echoed += n as u64;
                }
                Err(e) => {
                    if let Some(end) = self.stopped(e) {
                        return Err(end);
                    }
                }
            }
        }
        Ok(())
    }

    /// What a failed read or write means: shutdown if SIGTERM came (its
    /// handler shut the socket down, whatever error that caused), idle when
    /// the socket's timeout expired, nothing on a plain interruption
    /// (`None`: try again), else how the connection ended.
    fn stopped(&self, e: io::Error) -> Option<End> {
        if signals::take(libc::SIGTERM) {
            return Some(End::Shutdown);
        }
        match e.kind() {
            io::ErrorKind::Interrupted => None,
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                if log::enabled(Level::Debug) {
                    debug!("no progress for the idle timeout; closing");
                }
                Some(self.idle_timeout.map_or(End::Failed(e), End::IdleTimeout))
            }
            _ => Some(classify(e)),
        }
    }
}

fn classify(e: io::Error) -> End {
    match e.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => End::PeerReset,
        _ => End::Failed(e),
    }
}
