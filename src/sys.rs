//! The one module that calls libc directly: descriptors, process creation,
//! reaping, resource limits and usage, signal dispositions and `ppoll`.
//!
//! Everything `unsafe` in mpecho lives here, behind small safe functions whose
//! names say what they do. Nothing in this module allocates or formats inside
//! a signal handler, and nothing here knows about workers, logs or clients:
//! callers own the policy, this module only owns the system calls.

use std::ffi::{CString, c_char, c_int};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

pub use libc::pid_t;

/// A libc return type in which `-1` means "failed, the reason is in errno":
/// `int`, `ssize_t` (read, write) and `long` (`syscall`).
trait MinusOneIsError: Copy + PartialEq {
    const FAILED: Self;
}

impl MinusOneIsError for c_int {
    const FAILED: Self = -1;
}

impl MinusOneIsError for isize {
    const FAILED: Self = -1;
}

impl MinusOneIsError for libc::c_long {
    const FAILED: Self = -1;
}

/// Turns a libc `-1` return into the thread's `errno` as an `io::Error`.
#[inline]
fn check<T: MinusOneIsError>(ret: T) -> io::Result<T> {
    if ret == T::FAILED {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Makes `call` again for as long as a signal interrupts it (EINTR).
///
/// Handlers are installed with `SA_RESTART`, but the kernel does not restart
/// every call: a read or write on a socket with a timeout (the worker's idle
/// timeout) returns EINTR whatever the flag says. Retrying here keeps every
/// call that can block correct whichever handlers are installed (DESIGN §3).
#[inline]
fn retry_eintr<T: MinusOneIsError>(mut call: impl FnMut() -> T) -> io::Result<T> {
    loop {
        match check(call()) {
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            done => return done,
        }
    }
}

// ---------------------------------------------------------------- descriptors

/// Takes ownership of descriptor `fd` that this process inherited, after
/// checking that it is open.
///
/// Fails with `EBADF` when nothing is open there, so a caller can explain
/// how the program is meant to be started instead of touching a closed
/// descriptor (or, worse, one that is opened later for something else).
pub fn adopt_inherited_fd(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_GETFD only reads the descriptor flags; it has no effect on
    // the descriptor and fails with EBADF if nothing is open at `fd`.
    check(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    // SAFETY: the descriptor is open (checked above) and was inherited for
    // this purpose; nothing else in the process refers to it, so making it
    // owned here gives it exactly one owner that closes it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens `/dev/null` on any of descriptors 0, 1 and 2 that is closed.
///
/// A process started with a standard descriptor closed would otherwise hand
/// that number to its next socket, and a write meant for stdout (the
/// `listening on` line) would go to a client. Rust's runtime does this before
/// `main`; mpecho skips that runtime (see main.rs) and does it here.
pub fn ensure_standard_fds() -> io::Result<()> {
    for fd in 0..=2 {
        // SAFETY: F_GETFD only reads the descriptor flags.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            // SAFETY: a NUL-terminated literal path; open returns the lowest
            // free descriptor, which is `fd` because all below it are open.
            let opened = check(unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) })?;
            debug_assert_eq!(
                opened, fd,
                "/dev/null must land on the closed standard descriptor"
            );
        }
    }
    Ok(())
}

/// Marks every descriptor above standard error close-on-exec.
///
/// A shell or service manager may start the master with stray descriptors
/// open; without this they would leak into every worker (DESIGN §2). Our own
/// descriptors are already close-on-exec (Rust opens everything that way),
/// so this only changes inherited ones.
pub fn close_inherited_fds_on_exec() -> io::Result<()> {
    let mut fds = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let name = entry?.file_name();
        if let Some(fd) = name.to_str().and_then(|s| s.parse::<RawFd>().ok())
            && fd > 2
        {
            fds.push(fd);
        }
    }
    for fd in fds {
        // SAFETY: F_GETFD/F_SETFD only change the close-on-exec flag. A
        // descriptor listed above may already be closed (the directory
        // stream's own one is); EBADF is then the expected answer.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        if flags >= 0 && flags & libc::FD_CLOEXEC == 0 {
            // SAFETY: as above.
            check(unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) })?;
        }
    }
    Ok(())
}

