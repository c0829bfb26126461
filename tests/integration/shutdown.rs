//! Graceful shutdown (DESIGN §7): SIGTERM, or SIGINT to the whole process
//! group (Ctrl-C), closes the listener at once, asks every worker — a
//! stopped one too — to finish, SIGKILLs whoever outlives the grace period
//! (at once on a second stop signal), reaps everyone, logs the final figures
//! and exits 0, leaving no process behind and the port free.

use std::io::ErrorKind;
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use mpecho_testkit::{
    Server, SigtermSwallower, TIMEOUT, assert_connection_ended, proc_state, process_exists,
    send_signal, stall_worker_writing, wait_for,
};

/// How soon after the stop signal new connections must be refused.
const REFUSED_WITHIN: Duration = Duration::from_secs(1);

/// A grace period no test waits out: shutdown must end as soon as the
/// workers are gone, not when this expires.
const LONG_GRACE: &str = "30";

/// Upper bound for a shutdown that must not wait for `LONG_GRACE`.
const PROMPT: Duration = Duration::from_secs(5);

/// A server with this grace period and no periodic figures lines.
fn start_with_grace(grace: &str) -> Server {
    Server::start(&["--grace", grace, "--monitor-interval", "0"])
}

/// Two served clients, each with the pid of its worker.
fn serve_two(server: &Server) -> [(TcpStream, i32); 2] {
    [
        server.connect_served_worker(),
        server.connect_served_worker(),
    ]
}

/// The end of a shutdown begun at `signalled` in which both workers of
/// `served` finish when asked: each finishes gracefully and the master
/// exits cleanly, without waiting out the grace period.
fn assert_both_finished_then_clean_exit(
    server: &mut Server,
    signalled: Instant,
    served: &mut [(TcpStream, i32); 2],
) {
    assert_all_finished_gracefully(server, served);
    assert_clean_exit(
        server,
        signalled,
        "it waited for the grace period",
        &served.each_ref().map(|&(_, worker)| worker),
        "active=0 peak=2 accepted=2 rejected=0 spawn_failures=0 accept_errors=0 \
         exited_ok=2 exited_error=0 exited_signal=0",
    );
}

/// Waits, at most `REFUSED_WITHIN` after `signalled`, for the master's
/// `shutting down (CAUSE received)` line, then asserts that a new connection
/// is refused: the listener is closed before that line is written. Probing
/// only then matters: a connection racing the signal may legitimately still
/// be accepted and become a worker. Returns the line.
fn assert_listener_closed(server: &Server, signalled: Instant, cause: &str) -> String {
    let needle = format!("]: shutting down ({cause} received): listener closed, ");
    let line = wait_for(
        &format!("a log line with {needle:?} within {REFUSED_WITHIN:?} of the signal"),
        REFUSED_WITHIN.saturating_sub(signalled.elapsed()),
        || {
            server
                .log()
                .lines()
                .find(|l| l.contains(&needle))
                .map(str::to_string)
        },
    );
    match TcpStream::connect(server.addr) {
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => {}
        other => panic!("a connection after `{line}` was not refused: {other:?}"),
    }
    line
}

/// Asserts that every client of `served` (each with its worker) reads EOF,
/// the server having closed the connection in order; then waits for each
/// worker to log that it finished because the server is shutting down, and
/// for the master to log its status 0.
fn assert_all_finished_gracefully(server: &Server, served: &mut [(TcpStream, i32)]) {
    for (client, _) in served.iter_mut() {
        assert_connection_ended(client, false, "a client once its worker finished");
    }
    for (client, worker) in served.iter() {
        wait_finished_gracefully(server, client, *worker);
    }
}

/// Waits for `worker` (serving `client`) to log that it finished because
/// the server is shutting down, and for the master to log its status 0.
fn wait_finished_gracefully(server: &Server, client: &TcpStream, worker: i32) {
    let peer = client.local_addr().unwrap();
    server.wait_for_log_line(&[
        &format!(" INFO worker[{worker}]: disconnect peer={peer} bytes="),
        " reason=server shutting down",
    ]);
    server.wait_for_log_line(&[&format!(
        " INFO master[{}]: worker {worker} exited status=0 peer={peer} ",
        server.pid
    )]);
}

/// Waits for the master to log that it killed `worker`, serving `client`,
/// with SIGKILL.
fn wait_killed(server: &Server, client: &TcpStream, worker: i32) {
    let peer = client.local_addr().unwrap();
    server.wait_for_log_line(&[&format!(
        " WARN master[{}]: worker {worker} killed by SIGKILL peer={peer} ",
        server.pid
    )]);
}

