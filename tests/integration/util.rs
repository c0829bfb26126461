//! The one harness every integration test uses: start the real `mpecho`
//! binary, wait for its `listening on` line, talk to it over loopback, look
//! at its processes in /proc, and stop and reap everything on drop — also
//! when the test fails.
//!
//! Nothing here sleeps a fixed time to "let things settle": every wait polls
//! for a real condition (a log line, a process state) and gives up after a
//! deadline, so a broken server makes a test fail, never hang.

#![allow(dead_code)]

use std::fmt;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Upper bound for anything a test waits for.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// How often a wait re-checks its condition.
const POLL: Duration = Duration::from_millis(10);

pub fn mpecho_bin() -> &'static str {
    env!("CARGO_BIN_EXE_mpecho")
}

/// The `mpecho-bench` executable, beside `mpecho`: it belongs to another
/// package of the workspace, so Cargo gives this crate no
/// `CARGO_BIN_EXE_` for it; the root `cargo test` builds it.
pub fn mpecho_bench_bin() -> PathBuf {
    let bin = Path::new(mpecho_bin()).with_file_name("mpecho-bench");
    assert!(
        bin.is_file(),
        "{} is missing: build it with `cargo build -p mpecho-bench`, or run \
         `cargo test` at the repository root, which builds every binary",
        bin.display()
    );
    bin
}

/// Polls `condition` until it returns `Some`, or panics with `what` after
/// `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut condition: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = condition() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        thread::sleep(POLL);
    }
}

/// How to start a server.
pub struct ServerOptions {
    /// Arguments after `serve`; `-l 127.0.0.1:0` is added unless a listen
    /// address is given.
    pub args: Vec<String>,
    /// Log to a file in a temporary directory (readable with `Server::log`)
    /// instead of stderr.
    pub log_to_file: bool,
    /// Run through `bash -c "<prefix> exec mpecho serve ..."`, to start the
    /// master with extra descriptors open, for example.
    pub shell_prefix: Option<String>,
    /// The server to run: `serve` (the echo server) or `chat-server`.
    pub subcommand: &'static str,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            args: Vec::new(),
            log_to_file: true,
            shell_prefix: None,
            subcommand: "serve",
        }
    }
}

/// A running `mpecho serve`, in its own process group.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub pid: i32,
    log_path: Option<PathBuf>,
    stderr: Arc<Mutex<String>>,
    /// Lines printed on stdout after `listening on` (there must be none).
    stdout_rest: mpsc::Receiver<String>,
    dir: tempfile::TempDir,
}

impl Server {
    /// Starts `mpecho serve ARGS -l 127.0.0.1:0 --log-file <tmp>`.
    pub fn start(args: &[&str]) -> Server {
        Server::start_with(ServerOptions {
            args: args.iter().map(|s| s.to_string()).collect(),
            ..ServerOptions::default()
        })
    }