/// Duplicates `fd` onto the lowest free descriptor at or above `min`,
/// close-on-exec.
pub fn dup_at_least(fd: BorrowedFd<'_>, min: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC creates a new descriptor that nothing else
    // refers to; ownership passes to the returned OwnedFd.
    let new = check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) })?;
    // SAFETY: `new` was just created by fcntl and is owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Switches a descriptor to non-blocking mode.
pub fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    // SAFETY: F_GETFL/F_SETFL only change the open file's status flags.
    let flags = check(unsafe { libc::fcntl(raw, libc::F_GETFL) })?;
    // SAFETY: as above.
    check(unsafe { libc::fcntl(raw, libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
    Ok(())
}

/// Writes `buf` with a single `write(2)` (one attempt, retried only on
/// EINTR), returning how much the kernel took.
///
/// The log relies on this: a whole line goes to the kernel in one call, so
/// lines written by many processes to one `O_APPEND` file never interleave.
pub fn write_once(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a valid, initialised slice for its whole length.
    let n = retry_eintr(|| unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) })?;
    Ok(n as usize)
}

/// One `read(2)` into `buf`, retried only on EINTR; 0 means end of input.
///
/// For descriptors watched with `ppoll`, where a buffered reader would hide
/// data it already pulled in from the next readiness check.
pub fn read_once(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a valid, writable slice for its whole length.
    let n =
        retry_eintr(|| unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) })?;
    Ok(n as usize)
}

/// Writes all of `buf`, one `write(2)` at a time, giving up on an error
/// or a zero-length write. Used where output must not sit in a buffer
/// (log lines, the chat receiver's output).
pub fn write_all_unbuffered(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<()> {
    let mut rest = buf;
    while !rest.is_empty() {
        match write_once(fd, rest)? {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            n => rest = &rest[n..],
        }
    }
    Ok(())
}

// ------------------------------------------------------------------ processes

/// How a child process ended, as reported by `waitpid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// `WIFEXITED`: it called exit with this status.
    Code(i32),
    /// `WIFSIGNALED`: this signal ended it.
    Signal(i32),
}

impl ExitKind {
    /// Decodes a `waitpid` status. Stopped and continued children are never
    /// reported (no `WUNTRACED`/`WCONTINUED`), so a status is either a
    /// signal's or an exit's.
    fn from_wait_status(status: c_int) -> ExitKind {
        if libc::WIFSIGNALED(status) {
            ExitKind::Signal(libc::WTERMSIG(status))
        } else {
            ExitKind::Code(libc::WEXITSTATUS(status))
        }
    }

    /// Decodes what `waitid(WEXITED)` reports: `si_code` says how the child
    /// ended (`CLD_EXITED`, or `CLD_KILLED`/`CLD_DUMPED`) and `si_status`
    /// holds the exit code or the signal accordingly.
    fn from_siginfo(code: c_int, status: c_int) -> ExitKind {
        if code == libc::CLD_EXITED {
            ExitKind::Code(status)
        } else {
            ExitKind::Signal(status)
        }
    }
}

/// `waitpid(pid, flags)`: the child reaped and how it ended, `Ok(None)` when
/// `WNOHANG` found none ready.
fn wait_pid(pid: pid_t, flags: c_int) -> io::Result<Option<(pid_t, ExitKind)>> {
    let mut status: c_int = 0;
    // SAFETY: waitpid writes only to `status`, a valid local.
    match retry_eintr(|| unsafe { libc::waitpid(pid, &mut status, flags) })? {
        0 => Ok(None),
        reaped => Ok(Some((reaped, ExitKind::from_wait_status(status)))),
    }
}

/// Reaps one terminated child without blocking.
///
/// `Ok(None)` means no child is waiting to be reaped (`waitpid` returned 0)
/// or there are no children at all (`ECHILD`): either way the caller's
/// "reap until nothing is left" loop is done.
pub fn reap_one_child() -> io::Result<Option<(pid_t, ExitKind)>> {
    match wait_pid(-1, libc::WNOHANG) {
        Err(err) if err.raw_os_error() == Some(libc::ECHILD) => Ok(None),
        reaped => reaped,
    }
}

