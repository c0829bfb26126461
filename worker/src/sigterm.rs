//! SIGTERM, the master's request to finish: the handler records it and
//! shuts the client socket down, the async-signal-safe equivalent of a
//! self-pipe for a process that sleeps in a blocking `recv` or `send`:
//! the blocked call returns at once, and so does any later one, so the
//! signal cannot slip in between checking the flag and going to sleep.
//!
//! The handler only stores to an atomic and makes one system call
//! (DESIGN §3); it never logs or touches the echo's state.

use core::sync::atomic::{AtomicBool, Ordering};

use mpecho_handoff::{CLIENT_FD, Errno};

use crate::sys::{self, Shutdown, Signal};

static RECEIVED: AtomicBool = AtomicBool::new(false);
/// Set once the handler is in place: a pool process serves many sessions,
/// and one `rt_sigaction` per process is enough.
static INSTALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigterm(_: i32) {
    RECEIVED.store(true, Ordering::Relaxed);
    let _ = sys::shutdown(CLIENT_FD, Shutdown::Both);
}

/// Installs the handler, once per process. The signal is not blocked:
/// check [`take`] whenever a call on the socket ends early.
pub fn install() -> Result<(), Errno> {
    if INSTALLED.load(Ordering::Relaxed) {
        return Ok(());
    }
    sys::install_handler(Signal::Term, on_sigterm)?;
    INSTALLED.store(true, Ordering::Relaxed);
    Ok(())
}

/// Whether SIGTERM arrived since the last call, clearing the flag.
pub fn take() -> bool {
    RECEIVED.swap(false, Ordering::Relaxed)
}
