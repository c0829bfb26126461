//! The master: `mpecho serve`.
//!
//! Lifecycle (see LIFECYCLE.md beside this file):
//! boot (`main` → `listener::bind`, `metrics::bind`, log sink,
//! `Master::boot`: signals, spawner, `listening on`) → serve (`Master::run`:
//! `accept_batch` → `admission` → `start_worker` or `turn_away`; pidfd ready
//! → `reap_worker`; a scrape → `serve_metrics`)
//! → shutdown (`begin_shutdown`: close listener, SIGTERM+SIGCONT, grace,
//! SIGKILL, reap all) → final figures → exit 0.
//!
//! The master never reads or writes client data and never does real work in
//! a signal handler. This file only boots; the loop and its steps live in
//! the modules below, named for what they own.

mod accept;
mod accounts;
mod admission;
mod capacity;
mod config;
mod error;
mod event_loop;
mod lifetimes;
pub mod listener;
mod metrics;
mod monitor;
mod privileges;
mod reap;
mod reload;
mod shutdown;
mod spawn;
mod throttle;
mod workers;

use std::net::TcpListener;
use std::process::ExitCode;

use crate::cli::ServeArgs;
use crate::log::{self, Sink};
use crate::net;
use crate::sys;

pub use admission::Admission;
pub use config::{Config, WorkerSettings};
pub use error::ServeError;
pub use event_loop::Master;

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
        reason: net::explain_bind_error(&e, "--listen"),
    })?;
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
    capacity::raise_descriptor_limit();
    privileges::drop_privileges(identity.as_ref())?;
    capacity::check(args.max_workers as usize);
    run(listener, metrics, Config::from_args(&args))
}

/// Serves on an already-bound listener (and metrics listener, if any) until
/// shutdown completes.
pub fn run(
    listener: TcpListener,
    metrics: Option<TcpListener>,
    config: Config,
) -> Result<(), ServeError> {
    Master::boot(listener, metrics, config)?.run()
}
