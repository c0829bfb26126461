//! Starting a program: a vfork-style `clone` whose child sets up
//! descriptors, process group and signals, then execs the program through
//! a descriptor opened once (`execveat(fd, "", …, AT_EMPTY_PATH)`) or by
//! its path (`execve`, for `--exec PROG`: `SpawnTemplate`), and the
//! argument vectors and C strings it takes.
//!
//! The child runs in the parent's memory, on a stack the template owns,
//! while the parent is suspended. Between clone and exec it must never
//! allocate, lock, panic, unwind or run anything but async-signal-safe
//! system calls; it reports a failure only through `ChildSetup::error` and
//! `_exit(127)`. Each rule is restated where the child's code relies on it.

use std::ffi::{CStr, CString, c_char, c_int};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::ptr;
use std::sync::atomic::{AtomicI32, Ordering};

use super::reap::reap_child;
use super::signals::{SignalSet, change_signal_mask, set_signal_mask};
use libc::pid_t;

/// Size of the stack the child of `spawn` runs on until it execs.
const SPAWN_STACK_SIZE: usize = 64 * 1024;

/// An argument vector, with the NULL-terminated array of pointers that
/// `execve` takes prepared once.
pub struct Argv {
    strings: Vec<CString>,
    ptrs: Vec<*const c_char>,
}

impl Argv {
    pub fn new(strings: Vec<CString>) -> Argv {
        debug_assert!(!strings.is_empty(), "argv names the program");
        let ptrs = null_terminated(&strings);
        Argv { strings, ptrs }
    }

    pub fn strings(&self) -> &[CString] {
        &self.strings
    }
}

/// What `spawn` needs besides the argument vector (an [`Argv`], prepared
/// once by the caller): the program (a descriptor opened with
/// `sys::open_executable`), its environment (prepared once; the array of
/// pointers that adds the per-spawn variables is reused, so a spawn
/// allocates nothing), the signals to reset, and the stack the
/// short-lived child runs on.
///
/// Why a descriptor and not a path: what runs is the file opened, whatever
/// happens to the path afterwards (a package upgrade renaming a new file
/// over it, or deleting it), so every program started is the one that was
/// checked when the descriptor was opened.
pub struct SpawnTemplate {
    program: Program,
    envp: Vec<CString>,
    /// The NULL-terminated array of environment pointers, rebuilt by each
    /// spawn in the same allocation.
    envp_ptrs: Vec<*const c_char>,
    reset_signals: Vec<c_int>,
    /// u128 elements keep the stack 16-byte aligned, as the ABI requires.
    stack: Box<[u128]>,
}

/// What a spawn execs.
pub enum Program {
    /// A file opened once (`open_executable`, `memfd_executable`): what
    /// runs is the file checked at boot, whatever becomes of its path.
    Opened(OwnedFd),
    /// A path, looked up at each spawn as `tcpserver` and inetd do: an
    /// operator's program (`--exec PROG`), which may be a script (a script
    /// cannot be run through a close-on-exec descriptor: its interpreter
    /// would find `/dev/fd/N` closed) and whose upgrades take effect for
    /// the next connection.
    Path(CString),
}

impl SpawnTemplate {
    /// `reset_signals` are set back to their default disposition in the
    /// child: ignored signals survive exec, and a worker must start with
    /// defaults (DESIGN §3).
    pub fn new(program: impl Into<Program>, envp: Vec<CString>, reset_signals: Vec<c_int>) -> Self {
        SpawnTemplate {
            program: program.into(),
            envp_ptrs: Vec::with_capacity(envp.len() + 8),
            envp,
            reset_signals,
            stack: vec![0u128; SPAWN_STACK_SIZE / 16].into_boxed_slice(),
        }
    }

