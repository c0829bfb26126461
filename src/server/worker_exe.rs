//! The worker program: opened once and checked at boot, so that every
//! connection runs the master's own build and a broken install is a
//! startup error, never a failure per connection.
//!
//! - by default the `mpecho-worker` built into this executable
//!   (`handoff::builtin_worker`: a sealed memory file), which no upgrade,
//!   deletion or stale file on disk can change;
//! - with `--worker PATH`, that file, opened with `O_PATH|O_CLOEXEC`: the
//!   descriptor names the file, so a package upgrade that renames new files
//!   over the old ones (or deletes them) changes nothing for this master's
//!   workers. A file written over in place is the same file: the kernel
//!   refuses that with ETXTBSY only while a worker runs it, which is why
//!   installers replace files by rename;
//! - either way exec'd with `execveat(fd, "", AT_EMPTY_PATH)`
//!   (`sys::SpawnTemplate`), and checked: run once, through that
//!   descriptor, by the very template every connection will use (same
//!   environment, signals and, after `--user`, credentials), as
//!   `mpecho-worker --version`; it must exit 0 having printed exactly
//!   `handoff::VersionLine`, within [`CHECK_TIMEOUT`] (a memory file can be
//!   refused execution, by `vm.memfd_noexec` or a security policy: that too
//!   is found here).
//!
//! [`run_once`] (run a program, read what it prints, bounded, reaped) also
//! serves the upgrade's check of a new build (`upgrade.rs`).
//!
//! Never logs (the caller says what went wrong, once, on stderr) and never
//! leaves the checked child unreaped.

use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::handoff::{self, FIRST_FREE_FD, VersionLine, WORKER_NAME};
use crate::sys::{self, Argv, ExitKind, SignalSet, SpawnTemplate};

/// How long the check may take: a static program that prints one line
/// takes a millisecond; this much covers a machine under heavy load, and
/// bounds the wait for a wrong program that never exits (one reading its
/// standard input, say).
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// The most the check reads: far more than the version line.
const MAX_ANSWER: usize = 4096;

/// The worker program could not be used. `what` names it: a path, or the
/// built-in one.
#[derive(Debug, thiserror::Error)]
pub enum WorkerExeError {
    #[error(
        "could not prepare the built-in {WORKER_NAME}: {0}; name a worker executable with \
         --worker PATH"
    )]
    Builtin(io::Error),
    #[error(
        "could not open the worker executable {what}: {source}; name the {WORKER_NAME} built \
         with this mpecho with --worker PATH, or leave --worker out to use the built-in one"
    )]
    Open { what: String, source: io::Error },
    #[error(
        "could not run {what}: {source}; it must be an executable file (the {WORKER_NAME} built \
         with this mpecho), runnable by the user the server runs as{hint}"
    )]
    Run {
        what: String,
        source: io::Error,
        hint: &'static str,
    },
    #[error(
        "{what} is not this server's {WORKER_NAME}: asked `--version`, it {answer}, where \
         {WORKER_NAME} prints `{expected}`; name the {WORKER_NAME} built with this mpecho with \
         --worker PATH, or leave --worker out to use the built-in one",
        expected = VersionLine
    )]
    Mismatch { what: String, answer: String },
    #[error("could not prepare the worker's command line: {0}")]
    Argv(io::Error),
    /// `--exec PROG` cannot be run.
    #[error(transparent)]
    Program(#[from] super::program::ProgramError),
}

/// The worker program to run: `configured` (`--worker`) opened, or the
/// built-in one; and how to name it in messages.
pub fn open(configured: Option<&Path>) -> Result<(OwnedFd, String), WorkerExeError> {
    match configured {
        Some(path) => {
            let what = path.display().to_string();
            let fd = sys::open_executable(path, FIRST_FREE_FD).map_err(|source| {
                WorkerExeError::Open {
                    what: what.clone(),
                    source,
                }
            })?;
            Ok((fd, what))
        }
        None => {
            let fd = handoff::builtin_worker().map_err(WorkerExeError::Builtin)?;
            Ok((fd, format!("the built-in {WORKER_NAME}")))
        }
    }
}

