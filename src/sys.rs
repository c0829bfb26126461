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
use std::time::Duration;

pub use libc::pid_t;

/// Turns a libc `-1` return into the thread's `errno` as an `io::Error`.
fn check(ret: c_int) -> io::Result<c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Turns a `posix_spawn*` return (an error number, not -1/errno) into a result.
fn check_errno(ret: c_int) -> io::Result<()> {
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(ret))
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
    loop {
        // SAFETY: `buf` is a valid, initialised slice for its whole length.
        let n = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// One `read(2)` into `buf`, retried only on EINTR; 0 means end of input.
///
/// For descriptors watched with `ppoll`, where a buffered reader would hide
/// data it already pulled in from the next readiness check.
pub fn read_once(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is a valid, writable slice for its whole length.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
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

/// Reaps one terminated child without blocking.
///
/// `Ok(None)` means no child is waiting to be reaped (`waitpid` returned 0)
/// or there are no children at all (`ECHILD`): either way the caller's
/// "reap until nothing is left" loop is done.
pub fn reap_one_child() -> io::Result<Option<(pid_t, ExitKind)>> {
    loop {
        let mut status: c_int = 0;
        // SAFETY: waitpid writes only to `status`, a valid local.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid > 0 {
            let kind = if libc::WIFSIGNALED(status) {
                ExitKind::Signal(libc::WTERMSIG(status))
            } else {
                ExitKind::Code(libc::WEXITSTATUS(status))
            };
            return Ok(Some((pid, kind)));
        }
        if pid == 0 {
            return Ok(None);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::ECHILD) => return Ok(None),
            _ => return Err(err),
        }
    }
}

