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
//! - where the worker executable is when nobody says ([`worker_beside_self`]);
//! - the `mpecho worker` subcommand's name ([`SUBCOMMAND`]).
//!
//! This module only defines and converts: it opens, spawns and logs nothing.

use std::ffi::CString;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

pub use mpecho_handoff::{
    CLIENT_FD, DO_NOTHING_OPTION, FIRST_FREE_FD, HANDOFF_VERSION, IdleTimeout, LOG_FD, VERSION,
    VERSION_OPTION, VersionLine, WORKER_NAME, WORKER_PROGRAM, WorkerArgs, WorkerExit,
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

/// The do-nothing worker's argument vector (measuring only; see
/// [`DO_NOTHING_OPTION`]): the option first, where the worker looks for
/// it before anything else, then the usual options, unread.
pub fn do_nothing_argv(args: &WorkerArgs) -> io::Result<Vec<CString>> {
    let mut argv = worker_argv(args)?;
    argv.insert(1, sys::c_string(DO_NOTHING_OPTION)?);
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

/// Where the worker executable is when no `--worker` says: beside the
/// running `mpecho`, the file `/proc/self/exe` names (symbolic links
/// resolved, so `/usr/bin/mpecho` linking to `/opt/mpecho/bin/mpecho` finds
/// `/opt/mpecho/bin/mpecho-worker`).
///
/// The link names a path, not the file: if `mpecho` was deleted or
/// replaced since it started, the kernel appends ` (deleted)` to the name,
/// and only the directory is used here, so the worker is still looked for
/// where the package put both. A directory that is gone is an error for
/// the caller to explain.
pub fn worker_beside_self() -> io::Result<PathBuf> {
    let exe = std::fs::read_link("/proc/self/exe")?;
    let dir = exe.parent().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("/proc/self/exe names no directory ({})", exe.display()),
        )
    })?;
    Ok(dir.join(WORKER_NAME))
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
    fn the_worker_is_looked_for_beside_the_running_executable() {
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        assert_eq!(
            worker_beside_self().unwrap(),
            exe.parent().unwrap().join("mpecho-worker")
        );
    }
}
