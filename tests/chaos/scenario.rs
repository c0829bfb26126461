//! How a scenario runs: one at a time (they share two cores and measure
//! CPU), and its summary line is written when it ends, however it ends;
//! the last one to finish writes them all again.
//!
//! The lines go straight to standard error, never through `eprintln!`,
//! whose output the test harness captures.

use std::io::{self, Write};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

/// How many scenarios this file has, for the closing table.
pub(crate) const SCENARIOS: usize = 7;

/// How one scenario runs: one at a time, and its summary line is written
/// (or `FAILED`) when it ends, however it ends.
pub(crate) struct Scenario {
    pub(crate) name: &'static str,
    pub(crate) started: Instant,
    pub(crate) summary: Option<Summary>,
    pub(crate) _serial: MutexGuard<'static, ()>,
}

/// What a scenario reports: the same four numbers for every one, then
/// what is particular to it.
pub(crate) struct Summary {
    pub(crate) connections: u64,
    /// Processes killed with SIGKILL (workers, or the master).
    pub(crate) kills: u64,
    /// Connections turned away before any echo: rejected at a limit, shed
    /// for lack of descriptors, or refused a worker.
    pub(crate) rejections: u64,
    pub(crate) bytes: u64,
    pub(crate) cpu: String,
    pub(crate) details: String,
}

pub(crate) static SERIAL: Mutex<()> = Mutex::new(());
pub(crate) static SUMMARIES: Mutex<Vec<String>> = Mutex::new(Vec::new());

impl Scenario {
    pub(crate) fn begin(name: &'static str) -> Scenario {
        // A scenario that failed poisons the lock; the next one still runs.
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        Scenario {
            name,
            started: Instant::now(),
            summary: None,
            _serial: serial,
        }
    }

    pub(crate) fn done(mut self, summary: Summary) {
        self.summary = Some(summary);
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        let took = self.started.elapsed().as_secs_f64();
        let line = match self.summary.take() {
            Some(s) => format!(
                "chaos {}: {} connections, {} kills, {} rejections, {} bytes verified, master CPU \
                 {}, {took:.1}s; {}",
                self.name, s.connections, s.kills, s.rejections, s.bytes, s.cpu, s.details
            ),
            None => format!("chaos {}: FAILED after {took:.1}s", self.name),
        };
        say(&line);
        let mut all = SUMMARIES.lock().unwrap_or_else(|e| e.into_inner());
        all.push(line);
        if all.len() == SCENARIOS {
            say("chaos suite, one line per scenario:");
            for line in all.iter() {
                say(&format!("  {line}"));
            }
        }
    }
}

/// Writes a line straight to standard error (see the file's header).
pub(crate) fn say(line: &str) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}

/// A small deterministic generator (xorshift64) for choosing victims.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}
