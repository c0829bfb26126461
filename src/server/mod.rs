//! The master: `mpecho serve`.
//!
//! Lifecycle (see LIFECYCLE.md beside this file):
//! boot (`main` → the socket systemd passed or `listener::bind`,
//! `metrics::bind`, log sink, `Master::boot`: signals, the spawner or forker, `listening
//! on`, `READY=1`) → serve (`Master::run`: `accept_batch` → (with
//! `--proxy-protocol`, `await_header`/`on_pending` first) → `admission` →
//! `start_worker` or `turn_away`; pidfd ready → `reap`; a pool process's report → `on_pool_report`; a scrape →
//! `serve_metrics`; SIGUSR2 → `upgrade`: the same process re-executes its
//! binary and the new image goes on from `upgrade::resume`, see
//! `upgrade.rs`)
//! → shutdown (`begin_shutdown`: close listener, SIGTERM+SIGCONT, grace,
//! SIGKILL, reap all) → final figures → exit 0.
//!
//! The master never reads or writes client data (a PROXY header is the
//! balancer's, read before the client's first byte and never past it:
//! `pending.rs`) and never does real work in a signal handler. This file only boots; the loop and its steps live in
//! the modules below, named for what they own.

mod accept;
mod accounts;
mod admission;
mod capacity;
mod config;
mod error;
mod event_loop;
mod fork;
mod handover;
mod idle;
mod iterative;
mod lifetimes;
pub mod listener;
mod metrics;
mod monitor;
mod pending;
mod pool;
mod privileges;
mod program;
mod rates;
mod reap;
mod reload;
mod shutdown;
mod spawn;
mod throttle;
mod upgrade;
mod worker_exe;
mod workers;

use std::net::TcpListener;
use std::process::ExitCode;
use std::time::Instant;

use crate::cli::{self, ServeArgs};
use crate::log::{self, Sink, debug, info};
use crate::net;
use crate::sys;
use crate::systemd::{Activated, Notifier, activation};

pub use admission::Admission;
pub use config::{Config, WorkerSettings};
pub use error::ServeError;
pub use event_loop::Master;
pub use upgrade::{CHECK_SUBCOMMAND, upgrade_check};

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
    // First of all, while the descriptors handed over are still open
    // across exec: the next step makes them close-on-exec again.
    let handover = upgrade::take_handover()?;
    sys::close_inherited_fds_on_exec().map_err(ServeError::InheritedFds)?;
    if let Some(state) = handover {
        // Already bound, logging, notifying and (with --user) not root:
        // none of the boot below is done again.
        return upgrade::resume(&args, state);
    }
    // SIGPIPE stays ignored (main's choice, for the master and workers);
    // whatever else arrived ignored would be every worker's too.
    let reset = sys::reset_ignored_signals(&[libc::SIGPIPE]);
    // Before anything opens a descriptor: passed sockets are on 3, 4, …
    let activated = activation::take_listener(args.listen_fd_name.as_deref())?;
    let identity = privileges::resolve(args.user.as_deref(), args.group.as_deref())?;
    let sink = Sink::for_option(args.log_file.as_deref())?;
    let (listener, activated) = match activated {
        Some(Activated {
            listener,
            fd,
            name,
            count,
        }) => (listener, Some((fd, name, count))),
        None => {
            let addr = args.listen.unwrap_or(cli::DEFAULT_LISTEN);
            let listener = listener::bind(addr, args.backlog).map_err(|e| ServeError::Bind {
                addr: addr.to_string(),
                reason: net::explain_bind_error(&e, "--listen"),
            })?;
            (listener, None)
        }
    };
    let metrics = args
        .metrics
        .map(|addr| {
            metrics::bind(addr).map_err(|e| ServeError::BindMetrics {
                addr: addr.to_string(),
                reason: net::explain_bind_error(&e, "--metrics"),
            })
        })
        .transpose()?;
    log::init(sink, args.log_level, "master");
    if !reset.is_empty() {
        let names: Vec<String> = reset.iter().map(|&s| sys::signal_name(s)).collect();
        debug!(
            "signals that arrived ignored, set back to their default: {}",
            names.join(" ")
        );
    }
    if let Some((fd, name, count)) = activated {
        let name = name.map_or_else(String::new, |n| format!(" named {n:?}"));
        info!("serving the socket systemd passed on descriptor {fd}{name} (LISTEN_FDS={count})");
        if let Some(addr) = args.listen {
            info!("--listen {addr} ignored: the socket passed by systemd wins");
        }
    }
    let notifier = Notifier::from_env(Instant::now());
    capacity::raise_descriptor_limit();
    privileges::drop_privileges(identity.as_ref())?;
    capacity::check(args.max_workers() as usize);
    run(listener, metrics, Config::from_args(&args), notifier)
}

/// Serves on an already-bound listener (and metrics listener, if any) until
/// shutdown completes, telling `notifier` (a service manager, or
/// `Notifier::disabled()`) how it goes.
pub fn run(
    listener: TcpListener,
    metrics: Option<TcpListener>,
    config: Config,
    notifier: Notifier,
) -> Result<(), ServeError> {
    Master::boot(listener, metrics, config, notifier)?.run()
}
