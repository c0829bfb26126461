//! `mpecho-bench spawn-probe`: what starting a static glibc program costs
//! on this machine, without a server or a network in the way.
//!
//! Starts a tiny static C program (`int main(void){return 0;}`, built by
//! this crate's build.rs and embedded here) and reaps it, in a loop, first
//! with one child in flight and then with two, for the duration each. It
//! used to be stated as the ceiling of any process-per-connection server,
//! but mpecho's worker (no libc) starts faster than this program, so
//! mpecho's own churn passes it: it bounds nothing now. What it still
//! tells is the price of glibc's static start-up per process, the cost a
//! libc-linked worker (or `tcpserver`'s and socat's children) would pay.
//! The ceiling of a churn is `churn --expect-close` against `mpecho serve
//! --do-nothing-workers` (docs/BENCHMARKS.md). Children start through the same call that starts mpecho's
//! workers, `mpecho::sys::SpawnTemplate::spawn`: a `clone` with
//! `CLONE_VM | CLONE_VFORK | CLONE_FILES` whose child unshares only the
//! descriptors it needs, then `execve` (not `posix_spawn`). They are
//! reaped with `sys::reap_child` (`waitpid` on the pid; the master reaps
//! through pidfds). It must never grow a spawn path of its own, or it
//! would measure something the server does not do.
//!
//! The program is written to a temporary file (mode 0755) for the run and
//! removed afterwards, however the run ends short of a kill. Without a C
//! compiler and static libc at build time it is empty: the probe then says
//! it is unavailable. Measuring and rendering only: printing the report and
//! the exit status are `main.rs`'s.

use std::collections::VecDeque;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mpecho::sys::{self, Argv, CpuTime, ExitKind, SpawnTemplate, Usage, pid_t};

use crate::report::Json;
use crate::scenario::NAME;

/// The reference program, compiled by build.rs (empty if it could not be).
const PROGRAM: &[u8] = include_bytes!(env!("MPECHO_SPAWN_PROBE_PROGRAM"));

/// Children kept in flight by each round.
const IN_FLIGHT: [usize; 2] = [1, 2];

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(
        "unavailable: this {NAME} was built without the probe program \
         (building it needs a C compiler and a static libc: `cc -static`)"
    )]
    Unavailable,
    #[error("could not write the probe program to {path}: {error}")]
    Write { path: PathBuf, error: io::Error },
    #[error("could not start the probe program {path}: {error}")]
    Spawn { path: PathBuf, error: io::Error },
    #[error("could not reap probe child {pid}: {error}")]
    Reap { pid: pid_t, error: io::Error },
    #[error("could not read the CPU time used: {0}")]
    CpuTime(io::Error),
}

/// One round: spawn and reap with `in_flight` children at a time.
#[derive(Debug, Clone, Copy)]
pub struct Round {
    pub in_flight: usize,
    pub spawns: u64,
    /// Children that did not exit with status 0.
    pub failures: u64,
    pub elapsed: Duration,
}

