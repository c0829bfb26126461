//! sigint_lives: a signal handler that only records, and a main loop that
//! does the work.
//!
//! `cargo run --example sigint_lives`, then press Ctrl-C: the first ten
//! are caught, each with a line saying how many lives are left; the
//! eleventh gets SIGINT's default action and ends the program (the shell
//! reports status 130, 128 + SIGINT). `kill -INT PID` from another terminal
//! does the same (the first line gives the PID). After a minute without a
//! Ctrl-C it gives up by itself (status 1).
//!
//! What it teaches:
//! - The handler only adds one to an atomic counter; the main loop prints.
//!   A handler interrupts the program wherever it is, perhaps inside
//!   `malloc` or holding the lock of stdout, so it may only call
//!   async-signal-safe functions (`man 7 signal-safety`). `println!`,
//!   `format!` and anything that allocates or locks are not: the C
//!   classic, `printf` in the handler, works in a demo and deadlocks or
//!   corrupts the heap once in a while in production.
//! - `sigaction`, not `signal()`: what `signal()` installs differs between
//!   systems (System V semantics reset the handler to the default after
//!   one delivery, so there the second Ctrl-C would kill). `sigaction`
//!   says it all: the handler stays, SIGINT is masked while it runs, and
//!   interrupted system calls restart (`SA_RESTART`).
//! - The default action is put back explicitly (`SIG_DFL`), not by
//!   restoring whatever was inherited: a program started with SIGINT
//!   ignored (a background job of a script) would otherwise never end.
//! - Waiting without losing a signal. "Look at the counter, then
//!   `pause()`" has a gap: a SIGINT landing between the two is handled,
//!   and `pause()` then waits for the next one. Here SIGINT stays blocked
//!   except while the program sleeps in `ppoll`, which unblocks it for the
//!   sleep only, atomically (what `sigsuspend` does).
//! - Signals coalesce: while one SIGINT is pending the kernel does not
//!   queue a second, so two very fast Ctrl-Cs may cost one life. (The test
//!   waits for each line before it sends the next SIGINT.)
//!
//! The handler is this file's own, so that everything it does is in
//! sight; installing it, blocking and sleeping go through mpecho's safe
//! wrappers (`mpecho::sys`), the calls the server itself makes, which keeps
//! this file free of `unsafe`.
//!
//! Where mpecho does it for real: `src/signals.rs` (`record_signal`, the
//! handler, one atomic store; `Signals::install`, `Signals::wait`,
//! `Signals::take`) over `src/sys/signals.rs` (`install_handler`,
//! `set_disposition`) and `src/sys/events.rs` (`wait_for_events`); the
//! master acts on the flags in `src/server/event_loop.rs`
//! (`handle_signals`).

use std::ffi::c_int;
use std::io;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use mpecho::sys::{self, Disposition, SignalSet};

/// Ctrl-Cs caught before SIGINT gets its default action back.
const LIVES: u32 = 10;

/// How long it waits for a Ctrl-C before giving up, so that a forgotten
/// run ends by itself.
const PATIENCE: Duration = Duration::from_secs(60);

/// SIGINTs caught so far: written by the handler, read by the main loop.
static CAUGHT: AtomicU32 = AtomicU32::new(0);

/// The whole handler: one atomic add, which is async-signal-safe.
extern "C" fn on_sigint(_sig: c_int) {
    CAUGHT.fetch_add(1, Ordering::Relaxed);
}

fn main() -> ExitCode {
    run().unwrap_or_else(|e| {
        eprintln!("sigint_lives: {e}");
        ExitCode::FAILURE
    })
}

fn run() -> io::Result<ExitCode> {
    let sigint = SignalSet::of(&[libc::SIGINT]);
    // Blocked from here on: a SIGINT that comes early waits, pending, for
    // the first sleep below.
    let mask_while_sleeping = sys::block_signals(&sigint)?;
    sys::install_handler(libc::SIGINT, on_sigint, &sigint)?;
    // Rust's stdout writes each line as it ends, also into a pipe.
    println!("pid {}: press Ctrl-C ({LIVES} lives)", std::process::id());

    let mut reported = 0;
    loop {
        // Returns when a handler has run, or after PATIENCE.
        sys::wait_for_events(&mut [], Some(PATIENCE), &mask_while_sleeping)?;
        let caught = CAUGHT.load(Ordering::Relaxed);
        if caught == reported {
            println!("no Ctrl-C for {} s: giving up", PATIENCE.as_secs());
            return Ok(ExitCode::FAILURE);
        }
        debug_assert!(
            caught <= LIVES,
            "SIGINT has its default action back once the lives are spent"
        );
        while reported < caught {
            reported += 1;
            let left = LIVES - reported;
            let lives = if left == 1 { "life" } else { "lives" };
            println!("caught SIGINT: {left} {lives} left");
        }
        if reported == LIVES {
            // Still blocked: the next SIGINT waits for the sleep above,
            // where its default action ends the process.
            sys::set_disposition(libc::SIGINT, Disposition::Default)?;
            println!("SIGINT has its default action again: the next Ctrl-C ends the program");
        }
    }
}
