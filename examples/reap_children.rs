//! reap_children: reaping every child, with `waitpid(-1, WNOHANG)` until
//! none is left, from the main loop after a SIGCHLD flag, however many end
//! at once.
//!
//! `cargo run --example reap_children` forks five children that all wait
//! on one pipe. When the parent closes its end of it they end together:
//! three exit (statuses 0, 1 and 42), two kill themselves (SIGTERM,
//! SIGKILL). The parent prints each pid with how it ended, then shows that
//! no child is left, not even a zombie, and exits 0.
//!
//! What it teaches:
//! - A child that has ended is a zombie (a process-table entry holding its
//!   exit status) until its parent waits for it. A parent that never waits
//!   fills the process table; the zombies go away only when it dies.
//! - SIGCHLD means "at least one child ended", not "one child ended": while
//!   one SIGCHLD is pending the kernel does not queue another. The C
//!   classic, a SIGCHLD handler that calls `wait()` once, leaves zombies
//!   whenever several children end together. Here the loop calls
//!   `waitpid(-1, &status, WNOHANG)` until it returns 0 (the others still
//!   run) or fails with ECHILD (no child at all); the summary line counts
//!   the wake-ups, usually fewer than the children.
//! - The handler only sets a flag. Reaping, printing and the list of
//!   running children belong to the main loop: a handler that edited that
//!   list could land in the middle of the loop's own change to it.
//! - SIGCHLD is blocked before the first fork, so a child that ends before
//!   the loop first sleeps still wakes it (its SIGCHLD waits, pending).
//! - Reading a status: `WIFEXITED`/`WEXITSTATUS` for an exit,
//!   `WIFSIGNALED`/`WTERMSIG` for a signal.
//! - A forked child leaves with `_exit`, never by returning from `main` or
//!   calling `exit`: it has a copy of the parent's buffered output and exit
//!   work, and `exit` would flush and run them a second time (the classic
//!   "my printf came out twice").
//! - Each child closes its copy of the pipe's write end at once: a pipe
//!   reads end-of-file only when every write end is closed, the children's
//!   copies too.
//!
//! The handler is this file's own, so that everything it does is in
//! sight; installing it, blocking, sleeping and forking go through
//! mpecho's safe wrappers (`mpecho::sys`). `waitpid` and the status macros
//! are called through `libc` because they are the lesson; mpecho wraps
//! them in `src/sys/reap.rs` (`reap_one_child`, `ExitKind`).
//!
//! Where mpecho does it for real: `src/server/reap.rs` (`reap_children`:
//! this very loop, which also removes each pid from the workers table and
//! logs how the worker ended), run by `handle_signals` in
//! `src/server/event_loop.rs` after a SIGCHLD. Most workers are reaped one
//! at a time through their pidfds instead (`Master::reap`,
//! `waitid(P_PIDFD)`): `waitpid(-1)` scans every child, which costs when
//! thousands are alive.

use std::ffi::c_int;
use std::io::{self, PipeReader, Read};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use mpecho::sys::{self, Forked, SignalSet, pid_t};

/// How a child ends.
#[derive(Clone, Copy)]
enum Ending {
    /// `_exit` with this status.
    Exit(c_int),
    /// Killed by this signal, which it sends itself.
    Signal(c_int),
}

/// The children, in the order they are forked.
const ENDINGS: [Ending; 5] = [
    Ending::Exit(0),
    Ending::Exit(1),
    Ending::Exit(42),
    Ending::Signal(libc::SIGTERM),
    Ending::Signal(libc::SIGKILL),
];

/// Set by the handler, taken (read and cleared) by the main loop.
static CHILD_ENDED: AtomicBool = AtomicBool::new(false);

/// The whole SIGCHLD handler: one atomic store, async-signal-safe.
extern "C" fn on_sigchld(_sig: c_int) {
    CHILD_ENDED.store(true, Ordering::Relaxed);
}

fn main() -> ExitCode {
    run().unwrap_or_else(|e| {
        eprintln!("reap_children: {e}");
        ExitCode::FAILURE
    })
}

