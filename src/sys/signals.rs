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

/// A set of signal numbers (`sigset_t`). The raw set is open to the other
/// files of `sys`, which hand it to the kernel (spawn, the event waits).
#[derive(Clone, Copy)]
pub struct SignalSet(pub(super) libc::sigset_t);

// `#[inline]` on the constructors: the spawned child (spawn.rs) builds its
// empty mask between clone and exec, a path kept as short as it can be, so
// they must not become calls from one file of this module into another.
impl SignalSet {
    #[inline]
    pub fn empty() -> Self {
        // SAFETY: sigemptyset initialises the whole set it is given.
        unsafe { Self::initialised_by(libc::sigemptyset) }
    }

    #[inline]
    pub fn full() -> Self {
        // SAFETY: sigfillset initialises the whole set it is given.
        unsafe { Self::initialised_by(libc::sigfillset) }
    }

    /// # Safety
    /// `init` must initialise the whole set it is given (sigemptyset,
    /// sigfillset), which cannot fail on a valid pointer.
    #[inline]
    unsafe fn initialised_by(init: unsafe extern "C" fn(*mut libc::sigset_t) -> c_int) -> Self {
        let mut set = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: `set` is valid for writes; `init` fills all of it.
        unsafe { init(set.as_mut_ptr()) };
        // SAFETY: initialised just above, as the caller promised.
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

    /// This set without `signals`.
    pub fn without(mut self, signals: &[c_int]) -> Self {
        for &sig in signals {
            // SAFETY: the set is initialised; an invalid number only makes
            // sigdelset return EINVAL, which leaves the set unchanged.
            unsafe { libc::sigdelset(&mut self.0, sig) };
        }
        self
    }
}

/// Installs `handler` for `sig` with `sigaction` semantics: the handled
/// signals are masked while it runs, and interrupted slow calls restart
/// (the event loops sleep in `epoll_pwait` or `ppoll`, which never restart,
/// and so learn of the signal at once).
///
/// The handler must be async-signal-safe; mpecho's store to atomics and at
/// most shut a socket down.
pub fn install_handler(
    sig: c_int,
    handler: extern "C" fn(c_int),
    mask: &SignalSet,
) -> io::Result<()> {
    set_action(
        sig,
        handler as *const () as libc::sighandler_t,
        mask,
        libc::SA_RESTART,
    )
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
    set_action(sig, handler, &SignalSet::empty(), 0)
}

/// Sets every signal that arrived ignored back to its default action,
/// except those in `keep`: a daemon's first step in daemon(7), because an
/// ignored disposition survives fork and exec. A shell running a command
/// in the background without job control ignores SIGINT and SIGQUIT for
/// it, `nohup` ignores SIGHUP, and every worker would inherit that. Returns
/// the signals it reset.
pub fn reset_ignored_signals(keep: &[c_int]) -> Vec<c_int> {
    (1..=libc::SIGRTMAX())
        .filter(|sig| !keep.contains(sig) && ![libc::SIGKILL, libc::SIGSTOP].contains(sig))
        .filter(|&sig| is_ignored(sig))
        .filter(|&sig| set_disposition(sig, Disposition::Default).is_ok())
        .collect()
}

/// Whether `sig`'s disposition is SIG_IGN (false for a number the kernel
/// does not know, or one glibc keeps for itself).
fn is_ignored(sig: c_int) -> bool {
    // SAFETY: a zeroed sigaction is a valid buffer for the old action.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: no new action is given, so nothing changes; `old` is a valid
    // buffer the kernel fills in.
    let read = unsafe { libc::sigaction(sig, ptr::null(), &mut old) };
    read == 0 && old.sa_sigaction == libc::SIG_IGN
}

/// `sigaction(sig)` with `handler` (a function, `SIG_DFL` or `SIG_IGN`),
/// `mask` blocked while it runs, and `flags`.
fn set_action(
    sig: c_int,
    handler: libc::sighandler_t,
    mask: &SignalSet,
    flags: c_int,
) -> io::Result<()> {
    // SAFETY: a zeroed sigaction is a valid value to fill in.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = handler;
    action.sa_mask = mask.0;
    action.sa_flags = flags;
    // SAFETY: `action` is fully initialised. SIG_DFL and SIG_IGN run no code
    // of ours; a function comes from `install_handler`, whose caller vouches
    // that it is async-signal-safe.
    check(unsafe { libc::sigaction(sig, &action, ptr::null_mut()) }).map(drop)
}

/// Replaces the signal mask with `set`.
pub fn set_signal_mask(set: &SignalSet) -> io::Result<()> {
    // SAFETY: the set is valid; the old mask is not requested.
    check(unsafe { libc::sigprocmask(libc::SIG_SETMASK, &set.0, ptr::null_mut()) }).map(drop)
}

/// Blocks the signals in `set` and returns the mask that was in force
/// before, which `wait_for_events` and `Epoll::wait` restore while they
/// sleep.
pub fn block_signals(set: &SignalSet) -> io::Result<SignalSet> {
    change_signal_mask(libc::SIG_BLOCK, set)
}

/// `sigprocmask(how, set)`, returning the mask that was in force before.
///
/// Only while the process is single-threaded (the callers block before
/// starting anything else, and the spawn path runs in the single-threaded
/// master): in a multi-threaded process the result is unspecified.
#[inline]
pub(super) fn change_signal_mask(how: c_int, set: &SignalSet) -> io::Result<SignalSet> {
    let mut old = SignalSet::empty();
    // SAFETY: both sets are valid for the call; see above for threads.
    check(unsafe { libc::sigprocmask(how, &set.0, &mut old.0) })?;
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