/// Asserts that nothing in the log contains `needle`; `why` says what it
/// would mean.
fn assert_not_logged(server: &Server, needle: &str, why: &str) {
    let log = server.log();
    assert!(!log.contains(needle), "{why}; log:\n{log}");
}

/// What must hold once a shutdown begun at `since` is over: the master
/// exits 0 within `PROMPT` (`slow` says what a slower exit means), the
/// final figures and the last line are logged, every worker recorded
/// before is gone, and the port can be bound again at once.
fn assert_clean_exit(
    server: &mut Server,
    since: Instant,
    slow: &str,
    workers: &[i32],
    final_figures: &str,
) {
    let status = server.wait_exit(TIMEOUT);
    let took = since.elapsed();
    assert_eq!(status.code(), Some(0), "master exit status: {status}");
    assert!(took < PROMPT, "shutdown took {took:?}: {slow}");
    let log = server.log();
    let finals: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("]: final figures "))
        .collect();
    assert_eq!(
        finals.len(),
        1,
        "expected one final figures line; log:\n{log}"
    );
    assert!(
        finals[0].contains(&format!(
            " INFO master[{}]: final figures {final_figures} ",
            server.pid
        )),
        "expected `final figures {final_figures}`, got: {}",
        finals[0]
    );
    let last = log.lines().last().unwrap_or_default();
    assert!(
        last.ends_with(&format!(
            " INFO master[{}]: exiting: all workers reaped",
            server.pid
        )),
        "unexpected last log line: {last}"
    );
    for &pid in workers {
        assert!(
            !process_exists(pid),
            "worker {pid} still exists after the master exited"
        );
    }
    TcpListener::bind(server.addr).unwrap_or_else(|e| {
        panic!(
            "{} is not free right after the master exited: {e}",
            server.addr
        )
    });
}

/// SIGTERM: new connections are refused within a second, both clients read
/// EOF, each worker logs `reason=server shutting down` and exits 0, the
/// master logs the final figures and exits 0 without waiting out a long
/// grace period, no worker is left, and the port is free again.
#[test]
fn sigterm_refuses_new_clients_drains_workers_and_exits_zero() {
    let mut server = start_with_grace(LONG_GRACE);
    let mut served = serve_two(&server);
    let mut expected = served.each_ref().map(|&(_, worker)| worker);
    expected.sort_unstable();
    assert_eq!(
        server.wait_for_workers(2),
        expected.to_vec(),
        "the master's children are not the two workers"
    );

    let signalled = Instant::now();
    server.signal(libc::SIGTERM);
    let shutting_down = assert_listener_closed(&server, signalled, "SIGTERM");
    assert!(
        shutting_down.contains(&format!(
            " INFO master[{}]: shutting down (SIGTERM received): listener closed, \
             asking 2 workers to finish, grace {LONG_GRACE}s",
            server.pid
        )),
        "unexpected shutdown line: {shutting_down}"
    );
    assert_both_finished_then_clean_exit(&mut server, signalled, &mut served);
    assert_not_logged(&server, " killed by ", "no worker may be killed");
}

/// Ctrl-C (SIGINT to the master's whole process group) does not kill the
/// workers: each survives until the master asks it to finish, logs
/// `reason=server shutting down` and exits 0 (not `killed by SIGINT`), and
/// the master shuts down as for SIGTERM and exits 0.
#[test]
fn sigint_to_the_process_group_shuts_down_gracefully() {
    let mut server = start_with_grace(LONG_GRACE);
    let mut served = serve_two(&server);

    let signalled = Instant::now();
    server.signal_group(libc::SIGINT);
    let shutting_down = assert_listener_closed(&server, signalled, "SIGINT");
    assert!(
        shutting_down.contains("listener closed, asking 2 workers to finish"),
        "unexpected shutdown line: {shutting_down}"
    );
    assert_both_finished_then_clean_exit(&mut server, signalled, &mut served);
    assert_not_logged(
        &server,
        "killed by SIGINT",
        "Ctrl-C must not kill the workers",
    );
}

/// A worker stopped with SIGSTOP when shutdown begins is continued by the
/// master and still finishes gracefully (status 0), promptly.
#[test]
fn stopped_worker_is_continued_and_finishes_gracefully() {
    let mut server = start_with_grace(LONG_GRACE);
    let mut served = serve_two(&server);
    let stopped = served[0].1;
    send_signal(stopped, libc::SIGSTOP);
    wait_for("the worker to be stopped", TIMEOUT, || {
        (proc_state(stopped).map(|(state, _)| state) == Some('T')).then_some(())
    });

    let signalled = Instant::now();
    server.signal(libc::SIGTERM);
    assert_both_finished_then_clean_exit(&mut server, signalled, &mut served);
    assert_not_logged(&server, " killed by ", "no worker may be killed");
}