fn run() -> io::Result<ExitCode> {
    let sigchld = SignalSet::of(&[libc::SIGCHLD]);
    let mask_while_sleeping = sys::block_signals(&sigchld)?;
    sys::install_handler(libc::SIGCHLD, on_sigchld, &sigchld)?;

    // The starting gun: every child reads this pipe, and all of them read
    // end-of-file in the same instant, when the last write end closes.
    let (start_reader, start_writer) = io::pipe()?;
    // Rust's stdout writes each line as it ends, also into a pipe.
    println!(
        "pid {}: forking {} children",
        std::process::id(),
        ENDINGS.len()
    );
    let mut running: Vec<pid_t> = Vec::new();
    for ending in ENDINGS {
        match sys::fork()? {
            Forked::Child => {
                drop(start_writer);
                run_child(start_reader, ending);
            }
            Forked::Parent { child } => {
                println!("forked child {child}: it will {}", planned(ending));
                running.push(child);
            }
        }
    }
    println!("starting them all at once");
    drop(start_writer);

    let mut wakeups = 0;
    while !running.is_empty() {
        sys::wait_for_events(&mut [], None, &mask_while_sleeping)?;
        if !CHILD_ENDED.swap(false, Ordering::Relaxed) {
            continue;
        }
        wakeups += 1;
        // One SIGCHLD may stand for several children: reap until none is
        // waiting, never just one.
        while let Wait::Reaped(pid, status) = wait_any()? {
            debug_assert!(running.contains(&pid), "a reaped pid is one we forked");
            running.retain(|&p| p != pid);
            println!("reaped child {pid}: {}", how_it_ended(status));
        }
    }
    println!(
        "all {} children reaped after {wakeups} SIGCHLD wake-up(s)",
        ENDINGS.len()
    );
    // ECHILD means no child at all, running or zombie: the kernel's word
    // that none was left behind.
    match wait_any()? {
        Wait::NoChildLeft => {
            println!("waitpid(-1): ECHILD, no child is left, so no zombie either");
            Ok(ExitCode::SUCCESS)
        }
        _ => {
            eprintln!("reap_children: a child is still there");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// A child: waits for the starting gun, then ends as `ending` says.
fn run_child(mut start: PipeReader, ending: Ending) -> ! {
    // Returns 0 (end-of-file) once every write end is closed; this child
    // closed its own copy right after the fork.
    let _ = start.read(&mut [0u8; 1]);
    let status = match ending {
        Ending::Exit(status) => status,
        Ending::Signal(sig) => {
            // SIGTERM and SIGKILL have their default action here: the
            // process ends inside this call.
            let _ = sys::send_signal(std::process::id() as pid_t, sig);
            1
        }
    };
    // SAFETY: _exit ends the process at once, without flushing or running
    // the exit work this child copied from its parent.
    unsafe { libc::_exit(status) }
}

/// What `waitpid(-1, WNOHANG)` found.
enum Wait {
    /// This child ended, with this wait status; it is reaped now.
    Reaped(pid_t, c_int),
    /// Children remain, all still running (waitpid returned 0).
    StillRunning,
    /// There is no child at all (ECHILD).
    NoChildLeft,
}

/// `waitpid(-1, &status, WNOHANG)`: reaps one ended child, if any.
fn wait_any() -> io::Result<Wait> {
    loop {
        let mut status: c_int = 0;
        // SAFETY: waitpid writes only to `status`, a valid local.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid > 0 {
            return Ok(Wait::Reaped(pid, status));
        }
        if pid == 0 {
            return Ok(Wait::StillRunning);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::ECHILD) => return Ok(Wait::NoChildLeft),
            // WNOHANG never sleeps, so a signal cannot interrupt it; a
            // blocking waitpid must retry like this.
            Some(libc::EINTR) => continue,
            _ => return Err(err),
        }
    }
}

/// What a child is meant to do, in the words of `how_it_ended`.
fn planned(ending: Ending) -> String {
    match ending {
        Ending::Exit(status) => format!("exit with status {status}"),
        Ending::Signal(sig) => format!("be killed by {}", sys::signal_name(sig)),
    }
}

/// How a child ended, from its wait status.
fn how_it_ended(status: c_int) -> String {
    if libc::WIFEXITED(status) {
        format!("exited with status {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("killed by {}", sys::signal_name(libc::WTERMSIG(status)))
    } else {
        // Stopped and continued children are reported only when asked for
        // (WUNTRACED, WCONTINUED), which this program does not.
        format!("wait status {status:#x}")
    }
}
