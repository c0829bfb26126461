//! `mpecho-bench churn`: N concurrent loops of connect → send SIZE bytes →
//! read them back (verified) → close, for the duration.
//!
//! Measures what a process-per-connection server is judged on first: how
//! many connections per second it can start, serve and tear down. One
//! operation is one whole connection; its latency runs from connect() to
//! the last byte back. A loop whose connection fails counts the error and
//! starts over (at once, or at the next scan if even the connect could not
//! be started, so that a dead target costs no busy loop). At the end of
//! the duration no new connection is started and those in flight finish
//! (or time out): nothing is abandoned unverified, and the hard deadline
//! bounds the wait whatever the server does.
//!
//! With `--expect-close` a loop sends nothing: its connection is complete
//! when the server closes it with nothing sent back (the ceiling of a
//! server whose workers do nothing), and its latency runs from connect()
//! to that close.
//!
//! Policy only (what a loop does next, what is recorded): sockets, waits,
//! timeouts and error counting are the engine's, and it never blocks or
//! sleeps on its own.

use std::time::Instant;

use crate::conn::Conn;
use crate::engine::{Engine, Outcome};
use crate::report::{Measured, Unit};
use crate::scenario::{BenchError, HARD_MARGIN, Settings};

pub fn run(settings: &Settings, engine: &mut Engine) -> Result<Measured, BenchError> {
    let mut conns: Vec<Conn> = (0..settings.connections)
        .map(|_| Conn::new(settings.size, settings.timeout))
        .collect();
    let started = Instant::now();
    let stop_at = started + settings.duration;
    let hard_deadline = stop_at + HARD_MARGIN;
    let mut completed = 0u64;
    // Loops with a connection in flight.
    let mut busy = 0usize;
    for (slot, conn) in conns.iter_mut().enumerate() {
        busy += usize::from(engine.open(conn, slot, true));
    }
    while let Some(ready) = engine.next_turn(&mut conns, busy, stop_at, hard_deadline)? {
        for i in 0..ready {
            let slot = engine.ready_slot(i);
            let conn = &mut conns[slot];
            match engine.pump(conn) {
                Outcome::Pending | Outcome::Connected => continue,
                Outcome::Echoed { since_connect, .. } | Outcome::Closed { since_connect } => {
                    engine.latency.record(since_connect);
                    completed += 1;
                    conn.close();
                }
                Outcome::Failed => {}
            }
            busy -= 1;
            if Instant::now() < stop_at {
                busy += usize::from(engine.open(conn, slot, true));
            }
        }
        busy = engine.sweep(&mut conns, stop_at, busy);
        engine.progress(|| format!("{completed} connections"));
    }
    engine.finish(&mut conns);
    Ok(Measured {
        unit: Unit::Connection,
        completed,
        elapsed: started.elapsed(),
        per_op_count: completed,
        ..Measured::default()
    })
}
