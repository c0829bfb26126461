//! Processes a test starts by hand rather than through `Server`: one-shot
//! `mpecho` commands (`run_mpecho`), any child held in a `ChildGuard`, and
//! what a running child writes to a pipe, collected as it comes
//! (`Collected`).
//!
//! Every process started here is bounded by `TIMEOUT` and killed and
//! reaped on drop if it is still running, also when the test fails.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread;

use crate::bin::mpecho_bin;
use crate::log::line_with;
use crate::process::send_signal;
use crate::wait::{TIMEOUT, wait_for};

/// A process a test started by hand (not through `Server`): killed with
/// SIGKILL and reaped on drop if it is still running, so a failing test
/// leaves nothing behind.
pub struct ChildGuard(pub Child);

impl ChildGuard {
    /// Waits up to `TIMEOUT` for the child to exit, then collects what it
    /// wrote to its piped stdout and stderr (read after exit: for output
    /// that fits in a pipe buffer).
    pub fn wait_output(&mut self) -> Output {
        let status = wait_for("the process to exit", TIMEOUT, || {
            self.0.try_wait().ok().flatten()
        });
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        if let Some(mut out) = self.0.stdout.take() {
            out.read_to_end(&mut stdout)
                .expect("read the process's stdout");
        }
        if let Some(mut err) = self.0.stderr.take() {
            err.read_to_end(&mut stderr)
                .expect("read the process's stderr");
        }
        Output {
            status,
            stdout,
            stderr,
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The text a running child writes to a pipe (its stderr, say), read by a
/// thread as it comes, so a test can wait for a line while the child runs
/// and the child never blocks on a full pipe. The thread ends when the
/// pipe closes (the child and whatever inherited the pipe have exited).
#[derive(Clone, Default)]
pub struct Collected(Arc<Mutex<String>>);

impl Collected {
    /// Starts collecting what `pipe` delivers.
    pub fn from_pipe(mut pipe: impl Read + Send + 'static) -> Collected {
        let collected = Collected::default();
        let sink = collected.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.0
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        collected
    }

    /// Everything collected so far.
    pub fn text(&self) -> String {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits (at most `TIMEOUT`) until the text has a line containing
    /// every one of `needles`, and returns that line.
    pub fn wait_for_line(&self, needles: &[&str]) -> String {
        wait_for(&format!("a line with {needles:?}"), TIMEOUT, || {
            line_with(&self.text(), needles)
        })
    }
}

/// Runs `mpecho ARGS` with `stdin` as its input, bounded by `TIMEOUT`.
pub fn run_mpecho(args: &[&str], stdin: &[u8]) -> Output {
    run_binary(mpecho_bin(), args, stdin)
}

/// Runs `program ARGS` with `stdin` as its input, bounded by `TIMEOUT`.
pub fn run_binary(program: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let name = program.file_name().unwrap_or_default().to_string_lossy();
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {name}: {e}"));
    let mut input = child.stdin.take().expect("stdin is piped");
    let data = stdin.to_vec();
    let writer = thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let pid = child.id() as i32;
    let (tx, rx) = mpsc::channel();
    let waiter = thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(TIMEOUT) {
        Ok(output) => output.unwrap_or_else(|e| panic!("collect {name}'s output: {e}")),
        Err(_) => {
            send_signal(pid, libc::SIGKILL);
            panic!(
                "`{name} {}` did not finish within {TIMEOUT:?}",
                args.join(" ")
            );
        }
    };
    let _ = writer.join();
    let _ = waiter.join();
    output
}

/// Whether `setpriv` (util-linux), which tests use to start a process as
/// another user, is installed.
pub fn setpriv_available() -> bool {
    ["/usr/bin/setpriv", "/bin/setpriv", "/usr/sbin/setpriv"]
        .iter()
        .any(|p| Path::new(p).exists())
}
