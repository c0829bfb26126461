//! `mpecho-bench steady`: N persistent connections, each doing
//! request/response echo of SIZE bytes with one request outstanding, for
//! the duration.
//!
//! Measures how many round trips per second the server sustains with many
//! clients connected (for a process-per-connection server: the cost of
//! waking and scheduling many small processes). The N connections are
//! opened first (bounded, each verified with one echo, not timed); the
//! measured window starts when all are open. A connection that fails is
//! counted and replaced, so the load stays at N. At the end of the
//! duration no new request is sent and those outstanding finish (or time
//! out).
//!
//! Policy only (what a connection does next, what is recorded): sockets,
//! waits, timeouts and error counting are the engine's, and it never
//! blocks or sleeps on its own.

use std::time::Instant;

use crate::conn::{Conn, Phase};
use crate::engine::{Engine, Outcome, open_budget};
use crate::report::{Measured, Unit};
use crate::scenario::{BenchError, HARD_MARGIN, Settings};

pub fn run(settings: &Settings, engine: &mut Engine) -> Result<Measured, BenchError> {
    let mut conns: Vec<Conn> = (0..settings.connections)
        .map(|_| Conn::new(settings.size, settings.timeout))
        .collect();
    let open_deadline = Instant::now() + open_budget(settings.connections);
    let open = engine.open_all(&mut conns, open_deadline, false)?;
    let opened = conns.iter().filter(|c| c.phase() == Phase::Idle).count();

    let started = Instant::now();
    let stop_at = started + settings.duration;
    let hard_deadline = stop_at + HARD_MARGIN;
    let mut completed = 0u64;
    let mut busy = 0usize;
    for (slot, conn) in conns.iter_mut().enumerate() {
        if engine.unreachable().is_some() {
            break;
        }
        match conn.phase() {
            Phase::Idle => {
                conn.begin_echo();
                busy += usize::from(advance(engine, conn, slot, stop_at, &mut completed));
            }
            // Failed while the others were being opened: replaced now.
            Phase::Closed => busy += usize::from(engine.open(conn, slot, true)),
            Phase::Connecting | Phase::Echoing | Phase::AwaitingClose => busy += 1,
        }
    }
    while let Some(ready) = engine.next_turn(&mut conns, busy, stop_at, hard_deadline)? {
        for i in 0..ready {
            let slot = engine.ready_slot(i);
            let conn = &mut conns[slot];
            let was_busy = conn.is_busy();
            let is_busy = advance(engine, conn, slot, stop_at, &mut completed);
            busy = busy + usize::from(is_busy) - usize::from(was_busy);
        }
        busy = engine.sweep(&mut conns, stop_at, busy);
        engine.progress(|| format!("{completed} round trips"));
    }
    engine.finish(&mut conns);
    Ok(Measured {
        unit: Unit::RoundTrip,
        completed,
        elapsed: started.elapsed(),
        per_op_count: completed,
        open: Some(open),
        opened: Some(opened as u64),
        ..Measured::default()
    })
}

/// Runs the connection in `slot` until it waits for the network again:
/// each echo is counted and, while the run lasts, followed at once by the
/// next request; a failed connection is replaced. Returns whether a
/// connect or a request is outstanding.
fn advance(
    engine: &mut Engine,
    conn: &mut Conn,
    slot: usize,
    stop_at: Instant,
    completed: &mut u64,
) -> bool {
    loop {
        match engine.pump(conn) {
            Outcome::Pending => return conn.is_busy(),
            Outcome::Echoed { round_trip, .. } => {
                engine.latency.record(round_trip);
                *completed += 1;
                if Instant::now() >= stop_at {
                    return false;
                }
                conn.begin_echo();
            }
            // Connections are opened to echo at once, so this is not
            // expected; an idle connection simply gets its next request.
            Outcome::Connected => conn.begin_echo(),
            Outcome::Failed => {
                return Instant::now() < stop_at && engine.open(conn, slot, true);
            }
            // Only churn waits for closes (`--expect-close`).
            Outcome::Closed { .. } => return false,
        }
    }
}