impl Round {
    pub fn per_sec(&self) -> f64 {
        self.spawns as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    pub fn us_per_spawn(&self) -> f64 {
        match self.spawns {
            0 => 0.0,
            n => self.elapsed.as_secs_f64() * 1e6 / n as f64,
        }
    }
}

/// A finished probe: every round, and the CPU time it took.
#[derive(Debug, Clone)]
pub struct Probe {
    /// How long each round ran for.
    pub duration: Duration,
    pub rounds: Vec<Round>,
    /// This process's CPU time (spawning and reaping).
    pub own: CpuTime,
    /// The reaped children's CPU time (exec and exit).
    pub children: CpuTime,
}

/// Runs every round for `duration`, and measures the CPU time the probe
/// and its children used.
pub fn run(duration: Duration) -> Result<Probe, ProbeError> {
    let own_before = sys::cpu_time(Usage::OwnProcess);
    let children_before = sys::cpu_time(Usage::ReapedChildren);
    let rounds = run_rounds(duration)?;
    let cpu_since = |who, before: io::Result<CpuTime>| -> Result<CpuTime, ProbeError> {
        let before = before.map_err(ProbeError::CpuTime)?;
        Ok(sys::cpu_time(who)
            .map_err(ProbeError::CpuTime)?
            .since(&before))
    };
    let own = cpu_since(Usage::OwnProcess, own_before)?;
    let children = cpu_since(Usage::ReapedChildren, children_before)?;
    Ok(Probe {
        duration,
        rounds,
        own,
        children,
    })
}

/// Writes the program out and runs every round for `duration`.
fn run_rounds(duration: Duration) -> Result<Vec<Round>, ProbeError> {
    if PROGRAM.is_empty() {
        return Err(ProbeError::Unavailable);
    }
    let program = TempProgram::write(PROGRAM)?;
    let spawn_error = |error| ProbeError::Spawn {
        path: program.path.clone(),
        error,
    };
    // Opened once and exec'd through the descriptor, as the master runs
    // its worker executable.
    let mut template = SpawnTemplate::new(
        sys::open_executable(&program.path, 3).map_err(spawn_error)?,
        Vec::new(),
        Vec::new(),
    );
    let argv = Argv::new(vec![
        sys::c_string("mpecho-spawn-probe").map_err(spawn_error)?,
    ]);
    IN_FLIGHT
        .iter()
        .map(|&in_flight| round(&mut template, &argv, &program.path, in_flight, duration))
        .collect()
}

/// Spawns and reaps, keeping `in_flight` children alive, until `duration`
/// has passed; then reaps what is left. Children are reaped oldest first:
/// they all do the same nothing, so the oldest is the next to end.
fn round(
    template: &mut SpawnTemplate,
    argv: &Argv,
    path: &Path,
    in_flight: usize,
    duration: Duration,
) -> Result<Round, ProbeError> {
    let started = Instant::now();
    let end = started + duration;
    let mut children: VecDeque<pid_t> = VecDeque::with_capacity(in_flight);
    let mut result = Round {
        in_flight,
        spawns: 0,
        failures: 0,
        elapsed: Duration::ZERO,
    };
    loop {
        while children.len() < in_flight && Instant::now() < end {
            match template.spawn(argv, &[], &[]) {
                Ok(pid) => children.push_back(pid),
                Err(error) => {
                    reap_all(&mut children);
                    return Err(ProbeError::Spawn {
                        path: path.to_path_buf(),
                        error,
                    });
                }
            }
        }
        let Some(pid) = children.pop_front() else {
            break;
        };
        match sys::reap_child(pid, true) {
            Ok(Some(ExitKind::Code(0))) => result.spawns += 1,
            Ok(_) => result.failures += 1,
            Err(error) => {
                reap_all(&mut children);
                return Err(ProbeError::Reap { pid, error });
            }
        }
    }
    result.elapsed = started.elapsed();
    Ok(result)
}

/// Reaps the children still running after a failure, so none is left
/// behind as a zombie.
fn reap_all(children: &mut VecDeque<pid_t>) {
    for pid in children.drain(..) {
        let _ = sys::reap_child(pid, true);
    }
}

/// The probe program on disk for the duration of the run.
struct TempProgram {
    path: PathBuf,
}

impl TempProgram {
    fn write(bytes: &[u8]) -> Result<TempProgram, ProbeError> {
        let path = std::env::temp_dir().join(format!("mpecho-spawn-probe-{}", std::process::id()));
        let fail = |error| ProbeError::Write {
            path: path.clone(),
            error,
        };
        // A leftover from an earlier run that was killed with this pid.
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(fail(e)),
            _ => {}
        }
        let program = TempProgram { path: path.clone() };
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o755)
            .open(&path)
            .map_err(fail)?;
        file.write_all(bytes).map_err(fail)?;
        // Closed before the first exec: a file open for writing cannot be
        // executed (ETXTBSY).
        drop(file);
        Ok(program)
    }
}

impl Drop for TempProgram {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

impl Probe {
    /// Children that did not exit with status 0, over every round.
    pub fn failures(&self) -> u64 {
        self.rounds.iter().map(|r| r.failures).sum()
    }

    fn spawns(&self) -> u64 {
        self.rounds.iter().map(|r| r.spawns).sum()
    }

    /// The report as exactly one JSON object.
    pub fn to_json(&self) -> String {
        let spawns = self.spawns();
        let mut j = Json::new();
        j.str("scenario", "spawn-probe");
        j.f64("duration_secs", self.duration.as_secs_f64());
        j.u64("program_bytes", PROGRAM.len() as u64);
        for r in &self.rounds {
            j.begin(&format!("in_flight_{}", r.in_flight));
            j.u64("spawns", r.spawns);
            j.u64("failures", r.failures);
            j.f64("elapsed_secs", r.elapsed.as_secs_f64());
            j.f64("spawns_per_sec", r.per_sec());
            j.f64("us_per_spawn", r.us_per_spawn());
            j.end();
        }
        for (key, cpu) in [("cpu", self.own), ("children_cpu", self.children)] {
            j.begin(key);
            j.f64("user_secs", cpu.user.as_secs_f64());
            j.f64("system_secs", cpu.system.as_secs_f64());
            j.f64("total_secs", cpu.total().as_secs_f64());
            j.f64("per_op_us", per_spawn_us(cpu, spawns));
            j.end();
        }
        j.finish()
    }

    /// The report for a person.
    pub fn to_human(&self) -> String {
        let spawns = self.spawns();
        let mut out = format!(
            "{NAME} spawn-probe: clone + exec + wait (mpecho's own spawn) of a static \
             `return 0` program ({} bytes), {:.3} s per round\n",
            PROGRAM.len(),
            self.duration.as_secs_f64()
        );
        for r in &self.rounds {
            out += &format!(
                "  {} in flight  {} spawns in {:.3} s: {:.1} spawns/s, {:.1} µs per spawn{}\n",
                r.in_flight,
                r.spawns,
                r.elapsed.as_secs_f64(),
                r.per_sec(),
                r.us_per_spawn(),
                if r.failures > 0 {
                    format!(" ({} failed)", r.failures)
                } else {
                    String::new()
                }
            );
        }
        out += &format!(
            "  own CPU      {:.3} s ({:.1} µs per spawn); children's CPU {:.3} s ({:.1} µs per spawn)\n",
            self.own.total().as_secs_f64(),
            per_spawn_us(self.own, spawns),
            self.children.total().as_secs_f64(),
            per_spawn_us(self.children, spawns)
        );
        out
    }
}

fn per_spawn_us(cpu: CpuTime, spawns: u64) -> f64 {
    match spawns {
        0 => 0.0,
        n => cpu.total().as_secs_f64() * 1e6 / n as f64,
    }
}
