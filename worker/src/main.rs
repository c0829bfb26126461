//! `mpecho-worker`: one process per connection, serving the client found
//! on descriptor 3 until it leaves (DESIGN §2).
//!
//! `mpecho serve` opens this executable once and execs it for every
//! connection, with the command line, descriptors and environment that
//! `mpecho_handoff` defines; systemd can start it too, for a socket with
//! `Accept=yes` (the connection on descriptor 3 with `LISTEN_FDS=1`, no
//! options: `serve`'s defaults, the log on stderr, the journal).
//! `mpecho-worker --version` is the check the master runs at start.
//!
//! Its whole cost is what a connection costs, so it is a program of its
//! own, without std, libc or an allocator: its own `_start`, raw system
//! calls, the 16 KiB echo buffer and the log line's buffer in .bss.
//! This file is the command line only (options, `--version`, the
//! do-nothing ceiling, usage errors); the session itself is the worker
//! library's (`src/lib.rs`, shared with `mpecho serve --model fork`), and
//! `src/start/` is what makes this a program without a C runtime. It must
//! never open a descriptor of its own, and never panic (a panic exits
//! with status 1).

#![no_std]
#![no_main]

mod start;

use core::fmt::{self, Write as _};
use core::net::{IpAddr, SocketAddr};

use mpecho_handoff::{
    CLIENT_FD, DO_NOTHING_OPTION, NotOneConnection, TextBuf, VERSION_OPTION, VersionLine,
    WORKER_PROGRAM, WorkerArgs, WorkerExit, passed_count,
};

use mpecho_worker::sys::{self, Signal};

use crate::start::Process;

/// Standard output and error.
const STDOUT: i32 = 1;
const STDERR: i32 = 2;

/// The worker, from the arguments and environment to its exit status
/// (called by `start::entry`).
pub fn main(process: &Process) -> i32 {
    run(process).code()
}

fn run(process: &Process) -> WorkerExit {
    let mut args = process.args();
    // argv[0] is the program's name, whatever it is.
    let _ = args.next();
    // First, before even naming the process: the ceiling must cost a
    // connection nothing but the exec and the exit.
    if args.clone().next() == Some(DO_NOTHING_OPTION.as_bytes()) {
        return do_nothing();
    }
    // Ignored on failure: a worker under another name still serves.
    let _ = sys::set_name(WORKER_PROGRAM);
    if args.clone().eq([VERSION_OPTION.as_bytes()]) {
        return print_version();
    }
    // A log line to a pipe whose reader died must not kill the worker
    // (its socket writes never raise SIGPIPE: MSG_NOSIGNAL).
    let _ = sys::ignore(Signal::Pipe);
    let started_by = match socket_unit(process) {
        Ok(true) => StartedBy::SocketUnit,
        Ok(false) => StartedBy::Master,
        Err(problem) => return usage_error(problem, StartedBy::SocketUnit),
    };
    let options = match WorkerArgs::parse(args) {
        Ok(options) => options,
        Err(problem) => return usage_error(problem, started_by),
    };
    let sink = match options.log_fd {
        Some(fd) => match sys::check_open(fd) {
            Ok(()) => fd,
            Err(e) => {
                return usage_error(
                    format_args!("log descriptor {fd} is not open ({e})"),
                    started_by,
                );
            }
        },
        None => STDERR,
    };
    let peer = remote_from_env(process);
    match mpecho_worker::serve(
        sink,
        options.log_level,
        options.idle_timeout.duration(),
        peer,
    ) {
        Ok(exit) => exit,
        Err(e) => usage_error(
            format_args!("descriptor {CLIENT_FD} is not a connected TCP socket ({e})"),
            started_by,
        ),
    }
}

/// The client as the master described it (`TCPREMOTEIP`, `TCPREMOTEPORT`),
/// if both are set and read as an address and a port. Behind a load
/// balancer only the master knows the client (from the PROXY header), and
/// the socket's peer is the balancer; without the variables (systemd's
/// `Accept=yes`, a person), the socket's peer is used.
fn remote_from_env(process: &Process) -> Option<SocketAddr> {
    let text = |name: &[u8]| core::str::from_utf8(process.var(name)?).ok();
    let ip: IpAddr = text(b"TCPREMOTEIP")?.parse().ok()?;
    let port: u16 = text(b"TCPREMOTEPORT")?.parse().ok()?;
    Some(SocketAddr::new(ip, port))
}

/// `mpecho-worker --do-nothing`: the client sees an orderly close with
/// nothing echoed, the master an exit with status 0 (see
/// `DO_NOTHING_OPTION`). A close that fails leaves nothing to undo: the
/// exit closes the descriptor anyway.
#[inline(never)]
fn do_nothing() -> WorkerExit {
    let _ = sys::close(CLIENT_FD);
    WorkerExit::Done
}

/// `mpecho-worker --version`: the line the master checks at start.
#[inline(never)]
fn print_version() -> WorkerExit {
    let mut buf = [0u8; 128];
    let mut out = TextBuf::new(&mut buf);
    let _ = writeln!(out, "{VersionLine}");
    match sys::write_all(STDOUT, out.into_bytes()) {
        Ok(()) => WorkerExit::Done,
        Err(_) => WorkerExit::IoError,
    }
}

/// Whether systemd passed this process its connection (`Accept=yes`):
/// two variables read, nothing else (the master's workers have neither),
/// and left set (the worker starts nothing).
fn socket_unit(process: &Process) -> Result<bool, impl fmt::Display> {
    let (Some(pid), Some(count)) = (process.var(b"LISTEN_PID"), process.var(b"LISTEN_FDS")) else {
        return Ok(false);
    };
    // Not UTF-8 is garbled, and reads as such.
    let text = |value| core::str::from_utf8(value).unwrap_or("\u{fffd}");
    match passed_count(Some(text(pid)), Some(text(count)), sys::pid()) {
        Ok(None) => Ok(false),
        Ok(Some(1)) => Ok(true),
        Ok(Some(count)) => Err(Problem::NotOne(NotOneConnection(count))),
        Err(e) => Err(Problem::Vars(e)),
    }
}

/// What is wrong with the `LISTEN_*` variables.
enum Problem<'a> {
    Vars(mpecho_handoff::VarsError<'a>),
    NotOne(NotOneConnection),
}

impl fmt::Display for Problem<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Vars(e) => e.fmt(f),
            Problem::NotOne(e) => e.fmt(f),
        }
    }
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

/// Says on standard error, in one write, what is wrong and how the worker
/// is meant to be started; status 2. Never inlined: its 2 KiB buffer would
/// otherwise sit in `run`'s frame, under every session's stack.
#[cold]
#[inline(never)]
fn usage_error(problem: impl fmt::Display, started_by: StartedBy) -> WorkerExit {
    let mut buf = [0u8; 2048];
    let mut out = TextBuf::new(&mut buf);
    let _ = match started_by {
        StartedBy::Master => writeln!(
            out,
            "mpecho worker: {problem}.\n\
             A worker serves one connection handed to it on descriptor {CLIENT_FD}; \
             `mpecho serve` starts one for each client. To run the server, use `mpecho serve`."
        ),
        StartedBy::SocketUnit => writeln!(
            out,
            "mpecho worker: {problem}.\n\
             Started by a socket unit, a worker needs Accept=yes there (systemd then passes \
             each connection on descriptor {CLIENT_FD}); for a unit with Accept=no, run \
             `mpecho serve`, which serves the listening socket itself."
        ),
    };
    let _ = sys::write_all(STDERR, out.into_bytes());
    WorkerExit::Usage
}