/// Waits for child `pid` to end and reaps it; with `block` false, returns
/// `Ok(None)` at once if it is still running.
pub fn reap_child(pid: pid_t, block: bool) -> io::Result<Option<ExitKind>> {
    let flags = if block { 0 } else { libc::WNOHANG };
    Ok(wait_pid(pid, flags)?.map(|(_, kind)| kind))
}

/// Which side of a `fork` this is.
pub enum Forked {
    Parent { child: pid_t },
    Child,
}

/// Forks the calling process.
///
/// Only for single-threaded processes: the child of a multi-threaded
/// process may only call async-signal-safe functions, and mpecho's children
/// run ordinary Rust code.
pub fn fork() -> io::Result<Forked> {
    debug_assert!(
        std::fs::read_dir("/proc/self/task").map_or(true, |d| d.count() == 1),
        "fork() called in a multi-threaded process"
    );
    // SAFETY: the process is single-threaded (asserted above), so the child
    // is a complete copy in which any code may run; both sides own their
    // copies of every descriptor.
    match check(unsafe { libc::fork() })? {
        0 => Ok(Forked::Child),
        child => Ok(Forked::Parent { child }),
    }
}

/// A pidfd for child `pid` (`pidfd_open`, Linux 5.3+), close-on-exec.
///
/// Signals sent through it can only reach that very process, even after
/// the pid number has been reused.
pub fn pidfd_open(pid: pid_t) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes two integers and returns a new descriptor
    // (close-on-exec by definition) or -1 with errno.
    let fd = check(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    // SAFETY: the kernel just created this descriptor for us alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Sends `sig` to the process behind `pidfd`.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: c_int) -> io::Result<()> {
    // SAFETY: a valid pidfd, a signal number, no siginfo (NULL), flags 0.
    check(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            ptr::null::<libc::siginfo_t>(),
            0,
        )
    })
    .map(drop)
}

/// Sends `sig` to process `pid`.
pub fn send_signal(pid: pid_t, sig: c_int) -> io::Result<()> {
    debug_assert!(pid > 0, "signalling pid {pid} would hit a process group");
    // SAFETY: kill has no memory effects; a positive pid names one process.
    check(unsafe { libc::kill(pid, sig) }).map(drop)
}

/// Size of the stack the child of `spawn` runs on until it execs.
const SPAWN_STACK_SIZE: usize = 64 * 1024;

/// What `spawn` needs: the program, its argument vector and environment
/// (prepared once, so spawning allocates nothing), the signals to reset,
/// and the stack the short-lived child runs on.
pub struct SpawnTemplate {
    program: CString,
    argv: Vec<CString>,
    argv_ptrs: Vec<*const c_char>,
    envp: Vec<CString>,
    reset_signals: Vec<c_int>,
    /// u128 elements keep the stack 16-byte aligned, as the ABI requires.
    stack: Box<[u128]>,
}

impl SpawnTemplate {
    /// `reset_signals` are set back to their default disposition in the
    /// child: ignored signals survive exec, and a worker must start with
    /// defaults (DESIGN §3).
    pub fn new(
        program: CString,
        argv: Vec<CString>,
        envp: Vec<CString>,
        reset_signals: Vec<c_int>,
    ) -> Self {
        let argv_ptrs = null_terminated(&argv);
        SpawnTemplate {
            program,
            argv,
            argv_ptrs,
            envp,
            reset_signals,
            stack: vec![0u128; SPAWN_STACK_SIZE / 16].into_boxed_slice(),
        }
    }

