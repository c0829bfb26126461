//! The one way to run a server under test: start the real `mpecho serve`
//! (or `chat-server`), wait for its `listening on` line, talk to it, read
//! its log and figures, signal it, and stop and reap it on drop.
//!
//! A `Server` never outlives its test: dropped while running, the master
//! gets SIGTERM and `TIMEOUT` to finish, then it and the workers it had are
//! killed with SIGKILL and it is reaped, also when the test fails. Nothing
//! here sleeps a fixed time: every wait polls the log or /proc with a
//! deadline.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crate::bin::mpecho_bin;
use crate::child::Collected;
use crate::log::{FIGURES, Figures, count_lines, line_with, whole_lines};
use crate::net::{connect_to, echo};
use crate::process::{children_of, send_signal};
use crate::wait::{TIMEOUT, poll_for, wait_for};

/// How to start a server.
pub struct ServerOptions {
    /// Arguments after `serve`; `-l 127.0.0.1:0` is added unless a listen
    /// address is given or a `wrapper` runs the server (it passes the
    /// socket).
    pub args: Vec<String>,
    /// Log to a file in a temporary directory (readable with `Server::log`)
    /// instead of stderr.
    pub log_to_file: bool,
    /// Run through `bash -c "<prefix> exec mpecho serve ..."`, to start the
    /// master with extra descriptors open, for example.
    pub shell_prefix: Option<String>,
    /// The server to run: `serve` (the echo server) or `chat-server`.
    pub subcommand: &'static str,
    /// Start the master in a process group of its own, so that a test can
    /// signal the group as Ctrl-C does (`Server::signal_group`) without
    /// hitting itself. A bench turns it off, so that Ctrl-C on the bench
    /// reaches the server too and shuts it down rather than leave it
    /// running.
    pub own_process_group: bool,
    /// Variables added to the server's environment (`NOTIFY_SOCKET`,
    /// `WATCHDOG_USEC`, …); empty by default.
    pub env: Vec<(String, String)>,
    /// A program that runs the server by exec'ing its last arguments,
    /// `WRAPPER… mpecho SUBCOMMAND ARGS` (`systemd-socket-activate -l
    /// ADDR`, which passes the listening socket); empty by default. It must
    /// exec, not fork: the pid started is the server's.
    pub wrapper: Vec<String>,
    /// The mpecho executable to run instead of `mpecho_bin()` (a copy in a
    /// directory of the test's own).
    pub binary: Option<PathBuf>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            args: Vec::new(),
            log_to_file: true,
            shell_prefix: None,
            subcommand: "serve",
            own_process_group: true,
            env: Vec::new(),
            wrapper: Vec::new(),
            binary: None,
        }
    }
}

/// A running `mpecho serve` (or `chat-server`).
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub pid: i32,
    log_path: Option<PathBuf>,
    stderr: Collected,
    /// Lines printed on stdout after `listening on` (there must be none).
    stdout_rest: mpsc::Receiver<String>,
    dir: tempfile::TempDir,
}

impl Server {
    /// Starts `mpecho serve --log-file <tmp> -l 127.0.0.1:0 ARGS`.
    pub fn start(args: &[&str]) -> Server {
        Server::start_with(ServerOptions {
            args: args.iter().map(|s| s.to_string()).collect(),
            ..ServerOptions::default()
        })
    }

