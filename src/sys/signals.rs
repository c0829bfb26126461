//! Signal sets, handlers, dispositions and masks, and signals' names.
//!
//! Never decides which signals a process handles or blocks (the crate's
//! `signals` module and the spawn template's callers do), and installs
//! only handlers that the caller vouches are async-signal-safe.

use std::ffi::c_int;
use std::io;
use std::mem::MaybeUninit;
use std::ptr;

use super::check;

/// A set of signal numbers (`sigset_t`).
#[derive(Clone, Copy)]
pub struct SignalSet(pub(super) libc::sigset_t);

impl SignalSet {
    pub fn empty() -> Self {
        let mut set = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigemptyset initialises the whole set.
        unsafe { libc::sigemptyset(set.as_mut_ptr()) };
        // SAFETY: initialised just above.
        SignalSet(unsafe { set.assume_init() })
    }

    pub fn full() -> Self {
        let mut set = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigfillset initialises the whole set.
        unsafe { libc::sigfillset(set.as_mut_ptr()) };
        // SAFETY: initialised just above.
        SignalSet(unsafe { set.assume_init() })
    }

    pub fn of(signals: &[c_int]) -> Self {
        let mut set = Self::empty();
        for &sig in signals {
            // SAFETY: the set is initialised; an invalid number only makes
            // sigaddset return EINVAL, which leaves the set unchanged.
            unsafe { libc::sigaddset(&mut set.0, sig) };
        }
        set
    }
}

/// Installs `handler` for `sig` with `sigaction` semantics: the handled
/// signals are masked while it runs, and interrupted slow calls restart
/// (the event loop only waits in `ppoll`, which never restarts).
///
/// The handler must be async-signal-safe; mpecho's only stores to atomics.
pub fn install_handler(
    sig: c_int,
    handler: extern "C" fn(c_int),
    mask: &SignalSet,
) -> io::Result<()> {
    // SAFETY: a zeroed sigaction is a valid value to fill in.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = handler as *const () as libc::sighandler_t;
    action.sa_mask = mask.0;
    action.sa_flags = libc::SA_RESTART;
    // SAFETY: `action` is fully initialised and `handler` is a plain
    // extern "C" function that only stores to atomics.
    check(unsafe { libc::sigaction(sig, &action, ptr::null_mut()) }).map(drop)
}

/// What a signal does when no handler is installed.
pub enum Disposition {
    Default,
    Ignore,
}

/// Sets `sig` back to its default action or to be ignored.
pub fn set_disposition(sig: c_int, disposition: Disposition) -> io::Result<()> {
    let handler = match disposition {
        Disposition::Default => libc::SIG_DFL,
        Disposition::Ignore => libc::SIG_IGN,
    };
    // SAFETY: a zeroed sigaction is a valid value to fill in.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = handler;
    // SAFETY: `action` is fully initialised; SIG_DFL and SIG_IGN are not
    // functions and run no code of ours.
    check(unsafe { libc::sigaction(sig, &action, ptr::null_mut()) }).map(drop)
}

/// Replaces the signal mask with `set`.
pub fn set_signal_mask(set: &SignalSet) -> io::Result<()> {
    // SAFETY: the set is valid; the old mask is not requested.
    check(unsafe { libc::sigprocmask(libc::SIG_SETMASK, &set.0, ptr::null_mut()) }).map(drop)
}

/// Blocks the signals in `set` and returns the mask that was in force
/// before, which `wait_for_events` restores while it waits.
pub fn block_signals(set: &SignalSet) -> io::Result<SignalSet> {
    let mut old = SignalSet::empty();
    // SAFETY: both sets are valid; the process is single-threaded when this
    // is called (the master and the worker block before doing anything else).
    check(unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set.0, &mut old.0) })?;
    Ok(old)
}

/// The conventional name of a signal (`SIGKILL`), or `signal N` for one
/// without a well-known name.
pub fn signal_name(sig: c_int) -> String {
    let name = match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGCHLD => "SIGCHLD",
        libc::SIGCONT => "SIGCONT",
        libc::SIGSTOP => "SIGSTOP",
        libc::SIGTSTP => "SIGTSTP",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGSYS => "SIGSYS",
        _ => return format!("signal {sig}"),
    };
    name.to_string()
}