    pub fn start_with(options: ServerOptions) -> Server {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let mut args = options.args.clone();
        if !args.iter().any(|a| a == "-l" || a == "--listen") {
            args.extend(["-l".to_string(), "127.0.0.1:0".to_string()]);
        }
        let log_path = options.log_to_file.then(|| dir.path().join("mpecho.log"));
        if let Some(path) = &log_path {
            args.extend(["--log-file".to_string(), path.display().to_string()]);
        }
        let mut command = match &options.shell_prefix {
            None => {
                let mut c = Command::new(mpecho_bin());
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
                    .arg(mpecho_bin())
                    .args(&args);
                c
            }
        };
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = command.spawn().expect("start mpecho serve");
        let pid = child.id() as i32;

        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().expect("stderr is piped");
        let sink = Arc::clone(&stderr);
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });

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
            addr: "0.0.0.0:0".parse().unwrap(),
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
                    "mpecho serve printed no `listening on` line within {TIMEOUT:?}; stderr:\n{}",
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

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until the log has a line containing every one of `needles`,
    /// and returns that line.
    pub fn wait_for_log_line(&self, needles: &[&str]) -> String {
        wait_for(&format!("a log line with {needles:?}"), TIMEOUT, || {
            self.log()
                .lines()
                .find(|line| needles.iter().all(|n| line.contains(n)))
                .map(str::to_string)
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

    /// Sends `sig` to the master's whole process group, as Ctrl-C does.
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
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        let workers = self.worker_pids();
        send_signal(self.pid, libc::SIGTERM);
        let deadline = Instant::now() + TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(POLL);
        }
        for pid in workers {
            send_signal(pid, libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn send_signal(pid: i32, sig: i32) {
    // SAFETY: kill has no memory effects.
    unsafe { libc::kill(pid, sig) };
}

/// Every process on the machine (the numeric entries of /proc), in
/// ascending pid order.
pub fn all_pids() -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<i32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect();
    pids.sort_unstable();
    pids
}

/// The fields of /proc/PID/stat after the command name — state, ppid,
/// pgrp, … (`man 5 proc`: field N of the file is index N - 3 here) — if
/// the process exists.
pub fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after
    // the last ')'.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    Some(rest.split(' ').map(str::to_string).collect())
}

/// `(pid, state)` of every process whose parent is `parent`, in ascending
/// pid order.
pub fn children_of(parent: i32) -> Vec<(i32, char)> {
    all_pids()
        .into_iter()
        .filter_map(|pid| match proc_state(pid) {
            Some((state, ppid)) if ppid == parent => Some((pid, state)),
            _ => None,
        })
        .collect()
}

/// `(state, ppid)` from /proc/PID/stat, if the process exists.
pub fn proc_state(pid: i32) -> Option<(char, i32)> {
    let fields = stat_fields(pid)?;
    let state = fields.first()?.chars().next()?;
    let ppid = fields.get(1)?.parse().ok()?;
    Some((state, ppid))
}

/// Whether a process with this pid exists (a zombie counts).
pub fn process_exists(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Descriptor numbers open in process `pid`.
pub fn open_fds(pid: i32) -> Vec<i32> {
    let mut fds: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
                .collect()
        })
        .unwrap_or_default();
    fds.sort_unstable();
    fds
}

/// A connected client of `addr` with read and write timeouts.
pub fn connect_to(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect to the server");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    stream
}

/// Sends `data` and reads back exactly as many bytes.
pub fn echo(stream: &mut TcpStream, data: &[u8]) -> Vec<u8> {
    stream.write_all(data).expect("send to the server");
    let mut back = vec![0u8; data.len()];
    stream.read_exact(&mut back).expect("read the echo back");
    back
}

/// Asserts that the server ended `client`'s connection: the client reads
/// EOF, or a reset where `reset_ok` (the kernel had data nobody read),
/// never data, within its read timeout. `whose` names the client in the
/// failure message.
pub fn assert_connection_ended(client: &mut TcpStream, reset_ok: bool, whose: &str) {
    let expected = if reset_ok { "EOF or a reset" } else { "EOF" };
    let mut buf = [0u8; 64];
    match client.read(&mut buf) {
        Ok(0) => {}
        Err(e) if reset_ok && e.kind() == ErrorKind::ConnectionReset => {}
        Ok(n) => panic!(
            "{whose} should read {expected}, but read {:?}",
            text(&buf[..n])
        ),
        Err(e) => panic!("{whose} should read {expected}, got: {e}"),
    }
}

/// Bytes as text, invalid UTF-8 replaced, for comparisons and messages.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `mpecho ARGS` with `stdin` as its input, bounded by `TIMEOUT`.
pub fn run_mpecho(args: &[&str], stdin: &[u8]) -> Output {
    run_program(Path::new(mpecho_bin()), args, stdin)
}

/// Runs `mpecho-bench ARGS` with `stdin` as its input, bounded by `TIMEOUT`.
pub fn run_mpecho_bench(args: &[&str], stdin: &[u8]) -> Output {
    run_program(&mpecho_bench_bin(), args, stdin)
}

/// Runs `program ARGS` with `stdin` as its input, bounded by `TIMEOUT`.
fn run_program(program: &Path, args: &[&str], stdin: &[u8]) -> Output {
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

/// How many lines of `log` contain `needle`.
pub fn count_lines(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

/// `log` up to its last newline: without a line still being written.
fn whole_lines(log: &str) -> &str {
    &log[..log.rfind('\n').map_or(0, |i| i + 1)]
}

/// The value of `key=` in a log line, up to the next space; fails if the
/// line has no such field.
pub fn log_field<'a>(line: &'a str, key: &str) -> &'a str {
    let start = line
        .find(&format!(" {key}="))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
        + key.len()
        + 2;
    line[start..].split(' ').next().unwrap_or("")
}

/// What marks the master's figures lines (not the final one).
const FIGURES: &str = "]: figures ";

/// A figures line of the master's, as `Server::figures` returns it:
/// `… figures active=1 peak=1 accepted=1 …`, every field `name=value`.
pub struct Figures {
    line: String,
}

impl Figures {
    fn new(line: String) -> Figures {
        let (_, fields) = line
            .split_once(FIGURES)
            .unwrap_or_else(|| panic!("not a figures line: {line:?}"));
        for field in fields.split(' ') {
            assert!(field.contains('='), "bad field {field:?} in {line:?}");
        }
        Figures { line }
    }

    /// The whole log line.
    pub fn line(&self) -> &str {
        &self.line
    }

    /// The numeric field `name`; fails if there is none or it is not a
    /// number.
    pub fn get(&self, name: &str) -> u64 {
        let value = log_field(&self.line, name);
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value} is not a number in {:?}", self.line))
    }
}