    /// Starts the program with `dup2(from, to)` applied for each pair in
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
        fd_map: &[(BorrowedFd<'_>, RawFd)],
        extra_env: &[CString],
    ) -> io::Result<pid_t> {
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
        let envp: Vec<*const c_char> = self
            .envp
            .iter()
            .chain(extra_env)
            .map(|s| s.as_ptr())
            .chain(std::iter::once(ptr::null()))
            .collect();
        let keep_below = raw_map
            .iter()
            .map(|&(from, _)| from)
            .max()
            .unwrap_or(2)
            .max(2)
            + 1;
        let child = ChildSetup {
            program: self.program.as_ptr(),
            argv: self.argv_ptrs.as_ptr(),
            envp: envp.as_ptr(),
            fd_map: raw_map,
            keep_below: keep_below as libc::c_uint,
            reset_signals: &self.reset_signals,
            error: AtomicI32::new(0),
        };
        debug_assert!(!self.argv.is_empty(), "argv names the program");

        // No handler of ours may run in the child, which shares our memory
        // until it execs: block everything around the clone (the child sets
        // its own mask just before exec).
        let all = SignalSet::full();
        let mut old = SignalSet::empty();
        // SAFETY: valid sets; the process is single-threaded.
        check(unsafe { libc::sigprocmask(libc::SIG_SETMASK, &all.0, &mut old.0) })?;
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
        // SAFETY: restores the mask saved above.
        unsafe { libc::sigprocmask(libc::SIG_SETMASK, &old.0, ptr::null_mut()) };
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

fn null_terminated(strings: &[CString]) -> Vec<*const c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(ptr::null()))
        .collect()
}

/// Everything the child of `spawn` reads, prepared by the parent.
struct ChildSetup<'a> {
    program: *const c_char,
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
    // SAFETY (for the calls below): each is an async-signal-safe system
    // call on descriptors, signal state or this process only; pointers are
    // valid NUL-terminated strings and arrays prepared by the parent.
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
        libc::execve(setup.program, setup.argv, setup.envp);
    }
    fail()
}

// ---------------------------------------------------------- name lookups

unsafe extern "C" {
    // glibc: replaces the nsswitch.conf services for one database.
    fn __nss_configure_lookup(db: *const c_char, service_line: *const c_char) -> c_int;
}

/// Resolves host names through glibc's built-in `files` and `dns` services
/// only, whatever nsswitch.conf lists.
///
/// mpecho is linked statically, and a static glibc that loads an external
/// NSS module (`libnss_resolve`, `libnss_mdns`, … built against the shared
/// libc) can crash; the two built-in services need no module at all.
pub fn resolve_hosts_with_files_and_dns() -> io::Result<()> {
    // SAFETY: both arguments are NUL-terminated literals; the call only
    // records the service line for later lookups, and the process is
    // single-threaded when it is made.
    check(unsafe { __nss_configure_lookup(c"hosts".as_ptr(), c"files dns".as_ptr()) }).map(drop)
}

// ----------------------------------------------------------- limits and ids

/// A resource limit's soft and hard values (`RLIM_INFINITY` as `u64::MAX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub soft: u64,
    pub hard: u64,
}

/// Which resource limit.
#[derive(Debug, Clone, Copy)]
pub enum Resource {
    OpenFiles,
    Processes,
}

impl Resource {
    fn raw(self) -> libc::__rlimit_resource_t {
        match self {
            Resource::OpenFiles => libc::RLIMIT_NOFILE,
            Resource::Processes => libc::RLIMIT_NPROC,
        }
    }
}

pub fn get_limit(resource: Resource) -> io::Result<Limit> {
    let mut raw = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only to `raw`, a valid local.
    check(unsafe { libc::getrlimit(resource.raw(), &mut raw) })?;
    Ok(Limit {
        soft: raw.rlim_cur,
        hard: raw.rlim_max,
    })
}

pub fn set_soft_limit(resource: Resource, soft: u64) -> io::Result<()> {
    let hard = get_limit(resource)?.hard;
    let raw = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit only reads `raw`, a valid local.
    check(unsafe { libc::setrlimit(resource.raw(), &raw) }).map(drop)
}

/// Raises the soft limit of `resource` to its hard limit. Returns the
/// limits as they were when the soft one was raised, `None` when it already
/// was at the hard limit.
pub fn raise_soft_limit_to_hard(resource: Resource) -> io::Result<Option<Limit>> {
    let limit = get_limit(resource)?;
    if limit.soft >= limit.hard {
        return Ok(None);
    }
    set_soft_limit(resource, limit.hard)?;
    Ok(Some(limit))
}

