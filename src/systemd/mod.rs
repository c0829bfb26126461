//! Living under systemd (or any service manager speaking its protocols),
//! both ways, in plain Rust and without libsystemd:
//! - `activation.rs`: sockets passed in (`LISTEN_PID`, `LISTEN_FDS`,
//!   `LISTEN_FDNAMES`): the listening socket `mpecho serve` serves instead
//!   of binding one, or the one connection an `Accept=yes` unit hands to
//!   `mpecho worker`;
//! - `notify.rs`: news sent out (`NOTIFY_SOCKET`): readiness, status,
//!   reloading, stopping, and the watchdog's keep-alive.
//!
//! Both read their variables once and remove them from the environment,
//! as sd_listen_fds(3) and sd_notify(3) do with `unset_environment`. What
//! this module must never do: block, start a thread, fail a server because
//! no service manager is listening, or sit on a hot path (accepting,
//! spawning, echoing): its callers use it on rare events only.

pub mod activation;
pub mod notify;

pub use activation::{Activated, ActivationError};
pub use notify::Notifier;
