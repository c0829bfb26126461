//! Execution models (`--model`): what makes each one that model. `exec`
//! serves every connection in a worker process of its own, a child of the
//! master; `fork` does too, but the child is a forked copy of `mpecho`
//! itself, never exec'd; `iterative` serves one client at a time in the
//! master itself, the next waiting in the backlog, as the first server of
//! the original.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use mpecho_testkit::{
    Server, TIMEOUT, assert_connection_ended, echo, mpecho_bin, open_fds, read_once, run_mpecho,
    stat_fields, text,
};

/// How long a waiting client is watched to show that nothing arrives while
/// another is served: long enough for an echo that was going to come (a
/// round trip here takes well under a millisecond), bounded.
const NOTHING_YET: Duration = Duration::from_millis(300);

/// Whether anything arrives on `client` within `NOTHING_YET`.
fn arrives_within_a_moment(client: &mut TcpStream) -> bool {
    client
        .set_read_timeout(Some(NOTHING_YET))
        .expect("set a read timeout");
    let mut byte = [0u8; 1];
    let arrived = match client.peek(&mut byte) {
        Ok(_) => true,
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
        Err(e) => panic!("peek failed: {e}"),
    };
    client
        .set_read_timeout(Some(TIMEOUT))
        .expect("set a read timeout");
    arrived
}

/// Echoes once on `client`, sends SIGTERM, and asserts what every model
/// owes its clients at shutdown: the client sees an orderly close, the
/// master exits 0 and writes final figures with the one connection served.
/// Returns the log.
pub(crate) fn sigterm_closes_the_client_and_exits_0(
    server: &mut Server,
    mut client: TcpStream,
) -> String {
    assert_eq!(echo(&mut client, b"hello\n"), b"hello\n");
    server.signal(libc::SIGTERM);
    assert_eq!(
        read_once(&mut client, &mut [0u8; 1]).expect("an orderly close"),
        0
    );
    let status = server.wait_exit(TIMEOUT);
    assert!(status.success(), "{status:?}");
    let log = server.log();
    assert!(
        log.contains("]: final figures active=0 peak=1 accepted=1 "),
        "{log}"
    );
    log
}

/// `exec` (the default): each client is served by a worker process, a child
/// of the master, and the model is named in the startup and figures lines.
#[test]
fn exec_serves_each_client_in_a_child_process() {
    let server = Server::start(&[]);
    let (_a, first) = server.connect_served_worker();
    let (_b, second) = server.connect_served_worker();
    assert_ne!(first, second);
    let mut children = server.worker_pids();
    children.sort_unstable();
    let mut expected = vec![first, second];
    expected.sort_unstable();
    assert_eq!(children, expected, "the workers are the master's children");
    server.wait_for_log_line(&["]: started: listening on ", " model=exec "]);
    assert!(server.figures().line().ends_with(" model=exec"));
}

/// `iterative`: the master serves one client itself, with no child at all;
/// a second client's data, sent meanwhile, is echoed only once the first
/// has left, and then all at once.
#[test]
fn iterative_serves_one_client_at_a_time_in_the_master() {
    let server = Server::start(&["--model", "iterative"]);
    let mut first = server.connect();
    assert_eq!(echo(&mut first, b"first\n"), b"first\n");
    assert!(server.worker_pids().is_empty(), "the master forked a child");

    let mut second = server.connect();
    second.write_all(b"one\n").expect("send while waiting");
    second.write_all(b"two\n").expect("send while waiting");
    assert!(
        !arrives_within_a_moment(&mut second),
        "the second client was served while the first was"
    );
    assert_eq!(echo(&mut first, b"still first\n"), b"still first\n");

    drop(first);
    let mut both = [0u8; 8];
    second
        .read_exact(&mut both)
        .expect("the waiting client's echo");
    assert_eq!(&both, b"one\ntwo\n");
    assert!(server.worker_pids().is_empty(), "the master forked a child");

    let pid = server.pid;
    let log = server.log();
    assert_eq!(
        log.matches(&format!("INFO master[{pid}]: connect peer="))
            .count(),
        2,
        "{log}"
    );
    assert!(
        log.contains(" served by the master (model iterative) active=1"),
        "{log}"
    );
    assert!(!log.contains(" worker["), "{log}");
    let figures = server.figures();
    assert_eq!(figures.get("accepted"), 2, "{figures:?}");
    assert_eq!(figures.get("active"), 1, "{figures:?}");
    assert_eq!(figures.get("peak"), 1, "{figures:?}");
    assert!(figures.line().ends_with(" model=iterative"), "{figures:?}");
}

