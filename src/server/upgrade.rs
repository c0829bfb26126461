//! SIGUSR2: the master upgrades itself in place. It re-executes the binary
//! at the path it was started from (resolved once, at the first boot), in
//! the same process: `execve` keeps the pid, so the workers stay its
//! children, and keeps every descriptor not marked close-on-exec, so the
//! listening socket is never closed and clients arriving meanwhile wait in
//! its backlog.
//!
//! The old image ([`Master::upgrade`]): refuses what it cannot hand over
//! (a log line says why), runs `NEW upgrade-check` and reads the version
//! and state formats the new build answers, writes the state
//! (`handover.rs`) into a sealed memory file, clears close-on-exec on the
//! descriptors handed over for the one exec (and sets it back if the exec
//! fails: the old image then serves on), and execs.
//!
//! The new image ([`take_handover`], [`resume`]): finds the state through
//! `MPECHO_UPGRADE_STATE` (removed from its environment at once), adopts
//! the listener, the metrics listener, the log and every worker's pidfd
//! (close-on-exec again from its first step), rebuilds what is cheaper to
//! rebuild (epoll, the spawner, the rules from their file, per-address
//! counts from the workers), reaps the workers that ended during the exec,
//! logs `upgraded from …` and tells systemd `READY=1`.
//!
//! This module never drops privileges (the image is already the user),
//! never binds, and never closes the listener; when anything fails before
//! the exec, the master carries on exactly as it was.

use std::convert::Infallible;
use std::ffi::CString;
use std::io::{self, Read};
use std::net::TcpListener;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use crate::cli::{Model, ServeArgs};
use crate::handoff;
use crate::log::{self, Sink, error, info, warning};
use crate::sys::{self, Argv, ExitKind, Program, SpawnTemplate};
use crate::systemd::Notifier;
use crate::version;

use super::capacity;
use super::config::Config;
use super::error::ServeError;
use super::event_loop::{HANDLED, Master};
use super::handover::{HandedWorker, Handover, HandoverError, STATE_FORMAT, STATE_VAR};
use super::worker_exe;
use super::workers::Worker;

/// The hidden subcommand that answers the check.
pub const CHECK_SUBCOMMAND: &str = "upgrade-check";

/// The check's first line: a program that prints anything else is not
/// an mpecho that can take over.
const CHECK_BANNER: &str = "mpecho-upgrade-check";

/// `mpecho upgrade-check`: says which version this build is and which
/// state formats it reads, for a master about to exec it.
pub fn upgrade_check() -> ExitCode {
    println!(
        "{CHECK_BANNER}\nversion {}\nstate-formats {STATE_FORMAT}",
        version::version()
    );
    ExitCode::SUCCESS
}

/// Why an upgrade did not happen (the master serves on unchanged).
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error("could not run `{exe} {CHECK_SUBCOMMAND}`: {source}")]
    Run { exe: String, source: io::Error },
    #[error("`{exe} {CHECK_SUBCOMMAND}` {answer}: not an mpecho that can take over")]
    Check { exe: String, answer: String },
    #[error(
        "{exe} (version {version}) reads state formats {formats:?}, not {STATE_FORMAT}, the one \
         this master writes: restart instead"
    )]
    Format {
        exe: String,
        version: String,
        formats: Vec<String>,
    },
    #[error(transparent)]
    State(#[from] HandoverError),
    #[error("could not write the state to a memory file: {0}")]
    Memfd(io::Error),
    #[error("could not keep descriptor {fd} open across the exec: {source}")]
    KeepOpen { fd: RawFd, source: io::Error },
    #[error("could not exec {exe}: {source}")]
    Exec { exe: String, source: io::Error },
}

/// What `NEW upgrade-check` answered.
struct CheckAnswer {
    version: String,
    formats: Vec<String>,
}