    /// Starts the server `options` describe and waits for its `listening
    /// on` line (at most `TIMEOUT`).
    pub fn start_with(options: ServerOptions) -> Server {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let mut args = options.args.clone();
        // Added first: everything after `--exec PROG` is the program's.
        if options.wrapper.is_empty() && !args.iter().any(|a| a == "-l" || a == "--listen") {
            args.splice(0..0, ["-l".to_string(), "127.0.0.1:0".to_string()]);
        }
        let log_path = options.log_to_file.then(|| dir.path().join("mpecho.log"));
        if let Some(path) = &log_path {
            args.splice(0..0, ["--log-file".to_string(), path.display().to_string()]);
        }
        let binary = options
            .binary
            .clone()
            .unwrap_or_else(|| mpecho_bin().to_path_buf());
        let mut command = match &options.shell_prefix {
            None if !options.wrapper.is_empty() => {
                let mut c = Command::new(&options.wrapper[0]);
                c.args(&options.wrapper[1..])
                    .arg(&binary)
                    .arg(options.subcommand)
                    .args(&args);
                c
            }
            None => {
                let mut c = Command::new(&binary);
                c.arg(options.subcommand).args(&args);
                c
            }
            Some(prefix) => {
                let mut c = Command::new("bash");
                c.arg("-c")
                    .arg(format!(
                        "{prefix} exec \"$0\" {} \"$@\"",
                        options.subcommand
                    ))
                    .arg(&binary)
                    .args(&args);
                c
            }
        };
        command
            .envs(options.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if options.own_process_group {
            command.process_group(0);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start `{} {}`: {e}", binary.display(), options.subcommand));
        let pid = child.id() as i32;

        let stderr = Collected::from_pipe(child.stderr.take().expect("stderr is piped"));

        let (tx, rx) = mpsc::channel();
        let out_pipe = child.stdout.take().expect("stdout is piped");
        thread::spawn(move || {
            for line in BufReader::new(out_pipe).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });

        let mut server = Server {
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            pid,
            log_path,
            stderr,
            stdout_rest: rx,
            dir,
        };
        let first = server
            .stdout_rest
            .recv_timeout(TIMEOUT)
            .unwrap_or_else(|_| {
                panic!(
                    "mpecho {} printed no `listening on` line within {TIMEOUT:?}; stderr:\n{}",
                    options.subcommand,
                    server.stderr()
                )
            });
        let addr = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first stdout line {first:?}"));
        server.addr = addr
            .parse()
            .unwrap_or_else(|_| panic!("bad address in {first:?}"));
        server
    }

    /// A connected client with read and write timeouts.
    pub fn connect(&self) -> TcpStream {
        connect_to(self.addr)
    }

    /// A connected client whose worker is already running (its `connect`
    /// line is in the log), so it counts against the worker limit.
    pub fn connect_served(&self) -> TcpStream {
        let mut stream = self.connect();
        assert_eq!(echo(&mut stream, b"ping\n"), b"ping\n");
        stream
    }

    /// A client whose worker is running (as `connect_served`) and the pid
    /// of that worker (as `worker_serving`).
    pub fn connect_served_worker(&self) -> (TcpStream, i32) {
        let client = self.connect_served();
        let worker = self.worker_serving(&client);
        (client, worker)
    }

    /// The pid of the worker serving `client`: the one whose `connect` line
    /// names `client`'s local address as its peer. Waits for that line.
    pub fn worker_serving(&self, client: &TcpStream) -> i32 {
        let suffix = format!(
            "]: connect peer={}",
            client.local_addr().expect("client's local address")
        );
        let line = wait_for(
            &format!("a worker log line ending in {suffix:?}"),
            TIMEOUT,
            || {
                self.log()
                    .lines()
                    .find(|l| l.ends_with(&suffix))
                    .map(str::to_string)
            },
        );
        let pid = line
            .split_once(" worker[")
            .and_then(|(_, rest)| rest.split_once(']'))
            .and_then(|(pid, _)| pid.parse().ok());
        pid.unwrap_or_else(|| panic!("no worker pid in the connect line {line:?}"))
    }

    /// The address of the metrics endpoint of a server started with
    /// `--metrics` (port 0 included), read from its `metrics on ADDR` log
    /// line, which is written before `listening on`.
    pub fn metrics_addr(&self) -> SocketAddr {
        let line = self.wait_for_log_line(&["]: metrics on "]);
        let (_, addr) = line
            .split_once("]: metrics on ")
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        addr.parse()
            .unwrap_or_else(|_| panic!("bad metrics address in {line:?}"))
    }

    /// The server's temporary directory, removed when it is dropped.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log_path(&self) -> &Path {
        self.log_path
            .as_deref()
            .expect("this server logs to stderr")
    }

    /// The log so far (the file, or stderr when not logging to a file).
    pub fn log(&self) -> String {
        match &self.log_path {
            Some(path) => std::fs::read_to_string(path).unwrap_or_default(),
            None => self.stderr(),
        }
    }

    /// What the server wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// Waits until the log has a line containing every one of `needles`,
    /// and returns that line.
    pub fn wait_for_log_line(&self, needles: &[&str]) -> String {
        wait_for(&format!("a log line with {needles:?}"), TIMEOUT, || {
            line_with(&self.log(), needles)
        })
    }

    /// Waits until the log holds at least `count` lines containing `needle`.
    pub fn wait_for_log_count(&self, needle: &str, count: usize) {
        wait_for(
            &format!("{count} log lines with {needle:?}"),
            TIMEOUT,
            || (count_lines(&self.log(), needle) >= count).then_some(()),
        )
    }

    /// Asks the master for a figures line (SIGUSR1) and returns it: the
    /// first one logged after the signal. The lines are counted before
    /// signalling, so an earlier figures line is never taken for it.
    pub fn figures(&self) -> Figures {
        let before = count_lines(whole_lines(&self.log()), FIGURES);
        self.signal(libc::SIGUSR1);
        let line = wait_for("a figures line after SIGUSR1", TIMEOUT, || {
            whole_lines(&self.log())
                .lines()
                .filter(|l| l.contains(FIGURES))
                .nth(before)
                .map(str::to_string)
        });
        Figures::new(line)
    }

    /// Live (non-zombie) children of the master, its workers, in ascending
    /// pid order.
    pub fn worker_pids(&self) -> Vec<i32> {
        children_of(self.pid)
            .into_iter()
            .filter(|&(_, state)| state != 'Z')
            .map(|(pid, _)| pid)
            .collect()
    }

    /// Waits until the master has exactly `n` live workers; returns them in
    /// ascending pid order.
    pub fn wait_for_workers(&self, n: usize) -> Vec<i32> {
        wait_for(&format!("{n} live workers"), TIMEOUT, || {
            let pids = self.worker_pids();
            (pids.len() == n).then_some(pids)
        })
    }

    /// Zombie children of the master.
    pub fn zombies(&self) -> Vec<i32> {
        children_of(self.pid)
            .into_iter()
            .filter(|&(_, state)| state == 'Z')
            .map(|(pid, _)| pid)
            .collect()
    }

    /// Sends `sig` to the master.
    pub fn signal(&self, sig: i32) {
        send_signal(self.pid, sig);
    }

    /// Sends `sig` to the master's whole process group, as Ctrl-C does
    /// (with `own_process_group`, the default).
    pub fn signal_group(&self, sig: i32) {
        send_signal(-self.pid, sig);
    }

    /// Waits for the master to exit and returns its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        wait_for("the master to exit", timeout, || {
            self.child.try_wait().ok().flatten()
        })
    }

    /// Whether the master is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Lines printed on stdout after `listening on` so far.
    pub fn extra_stdout(&self) -> Vec<String> {
        self.stdout_rest.try_iter().collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !self.is_running() {
            return;
        }
        let workers = self.worker_pids();
        send_signal(self.pid, libc::SIGTERM);
        if poll_for(TIMEOUT, || self.child.try_wait().ok().flatten()).is_some() {
            return;
        }
        for pid in workers {
            send_signal(pid, libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
