//! `mpecho bench`: the load generator (churn, steady, hold) and the
//! machine's process-creation ceiling (spawn-probe).
//!
//! One thread, one event loop (`engine.rs`), non-blocking sockets with
//! TCP_NODELAY, no allocation per operation: the generator must cost far
//! less than the server it measures, or it measures itself. Every byte that
//! comes back is checked against a payload unique to its connection and
//! request (`payload.rs`), and every failure is counted by kind
//! (`stats.rs`), never hidden. Every run is bounded: each connect and echo
//! has a timeout, and the run stops by the hard deadline whatever the
//! server does.
//!
//! Exit statuses: 0 the run completed with no error counted, 1 an error
//! was counted or the target could not be reached (or the run could not be
//! set up), 2 bad usage (from the command-line parser).
//!
//! This module never starts or stops a server; it only talks to one.

mod churn;
mod conn;
mod engine;
mod hold;
mod payload;
mod report;
mod spawn_probe;
mod stats;
mod steady;

use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use crate::cli::{BenchArgs, BenchScenario, LoadArgs};
use crate::sys::{self, CpuTime, Resource, Usage};

use engine::Engine;
use report::{Measured, Report};

/// How long after the end of the duration (or of the hold) operations
/// still in flight may take before they are failed as timeouts: twice the
/// default timeout, so that it only matters when the server stalls.
pub const HARD_MARGIN: Duration = Duration::from_secs(10);

/// The most memory the request buffers (one of `--size` bytes per
/// connection) may take: 1 GiB, far above any sensible run (10,000
/// connections of 64 KiB are 640 MiB) and far below what would push a
/// 24 GiB machine into swapping, which would measure the swap.
const MAX_BUFFER_BYTES: u64 = 1 << 30;

/// Descriptors the generator needs besides its connections: standard
/// streams, the poller, and a margin for the libraries.
const SPARE_DESCRIPTORS: u64 = 16;

/// What a load run needs to know.
#[derive(Debug, Clone)]
pub struct Settings {
    pub target: SocketAddr,
    pub connections: usize,
    pub size: usize,
    pub duration: Duration,
    /// For each connect and each echo.
    pub timeout: Duration,
}

impl Settings {
    pub fn from_args(args: &LoadArgs) -> Settings {
        Settings {
            target: args.target,
            connections: args.connections as usize,
            size: args.size as usize,
            duration: args.duration,
            timeout: args.timeout,
        }
    }
}

/// The load scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Churn,
    Steady,
    Hold,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Churn => "churn",
            Scenario::Steady => "steady",
            Scenario::Hold => "hold",
        }
    }

    fn latency_of(self) -> &'static str {
        match self {
            Scenario::Churn => "connect() to the last byte back, per connection",
            Scenario::Steady => "request sent to the last byte back, per round trip",
            Scenario::Hold => "request sent to the last byte back, both verifications",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("could not create the event poller: {0}")]
    Poll(io::Error),
    #[error("waiting for socket events failed: {0}")]
    Wait(io::Error),
    #[error(
        "{connections} connections need {needed} descriptors, but this process may open \
         only {limit} (raise the hard limit with `ulimit -Hn`, or use fewer connections)"
    )]
    Descriptors {
        connections: usize,
        needed: u64,
        limit: u64,
    },
    #[error("could not read the CPU time used: {0}")]
    CpuTime(io::Error),
    #[error(
        "{connections} connections of {size} bytes would need {needed} bytes of request \
         buffers, more than the {MAX_BUFFER_BYTES} allowed: use fewer connections or a \
         smaller --size"
    )]
    Buffers {
        connections: usize,
        size: usize,
        needed: u64,
    },
}

/// Entry point for `mpecho bench`.
pub fn main(args: BenchArgs) -> ExitCode {
    let (scenario, load) = match args.scenario {
        BenchScenario::Churn(load) => (Scenario::Churn, load),
        BenchScenario::Steady(load) => (Scenario::Steady, load),
        BenchScenario::Hold(load) => (Scenario::Hold, load),
        BenchScenario::SpawnProbe(probe) => return spawn_probe::main(probe),
    };
    let settings = Settings::from_args(&load);
    let finished = match run(scenario, &settings) {
        Ok(finished) => finished,
        Err(e) => {
            eprintln!("mpecho bench {}: {e}", scenario.name());
            return ExitCode::FAILURE;
        }
    };
    let report = finished.report(scenario, &settings);
    let text = if load.json {
        report.to_json() + "\n"
    } else {
        report.to_human()
    };
    print_stdout(&text);
    let errors = finished.engine.errors.total();
    if let Some(reason) = finished.engine.unreachable() {
        eprintln!("mpecho bench {}: {reason}", scenario.name());
        ExitCode::FAILURE
    } else if errors > 0 {
        eprintln!(
            "mpecho bench {}: {errors} errors counted (see the report)",
            scenario.name()
        );
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// A finished load run: what the scenario measured, the engine's counters
/// and the generator's CPU time.
pub struct Finished {
    pub measured: Measured,
    engine: Engine,
    cpu: CpuTime,
}

impl Finished {
    fn report<'a>(&'a self, scenario: Scenario, settings: &'a Settings) -> Report<'a> {
        Report {
            scenario: scenario.name(),
            latency_of: scenario.latency_of(),
            settings,
            measured: &self.measured,
            latency: self.engine.latency.summary(),
            connect: self.engine.connect.summary(),
            errors: &self.engine.errors,
            bytes_verified: self.engine.bytes_verified,
            cpu: self.cpu,
            unreachable: self.engine.unreachable(),
        }
    }
}

/// Runs one load scenario against `settings.target`.
pub fn run(scenario: Scenario, settings: &Settings) -> Result<Finished, BenchError> {
    let needed = settings.connections as u64 * settings.size as u64;
    if needed > MAX_BUFFER_BYTES {
        return Err(BenchError::Buffers {
            connections: settings.connections,
            size: settings.size,
            needed,
        });
    }
    ensure_descriptors(settings.connections)?;
    let cpu_before = sys::cpu_time(Usage::OwnProcess).map_err(BenchError::CpuTime)?;
    let mut engine = Engine::new(settings, scenario.name())?;
    let measured = match scenario {
        Scenario::Churn => churn::run(settings, &mut engine)?,
        Scenario::Steady => steady::run(settings, &mut engine)?,
        Scenario::Hold => hold::run(settings, &mut engine)?,
    };
    let cpu = sys::cpu_time(Usage::OwnProcess)
        .map_err(BenchError::CpuTime)?
        .since(&cpu_before);
    Ok(Finished {
        measured,
        engine,
        cpu,
    })
}

/// Raises the soft descriptor limit to the hard one (as the server does),
/// then checks that every connection will get a descriptor: running out
/// midway would count the generator's own limit as the server's errors.
fn ensure_descriptors(connections: usize) -> Result<(), BenchError> {
    if let Err(e) = sys::raise_soft_limit_to_hard(Resource::OpenFiles) {
        eprintln!("mpecho bench: could not raise the descriptor limit: {e}");
    }
    let needed = connections as u64 + SPARE_DESCRIPTORS;
    match sys::get_limit(Resource::OpenFiles) {
        Ok(limit) if limit.soft < needed => Err(BenchError::Descriptors {
            connections,
            needed,
            limit: limit.soft,
        }),
        _ => Ok(()),
    }
}

/// Writes the report; a closed standard output (`| head`) is not an error
/// worth a message.
fn print_stdout(text: &str) {
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush())
        && e.kind() != io::ErrorKind::BrokenPipe
    {
        eprintln!("mpecho bench: could not write the report: {e}");
    }
}
