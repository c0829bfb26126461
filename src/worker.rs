//! `mpecho worker`: runs the worker program in this process's place.
//!
//! The worker is a program of its own, `mpecho-worker` (worker/, no std,
//! no libc: DESIGN §11), carried inside this executable; `mpecho serve`
//! execs it for every connection. This subcommand is for whoever starts
//! the worker through the main executable (unit files written for `mpecho
//! worker`, people trying it by hand): it execs the built-in worker with
//! the same arguments, descriptors and environment, so there is one
//! implementation of the worker. The pid stays the same, so `LISTEN_PID`
//! still names the worker under systemd.
//!
//! It must never serve a connection itself, nor change what the worker
//! inherits (descriptor 3, the environment, the signal state).

use std::ffi::OsString;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};

use crate::handoff::{self, WORKER_NAME, WorkerExit};

/// Entry point for `mpecho worker`, given the arguments after `worker`.
/// Returns only if the worker program could not be run.
pub fn main(args: &[OsString]) -> ExitCode {
    let error = match handoff::builtin_worker() {
        // Exec'd by its /proc/self/fd path: the kernel opens the memory
        // file before it closes close-on-exec descriptors, and an ELF
        // program needs nothing from the path afterwards.
        Ok(program) => {
            let path = format!("/proc/self/fd/{}", program.as_raw_fd());
            let error = Command::new(&path).arg0(WORKER_NAME).args(args).exec();
            format!("could not run the built-in {WORKER_NAME}: {error}")
        }
        Err(e) => format!("could not prepare the built-in {WORKER_NAME}: {e}"),
    };
    eprintln!(
        "mpecho worker: {error}.\n\
         The worker serves one connection handed to it on descriptor 3; `mpecho serve` runs \
         one for each client. To run the server, use `mpecho serve`."
    );
    ExitCode::from(WorkerExit::Usage.code() as u8)
}
