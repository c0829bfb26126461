//! `mpecho-bench hold`: open N connections, verify an echo on each, hold
//! them all for the duration, verify an echo on each again, and report the
//! survivors (the connections that passed both).
//!
//! Measures how many connections the server can hold at once (for a
//! process-per-connection server: N live processes), how long it took to
//! open them all and what each connect cost. The open phase keeps at most
//! `MAX_OPENING` connections being opened at a time, so that 10,000 can be
//! opened without flooding the server's listen backlog. While held, a
//! connection that the server closes, resets or sends anything on is
//! counted and lost. Bounded: the open phase by its budget, the hold by the
//! duration, the final verification by the hard margin.
//!
//! Policy only (when to verify, what survives): sockets, waits, timeouts
//! and error counting are the engine's, and it never replaces a lost
//! connection (that would hide the loss).

use std::time::Instant;

use crate::conn::{Conn, Phase};
use crate::engine::{Engine, Outcome, open_budget};
use crate::report::{Measured, Unit};
use crate::scenario::{BenchError, HARD_MARGIN, Settings};

pub fn run(settings: &Settings, engine: &mut Engine) -> Result<Measured, BenchError> {
    let started = Instant::now();
    let mut conns: Vec<Conn> = (0..settings.connections)
        .map(|_| Conn::new(settings.size, settings.timeout))
        .collect();
    let open_deadline = started + open_budget(settings.connections);
    let open = engine.open_all(&mut conns, open_deadline, true)?;
    let opened = conns.iter().filter(|c| c.phase() == Phase::Idle).count();

    let hold_started = Instant::now();
    let hold_end = hold_started + settings.duration;
    let mut held = opened;
    while Instant::now() < hold_end && engine.unreachable().is_none() {
        for i in 0..engine.wait(hold_end)? {
            let conn = &mut conns[engine.ready_slot(i)];
            if let Outcome::Failed = engine.pump(conn) {
                held -= 1;
            }
        }
        engine.progress(|| format!("holding {held} of {opened} connections"));
    }
    let held_for = hold_started.elapsed();

    let verify_deadline = Instant::now() + HARD_MARGIN;
    let mut survivors = 0u64;
    let mut outstanding = 0usize;
    for conn in conns.iter_mut().filter(|c| c.phase() == Phase::Idle) {
        conn.begin_echo();
        match engine.pump(conn) {
            Outcome::Echoed { round_trip, .. } => {
                engine.latency.record(round_trip);
                survivors += 1;
            }
            Outcome::Pending => outstanding += 1,
            Outcome::Connected | Outcome::Closed { .. } | Outcome::Failed => {}
        }
    }
    while outstanding > 0 {
        if Instant::now() >= verify_deadline {
            engine.abandon_busy(&mut conns);
            break;
        }
        for i in 0..engine.wait(verify_deadline)? {
            let conn = &mut conns[engine.ready_slot(i)];
            let was_busy = conn.is_busy();
            if let Outcome::Echoed { round_trip, .. } = engine.pump(conn) {
                engine.latency.record(round_trip);
                survivors += 1;
            }
            if was_busy && !conn.is_busy() {
                outstanding -= 1;
            }
        }
        outstanding -= engine.scan(&mut conns).unwrap_or(0);
        engine.progress(|| format!("{survivors} of {opened} connections verified again"));
    }
    engine.finish(&mut conns);
    drop(conns);
    Ok(Measured {
        unit: Unit::Connection,
        completed: survivors,
        elapsed: started.elapsed(),
        per_op_count: settings.connections as u64,
        throughput: Some(opened as f64 / open.as_secs_f64().max(f64::MIN_POSITIVE)),
        open: Some(open),
        opened: Some(opened as u64),
        held: Some(held_for),
        survivors: Some(survivors),
    })
}
