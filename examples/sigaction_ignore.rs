//! sigaction_ignore: a signal ignored with `sigaction` and `SIG_IGN`.
//!
//! `cargo run --example sigaction_ignore` counts down five seconds, one
//! line a second, and exits 0; Ctrl-C does nothing meanwhile (the terminal
//! echoes `^C`, that is all). `--seconds N` counts down from N instead.
//!
//! What it teaches:
//! - With `SIG_IGN` the kernel discards SIGINT when it is sent: no code
//!   runs, nothing stays pending, and the sleep in progress is not
//!   interrupted (no EINTR to handle, unlike with a handler). The process's
//!   ignored signals are in the `SigIgn:` mask of /proc/PID/status.
//! - `sigaction` rather than `signal()`: for `SIG_IGN` both would do, but
//!   `sigaction` is the one call whose meaning is the same everywhere, for
//!   handlers too (see `sigint_lives`), so it is the habit to have.
//! - An ignored signal stays ignored in children, across `fork` and across
//!   `exec` too (a handler is reset to the default by `exec`, `SIG_IGN` is
//!   not): every program this one started would shrug off Ctrl-C as well.
//!   That is how `nohup` works, and why a server must set the signals it
//!   ignores back to `SIG_DFL` in the programs it starts.
//! - SIGKILL and SIGSTOP cannot be ignored or caught: `sigaction` refuses
//!   them (EINVAL). `kill -KILL PID` always ends this program.
//!
//! The `sigaction` call is written out with `libc`, because it is the
//! lesson; mpecho wraps the very same call in `src/sys/signals.rs`
//! (`set_disposition`).
//!
//! Where mpecho does it for real: `src/main.rs` (`main`) ignores SIGPIPE,
//! so that writing to a closed socket or pipe is an error to handle
//! (EPIPE) instead of a silent death; `src/sys/spawn.rs` (`child_main`)
//! sets SIGPIPE and the master's handled signals back to `SIG_DFL` in
//! every worker before `exec`; the chat client's receiving child ignores
//! SIGINT so that a Ctrl-C is handled once, by the parent
//! (`src/chat/client.rs`, `receive_forever`).

use std::io;
use std::process::ExitCode;
use std::thread;
use std::time::Duration;

use clap::Parser;

#[derive(Parser)]
#[command(about = "Ignores SIGINT with sigaction(SIG_IGN) while it counts down")]
struct Args {
    /// Seconds to count down, one line each.
    #[arg(long, default_value_t = 5)]
    seconds: u32,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = ignore_sigint() {
        eprintln!("sigaction_ignore: could not ignore SIGINT: {e}");
        return ExitCode::FAILURE;
    }
    // Rust's stdout writes each line as it ends, also into a pipe.
    println!(
        "pid {}: SIGINT is ignored; counting down {} seconds",
        std::process::id(),
        args.seconds
    );
    for left in (1..=args.seconds).rev() {
        println!("{left}");
        thread::sleep(Duration::from_secs(1));
    }
    println!("done");
    ExitCode::SUCCESS
}

/// `sigaction(SIGINT, {SIG_IGN}, NULL)`.
fn ignore_sigint() -> io::Result<()> {
    // SAFETY: an all-zero sigaction is a valid value: an empty mask and no
    // flags, which is what ignoring needs.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = libc::SIG_IGN;
    // SAFETY: `action` is initialised and outlives the call; SIG_IGN runs
    // no code of ours; the old action is not asked for (NULL).
    let ret = unsafe { libc::sigaction(libc::SIGINT, &action, std::ptr::null_mut()) };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
