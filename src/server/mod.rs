//! The master: `mpecho serve`.
//!
//! Lifecycle (see LIFECYCLE.md beside this file):
//! boot (`main` → `listener::bind`, log sink, `Master::boot`: signals,
//! spawner, `listening on`) → serve (`Master::run`: accept → limit check →
//! `spawn_worker` or reject; pidfd ready → `reap_worker`) → shutdown
//! (`begin_shutdown`: close listener, SIGTERM+SIGCONT, grace, SIGKILL, reap
//! all) → final figures → exit 0.
//!
//! The master never reads or writes client data and never does real work in
//! a signal handler.

mod accept;
mod accounts;
mod capacity;
mod event_loop;
pub mod listener;
mod monitor;
mod privileges;
mod reap;
mod shutdown;
mod spawn;
mod throttle;
mod workers;

use std::io;
use std::net::TcpListener;
use std::process::ExitCode;
use std::time::Duration;

use crate::cli::{OnFull, ServeArgs};
use crate::log::{self, OpenLogError, Sink};
use crate::net;
use crate::sys;

pub use event_loop::Master;
pub use spawn::WorkerSettings;

/// What the master needs to run, independent of how it was configured.
#[derive(Debug, Clone)]
pub struct Config {
    pub max_workers: usize,
    /// Most workers for one client address; 0 is no limit.
    pub max_per_ip: usize,
    pub on_full: OnFull,
    pub monitor_interval: Duration,
    pub grace: Duration,
    /// Passed on to every worker.
    pub worker: WorkerSettings,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("could not listen on {addr}: {reason}")]
    Bind { addr: String, reason: String },
    #[error(transparent)]
    LogFile(#[from] OpenLogError),
    #[error("could not mark inherited descriptors close-on-exec: {0}")]
    InheritedFds(io::Error),
    #[error("could not install signal handlers: {0}")]
    Signals(io::Error),
    #[error("could not prepare the worker command line: {0}")]
    Spawner(io::Error),
    #[error("could not read the listening address: {0}")]
    LocalAddr(io::Error),
    #[error("could not write the `listening on` line to standard output: {0}")]
    Announce(io::Error),
    #[error("waiting for events failed: {0}")]
    Wait(io::Error),
    #[error("could not set up epoll: {0}")]
    Epoll(io::Error),
    #[error(transparent)]
    Privileges(#[from] privileges::PrivilegeError),
}

/// Entry point for `mpecho serve`.
pub fn main(args: ServeArgs) -> ExitCode {
    match serve(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mpecho serve: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> Result<(), ServeError> {
    sys::close_inherited_fds_on_exec().map_err(ServeError::InheritedFds)?;
    let identity = privileges::resolve(args.user.as_deref(), args.group.as_deref())?;
    let sink = Sink::for_option(args.log_file.as_deref())?;
    let listener = listener::bind(args.listen, args.backlog).map_err(|e| ServeError::Bind {
        addr: args.listen.to_string(),
        reason: net::explain_bind_error(&e),
    })?;
    log::init(sink, args.log_level, "master");
    capacity::raise_descriptor_limit();
    privileges::drop_privileges(identity.as_ref())?;
    capacity::check(args.max_workers as usize);
    let config = Config {
        max_workers: args.max_workers as usize,
        max_per_ip: args.max_per_ip as usize,
        on_full: args.on_full,
        monitor_interval: Duration::from_secs(args.monitor_interval),
        grace: Duration::from_secs(args.grace),
        worker: WorkerSettings {
            log_level: args.log_level,
            idle_timeout: Duration::from_secs(args.idle_timeout),
        },
    };
    run(listener, config)
}

/// Serves on an already-bound listener until shutdown completes.
pub fn run(listener: TcpListener, config: Config) -> Result<(), ServeError> {
    Master::boot(listener, config)?.run()
}