/// Waits for child `pid` to end and reaps it; with `block` false, returns
/// `Ok(None)` at once if it is still running.
pub fn reap_child(pid: pid_t, block: bool) -> io::Result<Option<ExitKind>> {
    let flags = if block { 0 } else { libc::WNOHANG };
    loop {
        let mut status: c_int = 0;
        // SAFETY: waitpid writes only to `status`, a valid local.
        let ret = unsafe { libc::waitpid(pid, &mut status, flags) };
        if ret == pid {
            return Ok(Some(if libc::WIFSIGNALED(status) {
                ExitKind::Signal(libc::WTERMSIG(status))
            } else {
                ExitKind::Code(libc::WEXITSTATUS(status))
            }));
        }
        if ret == 0 {
            return Ok(None);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
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
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just created this descriptor for us alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Sends `sig` to the process behind `pidfd`.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: c_int) -> io::Result<()> {
    // SAFETY: a valid pidfd, a signal number, no siginfo (NULL), flags 0.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Sends `sig` to process `pid`.
pub fn send_signal(pid: pid_t, sig: c_int) -> io::Result<()> {
    debug_assert!(pid > 0, "signalling pid {pid} would hit a process group");
    // SAFETY: kill has no memory effects; a positive pid names one process.
    check(unsafe { libc::kill(pid, sig) }).map(drop)
}

/// What `spawn` needs: the program, its argument vector and environment
/// (prepared once, so spawning allocates nothing), and how to set up the
/// child's descriptors.
pub struct SpawnTemplate {
    program: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    reset_signals: Vec<c_int>,
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
        SpawnTemplate {
            program,
            argv,
            envp,
            reset_signals,
        }
    }

    /// Starts the program with `dup2(from, to)` applied for each pair in
    /// `fd_map` (in order), `extra_env` added to the template's environment,
    /// an empty signal mask, default dispositions for `reset_signals`, and
    /// its own process group.
    ///
    /// Every other descriptor is closed by exec, because every descriptor
    /// the caller holds is close-on-exec. The `from` descriptors must not be
    /// any of the `to` numbers, or an earlier dup2 would overwrite a later
    /// source (and `dup2(3, 3)` would leave close-on-exec set): callers keep
    /// their descriptors above the mapped range.
    ///
    /// The child gets its own process group so that a Ctrl-C aimed at the
    /// terminal's foreground group reaches the master only; the master
    /// decides when workers finish (DESIGN §3).
    pub fn spawn(
        &self,
        fd_map: &[(BorrowedFd<'_>, RawFd)],
        extra_env: &[CString],
    ) -> io::Result<pid_t> {
        debug_assert!(
            fd_map
                .iter()
                .all(|(from, _)| fd_map.iter().all(|(_, to)| from.as_raw_fd() != *to)),
            "a spawn source descriptor collides with a target number"
        );
        let argv = null_terminated(&self.argv);
        let envp: Vec<*const c_char> = self
            .envp
            .iter()
            .chain(extra_env)
            .map(|s| s.as_ptr())
            .chain(std::iter::once(ptr::null()))
            .collect();
        let mut actions = FileActions::new()?;
        for (from, to) in fd_map {
            actions.add_dup2(from.as_raw_fd(), *to)?;
        }
        let attr = SpawnAttr::new(&self.reset_signals)?;
        let mut pid: pid_t = 0;
        // SAFETY: every pointer is valid for the duration of the call:
        // program, argv and envp are NUL-terminated strings in null-
        // terminated arrays owned by `self` and the locals above; actions
        // and attr were initialised by their constructors.
        let ret = unsafe {
            libc::posix_spawn(
                &mut pid,
                self.program.as_ptr(),
                &actions.0,
                &attr.0,
                argv.as_ptr() as *const *mut c_char,
                envp.as_ptr() as *const *mut c_char,
            )
        };
        check_errno(ret)?;
        Ok(pid)
    }
}

fn null_terminated(strings: &[CString]) -> Vec<*const c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(ptr::null()))
        .collect()
}

struct FileActions(libc::posix_spawn_file_actions_t);

impl FileActions {
    fn new() -> io::Result<Self> {
        let mut raw = MaybeUninit::<libc::posix_spawn_file_actions_t>::uninit();
        // SAFETY: init fully initialises the structure it is given.
        check_errno(unsafe { libc::posix_spawn_file_actions_init(raw.as_mut_ptr()) })?;
        // SAFETY: initialised just above.
        Ok(FileActions(unsafe { raw.assume_init() }))
    }

    fn add_dup2(&mut self, from: RawFd, to: RawFd) -> io::Result<()> {
        // SAFETY: self.0 is an initialised file-actions object.
        check_errno(unsafe { libc::posix_spawn_file_actions_adddup2(&mut self.0, from, to) })
    }
}

impl Drop for FileActions {
    fn drop(&mut self) {
        // SAFETY: self.0 was initialised and is destroyed exactly once.
        unsafe { libc::posix_spawn_file_actions_destroy(&mut self.0) };
    }
}

struct SpawnAttr(libc::posix_spawnattr_t);

impl SpawnAttr {
    fn new(reset_signals: &[c_int]) -> io::Result<Self> {
        let mut raw = MaybeUninit::<libc::posix_spawnattr_t>::uninit();
        // SAFETY: init fully initialises the structure it is given.
        check_errno(unsafe { libc::posix_spawnattr_init(raw.as_mut_ptr()) })?;
        // SAFETY: initialised just above; from here on Drop destroys it.
        let mut attr = SpawnAttr(unsafe { raw.assume_init() });
        let empty = SignalSet::empty();
        let defaults = SignalSet::of(reset_signals);
        let flags = libc::POSIX_SPAWN_SETSIGMASK
            | libc::POSIX_SPAWN_SETSIGDEF
            | libc::POSIX_SPAWN_SETPGROUP;
        // SAFETY: attr.0 is initialised; the sets are valid sigset_t values
        // that the attribute object copies.
        unsafe {
            check_errno(libc::posix_spawnattr_setsigmask(&mut attr.0, &empty.0))?;
            check_errno(libc::posix_spawnattr_setsigdefault(
                &mut attr.0,
                &defaults.0,
            ))?;
            check_errno(libc::posix_spawnattr_setpgroup(&mut attr.0, 0))?;
            check_errno(libc::posix_spawnattr_setflags(&mut attr.0, flags as _))?;
        }
        Ok(attr)
    }
}

impl Drop for SpawnAttr {
    fn drop(&mut self) {
        // SAFETY: self.0 was initialised and is destroyed exactly once.
        unsafe { libc::posix_spawnattr_destroy(&mut self.0) };
    }
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

/// A user account as found by `getpwnam`.
#[derive(Debug, Clone)]
pub struct UserEntry {
    pub name: CString,
    pub uid: u32,
    pub gid: u32,
}

/// The signature shared by `getpwnam_r` and `getgrnam_r`.
type NssLookup<T> =
    unsafe extern "C" fn(*const c_char, *mut T, *mut c_char, libc::size_t, *mut *mut T) -> c_int;

/// Calls a reentrant NSS lookup by name; `Ok(None)` when nothing has that
/// name. The entry's string fields point into a local buffer and must not be
/// read by the caller: only its numeric fields are used.
fn nss_lookup<T>(name: &CString, lookup: NssLookup<T>) -> io::Result<Option<T>> {
    // Large enough for any ordinary passwd or group entry (glibc's own
    // sysconf suggestion is 1 KiB for passwd, 16 KiB for large groups).
    let mut buf = vec![0 as c_char; 64 * 1024];
    let mut entry = MaybeUninit::<T>::zeroed();
    let mut result: *mut T = ptr::null_mut();
    // SAFETY: every pointer is valid for the call; the function fills
    // `entry` (strings in `buf`) and sets `result` to it or to null.
    let ret = unsafe {
        lookup(
            name.as_ptr(),
            entry.as_mut_ptr(),
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if ret != 0 {
        return Err(io::Error::from_raw_os_error(ret));
    }
    if result.is_null() {
        return Ok(None);
    }
    // SAFETY: a non-null result means the entry was filled in.
    Ok(Some(unsafe { entry.assume_init() }))
}

/// Looks a user up by name (through NSS, like every other tool); `Ok(None)`
/// when there is no such user.
pub fn lookup_user(name: &str) -> io::Result<Option<UserEntry>> {
    let c_name = c_string(name)?;
    Ok(
        nss_lookup(&c_name, libc::getpwnam_r)?.map(|entry| UserEntry {
            uid: entry.pw_uid,
            gid: entry.pw_gid,
            name: c_name,
        }),
    )
}

/// Looks a group up by name; `Ok(None)` when there is no such group.
pub fn lookup_group(name: &str) -> io::Result<Option<u32>> {
    Ok(nss_lookup(&c_string(name)?, libc::getgrnam_r)?.map(|entry| entry.gr_gid))
}

/// Becomes `user` for good: its supplementary groups plus `gid`
/// (`initgroups`), then group `gid`, then the user id, in that order (once
/// the uid is dropped, the groups can no longer be changed). Checks
/// afterwards that root cannot be regained.
pub fn become_user(user: &UserEntry, gid: u32) -> io::Result<()> {
    // SAFETY: the name is a valid C string; these calls only change the
    // process credentials. The process is single-threaded here (glibc
    // would otherwise have to broadcast the change to every thread).
    unsafe {
        check(libc::initgroups(user.name.as_ptr(), gid))?;
        check(libc::setgid(gid))?;
        check(libc::setuid(user.uid))?;
    }
    // SAFETY: as above; this call must fail.
    if user.uid != 0 && unsafe { libc::setuid(0) } == 0 {
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
    if n >= 0 {
        return Ok(n as usize);
    }
    let err = io::Error::last_os_error();
    if err.kind() == io::ErrorKind::Interrupted {
        Ok(0)
    } else {
        Err(err)
    }
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