/// `iterative` keeps the idle timeout: a silent client is closed, and the
/// one waiting behind it is served.
#[test]
fn iterative_closes_a_silent_client_and_serves_the_next() {
    let server = Server::start(&["--model", "iterative", "--idle-timeout", "1"]);
    let mut silent = server.connect();
    let mut next = server.connect();
    next.write_all(b"next\n").expect("send while waiting");
    let mut buf = [0u8; 5];
    next.read_exact(&mut buf)
        .expect("served after the silent client");
    assert_eq!(&buf, b"next\n");
    assert_eq!(
        read_once(&mut silent, &mut [0u8; 1]).expect("an orderly close"),
        0
    );
    server.wait_for_log_line(&["]: disconnect peer=", "reason=idle timeout (1s)"]);
    drop(next);
    assert_eq!(server.figures().get("exited_idle"), 1);
}

/// `iterative` honours SIGTERM: the client being served is closed at once,
/// the master exits 0 and writes its final figures.
#[test]
fn iterative_shuts_down_closing_the_client_being_served() {
    let mut server = Server::start(&["--model", "iterative"]);
    let client = server.connect();
    let log = sigterm_closes_the_client_and_exits_0(&mut server, client);
    assert!(log.contains("reason=server shutting down"), "{log}");
}

/// Options that make no sense with one client at a time are refused with
/// status 2 and a sentence saying why.
#[test]
fn iterative_refuses_options_that_make_no_sense_with_it() {
    for (option, value) in [
        ("--max-workers", "2"),
        ("--max-per-ip", "1"),
        ("--on-full", "defer"),
    ] {
        let output = run_mpecho(&["serve", "--model", "iterative", option, value], b"");
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{option}: {stderr}");
        assert!(
            stderr.contains(option)
                && stderr.contains("--model iterative serves one client at a time"),
            "{option}: {stderr}"
        );
        assert!(stderr.contains("Usage: mpecho serve"), "{option}: {stderr}");
        assert!(output.stdout.is_empty());
    }
    // A limit of 1 is what the model means: not refused (the bad address
    // after it is what stops this one).
    let output = run_mpecho(
        &[
            "serve",
            "--model",
            "iterative",
            "--max-workers",
            "1",
            "-l",
            "nonsense",
        ],
        b"",
    );
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("nonsense") && !stderr.contains("cannot be used"),
        "{stderr}"
    );
}

/// `fork`: each client is served by a child of the master that runs the
/// `mpecho` executable itself (forked, never exec'd: not the built-in
/// worker's memory file), named `mpecho-worker`, in a process group of its
/// own, holding exactly 0-2, the client on 3 and the log file on 4, and
/// logging `connect` under its own pid.
#[test]
fn fork_serves_each_client_in_a_forked_copy_of_mpecho() {
    let server = Server::start(&["--model", "fork"]);
    let (mut a, first) = server.connect_served_worker();
    let (mut b, second) = server.connect_served_worker();
    assert_ne!(first, second);
    assert!(first != server.pid && second != server.pid);
    let mut expected = vec![first, second];
    expected.sort_unstable();
    assert_eq!(
        server.worker_pids(),
        expected,
        "the workers are the master's children"
    );
    for worker in [first, second] {
        let exe = std::fs::read_link(format!("/proc/{worker}/exe")).expect("read the exe");
        assert_eq!(
            exe,
            mpecho_bin(),
            "worker {worker} runs {} instead of mpecho itself",
            exe.display()
        );
        assert_eq!(open_fds(worker), vec![0, 1, 2, 3, 4], "worker {worker}");
        assert_eq!(
            std::fs::read_link(format!("/proc/{worker}/fd/4")).expect("read fd 4"),
            server.log_path(),
            "fd 4 of worker {worker} is not the log file"
        );
        let comm = std::fs::read_to_string(format!("/proc/{worker}/comm")).expect("read comm");
        assert_eq!(comm.trim_end(), "mpecho-worker");
        let pgrp = stat_fields(worker).and_then(|f| f.get(2)?.parse::<i32>().ok());
        assert_eq!(
            pgrp,
            Some(worker),
            "worker {worker} has no group of its own"
        );
    }
    assert_eq!(echo(&mut a, b"first\n"), b"first\n");
    assert_eq!(echo(&mut b, b"second\n"), b"second\n");
    server.wait_for_log_line(&["]: started: listening on ", " model=fork "]);
    assert!(server.figures().line().ends_with(" model=fork"));
}

