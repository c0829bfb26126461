//! One client's session: echo everything back until the client closes,
//! resets, idles out, or the master asks us to finish; then the
//! `disconnect` line and the exit status.
//!
//! Plain blocking `recv`/`send`, two system calls per round trip, like
//! inetd's built-in echo. Every call ends by itself: a call that makes no
//! progress for the idle timeout fails with EAGAIN (the socket's own
//! timeouts), and SIGTERM shuts the socket down under any blocked call, so
//! a client that stops reading can never keep the worker from finishing.

use core::fmt;
use core::net::SocketAddr;
use core::time::Duration;

use mpecho_handoff::{CLIENT_FD, Errno, EscapedBytes, Level, WorkerExit, display_addr};

use crate::log::{self, debug, info, trace};
use crate::sigterm;
use crate::sys::{self, Shutdown};

/// Echo buffer: large enough that a bulk transfer moves in few system
/// calls, small enough that ten thousand idle workers cost little (DESIGN
/// §11). It lives in .bss (see `sys::BUFFERS`).
const BUFFER_SIZE: usize = sys::ECHO_BUFFER_SIZE;

/// How many client bytes a trace line shows.
const TRACE_PREVIEW: usize = 64;

/// Why the session ended.
enum End {
    ClientClosed,
    PeerReset,
    Shutdown,
    IdleTimeout(Duration),
    Failed(Errno),
}

/// The `reason=` of the `disconnect` line.
impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            End::ClientClosed => f.write_str("client closed"),
            End::PeerReset => f.write_str("connection reset by client"),
            End::Shutdown => f.write_str("server shutting down"),
            End::IdleTimeout(t) => write!(f, "idle timeout ({}s)", t.as_secs()),
            End::Failed(e) => write!(f, "error: {e}"),
        }
    }
}

/// One client's connection and what the worker knows about it.
pub struct Session {
    idle_timeout: Option<Duration>,
    echoed: u64,
}

impl Session {
    pub fn new(idle_timeout: Option<Duration>) -> Session {
        Session {
            idle_timeout,
            echoed: 0,
        }
    }

    /// Serves the client at `peer` to the end: `connect`, the echo,
    /// `disconnect`, and how the worker exits.
    pub fn serve(mut self, peer: SocketAddr, buf: &mut [u8; BUFFER_SIZE]) -> WorkerExit {
        let peer = display_addr(peer);
        let started = sys::monotonic_clock();
        info!("connect peer={peer}");
        let end = self.echo(buf);
        let elapsed = sys::monotonic_clock().saturating_sub(started).as_secs_f64();
        let status = match end {
            End::IdleTimeout(_) => WorkerExit::IdleTimeout,
            End::Failed(_) => WorkerExit::IoError,
            End::ClientClosed | End::PeerReset | End::Shutdown => WorkerExit::Done,
        };
        info!(
            "disconnect peer={peer} bytes={} duration={elapsed:.3}s reason={end}",
            self.echoed
        );
        status
    }

    fn echo(&mut self, buf: &mut [u8; BUFFER_SIZE]) -> End {
        loop {
            match sys::recv(CLIENT_FD, buf) {
                Ok(0) if sigterm::take() => return End::Shutdown,
                Ok(0) => {
                    // Everything received has been written back already (we
                    // write before reading again), so a half-close can be
                    // answered with our own FIN now.
                    let _ = sys::shutdown(CLIENT_FD, Shutdown::Write);
                    return End::ClientClosed;
                }
                Ok(n) => {
                    let data = &buf[..n.min(BUFFER_SIZE)];
                    if log::enabled(Level::Trace) {
                        trace!(
                            "read {} bytes: \"{}\"{}",
                            data.len(),
                            EscapedBytes(&data[..data.len().min(TRACE_PREVIEW)]),
                            if data.len() > TRACE_PREVIEW {
                                "..."
                            } else {
                                ""
                            }
                        );
                    }
                    if let Err(end) = self.send_all(data) {
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

    fn send_all(&mut self, mut data: &[u8]) -> Result<(), End> {
        while !data.is_empty() {
            match sys::send(CLIENT_FD, data) {
                Ok(n) => {
                    let n = n.min(data.len());
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

    /// What a failed call means: shutdown if SIGTERM came (its handler
    /// shut the socket down, whatever error that caused), idle when the
    /// socket's timeout expired, nothing on a plain interruption (`None`:
    /// try again), else how the connection ended.
    fn stopped(&self, e: Errno) -> Option<End> {
        if sigterm::take() {
            return Some(End::Shutdown);
        }
        match e {
            Errno::EINTR => None,
            Errno::EAGAIN | Errno::ETIMEDOUT => {
                if log::enabled(Level::Debug) {
                    debug!("no progress for the idle timeout; closing");
                }
                Some(self.idle_timeout.map_or(End::Failed(e), End::IdleTimeout))
            }
            Errno::ECONNRESET | Errno::EPIPE => Some(End::PeerReset),
            _ => Some(End::Failed(e)),
        }
    }
}
