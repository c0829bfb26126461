//! Resource failures in the master (DESIGN §10): running out of descriptors
//! at `accept`, the kernel refusing to create a worker process (EAGAIN) and
//! clients that reset before they are accepted never crash or spin the
//! master; the affected client is closed, the failure is logged and counted,
//! and service resumes by itself.

use std::io::ErrorKind;
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

use mpecho_testkit::{
    Server, ServerOptions, TIMEOUT, all_pids, count_lines, cpu_ticks, echo, log_time_ms, open_fds,
    pidfds, read_once, set_soft_nofile, wait_for,
};

/// How long a turned-away client may wait for its close: the master pauses
/// accepting for 100 ms after a resource failure, so a handful of clients
/// queued behind each other are all closed well within this.
const PROMPT: Duration = Duration::from_secs(2);

/// Waits until `deadline` for the server to close `client` without
/// sending anything, as it does with a connection it cannot serve; says
/// what happened instead otherwise.
fn closed_by(mut client: TcpStream, deadline: Instant) -> Result<(), String> {
    let left = deadline.saturating_duration_since(Instant::now());
    client
        .set_read_timeout(Some(left.max(Duration::from_millis(1))))
        .expect("set a read timeout");
    let mut buf = [0u8; 64];
    match read_once(&mut client, &mut buf) {
        Ok(0) => Ok(()),
        Ok(n) => Err(format!("got {:?} instead of a close", &buf[..n])),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            Err("still open at the deadline (left hanging)".to_string())
        }
        Err(e) => Err(format!("read failed with {e} instead of an orderly close")),
    }
}

/// Serves one client, then lowers the master's descriptor limit to the
/// first free number, so that it can open nothing new: every accept fails
/// with EMFILE. Returns the served client and the limit to restore.
fn starve_of_descriptors(server: &Server) -> (TcpStream, u64) {
    let idle_fds = open_fds(server.pid);
    let held = server.connect_served();
    // The master closes its copy of the client right after the spawn and
    // keeps only the new worker's pidfd.
    let serving_fds = wait_for("the master to drop its copy of the client", TIMEOUT, || {
        let fds = open_fds(server.pid);
        let new: Vec<i32> = fds
            .iter()
            .copied()
            .filter(|fd| !idle_fds.contains(fd))
            .collect();
        let kept_idle = idle_fds.iter().all(|fd| fds.contains(fd));
        (kept_idle && new.len() == 1 && pidfds(server.pid) == new).then_some(fds)
    });
    // The kernel hands out the lowest free number and refuses any number at
    // or above the soft limit: with the limit at the first free number, the
    // master can open nothing new.
    let first_free = (0..)
        .find(|n| !serving_fds.contains(n))
        .expect("a free descriptor number");
    let old_limit = set_soft_nofile(server.pid, first_free as u64);
    (held, old_limit)
}

