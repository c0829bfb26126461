//! The chaos suite (issue 4): the real `mpecho serve` under load from many
//! client threads while the test misbehaves around it. It SIGKILLs random
//! workers, SIGSTOPs some and shuts down, floods past the global and
//! per-address limits, takes the master's descriptors away, holds a 64 MiB
//! slow reader, kills the master itself and starts another on its port, and
//! shuts the master down right after a burst of rejections.
//!
//! After every scenario the same checks run:
//! - every client got back exactly the bytes it sent until its connection
//!   ended. Each connection sends its own deterministic stream, so loss,
//!   duplication and cross-talk all show. A connection the scenario cut short
//!   may end early, but what it received must be an exact prefix of what it
//!   sent;
//! - the master's figures reconcile: with themselves (accepted = exited +
//!   active), with its own log replayed line by line (every accept and every
//!   exit, the `active=` of each line, the peak, the per-address counts),
//!   and with what the clients saw (every connection made is accepted,
//!   rejected or counted as a failed accept, exactly once);
//! - no worker is left, neither as a zombie nor as an orphan;
//! - the master's CPU stayed bounded while the load ran.
//!
//! The scenarios run one at a time: they share two cores and measure CPU.
//! Each prints a summary line on standard error, and the last one to finish
//! prints them all again. These lines are written to the stream directly,
//! not through `eprintln!`, whose output the test harness captures, so that
//! a plain `cargo test` shows them.
//!
//! Layout: one file per scenario; `load.rs` and `clients.rs` are the client
//! threads (plans, gates, the bytes each connection sees), `slow.rs` the
//! slow readers, `payload.rs` the streams they send, `scenario.rs` the
//! one-at-a-time rule and the summary lines. What is not particular to
//! chaos (log replay, leftover workers, the subreaper, the CPU meter) is in
//! the testkit.

mod clients;
mod load;
mod payload;
mod scenario;
mod slow;

mod descriptor_starvation;
mod flood;
mod rejections_before_exit;
mod sigkill_master;
mod sigkill_workers;
mod sigstop_shutdown;
mod slow_reader;

use std::time::Duration;

use mpecho_testkit::{Leftovers, Server, TIMEOUT, field_number, final_figures, reconcile};

/// The grace period every scenario's master gets at shutdown (`--grace`).
pub(crate) const GRACE: Duration = Duration::from_secs(2);

/// Largest share of one core the master may use while clients flood it.
/// A master that spins (retries a failing `accept` at once, or polls a
/// listener it cannot drain) takes a whole core: 100 %, or as much of it as
/// the scheduler grants while the flood runs on the same two cores. The
/// client threads sleep in `read` most of the time, so a spinner still
/// gets most of a core. Doing its real work (accept, posix_spawn, one log
/// line, reap), the master used at most 11 % in any scenario here, also with
/// the integration suite or a second chaos run alongside. CPU time comes in
/// 10 ms clock ticks, and the shortest window is about 0.3 s, so a tick or
/// two of rounding costs a few percent; hence the wide margin.
pub(crate) const CPU_BOUND: f64 = 0.60;

/// The same bound while the master is out of descriptors (issue 4 item 5:
/// under 20 %). Every accept then fails and the master closes the clients
/// waiting at that moment, then pauses 100 ms, which costs next to nothing,
/// so a loop that retried at once is obvious.
pub(crate) const STARVED_CPU_BOUND: f64 = 0.20;

/// Starts a server with the settings every scenario shares plus `args`.
pub(crate) fn start(args: &[&str]) -> Server {
    let grace = GRACE.as_secs().to_string();
    let mut all = vec!["--monitor-interval", "0", "--grace", &grace];
    all.extend_from_slice(args);
    Server::start(&all)
}

/// Shuts the server down (SIGTERM), checks that it exited 0 within the
/// grace period, that its final figures reconcile with its log, and that
/// none of its workers is left; returns the log and the final figures line.
pub(crate) fn shut_down(mut server: Server, leftovers: &mut Leftovers) -> (String, String) {
    server.signal(libc::SIGTERM);
    let status = server.wait_exit(GRACE + TIMEOUT);
    assert!(status.success(), "the master exited with {status:?}");
    let log = server.log();
    let line = final_figures(&log, server.pid);
    reconcile(&log, server.pid, &line);
    assert_eq!(field_number(&line, "active"), 0, "{line}");
    leftovers.assert_none_left(&[server.pid]);
    (log, line)
}
