//! Starting a worker: re-executing our own program as `mpecho worker` with
//! the client on descriptor 3 and (when logging to a file) the log on 4.
//!
//! The argument vector and environment are built once at boot, so a spawn
//! allocates little but the kernel's work. `sys::SpawnTemplate` uses a
//! vfork-style clone, so neither the master's page tables nor its
//! descriptor table are copied per connection.
//! This module never keeps the client's descriptor: the caller closes its
//! copy right after the spawn, so the connection's life belongs to the
//! worker alone.

use std::ffi::CString;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Duration;

use crate::log::Level;
use crate::net::display_addr;
use crate::sys::{self, SpawnTemplate, pid_t};
use crate::worker::{CLIENT_FD, LOG_FD};

/// `/proc/self/exe` rather than the path we were started from: if the binary
/// is replaced on disk while the server runs (an upgrade, a `cargo build`),
/// workers keep running the same code as their master.
const SELF_EXE: &str = "/proc/self/exe";

/// The only variables a worker inherits from the master's environment: no
/// secrets a service manager or shell may have set reach a connection's
/// process (the UCSPI variables describing the connection are added per
/// spawn).
pub const INHERITED_ENV: [&str; 4] = ["PATH", "LANG", "LC_ALL", "TZ"];

/// What every worker is told on its command line.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub log_level: Level,
    /// Zero turns the idle timeout off.
    pub idle_timeout: Duration,
}

pub struct Spawner {
    template: SpawnTemplate,
    log_fd: Option<BorrowedFd<'static>>,
}

impl Spawner {
    /// Prepares the worker's command line for the process's log (`log_fd`
    /// is the log file, `None` when logging to the inherited stderr).
    ///
    /// `reset_signals` are the signals the master handles or ignores, which
    /// the worker must start with at their defaults.
    pub fn new(
        log_fd: Option<BorrowedFd<'static>>,
        settings: &WorkerSettings,
        reset_signals: Vec<libc::c_int>,
    ) -> io::Result<Spawner> {
        let mut argv = vec![
            sys::c_string("mpecho")?,
            sys::c_string("worker")?,
            sys::c_string(format!("--log-level={}", settings.log_level.name()))?,
            sys::c_string(format!(
                "--idle-timeout={}",
                settings.idle_timeout.as_secs()
            ))?,
        ];
        if log_fd.is_some() {
            argv.push(sys::c_string(format!("--log-fd={LOG_FD}"))?);
        }
        let envp = INHERITED_ENV
            .iter()
            .filter_map(|name| {
                let value = std::env::var_os(name)?;
                let mut entry = name.as_bytes().to_vec();
                entry.push(b'=');
                entry.extend(value.into_encoded_bytes());
                sys::c_string(entry).ok()
            })
            .collect();
        let template = SpawnTemplate::new(sys::c_string(SELF_EXE)?, argv, envp, reset_signals);
        Ok(Spawner { template, log_fd })
    }

    /// Starts a worker for `client` (whose address is `peer`), returning
    /// its pid.
    pub fn spawn_worker(&mut self, client: &TcpStream, peer: SocketAddr) -> io::Result<pid_t> {
        // The client is normally far above 4 (the listener, the log and the
        // spare descriptor come first), but if it landed on 3 or 4 the
        // dup2 sequence would clobber it or leave close-on-exec set on it
        // (`dup2(3, 3)` is a no-op), so it is moved up first.
        let moved;
        let client_fd: BorrowedFd<'_> = if client.as_raw_fd() <= LOG_FD {
            moved = sys::dup_at_least(client.as_fd(), LOG_FD + 1)?;
            moved.as_fd()
        } else {
            client.as_fd()
        };
        let env = ucspi_env(peer, display_addr(client.local_addr()?))?;
        match self.log_fd {
            Some(log) => self
                .template
                .spawn(&[(client_fd, CLIENT_FD), (log, LOG_FD)], &env),
            None => self.template.spawn(&[(client_fd, CLIENT_FD)], &env),
        }
    }
}

/// The connection described the way UCSPI servers (`tcpserver`) do, so
/// tools written for that interface find what they expect.
fn ucspi_env(remote: SocketAddr, local: SocketAddr) -> io::Result<[CString; 5]> {
    Ok([
        sys::c_string("PROTO=TCP")?,
        sys::c_string(format!("TCPREMOTEIP={}", remote.ip()))?,
        sys::c_string(format!("TCPREMOTEPORT={}", remote.port()))?,
        sys::c_string(format!("TCPLOCALIP={}", local.ip()))?,
        sys::c_string(format!("TCPLOCALPORT={}", local.port()))?,
    ])
}
