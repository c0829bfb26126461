//! Why `mpecho serve` could not start or had to stop: one sentence each,
//! naming what failed and on what, for the one line the operator reads on
//! standard error before exit status 1.

use std::io;

use crate::log::OpenLogError;
use crate::systemd::ActivationError;

use super::privileges::PrivilegeError;
use super::worker_exe::WorkerExeError;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("could not listen on {addr}: {reason}")]
    Bind { addr: String, reason: String },
    #[error("could not serve metrics on {addr}: {reason}")]
    BindMetrics { addr: String, reason: String },
    #[error(transparent)]
    LogFile(#[from] OpenLogError),
    #[error("could not mark inherited descriptors close-on-exec: {0}")]
    InheritedFds(io::Error),
    #[error("could not install signal handlers: {0}")]
    Signals(io::Error),
    /// The worker executable is missing, not executable, or not this
    /// build's (checked once at boot, never per connection).
    #[error(transparent)]
    Spawner(WorkerExeError),
    #[error("could not read the listening address: {0}")]
    LocalAddr(io::Error),
    #[error("could not write the `listening on` line to standard output: {0}")]
    Announce(io::Error),
    #[error("waiting for events failed: {0}")]
    Wait(io::Error),
    #[error("could not set up epoll: {0}")]
    Epoll(io::Error),
    #[error(transparent)]
    Privileges(#[from] PrivilegeError),
    #[error(transparent)]
    Activation(#[from] ActivationError),
    /// The state an upgrade in place handed over could not be taken.
    #[error("could not take over from the previous image: {0}")]
    Handover(String),
    #[error("--rules: {0}")]
    Rules(#[from] crate::rules::LoadError),
}
