//! mpecho: a multi-process TCP echo server (one exec'd worker process per
//! connection), its line client, and their shared pieces.
//!
//! `main.rs` only parses the command line and calls one entry point per
//! subcommand: [`server::main`], [`worker::main`], [`client::main`],
//! [`chat::server::main`], [`chat::client::main`], [`rules::main`].

pub mod chat;
pub mod cli;
pub mod client;
pub mod handoff;
pub mod log;
pub mod net;
pub mod proxy;
pub mod rules;
pub mod server;
pub mod signals;
pub mod sys;
pub mod systemd;
pub mod version;
pub mod worker;
