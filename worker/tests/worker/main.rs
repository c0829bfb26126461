//! `mpecho-worker` on its own, as the real binary, given a real TCP
//! connection on descriptor 3 the way the master (or systemd) gives it:
//! the check the master runs, a session echoed and logged, SIGTERM (the
//! handler and its return through our `SA_RESTORER` trampoline), the idle
//! timeout, a client gone before the worker looked, a dead log pipe, and a
//! worker started by hand. Every `unsafe` block of the worker's `sys/` runs
//! in these scenarios; mpecho's integration tests run it behind a master.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use mpecho_handoff::VersionLine;
use mpecho_testkit::{
    ChildGuard, Collected, TIMEOUT, is_well_formed_log_line, pass_as_descriptor_3, send_signal,
    text, wait_for,
};

const WORKER: &str = env!("CARGO_BIN_EXE_mpecho-worker");

/// A worker serving one real connection: the client's end, and the
/// worker with its stderr collected.
struct Served {
    client: TcpStream,
    worker: ChildGuard,
    stderr: Collected,
}

/// A client connected to a listener of the test's own, and the accepted
/// end, for the worker.
fn connection() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a listener");
    let client =
        TcpStream::connect(listener.local_addr().unwrap()).expect("connect to the listener");
    client.set_read_timeout(Some(TIMEOUT)).unwrap();
    let (accepted, _) = listener.accept().expect("accept the client");
    (client, accepted)
}

/// `mpecho-worker ARGS` with `accepted` on descriptor 3 and `stderr`;
/// the worker holds the connection alone once this returns.
fn spawn_worker(args: &[&str], accepted: TcpStream, stderr: Stdio) -> ChildGuard {
    let mut command = Command::new(WORKER);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    pass_as_descriptor_3(&mut command, accepted.as_raw_fd());
    ChildGuard(command.spawn().expect("start mpecho-worker"))
}

impl Served {
    /// `mpecho-worker ARGS` serving a fresh connection, its stderr
    /// collected.
    fn start(args: &[&str]) -> Served {
        let (client, accepted) = connection();
        let mut worker = spawn_worker(args, accepted, Stdio::piped());
        let stderr = Collected::from_pipe(worker.0.stderr.take().expect("stderr is piped"));
        Served {
            client,
            worker,
            stderr,
        }
    }

    fn pid(&self) -> i32 {
        self.worker.0.id() as i32
    }

    /// Waits (at most `TIMEOUT`) for the worker to exit.
    fn exit(&mut self) -> ExitStatus {
        wait_for("the worker to exit", TIMEOUT, || {
            self.worker.0.try_wait().ok().flatten()
        })
    }

    /// The worker's line containing `needle` (waits for it).
    fn line(&self, needle: &str) -> String {
        self.stderr.wait_for_line(&[needle])
    }

    /// The message part of that line, after `worker[PID]: `, checking the
    /// line's shape and level on the way.
    fn message(&self, level: &str, needle: &str) -> String {
        let line = self.line(needle);
        assert!(is_well_formed_log_line(&line), "{line:?}");
        let label = format!(" {level} worker[{}]: ", self.pid());
        line.split_once(&label)
            .unwrap_or_else(|| panic!("no {label:?} in {line:?}"))
            .1
            .to_string()
    }
}

/// `mpecho-worker --version` prints exactly the line the master expects
/// from its own build, and exits 0.
#[test]
fn the_version_check_prints_the_line_the_master_expects() {
    let output = Command::new(WORKER)
        .arg("--version")
        .output()
        .expect("run mpecho-worker --version");
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(text(&output.stdout), format!("{VersionLine}\n"));
    assert!(output.stderr.is_empty(), "{}", text(&output.stderr));
}

/// Started by hand with nothing on descriptor 3, the worker says what is
/// wrong and how it is meant to be started, in one write, and exits 2.
#[test]
fn by_hand_without_a_connection_it_explains_and_exits_2() {
    let output = Command::new("bash")
        .args(["-c", "exec 3<&-; exec \"$0\" --idle-timeout=5"])
        .arg(WORKER)
        .output()
        .expect("run mpecho-worker by hand");
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        text(&output.stderr),
        "mpecho worker: descriptor 3 is not a connected TCP socket (Bad file descriptor (os \
         error 9)).\nA worker serves one connection handed to it on descriptor 3; `mpecho \
         serve` starts one for each client. To run the server, use `mpecho serve`.\n"
    );
    assert!(output.stdout.is_empty());
}