/// Shows the line, so that `{figures:?}` in a failure message says it all.
impl fmt::Debug for Figures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.line, f)
    }
}

/// A log line's shape: `YYYY-MM-DDTHH:MM:SS.mmmZ LEVEL component[pid]: message`.
pub fn is_well_formed_log_line(line: &str) -> bool {
    // `9` stands for any digit; every other byte must be there as it is.
    const STAMP: &[u8; 25] = b"9999-99-99T99:99:99.999Z ";
    let b = line.as_bytes();
    let stamp_ok = b.len() > STAMP.len()
        && STAMP.iter().zip(b).all(|(&want, &got)| {
            if want == b'9' {
                got.is_ascii_digit()
            } else {
                got == want
            }
        });
    if !stamp_ok {
        return false;
    }
    let rest = &line[25..];
    let Some((level, rest)) = rest.split_once(' ') else {
        return false;
    };
    if !["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&level) {
        return false;
    }
    let Some((label, _message)) = rest.split_once("]: ") else {
        return false;
    };
    let Some((component, pid)) = label.split_once('[') else {
        return false;
    };
    !component.is_empty()
        && component
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c == b'-')
        && !pid.is_empty()
        && pid.bytes().all(|c| c.is_ascii_digit())
}

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

/// A client connected to `addr` from `local_ip` (bound before connecting,
/// any port), with read and write timeouts as `connect_to`: a second
/// loopback address (127.0.0.2, …) is a different client address.
pub fn connect_from(local_ip: std::net::IpAddr, addr: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )
    .expect("create a client socket");
    socket
        .bind(&SocketAddr::new(local_ip, 0).into())
        .unwrap_or_else(|e| panic!("bind a client socket to {local_ip}: {e}"));
    socket
        .connect(&addr.into())
        .unwrap_or_else(|e| panic!("connect from {local_ip} to {addr}: {e}"));
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    stream
}

/// Milliseconds since the Unix epoch of a log line's timestamp
/// (`YYYY-MM-DDTHH:MM:SS.mmmZ …`), to compare when two lines were written.
pub fn log_time_ms(line: &str) -> i64 {
    let field = |range: std::ops::Range<usize>| -> i64 {
        line.get(range)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no timestamp at the start of {line:?}"))
    };
    let (year, month, day) = (field(0..4), field(5..7), field(8..10));
    // Days from 1970-01-01 to the date (Howard Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let seconds = days * 86_400 + field(11..13) * 3_600 + field(14..16) * 60 + field(17..19);
    seconds * 1_000 + field(20..23)
}

/// The total of N over the throttle's summary lines `suppressed N more
/// WHAT in the last 1s` in `log`: the warnings of that kind held back.
pub fn suppressed_total(log: &str, what: &str) -> u64 {
    let tail = format!(" more {what} in the last 1s");
    log.lines()
        .filter_map(|l| l.strip_suffix(&tail))
        .map(|l| {
            let (_, n) = l
                .rsplit_once("]: suppressed ")
                .unwrap_or_else(|| panic!("a summary line without its count: {l:?}"));
            n.parse::<u64>()
                .unwrap_or_else(|_| panic!("a summary line with a bad count: {l:?}"))
        })
        .sum()
}