impl Master {
    /// SIGUSR2: upgrade in place, or say why not and serve on. Returns
    /// only if the upgrade did not happen.
    pub(super) fn upgrade(&mut self) {
        if let Some(why) = self.upgrade_refusal() {
            return error!("upgrade refused (SIGUSR2): {why}; serving on unchanged");
        }
        let Some(exe) = self.exe.clone() else {
            return error!(
                "upgrade refused (SIGUSR2): the path this master was started from is unknown \
                 (/proc/self/exe could not be read at boot); serving on unchanged"
            );
        };
        self.notifier.reloading();
        let Err(e) = self.upgrade_to(&exe);
        error!("upgrade failed: {e}; serving on unchanged");
        self.notifier.ready(self.snapshot().figures());
    }

    /// Why the state cannot be handed over now, if it cannot.
    fn upgrade_refusal(&self) -> Option<String> {
        if self.draining.is_some() {
            return Some("shutdown is in progress".into());
        }
        match self.config.model {
            Model::Exec | Model::Fork => {}
            Model::Prefork => {
                return Some(
                    "--model prefork is not supported: the pool's processes and their control \
                     sockets are not handed over; restart the service to run a new build"
                        .into(),
                );
            }
            Model::Iterative => {
                return Some(
                    "--model iterative is not supported: the master serves the client itself; \
                     restart the service to run a new build"
                        .into(),
                );
            }
        }
        if let Some(pending) = &self.pending
            && pending.len() > 0
        {
            return Some(format!(
                "{} connections are waiting for their PROXY header (not handed over); send \
                 SIGUSR2 again in a moment",
                pending.len()
            ));
        }
        if self.idle_watch.is_some() {
            return Some(
                "--exec with an idle timeout is not supported: the master holds every \
                 program's connection to watch it, and those are not handed over \
                 (--idle-timeout 0 allows upgrades)"
                    .into(),
            );
        }
        if self.metrics.as_ref().is_some_and(|m| m.busy()) {
            return Some("a metrics scrape is in progress; send SIGUSR2 again in a moment".into());
        }
        None
    }

    /// Checks `exe`, hands the state over and execs it; returns only with
    /// why it did not happen, everything as it was.
    fn upgrade_to(&mut self, exe: &Path) -> Result<Infallible, UpgradeError> {
        let shown = exe.display().to_string();
        let answer = check(exe, &shown)?;
        if !answer
            .formats
            .iter()
            .any(|f| f == &STATE_FORMAT.to_string())
        {
            return Err(UpgradeError::Format {
                exe: shown,
                version: answer.version,
                formats: answer.formats,
            });
        }
        let state = self.handover(exe.to_path_buf()).encode()?;
        let memfd = sys::sealed_memfd(c"mpecho-upgrade-state", state.as_bytes())
            .map_err(UpgradeError::Memfd)?;
        let argv: Vec<CString> = std::env::args_os()
            .filter_map(|a| sys::c_string(a.into_encoded_bytes()).ok())
            .collect();
        let envp = exec_environment(memfd.as_raw_fd());
        let path =
            sys::c_string(exe.as_os_str().as_bytes()).map_err(|source| UpgradeError::Exec {
                exe: shown.clone(),
                source,
            })?;
        self.throttle.flush_all();
        info!(
            "upgrading to {} (state format {STATE_FORMAT}) from {shown}: handing over {} workers",
            answer.version,
            self.workers.len()
        );
        let mut fds = self.handed_fds();
        fds.push(memfd.as_fd());
        keep_open_across_exec(&fds)?;
        let source = sys::exec_in_place(&path, &argv, &envp);
        // Still this image: every descriptor goes back to close-on-exec,
        // so none can reach a worker (DESIGN §2).
        close_on_exec(&fds);
        Err(UpgradeError::Exec { exe: shown, source })
    }