/// A session: every byte comes back (more than the 16 KiB buffer too), a
/// half-close is answered with the worker's own FIN, and the log has the
/// connect line, escaped trace lines and the disconnect line, under the
/// worker's pid and name, then status 0.
#[test]
fn a_session_is_echoed_and_logged() {
    let mut served = Served::start(&["--log-level=trace", "--idle-timeout=30"]);
    let peer = served.client.local_addr().unwrap();
    assert_eq!(
        served.message("INFO", "connect"),
        format!("connect peer={peer}")
    );
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", served.pid())).unwrap();
    assert_eq!(comm, "mpecho-worker\n");

    served.client.write_all(b"hi\n\x00\\").unwrap();
    let mut back = [0u8; 5];
    served.client.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"hi\n\x00\\");
    assert_eq!(
        served.message("TRACE", "read 5 bytes"),
        "read 5 bytes: \"hi\\x0a\\x00\\\\\""
    );

    let bulk: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let writer = {
        let mut client = served.client.try_clone().unwrap();
        let bulk = bulk.clone();
        std::thread::spawn(move || client.write_all(&bulk))
    };
    let mut echoed = vec![0u8; bulk.len()];
    served.client.read_exact(&mut echoed).unwrap();
    writer.join().unwrap().unwrap();
    assert!(echoed == bulk, "the bulk echo differs");

    served.client.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    served
        .client
        .read_to_end(&mut rest)
        .expect("the worker's FIN");
    assert!(rest.is_empty());
    assert_eq!(served.exit().code(), Some(0));
    let disconnect = served.message("INFO", "disconnect");
    let total = 5 + bulk.len();
    assert!(
        disconnect.starts_with(&format!("disconnect peer={peer} bytes={total} duration="))
            && disconnect.ends_with("s reason=client closed"),
        "{disconnect:?}"
    );
    let traced = served.stderr.text();
    assert!(
        traced.lines().any(|l| l.ends_with("...")),
        "a long read is shown cut, with ...:\n{traced}"
    );
}

/// SIGTERM while the worker sleeps in `recv` with no timeout (restarted
/// after the handler returns through the worker's own restorer): the
/// handler shuts the socket down, the client reads EOF, and the worker
/// logs why and exits 0, not killed and not crashed.
#[test]
fn sigterm_ends_a_session_at_once_with_status_0() {
    let mut served = Served::start(&["--idle-timeout=0"]);
    served.line("connect peer=");
    let pid = served.pid();
    wait_for("the worker to sleep in recvfrom", TIMEOUT, || {
        mpecho_testkit::blocked_in_syscall(pid, libc::SYS_recvfrom).then_some(())
    });
    let signalled = Instant::now();
    send_signal(pid, libc::SIGTERM);
    let mut rest = Vec::new();
    served
        .client
        .read_to_end(&mut rest)
        .expect("EOF from the worker");
    let status = served.exit();
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(signalled.elapsed() < Duration::from_secs(5));
    assert!(
        served
            .message("INFO", "disconnect")
            .ends_with(" reason=server shutting down")
    );
}

/// A client silent for the idle timeout is closed, and the worker exits 3
/// saying so (at debug level, that it made no progress).
#[test]
fn a_silent_client_is_closed_after_the_idle_timeout_with_status_3() {
    let started = Instant::now();
    let mut served = Served::start(&["--idle-timeout=1", "--log-level=debug"]);
    let mut rest = Vec::new();
    served
        .client
        .read_to_end(&mut rest)
        .expect("EOF from the worker");
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(served.exit().code(), Some(3));
    served.message("DEBUG", "no progress for the idle timeout; closing");
    let disconnect = served.message("INFO", "disconnect");
    assert!(
        disconnect.starts_with("disconnect peer=")
            && disconnect.contains(" bytes=0 duration=1.")
            && disconnect.ends_with("s reason=idle timeout (1s)"),
        "{disconnect:?}"
    );
}

/// A client that connected and reset before its worker looked at the
/// socket: a normal, short session (one INFO line, status 0), not a
/// worker started wrongly.
#[test]
fn a_client_gone_before_the_worker_looked_is_a_normal_end() {
    let (client, accepted) = connection();
    // Closed with a zero linger, the client sends a reset, not a FIN.
    socket2::SockRef::from(&client)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(client);
    let output = spawn_worker(&[], accepted, Stdio::piped()).wait_output();
    assert_eq!(output.status.code(), Some(0));
    let stderr = text(&output.stderr);
    let line = stderr.lines().next().unwrap_or_default();
    assert!(is_well_formed_log_line(line), "{stderr}");
    assert!(
        line.ends_with(
            "]: client left before it could be served (Transport endpoint is not connected \
             (os error 107))"
        ),
        "{stderr}"
    );
}

/// With its log on a pipe whose reader is gone, the worker's lines are
/// lost (EPIPE) but the worker lives on (SIGPIPE ignored) and serves.
#[test]
fn a_dead_log_pipe_does_not_kill_the_worker() {
    let (mut client, accepted) = connection();
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let mut worker = spawn_worker(&["--idle-timeout=30"], accepted, Stdio::from(writer));
    client.write_all(b"still here\n").unwrap();
    let mut back = [0u8; 11];
    client.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"still here\n");
    client.shutdown(Shutdown::Write).unwrap();
    let status = wait_for("the worker to exit", TIMEOUT, || {
        worker.0.try_wait().ok().flatten()
    });
    assert_eq!(status.code(), Some(0), "{status}");
}
