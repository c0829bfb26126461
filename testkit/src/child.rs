//! Processes a test starts by hand rather than through `Server`: one-shot
//! `mpecho` commands (`run_mpecho`), any child held in a `ChildGuard`, and
//! what a running child writes to a pipe, collected as it comes
//! (`Collected`).
//!
//! Every process started here is bounded by `TIMEOUT` and killed and
//! reaped on drop if it is still running, also when the test fails.

use std::io::{Read, Write};
use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread;
use std::time::Duration;

use crate::bin::mpecho_bin;
use crate::log::{line_with, whole_lines};
use crate::process::send_signal;
use crate::wait::{TIMEOUT, wait_for};

/// A process a test started by hand (not through `Server`): killed with
/// SIGKILL and reaped on drop if it is still running, so a failing test
/// leaves nothing behind.
pub struct ChildGuard(pub Child);

impl ChildGuard {
    /// Waits up to `TIMEOUT` for the child to exit and reaps it.
    pub fn wait_exit(&mut self) -> ExitStatus {
        self.wait_exit_within(TIMEOUT)
    }

    /// Waits up to `within` for the child to exit and reaps it: for a child
    /// that runs a known while by design (a bench's `--duration`), whose
    /// bound is that while plus `TIMEOUT`, never a guess.
    pub fn wait_exit_within(&mut self, within: Duration) -> ExitStatus {
        wait_for(
            &format!("the process to exit within {within:?}"),
            within,
            || self.0.try_wait().ok().flatten(),
        )
    }

    /// Waits up to `TIMEOUT` for the child to exit, then collects what it
    /// wrote to its piped stdout and stderr (read after exit: for output
    /// that fits in a pipe buffer).
    pub fn wait_output(&mut self) -> Output {
        self.wait_output_within(TIMEOUT)
    }

    /// `wait_output`, waiting up to `within` for the exit
    /// (`wait_exit_within`).
    pub fn wait_output_within(&mut self, within: Duration) -> Output {
        let status = self.wait_exit_within(within);
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
pub struct Collected {
    text: Arc<Mutex<String>>,
    /// Set by the thread when the pipe has closed: nothing more will come.
    closed: Arc<AtomicBool>,
}

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
                sink.text
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
            sink.closed.store(true, Ordering::Release);
        });
        collected
    }

    /// Everything collected so far.
    pub fn text(&self) -> String {
        self.text
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits (at most `TIMEOUT`) until the pipe has closed (the child and
    /// whatever inherited the pipe have exited), and returns all it
    /// delivered.
    pub fn wait_for_close(&self) -> String {
        wait_for("the pipe to close", TIMEOUT, || {
            self.closed.load(Ordering::Acquire).then(|| self.text())
        })
    }

    /// Waits (at most `TIMEOUT`) until the text has at least `count` whole
    /// lines (each ended by a newline), and returns every whole line so far.
    pub fn wait_for_lines(&self, count: usize) -> Vec<String> {
        wait_for(&format!("{count} lines"), TIMEOUT, || {
            let text = self.text();
            let lines: Vec<String> = whole_lines(&text).lines().map(str::to_string).collect();
            (lines.len() >= count).then_some(lines)
        })
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

/// Makes `command` start with descriptor `fd` of this process on its
/// descriptor 3, where a worker finds its client (`fd` must stay open
/// until the command has started).
pub fn pass_as_descriptor_3(command: &mut Command, fd: RawFd) {
    // SAFETY: between fork and exec the closure only calls dup2 and fcntl,
    // which are async-signal-safe; `fd` stays open in the parent (the
    // caller's promise) and only the child's descriptor table is changed.
    unsafe {
        command.pre_exec(move || {
            let ok = if fd == 3 {
                // dup2(3, 3) would keep close-on-exec: clear it instead.
                libc::fcntl(3, libc::F_SETFD, 0) != -1
            } else {
                libc::dup2(fd, 3) != -1
            };
            if ok {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}

/// Writes an executable shell script with `body` at `path` (for `--exec`).
pub fn write_script(path: &std::path::Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).expect("write the script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}
