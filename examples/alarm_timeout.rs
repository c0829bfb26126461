//! alarm_timeout: a timer signal, SIGALRM from `alarm(2)`, recorded by its
//! handler and acted on by the main loop, which prints `Time out` and
//! re-arms the alarm.
//!
//! `cargo run --example alarm_timeout` prints `Time out` every two seconds,
//! five times, and exits 0; Ctrl-C stops it sooner (it says so and exits
//! 130, 128 + SIGINT, as shells expect). `--interval SECS` and `--count N`
//! change the two numbers.
//!
//! What it teaches:
//! - `alarm(n)` asks the kernel for one SIGALRM in `n` seconds. It is
//!   one-shot, so the loop arms it again after each one; it counts whole
//!   seconds (`alarm(0)` cancels), and a process has only one. Finer or
//!   several timers: `setitimer`, `timer_create`, or a deadline given to
//!   the wait itself, as mpecho does.
//! - The handlers only record: SIGALRM and SIGINT each set a flag, and the
//!   main loop prints. A handler that printed `Time out` with `println!`
//!   would take the stdout lock, and deadlock if the alarm came while the
//!   main loop held it; the only safe way to print from a handler is one
//!   `write(2)` of bytes prepared beforehand.
//! - Sleeping so that a signal wakes you: the loop sleeps in `ppoll`,
//!   which returns as soon as a handler has run. Rust's
//!   `std::thread::sleep` would not do: it retries `nanosleep` after EINTR,
//!   so a program sleeping in it hears of a signal only when the whole
//!   sleep is over. In C it is the opposite mistake: `sleep()` returns
//!   early with the time left, and a program that forgets EINTR believes it
//!   slept the whole time.
//! - SIGALRM and SIGINT are blocked except during that sleep, so neither
//!   can slip in between "look at the flags" and "sleep" (the lost wake-up
//!   of a flag check followed by `pause()`).
//!
//! The handlers are this file's own, so that everything they do is in
//! sight; installing them, blocking and sleeping go through mpecho's safe
//! wrappers (`mpecho::sys`), the calls the server itself makes. `alarm`
//! is called through `libc`: mpecho has no use for it.
//!
//! Where mpecho does it for real: the master has no alarm at all. Every
//! timer (the figures line, the end of an accept pause, the grace period
//! at shutdown, the watchdog) is a deadline, and its loop sleeps in
//! `epoll_pwait` until the nearest one, a handled signal or a ready
//! descriptor, whichever comes first: `src/server/event_loop.rs`
//! (`next_deadline`, `handle_signals`), over `src/signals.rs`
//! (`Signals::wait_epoll`, `Signals::take`).

use std::ffi::c_int;
use std::io;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;
use mpecho::sys::{self, SignalSet};

#[derive(Parser)]
#[command(about = "Prints `Time out` at every SIGALRM of alarm(2), re-arming it each time")]
struct Args {
    /// Seconds between alarms (alarm(2) counts whole seconds).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    interval: u32,
    /// Alarms before it exits 0.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    count: u32,
}

/// Exit status after Ctrl-C, by shell convention 128 + SIGINT.
const EXIT_INTERRUPTED: u8 = 130;

/// Set by the handlers, taken (read and cleared) by the main loop.
static ALARM_RANG: AtomicBool = AtomicBool::new(false);
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// The whole SIGALRM handler: one atomic store, async-signal-safe.
extern "C" fn on_sigalrm(_sig: c_int) {
    ALARM_RANG.store(true, Ordering::Relaxed);
}

/// The whole SIGINT handler: one atomic store, async-signal-safe.
extern "C" fn on_sigint(_sig: c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

fn main() -> ExitCode {
    let args = Args::parse();
    run(&args).unwrap_or_else(|e| {
        eprintln!("alarm_timeout: {e}");
        ExitCode::FAILURE
    })
}

fn run(args: &Args) -> io::Result<ExitCode> {
    let handled = SignalSet::of(&[libc::SIGALRM, libc::SIGINT]);
    // Blocked from here on, let in only while the loop sleeps.
    let mask_while_sleeping = sys::block_signals(&handled)?;
    sys::install_handler(libc::SIGALRM, on_sigalrm, &handled)?;
    sys::install_handler(libc::SIGINT, on_sigint, &handled)?;
    // Rust's stdout writes each line as it ends, also into a pipe.
    println!(
        "pid {}: `Time out` every {} s, {} times; Ctrl-C stops it",
        std::process::id(),
        args.interval,
        args.count
    );

    arm_alarm(args.interval);
    let mut alarms = 0;
    loop {
        // No timeout: the alarm is the timeout. Returns once a handler ran.
        sys::wait_for_events(&mut [], None, &mask_while_sleeping)?;
        if INTERRUPTED.swap(false, Ordering::Relaxed) {
            println!("SIGINT: stopped after {alarms} of {} alarms", args.count);
            return Ok(ExitCode::from(EXIT_INTERRUPTED));
        }
        if ALARM_RANG.swap(false, Ordering::Relaxed) {
            alarms += 1;
            println!("Time out");
            if alarms == args.count {
                println!("{alarms} alarms: done");
                return Ok(ExitCode::SUCCESS);
            }
            arm_alarm(args.interval);
        }
    }
}

/// Asks for one SIGALRM in `seconds` (at least 1: 0 would cancel).
fn arm_alarm(seconds: u32) {
    // SAFETY: alarm only sets this process's real-time timer; it has no
    // memory effects and cannot fail.
    unsafe { libc::alarm(seconds) };
}