    /// Every descriptor the next image adopts by number.
    fn handed_fds(&self) -> Vec<BorrowedFd<'_>> {
        let mut fds = Vec::with_capacity(self.workers.len() + 3);
        fds.extend(self.listener.fd());
        fds.extend(self.metrics.as_ref().and_then(|m| m.listener_fd()));
        fds.extend(log::logger().and_then(|l| l.sink().file_fd()));
        fds.extend(
            self.workers
                .iter()
                .filter_map(|(pid, _)| self.workers.pidfd(pid)),
        );
        fds
    }

    /// The state as the next image needs it.
    fn handover(&self, exe: PathBuf) -> Handover {
        let raw = |fd: Option<BorrowedFd<'_>>| fd.map(|fd| fd.as_raw_fd());
        let (notify_socket, watchdog_usec) = self.notifier.handover();
        Handover {
            from_version: version::version(),
            from_pid: std::process::id(),
            exe,
            listener: raw(self.listener.fd()).unwrap_or(-1),
            metrics: raw(self.metrics.as_ref().and_then(|m| m.listener_fd())),
            log: raw(log::logger().and_then(|l| l.sink().file_fd())),
            notify_socket,
            watchdog_usec,
            uptime: self.started.elapsed(),
            started_at: self.started_at,
            peak: self.workers.peak(),
            counters: self.counters.clone(),
            workers: self
                .workers
                .iter()
                .map(|(pid, w)| HandedWorker {
                    pid,
                    pidfd: raw(w.pidfd.as_ref().map(AsFd::as_fd)),
                    peer: w.peer,
                    age: w.started.elapsed(),
                })
                .collect(),
        }
    }

    /// The new image: the master the state describes, serving on.
    fn resume(
        listener: TcpListener,
        metrics: Option<TcpListener>,
        config: Config,
        notifier: Notifier,
        state: Handover,
    ) -> Result<Master, ServeError> {
        let mut master = Master::assemble(listener, metrics, config, notifier)?;
        let now = Instant::now();
        master.exe = Some(state.exe);
        master.counters = state.counters;
        master.started = now.checked_sub(state.uptime).unwrap_or(now);
        master.started_at = state.started_at;
        master.workers.carry_peak(state.peak);
        let carried = state.workers.len();
        for worker in state.workers {
            master.adopt_worker(worker, now);
        }
        info!(
            "upgraded from {} (pid {}) to {}: {carried} workers carried on",
            state.from_version,
            state.from_pid,
            version::version()
        );
        // Workers that ended during the exec are zombies now: those with a
        // pidfd wake the loop at once (readable), those without one sent a
        // SIGCHLD to the old image; one scan reaps both, counted once.
        master.reap_children();
        master.notifier.ready(master.snapshot().figures());
        Ok(master)
    }

    /// Enters a worker the old image started, watching its pidfd again.
    fn adopt_worker(&mut self, worker: HandedWorker, now: Instant) {
        let pid = worker.pid;
        let pidfd = worker
            .pidfd
            .and_then(|fd| match sys::adopt_inherited_fd(fd) {
                Ok(fd) => match self.epoll.add(fd.as_fd(), pid as u64) {
                    Ok(()) => Some(fd),
                    Err(e) => {
                        warning!("could not watch worker {pid}'s pidfd ({e}); reaping it by pid");
                        None
                    }
                },
                Err(e) => {
                    warning!(
                        "worker {pid}'s pidfd {fd} was not handed over ({e}); reaping it by pid"
                    );
                    None
                }
            });
        self.workers.insert(
            pid,
            Worker {
                peer: worker.peer,
                started: now.checked_sub(worker.age).unwrap_or(now),
                pidfd,
            },
        );
    }
}

/// Runs `exe upgrade-check` and reads its answer.
fn check(exe: &Path, shown: &str) -> Result<CheckAnswer, UpgradeError> {
    let run_error = |source| UpgradeError::Run {
        exe: shown.to_string(),
        source,
    };
    let path = sys::c_string(exe.as_os_str().as_bytes()).map_err(run_error)?;
    let mut reset = HANDLED.to_vec();
    reset.push(libc::SIGPIPE);
    let mut template =
        SpawnTemplate::new(Program::Path(path.clone()), handoff::inherited_env(), reset);
    let subcommand = sys::c_string(CHECK_SUBCOMMAND).map_err(run_error)?;
    let argv = Argv::new(vec![path, subcommand]);
    let (output, status) = worker_exe::run_once(&mut template, &argv).map_err(run_error)?;
    let text = String::from_utf8_lossy(&output);
    let mut lines = text.lines();
    let answered = lines.next() == Some(CHECK_BANNER);
    let version = lines.next().and_then(|l| l.strip_prefix("version "));
    let formats = lines.next().and_then(|l| l.strip_prefix("state-formats "));
    match (status, answered, version, formats) {
        (Some(ExitKind::Code(0)), true, Some(version), Some(formats)) => Ok(CheckAnswer {
            version: version.to_string(),
            formats: formats.split(' ').map(str::to_string).collect(),
        }),
        _ => Err(UpgradeError::Check {
            exe: shown.to_string(),
            answer: worker_exe::describe_answer(&output, status),
        }),
    }
}

