//! Reaping: every worker that ends — by itself, in bursts whose SIGCHLDs
//! coalesce, or killed by a signal — is waited for, logged with how it ended
//! and counted, and no zombie is left behind while the master keeps serving.

use std::net::TcpStream;
use std::thread;

use mpecho_testkit::{
    Server, ServerOptions, TIMEOUT, assert_connection_ended, connect_to, echo, proc_state,
    send_signal, wait_for,
};

/// A served client and the pid of its worker (the master's only child).
fn serve_one(server: &Server) -> (TcpStream, i32) {
    let client = server.connect_served();
    let worker = server.wait_for_workers(1)[0];
    (client, worker)
}

/// Asserts that `worker` was reaped: it is gone, or (pid reused) no longer a
/// child of the master, and the master has no zombie child.
fn assert_reaped(server: &Server, worker: i32) {
    assert!(
        proc_state(worker).is_none_or(|(_, ppid)| ppid != server.pid),
        "worker {worker} is still a child of the master: {:?}",
        proc_state(worker)
    );
    assert_eq!(
        server.zombies(),
        Vec::<i32>::new(),
        "the master left zombies"
    );
}

/// Waits for the master's line saying how `worker` ended, asserts that it
/// holds `expected`, and that the worker was reaped.
fn assert_end_logged(server: &Server, worker: i32, expected: &str) {
    let line = server.wait_for_log_line(&[&format!(": worker {worker} ")]);
    assert!(line.contains(expected), "expected {expected:?} in {line:?}");
    assert_reaped(server, worker);
}

/// Asks the master for a figures line and asserts that it holds every one
/// of `parts`.
fn assert_figures_hold(server: &Server, parts: &[&str]) {
    let figures = server.figures();
    let line = figures.line();
    for part in parts {
        assert!(line.contains(part), "{line}");
    }
}

/// 300 short connections from 10 concurrent clients end at overlapping
/// times; every worker is reaped and counted although SIGCHLDs coalesce.
#[test]
fn bursts_of_exiting_workers_are_all_reaped() {
    const THREADS: usize = 10;
    const PER_THREAD: usize = 30;
    const TOTAL: usize = THREADS * PER_THREAD;
    let server = Server::start(&["--monitor-interval", "0"]);
    let addr = server.addr;
    thread::scope(|scope| {
        for t in 0..THREADS {
            scope.spawn(move || {
                for i in 0..PER_THREAD {
                    let mut client = connect_to(addr);
                    let data = format!("{t}.{i}\n");
                    assert_eq!(echo(&mut client, data.as_bytes()), data.as_bytes());
                }
            });
        }
    });

    let exits = wait_for(&format!("{TOTAL} worker exits in the log"), TIMEOUT, || {
        let exits: Vec<String> = server
            .log()
            .lines()
            .filter(|l| {
                l.contains(": worker ") && (l.contains(" exited ") || l.contains(" killed by "))
            })
            .map(str::to_string)
            .collect();
        (exits.len() >= TOTAL).then_some(exits)
    });
    assert_eq!(exits.len(), TOTAL, "more exits logged than workers started");
    for line in &exits {
        assert!(
            line.contains(" exited status=0 "),
            "a worker did not end cleanly: {line}"
        );
    }
    assert_eq!(
        server.zombies(),
        Vec::<i32>::new(),
        "the master left zombies"
    );
    assert_eq!(
        server.worker_pids(),
        Vec::<i32>::new(),
        "workers still alive"
    );

    assert_figures_hold(
        &server,
        &[
            " figures active=0 ",
            &format!(" accepted={TOTAL} rejected=0 "),
            &format!(" exited_ok={TOTAL} exited_error=0 exited_signal=0 "),
        ],
    );
}

/// A worker killed with SIGKILL is reaped, logged as `killed by SIGKILL`
/// with its peer and counted; its client sees the connection end and the
/// master goes on serving new clients.
#[test]
fn worker_killed_by_sigkill_is_reaped_and_logged() {
    let server = Server::start(&["--monitor-interval", "0"]);
    let (mut client, worker) = serve_one(&server);
    send_signal(worker, libc::SIGKILL);

    let expected = format!(
        " WARN master[{}]: worker {worker} killed by SIGKILL peer={} lived=",
        server.pid,
        client.local_addr().unwrap()
    );
    assert_end_logged(&server, worker, &expected);
    // EOF, or a reset if the kernel had unread data.
    assert_connection_ended(&mut client, true, "the client of a killed worker");

    let mut next = server.connect();
    assert_eq!(echo(&mut next, b"still serving\n"), b"still serving\n");
    assert_figures_hold(
        &server,
        &[
            " figures active=1 ",
            " accepted=2 ",
            " exited_ok=0 exited_error=0 exited_signal=1 ",
        ],
    );
}

