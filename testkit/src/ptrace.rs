//! Holding back the signals a process is sent, through ptrace: the
//! deterministic way to have a worker that does not finish when asked.
//!
//! Only a descendant of the test process can be traced (Yama's default
//! scope). The tracer never outlives its tracee: its thread ends when the
//! traced process does, and every wait on it is bounded by `TIMEOUT`.

use std::io::ErrorKind;
use std::sync::mpsc;
use std::thread;

use crate::wait::TIMEOUT;

/// Swallows every SIGTERM sent to one worker, so that the worker cannot
/// finish: the deterministic way to have a worker outlive the grace period.
///
/// A dedicated thread attaches to the worker with `PTRACE_SEIZE` (the
/// worker is a descendant of the test process, which Yama's default scope
/// allows) and resumes it after each signal-delivery stop, dropping SIGTERM
/// and passing anything else on. SIGKILL cannot be intercepted. The thread
/// ends when the worker does: a tracer must wait for its tracee's death
/// before the real parent, the master, is told about it.
pub struct SigtermSwallower {
    swallowed: mpsc::Receiver<()>,
    done: mpsc::Receiver<()>,
}

impl SigtermSwallower {
    pub fn attach(pid: i32) -> SigtermSwallower {
        let (attached_tx, attached_rx) = mpsc::channel();
        let (swallowed_tx, swallowed) = mpsc::channel();
        let (done_tx, done) = mpsc::channel();
        thread::spawn(move || {
            let null = std::ptr::null_mut::<libc::c_void>();
            // SAFETY: PTRACE_SEIZE takes no pointers (addr and data are 0).
            let seized = unsafe { libc::ptrace(libc::PTRACE_SEIZE, pid, null, null) };
            let _ = attached_tx.send(
                (seized == 0)
                    .then_some(())
                    .ok_or_else(std::io::Error::last_os_error),
            );
            if seized != 0 {
                return;
            }
            loop {
                let mut status = 0;
                // SAFETY: waitpid writes only to `status`, a valid local.
                let waited = unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
                if waited < 0 {
                    if std::io::Error::last_os_error().kind() == ErrorKind::Interrupted {
                        continue;
                    }
                    break;
                }
                if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
                    break;
                }
                if libc::WIFSTOPPED(status) {
                    let sig = libc::WSTOPSIG(status);
                    // A ptrace event stop (status >> 16 != 0) carries no signal.
                    let pass_on = if status >> 16 != 0 {
                        0
                    } else if sig == libc::SIGTERM {
                        let _ = swallowed_tx.send(());
                        0
                    } else {
                        sig
                    };
                    // SAFETY: PTRACE_CONT takes no pointer; data is a signal number.
                    unsafe {
                        libc::ptrace(libc::PTRACE_CONT, pid, null, libc::c_long::from(pass_on))
                    };
                }
            }
            let _ = done_tx.send(());
        });
        attached_rx
            .recv_timeout(TIMEOUT)
            .expect("the tracer thread answers")
            .unwrap_or_else(|e| panic!("could not ptrace worker {pid}: {e}"));
        SigtermSwallower { swallowed, done }
    }

    /// Waits until the worker has been sent a SIGTERM (and did not get it).
    pub fn wait_swallowed(&self) {
        self.swallowed
            .recv_timeout(TIMEOUT)
            .expect("the held worker was sent SIGTERM within the timeout");
    }

    /// Waits until the held worker has ended.
    pub fn wait_done(&self) {
        self.done
            .recv_timeout(TIMEOUT)
            .expect("the held worker ended");
    }
}