/// When the master runs out of descriptors, the clients waiting are
/// accepted with the spare descriptor and closed at once (never left
/// hanging), the failure is logged and counted, the master does not spin,
/// live connections keep working, and accepting resumes by itself once
/// descriptors are available again.
#[test]
fn descriptor_exhaustion_sheds_clients_without_spinning_and_recovers() {
    let server = Server::start(&["--monitor-interval", "0"]);
    let (mut held, old_limit) = starve_of_descriptors(&server);

    // A flood of about a second, in rounds of clients that connect together,
    // so that connections are waiting in the backlog most of the time: a
    // master that retried the failing accept at once would burn a core.
    let cpu_before = cpu_ticks(server.pid);
    let started = Instant::now();
    let mut turned_away = 0;
    let mut failure = None;
    while started.elapsed() < Duration::from_secs(1) && turned_away < 40 {
        let round: Vec<TcpStream> = (0..4).map(|_| server.connect()).collect();
        let deadline = Instant::now() + PROMPT;
        for client in round {
            match closed_by(client, deadline) {
                Ok(()) => turned_away += 1,
                Err(e) => failure = Some(e),
            }
        }
        if failure.is_some() {
            break;
        }
    }
    let wall = started.elapsed();
    let cpu = (cpu_ticks(server.pid) - cpu_before) as f64
        // SAFETY: sysconf has no memory effects.
        / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    assert!(
        cpu < 0.2 * wall.as_secs_f64(),
        "the master used {cpu:.2}s of CPU during a {wall:?} flood while out of descriptors"
    );
    if let Some(e) = failure {
        panic!(
            "a client while the master had no descriptors: {e}; log:\n{}",
            server.log()
        );
    }

    // Still answering signals, with every client turned away counted.
    let during = server.figures();
    assert_eq!(
        during.get("accept_errors"),
        turned_away as u64,
        "{during:?}"
    );
    assert_eq!(during.get("accepted"), 1, "{during:?}");
    assert_eq!(during.get("active"), 1, "{during:?}");
    assert_eq!(server.worker_pids().len(), 1);

    // Each failure line says how many waiting clients it closed; throttled
    // to one line per second at most, the others held back in `suppressed`
    // summaries.
    let pid = server.pid;
    let log = server.log();
    let failed_lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("]: accept failed: "))
        .collect();
    assert!(!failed_lines.is_empty(), "no accept failure logged:\n{log}");
    let mut closed_in_lines = 0;
    for line in &failed_lines {
        let rest = line
            .split_once(&format!(
                "ERROR master[{pid}]: accept failed: Too many open files (os error 24); closed "
            ))
            .map(|(_, rest)| rest)
            .unwrap_or_else(|| panic!("unexpected accept failure line {line:?}"));
        let (n, tail) = rest.split_once(' ').expect("a count of closed connections");
        closed_in_lines += n.parse::<usize>().expect("a number of connections");
        assert!(
            tail.starts_with("waiting connection") && tail.ends_with(", pausing accepts for 100ms"),
            "{line}"
        );
    }
    assert!(closed_in_lines <= turned_away, "{log}");
    // At most one line per second of the flood: a second between any two
    // (give or take the wall clock's rounding and adjustment: the log's
    // timestamps are not the master's monotonic clock), and no more lines
    // than seconds begun.
    for pair in failed_lines.windows(2) {
        let gap = log_time_ms(pair[1]) - log_time_ms(pair[0]);
        assert!(
            gap >= 990,
            "two accept failure lines {gap} ms apart:\n{}\n{}",
            pair[0],
            pair[1]
        );
    }
    assert!(
        failed_lines.len() as f64 <= wall.as_secs_f64().floor() + 1.0,
        "{} accept failure lines for a {wall:?} flood:\n{log}",
        failed_lines.len()
    );
    assert_eq!(
        log.matches(" accept peer=").count(),
        1,
        "only the first client got a worker:\n{log}"
    );
    // The connection served before the shortage is not affected.
    assert_eq!(echo(&mut held, b"still here\n"), b"still here\n");

    set_soft_nofile(server.pid, old_limit);
    let mut after = server.connect();
    assert_eq!(echo(&mut after, b"served again\n"), b"served again\n");
    let recovered = server.figures();
    assert_eq!(recovered.get("accepted"), 2, "{recovered:?}");
    assert_eq!(
        recovered.get("accept_errors"),
        turned_away as u64,
        "{recovered:?}"
    );
    assert_eq!(recovered.get("active"), 2, "{recovered:?}");
    assert!(server.zombies().is_empty());
}