pub fn effective_uid() -> u32 {
    // SAFETY: geteuid cannot fail and has no memory effects.
    unsafe { libc::geteuid() }
}

/// Becomes user `uid` for good: supplementary `groups`, then group `gid`,
/// then the user id, in that order (once the uid is dropped, the groups can
/// no longer be changed). Checks afterwards that root cannot be regained.
pub fn become_user(uid: u32, gid: u32, groups: &[u32]) -> io::Result<()> {
    // SAFETY: `groups` is a valid slice of gid_t for its length; these calls
    // only change the process credentials. The process is single-threaded
    // here, so no other thread keeps the old credentials.
    unsafe {
        check(libc::setgroups(groups.len(), groups.as_ptr()))?;
        check(libc::setgid(gid))?;
        check(libc::setuid(uid))?;
    }
    // SAFETY: as above; this call must fail.
    if uid != 0 && unsafe { libc::setuid(0) } == 0 {
        return Err(io::Error::other(
            "root could be regained after dropping privileges",
        ));
    }
    Ok(())
}

// ------------------------------------------------------------------- CPU time

/// CPU time as the kernel accounts it: in user mode and in the kernel on
/// the process's behalf.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTime {
    pub user: Duration,
    pub system: Duration,
}

impl CpuTime {
    pub fn total(&self) -> Duration {
        self.user + self.system
    }

