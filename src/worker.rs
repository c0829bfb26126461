//! `mpecho worker`: runs the worker executable in this process's place.
//!
//! The worker is a program of its own, `mpecho-worker` (worker/, no std,
//! no libc: DESIGN §11), which `mpecho serve` opens once and execs for
//! every connection. This subcommand is for whoever still starts the
//! worker through the main executable (unit files written for `mpecho
//! worker`, people trying it by hand): it execs `mpecho-worker` from
//! beside this executable with the same arguments, descriptors and
//! environment, so there is one implementation of the worker. The pid
//! stays the same, so `LISTEN_PID` still names the worker under systemd.
//!
//! It must never serve a connection itself, nor change what the worker
//! inherits (descriptor 3, the environment, the signal state).

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};

use crate::handoff::{self, WORKER_NAME, WorkerExit};

/// Entry point for `mpecho worker`, given the arguments after `worker`.
/// Returns only if the worker executable could not be run.
pub fn main(args: &[OsString]) -> ExitCode {
    let error = match handoff::worker_beside_self() {
        Ok(path) => {
            let error = Command::new(&path).arg0(WORKER_NAME).args(args).exec();
            format!("could not run {}: {error}", path.display())
        }
        Err(e) => format!("could not find {WORKER_NAME}: /proc/self/exe cannot be read ({e})"),
    };
    eprintln!(
        "mpecho worker: {error}.\n\
         The worker is {WORKER_NAME}, installed beside mpecho; `mpecho serve` runs one for \
         each client. To run the server, use `mpecho serve`."
    );
    ExitCode::from(WorkerExit::Usage.code() as u8)
}
