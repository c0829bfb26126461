//! The vocabulary every part of the load generator shares: the scenarios,
//! what a load run needs to know (`Settings`), its bounds, and why a run
//! could not be carried out (`BenchError`).
//!
//! Definitions only: nothing here opens a socket, measures, prints or
//! decides an exit status, and it knows nothing of the command line (the
//! CLI builds `Settings`, never the reverse).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// The executable's name, which starts every message it writes.
pub const NAME: &str = "mpecho-bench";

/// How long after the end of the duration (or of the hold) operations
/// still in flight may take before they are failed as timeouts: twice the
/// default timeout, so that it only matters when the server stalls.
pub const HARD_MARGIN: Duration = Duration::from_secs(10);

/// The most memory the request buffers (one of `--size` bytes per
/// connection) may take: 1 GiB, far above any sensible run (10,000
/// connections of 64 KiB are 640 MiB) and far below what would push a
/// 24 GiB machine into swapping, which would measure the swap.
pub const MAX_BUFFER_BYTES: u64 = 1 << 30;

/// What a load run needs to know.
#[derive(Debug, Clone)]
pub struct Settings {
    pub target: SocketAddr,
    pub connections: usize,
    pub size: usize,
    pub duration: Duration,
    /// For each connect and each echo (or wait for the close).
    pub timeout: Duration,
    /// churn only: a connection sends nothing and is complete when the
    /// server closes it (`--expect-close`).
    pub expect_close: bool,
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

    /// What the scenario's latency figures time (`expect_close`: churn's
    /// connections wait for the server's close instead of an echo).
    pub fn latency_of(self, expect_close: bool) -> &'static str {
        match self {
            Scenario::Churn if expect_close => "connect() to the server's close, per connection",
            Scenario::Churn => "connect() to the last byte back, per connection",
            Scenario::Steady => "request sent to the last byte back, per round trip",
            Scenario::Hold => "request sent to the last byte back, both verifications",
        }
    }
}

/// Why a load run could not be carried out at all (as opposed to the
/// errors a run counts, by kind, in `stats::ErrorCounts`).
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