/// Thirty clients arriving together while the master is out of
/// descriptors are all told at once (an orderly close), not one per
/// 100 ms pause: every client waiting when the master looks is closed
/// before it pauses.
#[test]
fn every_client_waiting_while_out_of_descriptors_is_closed_at_once() {
    let server = Server::start(&["--monitor-interval", "0"]);
    let (_held, _old_limit) = starve_of_descriptors(&server);
    let clients: Vec<TcpStream> = (0..30).map(|_| server.connect()).collect();
    // One pause per client, as before, would take three seconds; a few
    // pauses at most leave a wide margin below one second.
    let deadline = Instant::now() + Duration::from_secs(1);
    let hanging: Vec<String> = clients
        .into_iter()
        .enumerate()
        .filter_map(|(i, client)| {
            closed_by(client, deadline)
                .err()
                .map(|e| format!("{i}: {e}"))
        })
        .collect();
    assert!(
        hanging.is_empty(),
        "clients not closed within a second: {hanging:?}; log:\n{}",
        server.log()
    );
    assert_eq!(server.figures().get("accept_errors"), 30);
}

/// Real uid of a process and how many tasks (threads) it has.
fn uid_and_threads(status: &str) -> Option<(u32, u64)> {
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))?
        .trim()
        .parse()
        .ok()?;
    Some((uid, threads))
}

/// Tasks on the machine whose real uid is `uid`: what RLIMIT_NPROC counts.
fn tasks_of_uid(uid: u32) -> u64 {
    all_pids()
        .into_iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .filter_map(|status| uid_and_threads(&status))
        .filter(|&(u, _)| u == uid)
        .map(|(_, threads)| threads)
        .sum()
}

/// When the kernel refuses to create a worker (EAGAIN from the process
/// limit), the client is closed at once, the failure is logged and counted,
/// the master keeps running, and a later client is served as soon as a
/// process slot is free again.
#[test]
fn process_limit_closes_the_client_and_service_resumes() {
    // SAFETY: geteuid has no memory effects.
    if unsafe { libc::geteuid() } != 0 {
        // RLIMIT_NPROC counts every process of the uid, and an unprivileged
        // test cannot move the master to a uid of its own.
        println!(
            "SKIPPED process_limit_closes_the_client_and_service_resumes: needs root to run the \
             master under a dedicated uid"
        );
        return;
    }
    if !["/usr/bin/setpriv", "/bin/setpriv", "/usr/sbin/setpriv"]
        .iter()
        .any(|p| Path::new(p).exists())
    {
        println!(
            "SKIPPED process_limit_closes_the_client_and_service_resumes: setpriv (util-linux) \
             is not installed"
        );
        return;
    }
    // RLIMIT_NPROC does not bind root: the master runs under a uid that
    // owns no other process (one per test process, so that concurrent runs
    // of the suite do not share a count). The log goes to stderr, since the
    // temporary directory is not writable for that uid.
    let uid = 60_000 + std::process::id() % 5_000;
    // Room for the master and exactly two workers besides whatever the uid
    // already runs. The limit is set by the shell before it drops root: the
    // test lacks CAP_SYS_RESOURCE to change another user's limits later.
    let tasks_before = tasks_of_uid(uid);
    let server = Server::start_with(ServerOptions {
        args: vec!["--monitor-interval".into(), "0".into()],
        log_to_file: false,
        subcommand: "serve",
        // The harness appends `exec "$0" serve "$@"`; setpriv replaces the
        // shell first, so that part is never reached.
        shell_prefix: Some(format!(
            "ulimit -u {} || exit 1; exec setpriv --reuid={uid} --regid={uid} --clear-groups \"$0\" serve \"$@\";",
            tasks_before + 3
        )),
        ..ServerOptions::default()
    });
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", server.pid)).expect("master status");
    assert_eq!(
        uid_and_threads(&status),
        Some((uid, 1)),
        "a single-threaded master runs as uid {uid}"
    );
    assert_eq!(
        tasks_of_uid(uid),
        tasks_before + 1,
        "nothing else started under uid {uid}"
    );
    let limits =
        std::fs::read_to_string(format!("/proc/{}/limits", server.pid)).expect("master limits");
    let nproc = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max processes"))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok());
    assert_eq!(
        nproc,
        Some(tasks_before + 3),
        "the master's process limit:\n{limits}"
    );

    let mut first = server.connect_served();
    let mut second = server.connect_served();
    server.wait_for_workers(2);

    let refused = server.connect();
    let peer = refused.local_addr().expect("client address");
    if let Err(e) = closed_by(refused, Instant::now() + PROMPT) {
        panic!("a client beyond the process limit: {e}");
    }
    let failure = format!(
        "ERROR master[{}]: could not start a worker for peer={peer}: \
         Resource temporarily unavailable (os error 11); connection closed",
        server.pid
    );
    server.wait_for_log_line(&[&failure]);
    let counted = server.figures();
    assert_eq!(counted.get("spawn_failures"), 1, "{counted:?}");
    assert_eq!(counted.get("accepted"), 2, "{counted:?}");
    assert_eq!(counted.get("active"), 2, "{counted:?}");
    assert_eq!(server.worker_pids().len(), 2);
    // Served clients are untouched.
    assert_eq!(echo(&mut first, b"one\n"), b"one\n");
    assert_eq!(echo(&mut second, b"two\n"), b"two\n");

    // One client leaves; once its worker is reaped its slot is free again.
    drop(first);
    server.wait_for_log_line(&[" exited status=0 peer="]);
    let mut later = server.connect();
    assert_eq!(echo(&mut later, b"served again\n"), b"served again\n");
    let after = server.figures();
    assert_eq!(after.get("accepted"), 3, "{after:?}");
    assert_eq!(after.get("spawn_failures"), 1, "{after:?}");
    assert_eq!(after.get("active"), 2, "{after:?}");
    assert!(server.zombies().is_empty());
}

