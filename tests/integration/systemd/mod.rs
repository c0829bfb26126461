//! systemd, both ways (issue 9, part 2), with the real tools: sockets
//! passed by `systemd-socket-activate` to `mpecho serve` (`activation.rs`)
//! and, one connection per instance (`Accept=yes`), to the worker
//! (`accept.rs`); readiness, status, reload, stopping and the watchdog
//! through a real `NOTIFY_SOCKET` listener (`notify.rs`); the shipped unit
//! files checked by `systemd-analyze verify` and their command lines run
//! (`units.rs`).
//!
//! This module holds what those files share: finding the tools (a test
//! whose tool is missing says so and is skipped), free ports, and starting
//! a program that must fail once something pokes its socket.

mod accept;
mod activation;
mod notify;
pub(crate) mod units;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::thread::{self, JoinHandle};

pub(crate) use mpecho_testkit::free_port;
use mpecho_testkit::{
    ChildGuard, Collected, TIMEOUT, connect_when_listening, mpecho_bin, poll_for, text,
};

/// Debian's `systemd` package puts it here (`.ci/run` installs it).
const SOCKET_ACTIVATE: &str = "/usr/bin/systemd-socket-activate";

/// `systemd-socket-activate`, or `None` after saying the test is skipped.
pub(crate) fn socket_activate(test: &str) -> Option<&'static str> {
    if Path::new(SOCKET_ACTIVATE).exists() {
        Some(SOCKET_ACTIVATE)
    } else {
        eprintln!("skipped {test}: {SOCKET_ACTIVATE} is missing (apt-get install systemd)");
        None
    }
}

pub(crate) fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// Connects to `addr` as soon as something listens there, from a thread:
/// `systemd-socket-activate` starts its program only when a first client
/// knocks, so the test's first client must knock while the test waits for
/// the `listening on` line. That client is served once the server runs.
pub(crate) fn knock(addr: SocketAddr) -> JoinHandle<TcpStream> {
    thread::spawn(move || connect_when_listening(addr))
}

/// `TOOL OPTIONS -l ADDR…`: the service manager's part, played by
/// `systemd-socket-activate`, which execs (or, with `--accept`, forks and
/// execs) the program that follows.
pub(crate) fn activator(tool: &str, options: &[&str], listen: &[SocketAddr]) -> Vec<String> {
    let mut words = vec![tool.to_string()];
    words.extend(options.iter().map(|o| o.to_string()));
    for addr in listen {
        words.extend(["-l".to_string(), addr.to_string()]);
    }
    words
}

/// The command `activator(…) mpecho ARGS`.
pub(crate) fn activate(
    tool: &str,
    options: &[&str],
    listen: &[SocketAddr],
    args: &[&str],
) -> Command {
    activate_program(tool, options, listen, mpecho_bin(), args)
}

/// The command `activator(…) PROGRAM ARGS`.
pub(crate) fn activate_program(
    tool: &str,
    options: &[&str],
    listen: &[SocketAddr],
    program: &Path,
    args: &[&str],
) -> Command {
    let words = activator(tool, options, listen);
    let mut command = Command::new(&words[0]);
    command.args(&words[1..]).arg(program).args(args);
    command
}

/// Runs `command` (which must exit by itself once started) with nothing
/// on stdin, calling `poke` until it exits (bounded by `TIMEOUT`; killed
/// and reaped on failure), and returns what it wrote.
pub(crate) fn run_poking(mut command: Command, mut poke: impl FnMut()) -> Output {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = ChildGuard(command.spawn().expect("start the command"));
    let exited = poll_for(TIMEOUT, || {
        poke();
        child.0.try_wait().ok().flatten()
    });
    assert!(
        exited.is_some(),
        "the command did not exit within {TIMEOUT:?}"
    );
    child.wait_output()
}

/// `systemd-socket-activate --accept -l ADDR mpecho ARGS`, running (killed
/// and reaped on drop), with its stderr (and its instances') collected:
/// one `mpecho ARGS` process per connection, as `Accept=yes` starts.
pub(crate) fn accepting(tool: &str, addr: SocketAddr, args: &[&str]) -> (ChildGuard, Collected) {
    accepting_program(tool, addr, mpecho_bin(), args)
}

/// `accepting`, for another program than `mpecho` (`mpecho-worker`).
pub(crate) fn accepting_program(
    tool: &str,
    addr: SocketAddr,
    program: &Path,
    args: &[&str],
) -> (ChildGuard, Collected) {
    let mut command = activate_program(tool, &["--accept"], &[addr], program, args);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut activator = ChildGuard(command.spawn().expect("start systemd-socket-activate"));
    let stderr = Collected::from_pipe(activator.0.stderr.take().expect("stderr is piped"));
    (activator, stderr)
}

/// `run_poking`, knocking at `addr` (TCP) until the command exits.
pub(crate) fn run_knocking(command: Command, addr: SocketAddr) -> Output {
    run_poking(command, || {
        let _ = TcpStream::connect(addr);
    })
}

/// Asserts that `output` is a refusal to start: `status`, nothing on
/// stdout (no `listening on`), and a stderr line containing `message`.
pub(crate) fn assert_refused(output: &Output, status: i32, message: &str) {
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(status), "stderr:\n{stderr}");
    assert!(
        output.stdout.is_empty(),
        "nothing may go to stdout: {:?}",
        text(&output.stdout)
    );
    assert!(
        stderr.lines().any(|l| l.contains(message)),
        "stderr must say {message:?}:\n{stderr}"
    );
}