    /// Starts the program with `argv`, `dup2(from, to)` applied for each pair in
    /// `fd_map` (in order), `extra_env` added to the template's environment,
    /// an empty signal mask, default dispositions for `reset_signals`, and
    /// its own process group (so that a Ctrl-C aimed at the terminal's
    /// foreground group reaches the master only: the master decides when
    /// workers finish, DESIGN §3).
    ///
    /// The child gets no other descriptor: everything the caller holds is
    /// close-on-exec. The `from` descriptors must not be any of the `to`
    /// numbers, or an earlier dup2 would overwrite a later source: callers
    /// keep their descriptors above the mapped range.
    ///
    /// Why not `posix_spawn`: its child copies the parent's whole descriptor
    /// table and then closes every close-on-exec entry at exec, so a master
    /// holding a pidfd per worker paid for every live worker at every spawn
    /// (measured: 2.3 times slower with 5,000 held). Here the child starts
    /// by *sharing* the table (`CLONE_FILES`) and unshares it with
    /// `close_range(…, CLOSE_RANGE_UNSHARE)`, which copies only the
    /// descriptors below the highest one it needs. It also resets only the
    /// signals we changed, where glibc resets all 64 one by one.
    pub fn spawn(
        &mut self,
        argv: &Argv,
        fd_map: &[(BorrowedFd<'_>, RawFd)],
        extra_env: &[&CStr],
    ) -> io::Result<pid_t> {
        let (program, path) = match &self.program {
            Program::Opened(fd) => (fd.as_raw_fd(), ptr::null()),
            Program::Path(path) => (-1, path.as_ptr()),
        };
        debug_assert!(
            fd_map.iter().all(|&(_, to)| to != program),
            "the program's descriptor collides with a target number"
        );
        debug_assert!(
            fd_map
                .iter()
                .all(|(from, _)| fd_map.iter().all(|(_, to)| from.as_raw_fd() != *to)),
            "a spawn source descriptor collides with a target number"
        );
        let mut raw_map = [(0, 0); 4];
        debug_assert!(
            fd_map.len() <= raw_map.len(),
            "at most 4 descriptors are mapped"
        );
        for (slot, (from, to)) in raw_map.iter_mut().zip(fd_map) {
            *slot = (from.as_raw_fd(), *to);
        }
        let raw_map = &raw_map[..fd_map.len().min(4)];
        self.envp_ptrs.clear();
        self.envp_ptrs.extend(
            self.envp
                .iter()
                .map(|s| s.as_ptr())
                .chain(extra_env.iter().map(|s| s.as_ptr()))
                .chain(std::iter::once(ptr::null())),
        );
        // The program's descriptor must survive the unsharing too; it is
        // opened at boot, so normally below the clients' anyway.
        let keep_below = raw_map
            .iter()
            .map(|&(from, _)| from)
            .chain([program])
            .max()
            .unwrap_or(2)
            .max(2)
            + 1;
        let child = ChildSetup {
            program,
            path,
            argv: argv.ptrs.as_ptr(),
            envp: self.envp_ptrs.as_ptr(),
            fd_map: raw_map,
            keep_below: keep_below as libc::c_uint,
            reset_signals: &self.reset_signals,
            error: AtomicI32::new(0),
        };
        debug_assert!(!argv.strings.is_empty(), "argv names the program");

        // No handler of ours may run in the child, which shares our memory
        // until it execs: block everything around the clone (the child sets
        // its own mask just before exec).
        let old = change_signal_mask(libc::SIG_SETMASK, &SignalSet::full())?;
        let stack_top = self.stack.as_mut_ptr_range().end.cast::<libc::c_void>();
        // SAFETY: CLONE_VM|CLONE_VFORK suspends this process until the child
        // has exec'd or exited, so the child can use our memory and the
        // stack we own exclusively (`&mut self`) meanwhile; `child_main`
        // only makes async-signal-safe system calls and reads `child`,
        // which outlives the call. CLONE_FILES shares the descriptor table
        // until the child unshares it, before changing anything in it.
        let pid = unsafe {
            libc::clone(
                child_main,
                stack_top,
                libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_FILES | libc::SIGCHLD,
                (&child as *const ChildSetup<'_>).cast_mut().cast(),
            )
        };
        let clone_error = io::Error::last_os_error();
        // Restoring a mask we just had cannot fail on valid sets.
        let _ = set_signal_mask(&old);
        if pid < 0 {
            return Err(clone_error);
        }
        match child.error.load(Ordering::Acquire) {
            0 => Ok(pid),
            errno => {
                // The child has already exited (status 127): reap it here so
                // it never reaches the caller's bookkeeping.
                let _ = reap_child(pid, true);
                Err(io::Error::from_raw_os_error(errno))
            }
        }
    }
}

impl From<OwnedFd> for Program {
    fn from(fd: OwnedFd) -> Program {
        Program::Opened(fd)
    }
}

fn null_terminated(strings: &[CString]) -> Vec<*const c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(ptr::null()))
        .collect()
}

/// Everything the child of `spawn` reads, prepared by the parent.
struct ChildSetup<'a> {
    /// An `O_PATH` descriptor of the program, close-on-exec; -1 when it is
    /// run by `path`.
    program: RawFd,
    /// The program's path, or null to run it through `program`.
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
    fd_map: &'a [(RawFd, RawFd)],
    keep_below: libc::c_uint,
    reset_signals: &'a [c_int],
    /// The errno of the step that failed, for the parent to report.
    error: AtomicI32,
}

