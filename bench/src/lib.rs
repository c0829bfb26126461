//! mpecho-bench: the load generator for mpecho (or any TCP echo server),
//! and a probe of the machine's own process-creation ceiling.
//!
//! It lives in a crate of its own so that the `mpecho` executable, which
//! every connection execs, carries none of it (DESIGN §11). This file only
//! lists the modules; `main.rs` parses the command line and calls one
//! `run()` per scenario ([`load::run`] for churn, steady and hold,
//! [`spawn_probe::run`]), and owns the exit status.
//!
//! One thread, one event loop (`engine`), non-blocking sockets with
//! TCP_NODELAY, no allocation per operation: the generator must cost far
//! less than the server it measures, or it measures itself. Every byte that
//! comes back is checked against a payload unique to its connection and
//! request (`payload`, which the chaos suite shares), and every failure is counted by kind (`stats`),
//! never hidden. Every run is bounded: each connect and echo has a timeout,
//! and the run stops by the hard deadline whatever the server does.
//!
//! It never starts or stops a server; it only talks to one. It holds no
//! `unsafe` code: every system call it needs beyond std goes through
//! mpecho's own safe layer, `mpecho::sys`.

#![forbid(unsafe_code)]

pub mod cli;
pub mod load;
pub mod payload;
pub mod scenario;
pub mod spawn_probe;

mod churn;
mod conn;
mod engine;
mod hold;
mod report;
mod stats;
mod steady;
