//! The chat client: `mpecho chat [HOST] [PORT]` (DESIGN §9).
//!
//! It forks. The child only receives: it writes each datagram to standard
//! output as it arrives, unbuffered, on a line of its own. The parent only
//! sends: each non-empty line of standard input, without its newline, plus
//! an empty join/keep-alive datagram at start and after every minute of
//! silence. The parent owns the ending: on `END`, end of input, Ctrl-C or
//! SIGTERM it sends `END`, terminates the child and reaps it; if the child
//! dies on its own, the parent notices at once (SIGCHLD wakes its `ppoll`),
//! reaps it, sends `END` and exits 1. The child never decides anything: it
//! ignores SIGINT, so a Ctrl-C that reaches the whole process group is
//! handled once, by the parent.

use std::io;
use std::net::UdpSocket;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::cli::ChatArgs;
use crate::net;
use crate::signals::Signals;
use crate::sys::{self, Disposition, ExitKind, Forked, SignalSet, pid_t};

use super::{END, MAX_DATAGRAM};

/// Silence after which the parent sends an empty keep-alive datagram, well
/// inside the server's default idle timeout (300 s).
const KEEP_ALIVE: Duration = Duration::from_secs(60);

/// The child's exit status when the server is unreachable (ICMP port
/// unreachable arrived as ECONNREFUSED), so the parent can say so.
const CHILD_UNREACHABLE: i32 = 3;
/// The child's exit status when it could not receive or write.
const CHILD_FAILED: i32 = 1;

/// Exit status after Ctrl-C, by shell convention 128 + SIGINT.
const EXIT_INTERRUPTED: u8 = 130;