/// Workers a test holds to make the fork model's master keep enough
/// pidfds (above `SPARE_TABLE_FROM`, 128, in `src/server/fork.rs`) for a
/// fork to spare its descriptor table.
const MANY_HELD: usize = 140;

/// `fork` with many workers held: a new worker shares the master's table
/// only until it has copied what lies below the pidfds, so its own table is
/// a small one (`FDSize` 64), not a copy sized past the master's pidfds
/// (512 or more), and it still holds exactly 0-4 and echoes. With 10,000
/// held, copying those pidfds and closing them one by one was most of what
/// a new connection cost.
#[test]
fn fork_with_many_held_copies_none_of_the_masters_pidfds() {
    let server = Server::start(&["--model", "fork"]);
    let held: Vec<TcpStream> = (0..MANY_HELD).map(|_| server.connect_served()).collect();
    let (mut client, worker) = server.connect_served_worker();
    assert_eq!(open_fds(worker), vec![0, 1, 2, 3, 4], "worker {worker}");
    let status =
        std::fs::read_to_string(format!("/proc/{worker}/status")).expect("read the status");
    let fd_size: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("FDSize:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no FDSize in {status}"));
    assert!(
        fd_size < 256,
        "worker {worker} has a table of {fd_size} slots: it copied the master's pidfds"
    );
    assert_eq!(echo(&mut client, b"many\n"), b"many\n");
    assert_eq!(server.worker_pids().len(), MANY_HELD + 1);
    drop(held);
}

/// `fork` keeps the worker's idle timeout: a silent client is closed by
/// its worker, which logs why and exits with the idle status.
#[test]
fn fork_worker_closes_a_silent_client_after_the_idle_timeout() {
    let server = Server::start(&["--model", "fork", "--idle-timeout", "1"]);
    let (mut silent, worker) = server.connect_served_worker();
    assert_eq!(
        read_once(&mut silent, &mut [0u8; 1]).expect("an orderly close"),
        0
    );
    server.wait_for_log_line(&[
        &format!("INFO worker[{worker}]: disconnect peer="),
        "reason=idle timeout (1s)",
    ]);
    server.wait_for_log_line(&[&format!("worker {worker} exited status=3 (idle timeout)")]);
    assert_eq!(server.figures().get("exited_idle"), 1);
}

/// `fork` shuts down as `exec` does: on SIGTERM the worker closes its
/// client and exits 0, then the master exits 0 with its final figures.
#[test]
fn fork_shuts_down_closing_every_client() {
    let mut server = Server::start(&["--model", "fork"]);
    let (client, worker) = server.connect_served_worker();
    let log = sigterm_closes_the_client_and_exits_0(&mut server, client);
    assert!(
        log.contains(&format!("INFO worker[{worker}]: disconnect peer="))
            && log.contains("reason=server shutting down"),
        "{log}"
    );
    assert!(
        log.contains(&format!("worker {worker} exited status=0 ")),
        "{log}"
    );
}

/// `fork` keeps the master's limits: with `--max-workers 1` a second
/// client is turned away while the first is served.
#[test]
fn fork_keeps_the_worker_limit() {
    let server = Server::start(&["--model", "fork", "--max-workers", "1"]);
    let (mut first, _worker) = server.connect_served_worker();
    let mut second = server.connect();
    assert_connection_ended(&mut second, true, "the client beyond the limit");
    assert_eq!(echo(&mut first, b"still\n"), b"still\n");
    assert_eq!(server.figures().get("rejected_full"), 1);
    assert_eq!(server.worker_pids().len(), 1);
}

/// `--worker` names a program to exec, which `fork` never does: refused
/// with status 2 and a sentence saying why.
#[test]
fn fork_refuses_a_worker_program() {
    let output = run_mpecho(&["serve", "--model", "fork", "--worker", "/bin/true"], b"");
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--worker cannot be used with --model fork"),
        "{stderr}"
    );
    assert!(stderr.contains("Usage: mpecho serve"), "{stderr}");
}
