//! The hand-over from master to worker, as the master (std) uses it.
//!
//! Everything both sides of the exec must agree on is defined once, in the
//! `mpecho-handoff` crate that `mpecho-worker` links too, and re-exported
//! here: the descriptors ([`CLIENT_FD`], [`LOG_FD`], [`FIRST_FREE_FD`]),
//! the program name ([`WORKER_NAME`], [`WORKER_PROGRAM`]), the options
//! ([`WorkerArgs`]), the exit statuses ([`WorkerExit`]), the idle timeout
//! ([`IdleTimeout`]) and the version line the master checks
//! ([`VersionLine`]). What stays here is what only a std program does with
//! them:
//! - the worker's command line as C strings ([`worker_argv`],
//!   [`version_argv`]);
//! - the environment: what is inherited ([`INHERITED_ENV`]) and how the
//!   connection is described ([`connection_env`], the UCSPI variables);
//! - the worker program this executable carries ([`builtin_worker`]);
//! - the `mpecho worker` subcommand's name ([`SUBCOMMAND`]).
//!
//! This module only defines and converts: it opens, spawns and logs nothing.

use std::ffi::CString;
use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;

pub use mpecho_handoff::{
    CLIENT_FD, FIRST_FREE_FD, HANDOFF_VERSION, IdleTimeout, LOG_FD, VERSION, VERSION_OPTION,
    VersionLine, WORKER_NAME, WORKER_PROGRAM, WorkerArgs, WorkerExit,
};

use crate::sys;

/// The subcommand of `mpecho` that runs the worker executable in its place
/// (`mpecho worker`, for people and unit files written for it); `main.rs`
/// dispatches on it before anything else runs.
pub const SUBCOMMAND: &str = "worker";

/// The only variables a worker inherits from the master's environment: no
/// secrets a service manager or shell may have set reach a connection's
/// process (the connection itself is described by [`connection_env`]).
pub const INHERITED_ENV: [&str; 4] = ["PATH", "LANG", "LC_ALL", "TZ"];

/// The complete argument vector the master execs a worker with:
/// `mpecho-worker --log-level=L --idle-timeout=SECS [--log-fd=4]`.
pub fn worker_argv(args: &WorkerArgs) -> io::Result<Vec<CString>> {
    let mut argv = vec![WORKER_PROGRAM.to_owned()];
    let mut options = Vec::new();
    args.write_options(|option| options.push(option.to_string()));
    for option in options {
        argv.push(sys::c_string(option)?);
    }
    Ok(argv)
}

/// The check's argument vector: `mpecho-worker --version`.
pub fn version_argv() -> io::Result<Vec<CString>> {
    Ok(vec![
        WORKER_PROGRAM.to_owned(),
        sys::c_string(VERSION_OPTION)?,
    ])
}

/// `--idle-timeout`'s parser for clap: whole seconds, 0 for off.
pub fn parse_idle_timeout(text: &str) -> Result<IdleTimeout, String> {
    IdleTimeout::parse(text).map_err(|e| e.to_string())
}

/// The `mpecho-worker` built with this `mpecho` (by build.rs), carried in
/// its own bytes so that no other build can ever be run in its place.
static BUILTIN_WORKER: &[u8] = include_bytes!(env!("MPECHO_WORKER_ELF"));

/// The built-in worker as a sealed memory file, ready to be exec'd through
/// its descriptor (at or above [`FIRST_FREE_FD`]); the kernel shares its
/// pages among every process that runs it, as it does a file's.
pub fn builtin_worker() -> io::Result<OwnedFd> {
    sys::memfd_executable(WORKER_PROGRAM, BUILTIN_WORKER, FIRST_FREE_FD)
}

/// The environment entries a worker inherits, read from the master's
/// environment once at boot.
pub fn inherited_env() -> Vec<CString> {
    INHERITED_ENV
        .iter()
        .filter_map(|name| {
            let value = std::env::var_os(name)?;
            let mut entry = name.as_bytes().to_vec();
            entry.push(b'=');
            entry.extend(value.into_encoded_bytes());
            sys::c_string(entry).ok()
        })
        .collect()
}

/// The connection described the way UCSPI servers (`tcpserver`) do, so
/// tools written for that interface find what they expect.
pub fn connection_env(remote: SocketAddr, local: SocketAddr) -> io::Result<[CString; 5]> {
    Ok([
        sys::c_string("PROTO=TCP")?,
        sys::c_string(format!("TCPREMOTEIP={}", remote.ip()))?,
        sys::c_string(format!("TCPREMOTEPORT={}", remote.port()))?,
        sys::c_string(format!("TCPLOCALIP={}", local.ip()))?,
        sys::c_string(format!("TCPLOCALPORT={}", local.port()))?,
    ])
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;
    use crate::log::Level;

    #[test]
    fn the_argv_names_the_worker_program_then_its_options() {
        let argv = worker_argv(&WorkerArgs {
            log_level: Level::Trace,
            log_fd: Some(LOG_FD),
            idle_timeout: IdleTimeout::from_secs(300),
        })
        .unwrap();
        let argv: Vec<&str> = argv.iter().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(
            argv,
            [
                "mpecho-worker",
                "--log-level=trace",
                "--idle-timeout=300",
                "--log-fd=4"
            ]
        );
        let parsed = WorkerArgs::parse(argv[1..].iter().map(|a| a.as_bytes()));
        assert_eq!(parsed.map(|a| a.log_fd), Ok(Some(LOG_FD)));
    }

    #[test]
    fn the_builtin_worker_is_a_sealed_executable_elf_file() {
        let fd = builtin_worker().unwrap();
        assert!(fd.as_raw_fd() >= FIRST_FREE_FD);
        let mut file = std::fs::File::from(fd);
        let mut head = [0u8; 4];
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut head, 0).unwrap();
        assert_eq!(&head, b"\x7fELF");
        assert!(
            std::io::Write::write_all(&mut file, b"x").is_err(),
            "the memory file is sealed against writing"
        );
    }
}