/// A burst of clients that connect and reset at once (SO_LINGER 0), most of
/// them before the master accepts them, neither crashes nor stalls the
/// master: every one is accounted for, all their workers are reaped, a
/// normal client is served right after, and a client gone before its worker
/// started is not mistaken for a worker started by hand (usage error,
/// status 2).
#[test]
fn burst_of_connect_and_reset_leaves_the_master_serving() {
    const BURST: u64 = 200;
    let server = Server::start(&["--monitor-interval", "0"]);
    for _ in 0..BURST {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("create a socket");
        socket
            .connect(&server.addr.into())
            .expect("connect to the server");
        socket
            .set_linger(Some(Duration::ZERO))
            .expect("set SO_LINGER 0");
        drop(socket);
    }
    let mut normal = server.connect();
    assert_eq!(
        echo(&mut normal, b"after the burst\n"),
        b"after the burst\n"
    );
    drop(normal);

    server.wait_for_workers(0);
    let settled = wait_for(
        "the master to reap every worker of the burst",
        TIMEOUT,
        || {
            let figures = server.figures();
            (figures.get("active") == 0).then_some(figures)
        },
    );
    assert_eq!(
        settled.get("accepted") + settled.get("accept_errors"),
        BURST + 1,
        "every connection is either accepted or counted as a failed accept: {settled:?}"
    );
    assert_eq!(settled.get("rejected"), 0, "{settled:?}");
    assert_eq!(settled.get("spawn_failures"), 0, "{settled:?}");
    assert_eq!(settled.get("exited_signal"), 0, "{settled:?}");
    assert_eq!(
        settled.get("exited_ok") + settled.get("exited_error"),
        settled.get("accepted"),
        "{settled:?}"
    );
    assert!(server.worker_pids().is_empty());
    assert!(server.zombies().is_empty());
    let usage_exits = count_lines(&server.log(), " exited status=2 peer=");
    let stderr = server.stderr();
    assert!(
        usage_exits == 0 && !stderr.contains("mpecho worker:"),
        "{usage_exits} workers of reset clients exited with the usage status 2; stderr:\n{}",
        stderr.lines().take(4).collect::<Vec<_>>().join("\n")
    );
    let mut again = server.connect();
    assert_eq!(echo(&mut again, b"still serving\n"), b"still serving\n");
}