/// This process's environment, plus where the state is.
fn exec_environment(state_fd: RawFd) -> Vec<CString> {
    std::env::vars_os()
        .filter(|(name, _)| name != STATE_VAR)
        .filter_map(|(name, value)| {
            let mut entry = name.into_encoded_bytes();
            entry.push(b'=');
            entry.extend(value.into_encoded_bytes());
            sys::c_string(entry).ok()
        })
        .chain(sys::c_string(format!("{STATE_VAR}={state_fd}")).ok())
        .collect()
}

/// Clears close-on-exec on `fds` for the exec; on a failure, puts back
/// those already cleared.
fn keep_open_across_exec(fds: &[BorrowedFd<'_>]) -> Result<(), UpgradeError> {
    for (i, fd) in fds.iter().enumerate() {
        if let Err(source) = sys::set_cloexec(*fd, false) {
            close_on_exec(&fds[..i]);
            return Err(UpgradeError::KeepOpen {
                fd: fd.as_raw_fd(),
                source,
            });
        }
    }
    Ok(())
}

fn close_on_exec(fds: &[BorrowedFd<'_>]) {
    for fd in fds {
        if let Err(e) = sys::set_cloexec(*fd, true) {
            error!(
                "could not mark descriptor {} close-on-exec again: {e}",
                fd.as_raw_fd()
            );
        }
    }
}

/// The new image's first step: the state the old one handed over, if this
/// process is an upgraded master. The variable is removed at once, so no
/// child ever sees it.
pub fn take_handover() -> Result<Option<Handover>, ServeError> {
    let Some(value) = std::env::var_os(STATE_VAR) else {
        return Ok(None);
    };
    sys::unset_env(&[STATE_VAR]);
    let bad = |why: String| ServeError::Handover(format!("{STATE_VAR}={value:?}: {why}"));
    let fd: RawFd = value
        .to_str()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| bad("not a descriptor number".into()))?;
    let fd = sys::adopt_inherited_fd(fd).map_err(|e| bad(e.to_string()))?;
    let mut text = String::new();
    std::fs::File::from(fd)
        .read_to_string(&mut text)
        .map_err(|e| bad(e.to_string()))?;
    Handover::decode(&text)
        .map(Some)
        .map_err(|e| bad(e.to_string()))
}

/// Serves on as the master the state describes (the new image of an
/// upgrade): its configuration is the same command line parsed again.
pub fn resume(args: &ServeArgs, state: Handover) -> Result<(), ServeError> {
    let adopt = |fd: RawFd, what: &str| {
        sys::adopt_inherited_fd(fd)
            .map_err(|e| ServeError::Handover(format!("{what} on descriptor {fd}: {e}")))
    };
    let listener = TcpListener::from(adopt(state.listener, "the listener")?);
    let metrics = match state.metrics {
        Some(fd) => Some(TcpListener::from(adopt(fd, "the metrics listener")?)),
        None => None,
    };
    let sink = match (state.log, &args.log_file) {
        (Some(fd), Some(path)) => Sink::adopted_file(adopt(fd, "the log")?, path.clone()),
        (None, None) => Sink::Stderr,
        _ => {
            return Err(ServeError::Handover(
                "the log handed over does not match --log-file".into(),
            ));
        }
    };
    log::init(sink, args.log_level, "master");
    let notifier = Notifier::from_vars(
        state.notify_socket.clone(),
        state.watchdog_usec.clone(),
        None,
        Instant::now(),
    );
    capacity::raise_descriptor_limit();
    Master::resume(listener, metrics, Config::from_args(args), notifier, state)?.run()
}