/// Runs `mpecho-worker --version` through `template` and checks the
/// answer; `what` names the program in the messages.
pub fn check(
    template: &mut SpawnTemplate,
    what: &str,
    builtin: bool,
) -> Result<(), WorkerExeError> {
    let run_error = |source| WorkerExeError::Run {
        what: what.to_string(),
        source,
        hint: if builtin {
            " (a memory file: vm.memfd_noexec or a security policy may forbid running it; \
             then install mpecho-worker and name it with --worker PATH)"
        } else {
            ""
        },
    };
    let argv = Argv::new(handoff::version_argv().map_err(WorkerExeError::Argv)?);
    let (answer, status) = run_once(template, &argv).map_err(run_error)?;
    let expected = format!("{VersionLine}\n");
    if status == Some(ExitKind::Code(0)) && answer == expected.as_bytes() {
        return Ok(());
    }
    Err(WorkerExeError::Mismatch {
        what: what.to_string(),
        answer: describe_answer(&answer, status),
    })
}

/// What a checked program printed and how it ended, in a few words, for
/// the message that refuses it: its first line says enough (another
/// program's `--version`, a usage).
pub(super) fn describe_answer(answer: &[u8], status: Option<ExitKind>) -> String {
    let text = String::from_utf8_lossy(answer);
    let first: String = text
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(120)
        .collect();
    let printed = match first.trim_end() {
        "" => "printed nothing".to_string(),
        line if text.trim_end() == line => format!("printed {line:?}"),
        line => format!("printed {line:?} and more"),
    };
    let ended = match status {
        Some(ExitKind::Code(code)) => format!("exited with status {code}"),
        Some(ExitKind::Signal(sig)) => format!("was killed by {}", sys::signal_name(sig)),
        None => format!(
            "did not finish within {}s (killed)",
            CHECK_TIMEOUT.as_secs()
        ),
    };
    format!("{printed} and {ended}")
}

/// Spawns `argv` with its standard output on a pipe, reads what it prints
/// until it exits (or [`CHECK_TIMEOUT`]: then it is killed), and reaps
/// it. The status is `None` when it had to be killed.
pub(super) fn run_once(
    template: &mut SpawnTemplate,
    argv: &Argv,
) -> io::Result<(Vec<u8>, Option<ExitKind>)> {
    let (low_reader, low_writer) = io::pipe()?;
    // Both ends above the numbers a spawn maps (the pipe could otherwise
    // land on 1, the target), and only those: the child's copy of the
    // write end must be the last one for its exit to read as EOF.
    let reader = sys::dup_at_least(low_reader.as_fd(), FIRST_FREE_FD)?;
    let writer = sys::dup_at_least(low_writer.as_fd(), FIRST_FREE_FD)?;
    drop((low_reader, low_writer));
    let pid = template.spawn(argv, &[(writer.as_fd(), 1)], &[])?;
    // Ours closed, the child's end is its only one: EOF when it exits.
    drop(writer);
    let pidfd = sys::pidfd_open(pid);
    let deadline = Instant::now() + CHECK_TIMEOUT;
    let answer = read_until_eof(reader, deadline);
    let exited = match &pidfd {
        Ok(pidfd) => wait_readable(pidfd, deadline),
        Err(_) => true,
    };
    if !exited || answer.is_err() {
        // Still ours (not reaped), so the pid cannot have been reused.
        let _ = sys::send_signal(pid, libc::SIGKILL);
        let _ = sys::reap_child(pid, true);
        return Ok((answer.unwrap_or_default(), None));
    }
    let status = sys::reap_child(pid, true)?;
    Ok((answer?, status))
}

/// Everything `reader` gives until end of file, at most `MAX_ANSWER`
/// bytes; an error if `deadline` passes first.
fn read_until_eof(reader: OwnedFd, deadline: Instant) -> io::Result<Vec<u8>> {
    let mut reader = std::fs::File::from(reader);
    let mut answer = Vec::new();
    let mut chunk = [0u8; 512];
    loop {
        if !wait_readable(&reader, deadline) {
            return Err(io::ErrorKind::TimedOut.into());
        }
        match reader.read(&mut chunk)? {
            0 => return Ok(answer),
            n if answer.len() + n > MAX_ANSWER => return Ok(answer),
            n => answer.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Whether `fd` became readable before `deadline`. Every signal stays
/// blocked meanwhile: the master's handlers are installed but its loop
/// has not started, and a SIGTERM now is acted on once it has.
fn wait_readable(fd: &impl AsFd, deadline: Instant) -> bool {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let mut fds = [libc::pollfd {
            fd: fd.as_fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        match sys::wait_for_events(&mut fds, Some(left), &SignalSet::full()) {
            Ok(0) => continue,
            Ok(_) => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
}
