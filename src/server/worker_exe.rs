//! The worker executable: found, opened once and checked at boot, so that
//! every connection runs the master's own build and a broken install is a
//! startup error, never a failure per connection.
//!
//! - found: `--worker PATH`, else `mpecho-worker` beside the running
//!   `mpecho` (`handoff::worker_beside_self`);
//! - opened with `O_PATH|O_CLOEXEC`: the descriptor names the file, so a
//!   package upgrade that renames new files over the old ones (or deletes
//!   them) changes nothing for this master's workers, which it execs with
//!   `execveat(fd, "", AT_EMPTY_PATH)` (`sys::SpawnTemplate`). A file
//!   written over in place is the same file: the kernel refuses that with
//!   ETXTBSY only while a worker runs it, which is why installers replace
//!   files by rename;
//! - checked: run once, through that descriptor, by the very template
//!   every connection will use (same environment, signals and, after
//!   `--user`, credentials), as `mpecho-worker --version`; it must exit 0
//!   having printed exactly `handoff::VersionLine`, within
//!   [`CHECK_TIMEOUT`].
//!
//! Never logs (the caller says what went wrong, once, on stderr) and never
//! leaves the checked child unreaped.

use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
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

/// The worker executable could not be used.
#[derive(Debug, thiserror::Error)]
pub enum WorkerExeError {
    #[error(
        "could not find the worker executable: /proc/self/exe cannot be read ({0}); name it \
         with --worker PATH"
    )]
    NotFound(io::Error),
    #[error(
        "could not open the worker executable {}: {source}; install {WORKER_NAME} beside \
         mpecho (the same build), or name it with --worker PATH",
        path.display()
    )]
    Open { path: PathBuf, source: io::Error },
    #[error(
        "could not run the worker executable {}: {source}; it must be an executable file \
         (the {WORKER_NAME} built with this mpecho), runnable by the user the server runs as",
        path.display()
    )]
    Run { path: PathBuf, source: io::Error },
    #[error(
        "the worker executable {} is not this server's {WORKER_NAME}: asked `--version`, it \
         {answer}, where {WORKER_NAME} prints `{expected}`; install the {WORKER_NAME} built with \
         this mpecho beside it, or name it with --worker PATH",
        path.display(),
        expected = VersionLine
    )]
    Mismatch { path: PathBuf, answer: String },
    #[error("could not prepare the worker's command line: {0}")]
    Argv(io::Error),
}

/// Where the worker executable is: `configured` (`--worker`), or beside us.
pub fn locate(configured: Option<&Path>) -> Result<PathBuf, WorkerExeError> {
    match configured {
        Some(path) => Ok(path.to_path_buf()),
        None => handoff::worker_beside_self().map_err(WorkerExeError::NotFound),
    }
}

/// Opens the worker executable at `path` (a descriptor at or above
/// `FIRST_FREE_FD`, clear of the numbers a spawn maps).
pub fn open(path: &Path) -> Result<OwnedFd, WorkerExeError> {
    sys::open_executable(path, FIRST_FREE_FD).map_err(|source| WorkerExeError::Open {
        path: path.to_path_buf(),
        source,
    })
}

/// Runs `mpecho-worker --version` through `template` and checks the
/// answer; `path` is only for the messages.
pub fn check(template: &mut SpawnTemplate, path: &Path) -> Result<(), WorkerExeError> {
    let run_error = |source| WorkerExeError::Run {
        path: path.to_path_buf(),
        source,
    };
    let argv = Argv::new(handoff::version_argv().map_err(WorkerExeError::Argv)?);
    let (answer, status) = run_once(template, &argv).map_err(run_error)?;
    let expected = format!("{VersionLine}\n");
    if status == Some(ExitKind::Code(0)) && answer == expected.as_bytes() {
        return Ok(());
    }
    // Its first line says enough (another program's --version, a usage).
    let text = String::from_utf8_lossy(&answer);
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
    Err(WorkerExeError::Mismatch {
        path: path.to_path_buf(),
        answer: format!("{printed} and {ended}"),
    })
}

/// Spawns `argv` with its standard output on a pipe, reads what it prints
/// until it exits (or [`CHECK_TIMEOUT`]: then it is killed), and reaps
/// it. The status is `None` when it had to be killed.
fn run_once(template: &mut SpawnTemplate, argv: &Argv) -> io::Result<(Vec<u8>, Option<ExitKind>)> {
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
