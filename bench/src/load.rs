//! One load run (churn, steady or hold) from start to finish: check that
//! the run fits in memory and in the descriptor limit, start the engine,
//! hand it to the scenario, and account for the generator's own CPU time.
//!
//! It returns what was measured and never prints the report or decides the
//! exit status: that is `main.rs`'s, from `Finished`.

use mpecho::sys::{self, CpuTime, Resource, Usage};

use crate::engine::Engine;
use crate::report::{Measured, Report};
use crate::scenario::{BenchError, MAX_BUFFER_BYTES, NAME, Scenario, Settings};
use crate::{churn, hold, steady};

/// Descriptors the generator needs besides its connections: standard
/// streams, the poller, and a margin for the libraries.
const SPARE_DESCRIPTORS: u64 = 16;

/// A finished load run: what the scenario measured, the engine's counters
/// and the generator's CPU time.
pub struct Finished {
    pub measured: Measured,
    engine: Engine,
    cpu: CpuTime,
}

impl Finished {
    /// Everything the report shows, for `scenario` run with `settings`.
    pub fn report<'a>(&'a self, scenario: Scenario, settings: &'a Settings) -> Report<'a> {
        Report {
            scenario: scenario.name(),
            latency_of: scenario.latency_of(settings.expect_close),
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

    /// Errors counted during the run, of every kind.
    pub fn errors(&self) -> u64 {
        self.engine.errors.total()
    }

    /// Why the target was unreachable, if it was.
    pub fn unreachable(&self) -> Option<&str> {
        self.engine.unreachable()
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
        eprintln!("{NAME}: could not raise the descriptor limit: {e}");
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
