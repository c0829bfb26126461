//! Signal flags for the master and the chat relay.
//!
//! The handler installed here stores `true` into the flag of the signal that
//! arrived. It never reaps, logs, allocates or touches a table (DESIGN §3).
//! The handled signals stay blocked except while the process sleeps in
//! [`Signals::wait`] or [`Signals::wait_epoll`] (`ppoll`/`epoll_pwait` with
//! the old mask), so a signal can only arrive where the caller is about to
//! look at the flags anyway. (The worker executable has its own SIGTERM
//! handler, which also shuts its socket down: `worker/src/sigterm.rs`.)

use std::ffi::c_int;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::sys::{self, SignalSet};

/// One flag per signal number; Linux numbers standard signals below 32.
static PENDING: [AtomicBool; 32] = [const { AtomicBool::new(false) }; 32];

extern "C" fn record_signal(sig: c_int) {
    // Only an atomic store: async-signal-safe, and it cannot corrupt any
    // state the interrupted code was in the middle of changing.
    if let Some(flag) = usize::try_from(sig).ok().and_then(|i| PENDING.get(i)) {
        flag.store(true, Ordering::Relaxed);
    }
}

/// Whether `sig` arrived since the last call, clearing the flag.
fn take(sig: c_int) -> bool {
    usize::try_from(sig)
        .ok()
        .and_then(|i| PENDING.get(i))
        .is_some_and(|flag| flag.swap(false, Ordering::Relaxed))
}

/// The handled signals of this process and the mask to sleep with.
pub struct Signals {
    wait_mask: SignalSet,
}

impl Signals {
    /// Installs the flag-setting handler for each of `signals` and blocks
    /// them outside [`Signals::wait`].
    pub fn install(signals: &[c_int]) -> io::Result<Signals> {
        let set = SignalSet::of(signals);
        for &sig in signals {
            sys::install_handler(sig, record_signal, &set)?;
        }
        // The mask in force before, minus the handled signals: a master
        // upgraded in place (`server/upgrade.rs`) starts with them already
        // blocked (exec keeps the mask), and sleeping with that mask would
        // never let them in.
        let wait_mask = sys::block_signals(&set)?.without(signals);
        Ok(Signals { wait_mask })
    }

    /// Sleeps until a descriptor in `fds` is ready, the timeout passes or a
    /// handled signal arrives (see [`sys::wait_for_events`]).
    pub fn wait(&self, fds: &mut [libc::pollfd], timeout: Option<Duration>) -> io::Result<usize> {
        let ready = sys::wait_for_events(fds, timeout, &self.wait_mask)?;
        self.let_pending_in(ready)?;
        Ok(ready)
    }

    /// Like [`Signals::wait`], for descriptors registered with `epoll`.
    pub fn wait_epoll(
        &self,
        epoll: &sys::Epoll,
        events: &mut [sys::EpollEvent],
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        let ready = epoll.wait(events, timeout, &self.wait_mask)?;
        self.let_pending_in(ready)?;
        Ok(ready)
    }

    /// When descriptors were ready, `ppoll` and `epoll_pwait` return them
    /// without delivering a signal that is pending (the kernel restores the
    /// blocked mask first): under sustained load, when something is always
    /// ready, SIGTERM and SIGUSR1 would wait until the load stops. A
    /// zero-timeout `ppoll` with the wait mask then lets any pending signal
    /// in, so the flags are set before the caller looks at them (one system
    /// call per busy wake-up).
    fn let_pending_in(&self, ready: usize) -> io::Result<()> {
        if ready > 0 {
            sys::wait_for_events(&mut [], Some(Duration::ZERO), &self.wait_mask)?;
        }
        Ok(())
    }

    /// Whether `sig` arrived since the last call, clearing the flag.
    pub fn take(&self, sig: c_int) -> bool {
        take(sig)
    }
}