/// A worker that does not finish when asked (its SIGTERM is swallowed) is
/// killed with SIGKILL once `--grace 1` is over, not before; the other
/// worker exits 0 meanwhile; the master reaps both and exits 0.
#[test]
fn worker_outliving_the_grace_period_is_killed() {
    let mut server = start_with_grace("1");
    let (mut held_client, held) = server.connect_served_worker();
    let mut prompt = [server.connect_served_worker()];
    let swallower = SigtermSwallower::attach(held);

    let signalled = Instant::now();
    server.signal(libc::SIGTERM);
    assert_listener_closed(&server, signalled, "SIGTERM");
    swallower.wait_swallowed();
    assert_all_finished_gracefully(&server, &mut prompt);

    wait_killed(&server, &held_client, held);
    let killed_after = signalled.elapsed();
    assert!(
        killed_after >= Duration::from_secs(1),
        "the worker was killed {killed_after:?} after SIGTERM, before the 1 s grace period ended"
    );
    server.wait_for_log_line(&["]: grace period over: killing 1 remaining workers"]);
    assert_connection_ended(&mut held_client, false, "the client of the killed worker");
    swallower.wait_done();

    assert_clean_exit(
        &mut server,
        signalled,
        "it took far longer than the grace period",
        &[held, prompt[0].1],
        "active=0 peak=2 accepted=2 rejected=0 spawn_failures=0 accept_errors=0 \
         exited_ok=1 exited_error=0 exited_signal=1",
    );
    assert_not_logged(
        &server,
        &format!("worker[{held}]: disconnect"),
        "the held worker should never have seen its SIGTERM",
    );
}

/// A second SIGTERM while draining kills the remaining workers at once
/// instead of waiting out a 30 s grace period, and the master exits 0.
#[test]
fn second_sigterm_while_draining_kills_at_once() {
    let mut server = start_with_grace(LONG_GRACE);
    let (mut held_client, held) = server.connect_served_worker();
    let swallower = SigtermSwallower::attach(held);

    server.signal(libc::SIGTERM);
    server.wait_for_log_line(&[
        "]: shutting down (SIGTERM received): listener closed, asking 1 workers",
    ]);
    swallower.wait_swallowed();
    assert!(
        server.is_running(),
        "the master exited with a worker still running"
    );
    assert!(
        process_exists(held),
        "the held worker ended although its SIGTERM was swallowed"
    );

    let second = Instant::now();
    server.signal(libc::SIGTERM);
    server.wait_for_log_line(&[&format!(
        " WARN master[{}]: second stop signal (SIGTERM): killing 1 remaining workers",
        server.pid
    )]);
    wait_killed(&server, &held_client, held);
    assert_connection_ended(&mut held_client, false, "the client of the killed worker");
    swallower.wait_done();

    assert_clean_exit(
        &mut server,
        second,
        "the second SIGTERM did not cut the grace period short",
        &[held],
        "active=0 peak=1 accepted=1 rejected=0 spawn_failures=0 accept_errors=0 \
         exited_ok=0 exited_error=0 exited_signal=1",
    );
    assert_not_logged(
        &server,
        "grace period over",
        "the grace period must not have run out",
    );
}

/// A worker blocked writing to a client that never reads still finishes at
/// once on shutdown: SIGTERM's handler shuts its socket down, which ends the
/// blocked write (no waiting out the 30 s grace period, no SIGKILL). With
/// the idle timeout off the socket has no send timeout, so SA_RESTART would
/// otherwise resume the write: only the shutdown wakes it.
#[test]
fn worker_blocked_writing_finishes_on_sigterm() {
    let mut server = Server::start(&[
        "--grace",
        "30",
        "--idle-timeout",
        "0",
        "--monitor-interval",
        "0",
    ]);
    let (mut client, worker) = server.connect_served_worker();
    stall_worker_writing(&mut client, worker);

    let signalled = Instant::now();
    server.signal(libc::SIGTERM);
    wait_finished_gracefully(&server, &client, worker);
    let status = server.wait_exit(TIMEOUT);
    assert_eq!(status.code(), Some(0), "master exit status: {status}");
    let took = signalled.elapsed();
    assert!(
        took < PROMPT,
        "shutdown took {took:?}: the blocked write held it up"
    );
}
