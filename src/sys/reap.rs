//! Reaping children and decoding how they ended, in one place: `waitpid`
//! for "any child" or one pid, `waitid(P_PIDFD)` for a child known by its
//! pidfd, both turned into an `ExitKind` by the decoders on that type.
//!
//! Never blocks unless asked to (`reap_child(pid, true)`), and keeps no
//! table of children: the caller knows which pids are its own.

use std::ffi::c_int;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use super::retry_eintr;
use libc::pid_t;

/// How a child process ended, as `waitpid` or `waitid` reports it.
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Both decoders agree on the three ways a child ends: an exit, a
    /// signal, and a signal that dumped core.
    #[test]
    fn both_decoders_read_exits_signals_and_core_dumps_alike() {
        let cases = [
            // (waitpid status, si_code, si_status, expected)
            (3 << 8, libc::CLD_EXITED, 3, ExitKind::Code(3)),
            (
                libc::SIGKILL,
                libc::CLD_KILLED,
                libc::SIGKILL,
                ExitKind::Signal(libc::SIGKILL),
            ),
            (
                libc::SIGSEGV | 0x80,
                libc::CLD_DUMPED,
                libc::SIGSEGV,
                ExitKind::Signal(libc::SIGSEGV),
            ),
        ];
        for (status, code, si_status, expected) in cases {
            assert_eq!(
                ExitKind::from_wait_status(status),
                expected,
                "status {status:#x}"
            );
            assert_eq!(
                ExitKind::from_siginfo(code, si_status),
                expected,
                "si_code {code}"
            );
        }
    }
}
