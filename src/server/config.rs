//! What the master runs with: `mpecho serve`'s options once parsed, in the
//! form the loop uses, independent of how they were given (a test or an
//! embedding program builds one directly and calls `server::run`).
//!
//! This module only converts; it opens, checks and starts nothing.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{Model, PoolSizes, ServeArgs};
use crate::handoff::IdleTimeout;
use crate::log::Level;
use crate::rules::Prefix;

use super::admission::Admission;
use super::program::ProgramCommand;

#[derive(Debug, Clone)]
pub struct Config {
    /// How connections are served (`--model`).
    pub model: Model,
    /// The pool's sizes (used by `--model prefork` only).
    pub pool: PoolSizes,
    pub admission: Admission,
    /// `--reject-message`: written to every client turned away.
    pub reject_message: Option<Vec<u8>>,
    /// `--rules`: read at boot and on SIGHUP.
    pub rules_file: Option<PathBuf>,
    /// Zero turns the periodic figures off (SIGUSR1 still asks for one).
    pub monitor_interval: Duration,
    pub grace: Duration,
    /// Passed on to every worker.
    pub worker: WorkerSettings,
    /// `--proxy-protocol`: every connection's PROXY header is read first
    /// (`pending.rs`); `None`: no header is ever read.
    pub proxy: Option<ProxySettings>,
}

/// Who may send a PROXY header, and how long it may take.
#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// `--trusted-proxy`: never empty (the command line refuses it).
    pub trusted: Vec<Prefix>,
    /// `--proxy-timeout`.
    pub timeout: Duration,
}

impl ProxySettings {
    /// Whether a connection from `ip` may send a header at all.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|prefix| prefix.contains(ip))
    }
}

/// The worker executable, and what every worker is told on its command
/// line (see `handoff.rs`).
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// `--worker`; `None`: the `mpecho-worker` built into mpecho.
    pub executable: Option<PathBuf>,
    /// `--exec PROG [ARG...]`: a program run instead of the worker.
    pub program: Option<ProgramCommand>,
    pub log_level: Level,
    pub idle_timeout: IdleTimeout,
    /// Workers that close the connection and exit at once (the hidden
    /// `--do-nothing-workers`, for measuring the ceiling only).
    pub do_nothing: bool,
}

impl Config {
    pub fn from_args(args: &ServeArgs) -> Config {
        Config {
            model: args.model,
            pool: args.pool(),
            admission: Admission {
                max_workers: args.max_workers() as usize,
                max_per_ip: args.max_per_ip as usize,
                max_rate_per_ip: args.max_rate_per_ip,
                on_full: args.on_full,
            },
            rules_file: args.rules.clone(),
            reject_message: args.reject_message.clone().map(|m| m.0),
            monitor_interval: Duration::from_secs(args.monitor_interval),
            grace: Duration::from_secs(args.grace),
            worker: WorkerSettings {
                executable: args.worker.clone(),
                program: args.exec.clone().map(|name| ProgramCommand {
                    name,
                    args: args.exec_args.clone(),
                }),
                log_level: args.log_level,
                idle_timeout: args.idle_timeout,
                do_nothing: args.do_nothing_workers,
            },
            proxy: args.proxy_protocol.then(|| ProxySettings {
                trusted: args.trusted_proxy.clone(),
                timeout: Duration::from_secs(
                    args.proxy_timeout
                        .unwrap_or(crate::cli::DEFAULT_PROXY_TIMEOUT),
                ),
            }),
        }
    }
}
