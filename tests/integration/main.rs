//! Integration tests: every scenario drives the real `mpecho` binary over
//! loopback, with real processes and real signals, through the shared
//! harness `mpecho_testkit` (`testkit/`).

mod bench;
mod chat;
mod chat_client;
mod client;
mod descriptors;
mod echo;
mod errors;
mod hardening;
mod limits;
mod logging;
mod overload;
mod reaping;
mod resources;
mod shutdown;
