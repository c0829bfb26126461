//! Waiting: every wait in the harness and the suites polls a real condition
//! (a log line, a process state, a counter) and gives up at a deadline, so
//! a broken server makes a test fail, never hang.
//!
//! Never sleep a fixed time here to "let things settle", and never wait
//! without a deadline.

use std::thread;
use std::time::{Duration, Instant};

/// Upper bound for anything a test waits for.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// How often a wait re-checks its condition.
const POLL: Duration = Duration::from_millis(10);

/// Polls `condition` until it returns `Some`, or panics with `what` after
/// `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, condition: impl FnMut() -> Option<T>) -> T {
    poll_for(timeout, condition)
        .unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

/// Polls `condition` until it returns `Some`, or returns `None` after
/// `timeout`: for clean-up code, which must not panic.
pub fn poll_for<T>(timeout: Duration, mut condition: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = condition() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(POLL);
    }
}