/// The child of `spawn`, between clone and exec. It shares the parent's
/// memory (the parent is suspended): only system calls, no allocation, no
/// locks, no panics.
extern "C" fn child_main(arg: *mut libc::c_void) -> c_int {
    // SAFETY: `arg` is the `ChildSetup` the parent passed, alive until the
    // parent resumes, which is after this process has exec'd or exited.
    let setup = unsafe { &*(arg as *const ChildSetup<'_>) };
    let fail = || -> c_int {
        // SAFETY: errno is readable at any time; _exit never returns and
        // runs no atexit handlers or destructors (they belong to the parent).
        unsafe {
            setup
                .error
                .store(*libc::__errno_location(), Ordering::Release);
            libc::_exit(127)
        }
    };
    // SAFETY: every call below is an async-signal-safe system call on
    // descriptors, signal state or this process only; pointers are valid
    // NUL-terminated strings and arrays prepared by the parent, and a zeroed
    // sigaction is a valid value to fill in.
    unsafe {
        // A private descriptor table holding only what we need: entries at
        // or above `keep_below` are neither copied nor kept.
        if libc::syscall(
            libc::SYS_close_range,
            setup.keep_below,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_UNSHARE,
        ) != 0
        {
            return fail();
        }
        for &(from, to) in setup.fd_map {
            let ok = if from == to {
                // dup2(fd, fd) leaves close-on-exec set (DESIGN §2).
                libc::fcntl(to, libc::F_SETFD, 0) == 0
            } else {
                libc::dup2(from, to) == to
            };
            if !ok {
                return fail();
            }
        }
        if libc::setpgid(0, 0) != 0 {
            return fail();
        }
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        for &sig in setup.reset_signals {
            if libc::sigaction(sig, &default, ptr::null_mut()) != 0 {
                return fail();
            }
        }
        let empty = SignalSet::empty();
        if libc::sigprocmask(libc::SIG_SETMASK, &empty.0, ptr::null_mut()) != 0 {
            return fail();
        }
        if setup.path.is_null() {
            // AT_EMPTY_PATH: the file the descriptor names, not a path.
            // Its close-on-exec flag only matters to scripts (their
            // interpreter could not reopen it); programs run fine.
            libc::syscall(
                libc::SYS_execveat,
                setup.program,
                c"".as_ptr(),
                setup.argv,
                setup.envp,
                libc::AT_EMPTY_PATH,
            );
        } else {
            libc::execve(setup.path, setup.argv, setup.envp);
        }
    }
    fail()
}

/// The C string form of a path or argument, refusing interior NUL bytes.
pub fn c_string(bytes: impl Into<Vec<u8>>) -> io::Result<CString> {
    CString::new(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}