/// Entry point for `mpecho chat`.
pub fn main(args: ChatArgs) -> ExitCode {
    let socket = match connect(&args.host, args.port) {
        Ok(socket) => socket,
        Err(message) => {
            eprintln!("mpecho chat: {message}");
            return ExitCode::FAILURE;
        }
    };
    let server = format!("{}:{}", args.host, args.port);
    // Handlers are installed (and the signals blocked) before the fork, so
    // a child that dies at once still wakes the parent: SIGCHLD stays
    // pending until the parent's first wait.
    let signals = match Signals::install(&[libc::SIGCHLD, libc::SIGINT, libc::SIGTERM]) {
        Ok(signals) => signals,
        Err(e) => {
            eprintln!("mpecho chat: could not install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    match sys::fork() {
        Ok(Forked::Child) => receive_forever(&socket),
        Ok(Forked::Parent { child }) => {
            let mut sender = Sender {
                socket,
                server,
                child,
                signals,
                last_sent: Instant::now(),
            };
            ExitCode::from(sender.run())
        }
        Err(e) => {
            eprintln!("mpecho chat: could not start the receiving process: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A UDP socket connected to the server, so that the kernel filters out
/// datagrams from anyone else and reports ICMP errors to us.
fn connect(host: &str, port: u16) -> Result<UdpSocket, String> {
    let addr = net::resolve(host, port)?[0];
    let local = net::unspecified_for(addr);
    let socket = UdpSocket::bind(local).map_err(|e| format!("could not open a UDP socket: {e}"))?;
    socket
        .connect(addr)
        .map_err(|e| format!("could not connect to {addr}: {e}"))?;
    Ok(socket)
}

// ------------------------------------------------------------------- child

/// The child: print every datagram until killed or the socket fails.
fn receive_forever(socket: &UdpSocket) -> ! {
    // Undo what the parent set up before the fork: the child is killed by
    // SIGTERM (the parent's way of ending it), ignores Ctrl-C (the parent
    // decides), and blocks nothing.
    let reset = sys::set_disposition(libc::SIGTERM, Disposition::Default)
        .and_then(|()| sys::set_disposition(libc::SIGCHLD, Disposition::Default))
        .and_then(|()| sys::set_disposition(libc::SIGINT, Disposition::Ignore))
        .and_then(|()| sys::set_signal_mask(&SignalSet::empty()));
    if let Err(e) = reset {
        eprintln!("mpecho chat: could not set up the receiving process: {e}");
        std::process::exit(CHILD_FAILED);
    }
    let stdout = io::stdout();
    let out = stdout.as_fd();
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    loop {
        match socket.recv(&mut buf) {
            Ok(n) => {
                if let Err(e) = print_datagram(out, &buf[..n]) {
                    if e.kind() != io::ErrorKind::BrokenPipe {
                        eprintln!("mpecho chat: could not write to standard output: {e}");
                    }
                    std::process::exit(CHILD_FAILED);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                std::process::exit(CHILD_UNREACHABLE)
            }
            Err(e) => {
                eprintln!("mpecho chat: could not receive: {e}");
                std::process::exit(CHILD_FAILED);
            }
        }
    }
}

/// One datagram, on a line of its own, in one unbuffered write.
fn print_datagram(out: BorrowedFd<'_>, datagram: &[u8]) -> io::Result<()> {
    if datagram.ends_with(b"\n") {
        sys::write_all_unbuffered(out, datagram)
    } else {
        let mut line = Vec::with_capacity(datagram.len() + 1);
        line.extend_from_slice(datagram);
        line.push(b'\n');
        sys::write_all_unbuffered(out, &line)
    }
}

// ------------------------------------------------------------------ parent

struct Sender {
    socket: UdpSocket,
    server: String,
    child: pid_t,
    signals: Signals,
    last_sent: Instant,
}

/// How the parent's session ended.
enum Ending {
    /// `END` typed or end of input.
    Done,
    Interrupted,
    Terminated,
    ServerUnreachable,
    ChildDied(ExitKind),
    Failed(String),
}

impl Sender {
    fn run(&mut self) -> u8 {
        let ending = match self.send(&[]) {
            Ok(()) => self.pump_stdin(),
            Err(ending) => ending,
        };
        self.finish(ending)
    }

    /// Reads standard input and sends its lines until something ends the
    /// session.
    fn pump_stdin(&mut self) -> Ending {
        let stdin = io::stdin();
        let input = stdin.as_fd();
        let mut pending: Vec<u8> = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let mut fds = [libc::pollfd {
                fd: input.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            }];
            let timeout = (self.last_sent + KEEP_ALIVE).saturating_duration_since(Instant::now());
            if let Err(e) = self.signals.wait(&mut fds, Some(timeout)) {
                return Ending::Failed(format!("waiting for input failed: {e}"));
            }
            if let Some(ending) = self.check_signals() {
                return ending;
            }
            if fds[0].revents != 0 {
                match sys::read_once(input, &mut chunk) {
                    Ok(0) => {
                        // End of input: a last line without newline counts.
                        let last = std::mem::take(&mut pending);
                        return self.send_line(&last).err().unwrap_or(Ending::Done);
                    }
                    Ok(n) => {
                        pending.extend_from_slice(&chunk[..n]);
                        if let Err(ending) = self.send_complete_lines(&mut pending) {
                            return ending;
                        }
                    }
                    Err(e) => return Ending::Failed(format!("could not read standard input: {e}")),
                }
            }
            if self.last_sent.elapsed() >= KEEP_ALIVE
                && let Err(ending) = self.send(&[])
            {
                return ending;
            }
        }
    }

    fn check_signals(&mut self) -> Option<Ending> {
        if self.signals.take(libc::SIGCHLD)
            && let Ok(Some(how)) = sys::reap_child(self.child, false)
        {
            self.child = 0;
            return Some(match how {
                ExitKind::Code(CHILD_UNREACHABLE) => Ending::ServerUnreachable,
                how => Ending::ChildDied(how),
            });
        }
        if self.signals.take(libc::SIGINT) {
            return Some(Ending::Interrupted);
        }
        if self.signals.take(libc::SIGTERM) {
            return Some(Ending::Terminated);
        }
        None
    }

    /// Sends every complete line in `pending`, keeping the incomplete rest.
    fn send_complete_lines(&mut self, pending: &mut Vec<u8>) -> Result<(), Ending> {
        let mut start = 0;
        while let Some(offset) = pending[start..].iter().position(|&b| b == b'\n') {
            let line = pending[start..start + offset].to_vec();
            start += offset + 1;
            if let Err(ending) = self.send_line(&line) {
                pending.drain(..start);
                return Err(ending);
            }
        }
        pending.drain(..start);
        Ok(())
    }

    /// Sends one input line (without its newline); `END` ends the session.
    fn send_line(&mut self, line: &[u8]) -> Result<(), Ending> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return Ok(());
        }
        if line == END {
            return Err(Ending::Done);
        }
        if line.len() > MAX_DATAGRAM {
            eprintln!(
                "mpecho chat: line of {} bytes not sent: a datagram holds at most {MAX_DATAGRAM}",
                line.len()
            );
            return Ok(());
        }
        self.send(line)
    }

    fn send(&mut self, datagram: &[u8]) -> Result<(), Ending> {
        match self.socket.send(datagram) {
            Ok(_) => {
                self.last_sent = Instant::now();
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                Err(Ending::ServerUnreachable)
            }
            Err(e) => Err(Ending::Failed(format!(
                "could not send to {}: {e}",
                self.server
            ))),
        }
    }

    /// Says goodbye to the server, ends and reaps the child, reports, and
    /// returns the exit status.
    fn finish(&mut self, ending: Ending) -> u8 {
        let said_goodbye = match ending {
            Ending::ServerUnreachable => Ok(0),
            _ => self.socket.send(END),
        };
        // Input can end before the server's ICMP "port unreachable" has been
        // noticed: the error then surfaces on this last send, or in the
        // child, blocked in recv.
        let refused = said_goodbye.is_err_and(|e| e.kind() == io::ErrorKind::ConnectionRefused);
        let ending = match (ending, self.stop_child()) {
            (Ending::Done, Some(ExitKind::Code(CHILD_UNREACHABLE))) => Ending::ServerUnreachable,
            (Ending::Done, _) if refused => Ending::ServerUnreachable,
            (ending, _) => ending,
        };
        match ending {
            Ending::Done => 0,
            Ending::Interrupted => EXIT_INTERRUPTED,
            Ending::Terminated => 128 + libc::SIGTERM as u8,
            Ending::ServerUnreachable => {
                eprintln!(
                    "mpecho chat: the server at {} is unreachable (nothing is listening there; is `mpecho chat-server` running?)",
                    self.server
                );
                1
            }
            Ending::ChildDied(how) => {
                let how = match how {
                    ExitKind::Code(code) => format!("exited with status {code}"),
                    ExitKind::Signal(sig) => format!("was killed by {}", sys::signal_name(sig)),
                };
                eprintln!("mpecho chat: the receiving process {how}; leaving the chat");
                1
            }
            Ending::Failed(message) => {
                eprintln!("mpecho chat: {message}");
                1
            }
        }
    }

    /// SIGTERM to the child (if still alive) and a blocking reap: no zombie
    /// is left behind. Returns how the child ended, if it was still ours.
    fn stop_child(&mut self) -> Option<ExitKind> {
        if self.child == 0 {
            return None;
        }
        let _ = sys::send_signal(self.child, libc::SIGTERM);
        let how = sys::reap_child(self.child, true).ok().flatten();
        self.child = 0;
        how
    }
}
