//! The `mpecho` executable: set up the process, parse the command line,
//! dispatch, exit.
//!
//! `main` is the C entry point (`#![no_main]`): Rust's runtime start-up
//! (reading /proc/self/maps for the main thread's stack guard, an alternate
//! signal stack, probing descriptors 0-2) cost every worker about 0.1 ms of
//! CPU when workers were this executable (measured with `perf stat -r 500
//! mpecho worker`: 0.45 ms → 0.35 ms of task-clock); they are
//! `mpecho-worker` now, with no runtime at all, and `mpecho worker` only
//! execs it. The two parts that matter are done here by hand: standard
//! descriptors are made valid, and SIGPIPE is ignored so a closed pipe is
//! an error to handle, not a silent death.

#![no_main]

use std::ffi::{OsString, c_char, c_int};
use std::io::Write;
use std::process::ExitCode;

use mpecho::cli::{self, Command};
use mpecho::handoff;
use mpecho::sys::{self, Disposition};

#[unsafe(no_mangle)]
pub extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    if sys::ensure_standard_fds().is_err() {
        return 1;
    }
    let _ = sys::set_disposition(libc::SIGPIPE, Disposition::Ignore);
    let code = run();
    // std's runtime would flush stdout at exit; without it, a last line
    // without a newline would stay in the buffer.
    let _ = std::io::stdout().flush();
    status_code(code)
}

fn run() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    // `mpecho worker ARGS` hands ARGS to mpecho-worker untouched: dispatch
    // before clap, which would refuse options it does not know.
    if args.get(1).is_some_and(|a| a == handoff::SUBCOMMAND) {
        return mpecho::worker::main(&args[2..]);
    }
    let cli = match cli::parse(args) {
        Ok(cli) => cli,
        Err(status) => return status,
    };
    match cli.command {
        Command::Serve(args) => mpecho::server::main(*args),
        Command::Client(args) => mpecho::client::main(args),
        Command::ChatServer(args) => mpecho::chat::server::main(args),
        Command::Chat(args) => mpecho::chat::client::main(args),
        Command::Rules(args) => mpecho::rules::main(args),
        Command::Worker => mpecho::worker::main(&[]),
        Command::UpgradeCheck => mpecho::server::upgrade_check(),
    }
}

/// The number behind an `ExitCode`: the entry points speak `ExitCode`, and
/// std has no stable way to read its value back (only to compare it).
fn status_code(code: ExitCode) -> c_int {
    (0..=u8::MAX)
        .find(|&n| ExitCode::from(n) == code)
        .map_or(1, c_int::from)
}