/// The descriptors of process `pid` that are pidfds (their /proc link is
/// `anon_inode:[pidfd]`).
pub fn pidfds(pid: i32) -> Vec<i32> {
    open_fds(pid)
        .into_iter()
        .filter(|fd| {
            std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
                .is_ok_and(|target| target.as_os_str() == "anon_inode:[pidfd]")
        })
        .collect()
}

/// Sets the soft descriptor limit of process `pid` (keeping its hard limit)
/// and returns the previous soft limit.
pub fn set_soft_nofile(pid: i32, soft: u64) -> u64 {
    let resource = libc::RLIMIT_NOFILE;
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a null new limit only reads the current one into `old`.
    let ret = unsafe { libc::prlimit(pid, resource, std::ptr::null(), &mut old) };
    assert_eq!(
        ret,
        0,
        "read the limits of pid {pid}: {}",
        std::io::Error::last_os_error()
    );
    let new = libc::rlimit {
        rlim_cur: soft,
        rlim_max: old.rlim_max,
    };
    // SAFETY: both pointers are valid for the call.
    let ret = unsafe { libc::prlimit(pid, resource, &new, std::ptr::null_mut()) };
    assert_eq!(
        ret,
        0,
        "set the limit of pid {pid} to {soft}: {}",
        std::io::Error::last_os_error()
    );
    old.rlim_cur
}

/// User plus system CPU time of `pid`, in clock ticks.
pub fn cpu_ticks(pid: i32) -> u64 {
    let fields = stat_fields(pid).expect("read the process's stat");
    // utime is field 14 of the file, stime 15.
    let utime: u64 = fields[11].parse().expect("utime");
    let stime: u64 = fields[12].parse().expect("stime");
    utime + stime
}

/// Asserts that the server's log has `expected` lines containing `needle`
/// (showing the log when it has not).
pub fn assert_log_lines(server: &Server, needle: &str, expected: usize) {
    let log = server.log();
    assert_eq!(
        count_lines(&log, needle),
        expected,
        "lines with {needle:?}; log:\n{log}"
    );
}

/// Processes (zombies included) whose process group is `pgid`.
pub fn process_group_members(pgid: i32) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|&pid| {
            // After the command name: state, ppid, pgrp.
            stat_fields(pid).and_then(|fields| fields.get(2)?.parse::<i32>().ok()) == Some(pgid)
        })
        .collect()
}

/// Whether a log line names `peer` as `peer=ADDR` (not merely a longer
/// port that starts with the same digits: `peer=127.0.0.1:600` must not
/// match `peer=127.0.0.1:60091`).
pub fn names_peer(line: &str, peer: SocketAddr) -> bool {
    let needle = format!("peer={peer}");
    line.match_indices(&needle).any(|(at, _)| {
        !line[at + needle.len()..]
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_digit())
    })
}

/// How many lines of `log` name `peer` (see [`names_peer`]).
pub fn count_peer_lines(log: &str, peer: SocketAddr) -> usize {
    log.lines().filter(|l| names_peer(l, peer)).count()
}

/// Whether process `pid` is blocked in system call `number` right now
/// (the first field of /proc/PID/syscall).
pub fn blocked_in_syscall(pid: i32, number: libc::c_long) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/syscall"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<libc::c_long>().ok())
        == Some(number)
}

/// Sends from a non-blocking `client` until the kernel shows `worker`
/// blocked writing to it (the client never reads, so both socket buffers
/// fill up); returns how many bytes were sent. Bounded by `TIMEOUT` and
/// 256 MiB.
pub fn stall_worker_writing(client: &mut TcpStream, worker: i32) -> usize {
    client
        .set_nonblocking(true)
        .expect("make the client non-blocking");
    let chunk = vec![b'x'; 64 * 1024];
    let mut sent = 0;
    wait_for(
        "the worker to stall writing to a client that never reads",
        TIMEOUT,
        || {
            loop {
                match client.write(&chunk) {
                    Ok(n) => sent += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("sending after {sent} bytes: {e}"),
                }
                assert!(
                    sent < 256 << 20,
                    "{sent} bytes sent and the worker still reads"
                );
            }
            blocked_in_syscall(worker, libc::SYS_sendto).then_some(())
        },
    );
    sent
}