    /// The time spent between an earlier reading and this one.
    pub fn since(&self, earlier: &CpuTime) -> CpuTime {
        CpuTime {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

/// Whose CPU time `cpu_time` reads.
#[derive(Debug, Clone, Copy)]
pub enum Usage {
    /// This process (`RUSAGE_SELF`, all its threads).
    OwnProcess,
    /// Its children that have ended and been reaped (`RUSAGE_CHILDREN`).
    ReapedChildren,
}

/// The CPU time used so far (`getrusage`).
pub fn cpu_time(who: Usage) -> io::Result<CpuTime> {
    let raw_who = match who {
        Usage::OwnProcess => libc::RUSAGE_SELF,
        Usage::ReapedChildren => libc::RUSAGE_CHILDREN,
    };
    let mut usage = MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes only to `usage`, a valid local.
    check(unsafe { libc::getrusage(raw_who, usage.as_mut_ptr()) })?;
    // SAFETY: getrusage succeeded, so it filled the structure (and it was
    // zeroed before, a valid value for every field in any case).
    let usage = unsafe { usage.assume_init() };
    let duration = |tv: libc::timeval| {
        Duration::from_secs(tv.tv_sec.max(0) as u64)
            + Duration::from_micros(tv.tv_usec.max(0) as u64)
    };
    Ok(CpuTime {
        user: duration(usage.ru_utime),
        system: duration(usage.ru_stime),
    })
}

// -------------------------------------------------------------------- signals

/// A set of signal numbers (`sigset_t`).
#[derive(Clone, Copy)]
pub struct SignalSet(libc::sigset_t);

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

/// Shuts socket `fd` down in both directions; errors are ignored.
///
/// Async-signal-safe (shutdown(2) is on the POSIX list): a signal handler
/// uses it to wake a process blocked in a read or write on that socket.
pub fn shutdown_socket(fd: RawFd) {
    // SAFETY: shutdown only changes the state of the socket behind `fd`; on
    // a descriptor that is not a socket it fails harmlessly (ENOTSOCK).
    unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
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

unsafe extern "C" {
    // glibc has exported ppoll since 2.4; the libc crate lacks it for gnu.
    fn ppoll(
        fds: *mut libc::pollfd,
        nfds: libc::nfds_t,
        timeout: *const libc::timespec,
        sigmask: *const libc::sigset_t,
    ) -> c_int;
}

/// Waits until one of `fds` is ready, `timeout` passes, or a signal arrives.
///
/// Signals that the caller keeps blocked are unblocked (to `wait_mask`)
/// only for the duration of the wait, atomically: a signal can therefore
/// never slip in between "check the flags" and "go to sleep", which is the
/// race a plain `poll` plus handlers has. Returns `Ok(0)` when woken by a
/// signal or the timeout.
pub fn wait_for_events(
    fds: &mut [libc::pollfd],
    timeout: Option<Duration>,
    wait_mask: &SignalSet,
) -> io::Result<usize> {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `fds` is a valid mutable slice of pollfd for its length, the
    // timespec (if any) lives on this frame, and the mask is a valid set.
    let n = unsafe {
        ppoll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            ts_ptr,
            &wait_mask.0,
        )
    };
    ready_count(n)
}

/// What a wait returned: how many descriptors are ready, or 0 when a signal
/// (the reason the wait unblocks them) or the timeout ended it.
fn ready_count(n: c_int) -> io::Result<usize> {
    match check(n) {
        Ok(n) => Ok(n as usize),
        Err(err) if err.kind() == io::ErrorKind::Interrupted => Ok(0),
        Err(err) => Err(err),
    }
}

/// An epoll instance: readiness for many descriptors at a cost that does
/// not grow with how many are watched.
pub struct Epoll(OwnedFd);

/// One readiness event: the token given at registration.
pub type EpollEvent = libc::epoll_event;

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 returns a new descriptor or -1.
        let fd = check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: the descriptor was just created for us alone.
        Ok(Epoll(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Watches `fd` for input, reporting `token` (level-triggered).
    pub fn add(&self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: both descriptors are valid and `event` is initialised.
        check(unsafe {
            libc::epoll_ctl(
                self.0.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                fd.as_raw_fd(),
                &mut event,
            )
        })
        .map(drop)
    }

    /// Stops watching `fd` (closing a descriptor also stops it).
    pub fn delete(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        // SAFETY: both descriptors are valid; the event is ignored for DEL.
        check(unsafe {
            libc::epoll_ctl(
                self.0.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd.as_raw_fd(),
                ptr::null_mut(),
            )
        })
        .map(drop)
    }

    /// Waits like [`wait_for_events`] (signals unblocked to `wait_mask`
    /// only meanwhile), filling `events`; returns how many are ready, 0 when
    /// woken by a signal or the timeout.
    pub fn wait(
        &self,
        events: &mut [EpollEvent],
        timeout: Option<Duration>,
        wait_mask: &SignalSet,
    ) -> io::Result<usize> {
        // Milliseconds, rounded up: rounding down would wake early and spin
        // until the deadline.
        let ms = timeout.map_or(-1, |t| {
            t.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as c_int
        });
        // SAFETY: `events` is a valid writable slice for its length and the
        // mask a valid set.
        let n = unsafe {
            libc::epoll_pwait(
                self.0.as_raw_fd(),
                events.as_mut_ptr(),
                events.len().min(i32::MAX as usize) as c_int,
                ms,
                &wait_mask.0,
            )
        };
        ready_count(n)
    }
}

/// Reaps the child behind `pidfd` if it has ended (`waitid(P_PIDFD)`,
/// which looks at that one child instead of scanning them all); `Ok(None)`
/// while it runs.
pub fn reap_pidfd(pidfd: BorrowedFd<'_>) -> io::Result<Option<ExitKind>> {
    // SAFETY: a zeroed siginfo is a valid out-parameter.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid writes only to `info`.
    retry_eintr(|| unsafe {
        libc::waitid(
            libc::P_PIDFD,
            pidfd.as_raw_fd() as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG,
        )
    })?;
    // SAFETY: waitid filled in a SIGCHLD siginfo (or left si_pid 0 when the
    // child is still running, with WNOHANG).
    let (pid, code, status) = unsafe { (info.si_pid(), info.si_code, info.si_status()) };
    if pid == 0 {
        return Ok(None);
    }
    Ok(Some(ExitKind::from_siginfo(code, status)))
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

/// The C string form of a path or argument, refusing interior NUL bytes.
pub fn c_string(bytes: impl Into<Vec<u8>>) -> io::Result<CString> {
    CString::new(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}