/// Workers killed by other fatal signals — SIGQUIT, and SIGINT and SIGUSR1,
/// which the master itself handles — die by them (they start with default
/// dispositions) and each is logged with that signal's name.
#[test]
fn workers_killed_by_other_signals_are_logged_by_name() {
    let server = Server::start(&["--monitor-interval", "0"]);
    let signals = [
        (libc::SIGQUIT, "SIGQUIT"),
        (libc::SIGINT, "SIGINT"),
        (libc::SIGUSR1, "SIGUSR1"),
    ];
    for (sig, name) in signals {
        let (mut client, worker) = serve_one(&server);
        if sig == libc::SIGQUIT {
            // SIGQUIT dumps core. A core limit of 1 byte prevents the dump
            // both for a file pattern (smaller than a page) and for a pipe
            // pattern (where 1 is the kernel's "no dump" value).
            let limit = libc::rlimit {
                rlim_cur: 1,
                rlim_max: 1,
            };
            // SAFETY: `limit` is a valid rlimit; no old value is asked for.
            let rc =
                unsafe { libc::prlimit(worker, libc::RLIMIT_CORE, &limit, std::ptr::null_mut()) };
            assert_eq!(rc, 0, "limit the core size of worker {worker}");
        }
        send_signal(worker, sig);
        let expected = format!(
            "worker {worker} killed by {name} peer={} lived=",
            client.local_addr().unwrap()
        );
        assert_end_logged(&server, worker, &expected);
        // EOF, or a reset if the kernel had unread data.
        assert_connection_ended(&mut client, true, "the client of a killed worker");
    }
    assert_figures_hold(
        &server,
        &[
            " figures active=0 ",
            " exited_ok=0 exited_error=0 exited_signal=3 ",
        ],
    );
}

/// Signals that arrive ignored (a shell without job control ignores SIGINT
/// and SIGQUIT for a background command, `nohup` SIGHUP) are set back to
/// their default by the master, as daemon(7) asks, so that neither it nor
/// a worker keeps them: only SIGPIPE stays ignored. A worker then dies by
/// SIGQUIT like any other.
#[test]
fn signals_that_arrive_ignored_are_set_back_to_default() {
    let server = Server::start_with(ServerOptions {
        args: vec![
            "--monitor-interval".into(),
            "0".into(),
            "--log-level".into(),
            "debug".into(),
        ],
        shell_prefix: Some("trap '' HUP INT QUIT USR1;".into()),
        ..ServerOptions::default()
    });
    server.wait_for_log_line(&[
        "signals that arrived ignored, set back to their default: SIGHUP SIGINT SIGQUIT SIGUSR1",
    ]);
    let (mut client, worker) = serve_one(&server);
    for pid in [server.pid, worker] {
        assert_eq!(ignored_signals(pid), vec![libc::SIGPIPE], "process {pid}");
    }
    send_signal(worker, libc::SIGUSR1);
    assert_end_logged(
        &server,
        worker,
        &format!("worker {worker} killed by SIGUSR1 "),
    );
    assert_connection_ended(&mut client, true, "the client of a killed worker");
}

/// The standard signals (1 to 31) `pid` ignores, from `SigIgn` in
/// /proc/PID/status. Not 32 and up: glibc keeps 32 and 33 for itself (its
/// `sigaction` refuses them), and this test's own process was seen to
/// start with 32 ignored.
fn ignored_signals(pid: i32) -> Vec<i32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .expect("a SigIgn line");
    (1..=31)
        .filter(|sig| mask & (1u64 << (sig - 1)) != 0)
        .collect()
}

/// SIGTERM sent straight to a worker is a request to finish: it closes the
/// connection cleanly (the client reads EOF), exits with status 0, is
/// reaped, and the master goes on serving.
#[test]
fn worker_sent_sigterm_finishes_cleanly() {
    let server = Server::start(&["--monitor-interval", "0"]);
    let (mut client, worker) = serve_one(&server);
    let peer = client.local_addr().unwrap();
    send_signal(worker, libc::SIGTERM);

    server.wait_for_log_line(&[
        &format!(" worker[{worker}]: disconnect peer={peer} "),
        " reason=server shutting down",
    ]);
    let expected = format!(
        " INFO master[{}]: worker {worker} exited status=0 peer={peer} lived=",
        server.pid
    );
    assert_end_logged(&server, worker, &expected);
    assert_connection_ended(&mut client, false, "the client of a finished worker");

    let mut next = server.connect();
    assert_eq!(echo(&mut next, b"still serving\n"), b"still serving\n");
    assert_figures_hold(&server, &[" exited_ok=1 exited_error=0 exited_signal=0 "]);
}
