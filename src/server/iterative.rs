//! `--model iterative`: the first server of the original, kept for teaching
//! and comparison (DESIGN §1). The master serves one client at a time
//! itself: no worker, no fork. While it serves one, the listener is not
//! watched, so the next client waits in the kernel's backlog, and whatever
//! it sends meanwhile arrives all at once when its turn comes.
//!
//! It keeps what the real server guarantees: every byte echoed, the idle
//! timeout, the `connect`/`disconnect` lines a worker writes (here under
//! the master's name), the figures, and a prompt shutdown (the client being
//! served is closed at once on SIGTERM, as a worker closes it).
//!
//! It never blocks the loop: the socket is non-blocking, and while an echo
//! waits to be written (a client that does not read) nothing more is read,
//! so at most one buffer is held, until the idle timeout ends it.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use crate::log::{info, warning};
use crate::sys::{Epoll, Interest};

use super::event_loop::Master;

/// The session's token in epoll: far above any pid (at most 2^22 on
/// Linux) and below the metrics endpoint's tokens.
pub const SESSION: u64 = 1 << 40;

/// The echo buffer, the size a worker uses (DESIGN §11).
const BUFFER_SIZE: usize = 16 * 1024;

/// The one client being served.
pub struct Session {
    stream: TcpStream,
    peer: SocketAddr,
    started: Instant,
    /// When the client last sent or consumed something.
    progress: Instant,
    echoed: u64,
    buf: Box<[u8; BUFFER_SIZE]>,
    /// `buf[pending.0..pending.1]` read, not yet written back.
    pending: (usize, usize),
}

/// How a session ended, and what the figures count it as.
enum End {
    ClientClosed,
    PeerReset,
    Shutdown,
    IdleTimeout(Duration),
    Failed(io::Error),
}

impl Session {
    fn start(stream: TcpStream, peer: SocketAddr, epoll: &Epoll) -> io::Result<Session> {
        stream.set_nonblocking(true)?;
        epoll.add_for(stream.as_fd(), SESSION, Interest::Read)?;
        let now = Instant::now();
        Ok(Session {
            stream,
            peer,
            started: now,
            progress: now,
            echoed: 0,
            buf: Box::new([0; BUFFER_SIZE]),
            pending: (0, 0),
        })
    }

    /// Reads and echoes what the socket allows; `Some` when the session is
    /// over.
    fn serve(&mut self, epoll: &Epoll) -> Option<End> {
        loop {
            if self.pending.0 < self.pending.1 {
                match self.stream.write(&self.buf[self.pending.0..self.pending.1]) {
                    Ok(n) => {
                        self.pending.0 += n;
                        self.echoed += n as u64;
                        self.progress = Instant::now();
                        continue;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        return self.watch(epoll, Interest::Write);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Some(classify(e)),
                }
            }
            match self.stream.read(&mut self.buf[..]) {
                Ok(0) => {
                    // Everything received has been written back (we write
                    // before reading again): answer a half-close with ours.
                    let _ = self.stream.shutdown(Shutdown::Write);
                    return Some(End::ClientClosed);
                }
                Ok(n) => {
                    self.pending = (0, n);
                    self.progress = Instant::now();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return self.watch(epoll, Interest::Read);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Some(classify(e)),
            }
        }
    }

    /// Waits for `interest` next: reading, or writing while an echo is held.
    fn watch(&self, epoll: &Epoll, interest: Interest) -> Option<End> {
        epoll
            .modify(self.stream.as_fd(), SESSION, interest)
            .err()
            .map(End::Failed)
    }

    fn idle_deadline(&self, timeout: Option<Duration>) -> Option<Instant> {
        timeout.map(|t| self.progress + t)
    }

    /// Writes the `disconnect` line a worker would; the figure it counts as.
    fn finish(self, end: &End) -> Exit {
        let (reason, exit) = match end {
            End::ClientClosed => ("client closed".to_string(), Exit::Ok),
            End::PeerReset => ("connection reset by client".to_string(), Exit::Ok),
            End::Shutdown => ("server shutting down".to_string(), Exit::Ok),
            End::IdleTimeout(t) => (format!("idle timeout ({}s)", t.as_secs()), Exit::Idle),
            End::Failed(e) => (format!("error: {e}"), Exit::Error),
        };
        let line = format!(
            "disconnect peer={} bytes={} duration={:.3}s reason={reason}",
            self.peer,
            self.echoed,
            self.started.elapsed().as_secs_f64()
        );
        match exit {
            Exit::Error => warning!("{line}"),
            _ => info!("{line}"),
        }
        exit
    }
}

/// What a finished session counts as in the figures.
enum Exit {
    Ok,
    Idle,
    Error,
}

fn classify(e: io::Error) -> End {
    match e.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => End::PeerReset,
        _ => End::Failed(e),
    }
}

impl Master {
    /// Serves an admitted client in the master itself (`--model iterative`).
    pub(super) fn begin_session(&mut self, client: TcpStream, peer: SocketAddr) {
        match Session::start(client, peer, &self.epoll) {
            Ok(session) => {
                self.counters.accepted += 1;
                self.session = Some(session);
                self.session_peak = 1;
                // The lines a master and a worker would write, in order.
                info!("accept peer={peer} served by the master (model iterative) active=1");
                info!("connect peer={peer}");
            }
            Err(e) => {
                self.counters.spawn_failures += 1;
                warning!("could not serve peer={peer}: {e}; connection closed");
            }
        }
    }

    /// The session's socket is ready.
    pub(super) fn serve_session(&mut self) {
        let Some(session) = &mut self.session else {
            return;
        };
        if let Some(end) = session.serve(&self.epoll) {
            self.end_session(end);
        }
    }

    /// Ends the session if it has been idle for the idle timeout.
    pub(super) fn expire_session(&mut self, now: Instant) {
        let timeout = self.config.worker.idle_timeout.duration();
        let due = self
            .session
            .as_ref()
            .and_then(|s| s.idle_deadline(timeout))
            .is_some_and(|deadline| now >= deadline);
        if let (true, Some(timeout)) = (due, timeout) {
            self.end_session(End::IdleTimeout(timeout));
        }
    }

    /// When the session's idle timeout falls due, if one is being served.
    pub(super) fn session_deadline(&self) -> Option<Instant> {
        let timeout = self.config.worker.idle_timeout.duration();
        self.session.as_ref()?.idle_deadline(timeout)
    }

    /// Shutdown: the client being served is closed at once, as a worker
    /// closes it on SIGTERM.
    pub(super) fn close_session(&mut self) {
        if self.session.is_some() {
            self.end_session(End::Shutdown);
        }
    }

    fn end_session(&mut self, end: End) {
        let Some(session) = self.session.take() else {
            return;
        };
        // Closing the socket (on drop) takes it out of epoll.
        match session.finish(&end) {
            Exit::Ok => self.counters.exited_ok += 1,
            Exit::Idle => self.counters.exited_idle += 1,
            Exit::Error => self.counters.exited_error += 1,
        }
    }
}
