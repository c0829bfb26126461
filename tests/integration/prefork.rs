//! `--model prefork`: a pool of forked processes, children of the master,
//! each serving one connection after another, passed by the master, which
//! keeps every admission decision. What makes it that model, and that
//! every limit, the idle timeout, crashes, `--max-requests`, reloads and
//! shutdown hold as in `exec`.

use std::io::{Read, Write};

use mpecho_testkit::{
    Server, TIMEOUT, assert_connection_ended, blocked_in_syscall, connect_from, echo, mpecho_bin,
    open_fds, process_exists, read_once, run_mpecho, send_signal, stat_fields, text, wait_for,
};

/// Voluntary context switches of `pid` so far: it grows each time the
/// process sleeps and is woken, so an unchanged count means it was never
/// woken.
fn wakeups(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("a voluntary_ctxt_switches line")
}

/// Waits until the pool has exactly `n` processes and returns them.
fn pool_of(server: &Server, n: usize) -> Vec<i32> {
    server.wait_for_workers(n)
}

/// Waits until the pool has exactly `n` processes, every one of them set up
/// and asleep waiting for a client (blocked in `ppoll` on its control
/// socket), and returns them. A process shows in /proc as soon as it is
/// forked, before it has named itself, taken its own group, closed the
/// master's descriptors and moved its control socket: what the master's
/// children look like right after `pool_of` is not yet a pool process's.
fn idle_pool_of(server: &Server, n: usize) -> Vec<i32> {
    wait_for(
        &format!("{n} pool processes, all asleep waiting for a client"),
        TIMEOUT,
        || {
            let pids = server.worker_pids();
            (pids.len() == n && pids.iter().all(|&p| blocked_in_syscall(p, libc::SYS_ppoll)))
                .then_some(pids)
        },
    )
}

/// The pool's processes are children of the master, forked copies of
/// `mpecho` named `mpecho-worker`, each in a group of its own, holding
/// 0-2, the log on 4 and their socket to the master on 5 while idle, plus
/// the client on 3 while serving; one process serves one client after
/// another, `--min-spare` of them always idle, and the model is named in
/// the startup and figures lines.
#[test]
fn pool_processes_serve_one_client_after_another() {
    let server = Server::start(&["--model", "prefork", "--min-spare", "2", "--max-spare", "2"]);
    let pool = idle_pool_of(&server, 2);
    for &member in &pool {
        let exe = std::fs::read_link(format!("/proc/{member}/exe")).expect("read the exe");
        assert_eq!(exe, mpecho_bin(), "pool process {member}");
        let comm = std::fs::read_to_string(format!("/proc/{member}/comm")).expect("read comm");
        assert_eq!(comm.trim_end(), "mpecho-worker");
        let pgrp = stat_fields(member).and_then(|f| f.get(2)?.parse::<i32>().ok());
        assert_eq!(pgrp, Some(member), "pool process {member}'s group");
        assert_eq!(open_fds(member), vec![0, 1, 2, 4, 5], "idle {member}");
    }
    let (mut first, worker) = server.connect_served_worker();
    assert!(pool.contains(&worker), "{worker} is not one of {pool:?}");
    assert_eq!(open_fds(worker), vec![0, 1, 2, 3, 4, 5], "busy {worker}");
    first
        .shutdown(std::net::Shutdown::Write)
        .expect("half-close");
    assert_eq!(
        read_once(&mut first, &mut [0u8; 1]).expect("the worker's close"),
        0
    );
    server.wait_for_log_line(&[&format!("worker {worker} finished status=0 ")]);
    // The most recently idle process takes the next client.
    let (mut second, again) = server.connect_served_worker();
    assert_eq!(again, worker, "the next client went to another process");
    assert_eq!(echo(&mut second, b"again\n"), b"again\n");
    // One busy, so a third is forked to keep --min-spare 2 idle; the first
    // two are still there.
    let grown = pool_of(&server, 3);
    assert!(
        pool.iter().all(|p| grown.contains(p)),
        "{pool:?} → {grown:?}"
    );
    server.wait_for_log_line(&["]: started: listening on ", " model=prefork "]);
    let figures = server.figures();
    assert!(figures.line().ends_with(" model=prefork"), "{figures:?}");
    assert_eq!(figures.get("accepted"), 2);
    assert_eq!(figures.get("exited_ok"), 1);
    assert_eq!(figures.get("active"), 1);
}

/// No thundering herd: a connection wakes the one process that serves it,
/// never the other idle ones.
#[test]
fn a_connection_wakes_only_the_process_that_serves_it() {
    let server = Server::start(&["--model", "prefork", "--min-spare", "4", "--max-spare", "4"]);
    // Counted once every process is asleep: one still setting up after its
    // fork is woken on its own way to the wait, not by a connection.
    let pool = idle_pool_of(&server, 4);
    let before: Vec<u64> = pool.iter().map(|&p| wakeups(p)).collect();
    let mut served = Vec::new();
    for _ in 0..3 {
        let (client, worker) = server.connect_served_worker();
        served.push(worker);
        drop(client);
        server.wait_for_log_line(&[&format!("worker {worker} finished status=0 ")]);
    }
    for (i, &member) in pool.iter().enumerate() {
        if !served.contains(&member) {
            assert_eq!(
                wakeups(member),
                before[i],
                "idle process {member} was woken by connections served by {served:?}"
            );
        }
    }
}

/// A process killed while serving: its client sees the connection end, the
/// master logs it as an exec'd worker's death, counts the connection once,
/// and replaces the process; the next client is served.
#[test]
fn a_killed_process_is_reaped_logged_and_replaced() {
    let server = Server::start(&["--model", "prefork", "--min-spare", "1", "--max-spare", "1"]);
    pool_of(&server, 1);
    let (mut client, worker) = server.connect_served_worker();
    send_signal(worker, libc::SIGKILL);
    assert_connection_ended(&mut client, true, "the killed process's client");
    server.wait_for_log_line(&[&format!("worker {worker} killed by SIGKILL peer=")]);
    let replaced = wait_for("a new idle process", TIMEOUT, || {
        let pids = server.worker_pids();
        (pids.len() == 1 && !pids.contains(&worker)).then_some(pids[0])
    });
    let (mut next, serving) = server.connect_served_worker();
    assert_eq!(serving, replaced);
    assert_eq!(echo(&mut next, b"next\n"), b"next\n");
    let figures = server.figures();
    assert_eq!(figures.get("exited_signal"), 1);
    assert_eq!(figures.get("accepted"), 2);
    assert_eq!(figures.get("active"), 1);
    assert!(server.zombies().is_empty());
}

/// `--max-requests 2`: a process serves two clients, then exits (its last
/// connection counted from its exit status) and a fresh one takes over.
#[test]
fn a_process_is_replaced_after_max_requests() {
    let server = Server::start(&[
        "--model",
        "prefork",
        "--min-spare",
        "1",
        "--max-spare",
        "1",
        "--max-requests",
        "2",
    ]);
    pool_of(&server, 1);
    let (a, first) = server.connect_served_worker();
    drop(a);
    server.wait_for_log_line(&[&format!("worker {first} finished status=0 ")]);
    let (b, second) = server.connect_served_worker();
    assert_eq!(second, first);
    drop(b);
    server.wait_for_log_line(&[&format!("worker {first} exited status=0 ")]);
    let (_c, third) = server.connect_served_worker();
    assert_ne!(third, first, "a process served more than --max-requests");
    wait_for("the used-up process to be gone", TIMEOUT, || {
        (!process_exists(first)).then_some(())
    });
    let figures = server.figures();
    assert_eq!(figures.get("exited_ok"), 2);
    assert_eq!(figures.get("accepted"), 3);
}

/// The master's limits hold as in `exec`: `--max-workers` counts pool
/// processes (a client beyond it is turned away) and `--max-per-ip`
/// counts the clients being served.
#[test]
fn prefork_keeps_the_worker_and_per_address_limits() {
    let server = Server::start(&[
        "--model",
        "prefork",
        "--max-workers",
        "2",
        "--max-per-ip",
        "1",
    ]);
    let addr = server.addr;
    let mut one = connect_from("127.0.0.2".parse().expect("ip"), addr);
    assert_eq!(echo(&mut one, b"one\n"), b"one\n");
    let mut same = connect_from("127.0.0.2".parse().expect("ip"), addr);
    assert_connection_ended(&mut same, true, "a second client from 127.0.0.2");
    let mut two = connect_from("127.0.0.3".parse().expect("ip"), addr);
    assert_eq!(echo(&mut two, b"two\n"), b"two\n");
    let mut three = connect_from("127.0.0.4".parse().expect("ip"), addr);
    assert_connection_ended(&mut three, true, "the client beyond --max-workers");
    let figures = server.figures();
    assert_eq!(figures.get("rejected_per_ip"), 1);
    assert_eq!(figures.get("rejected_full"), 1);
    assert_eq!(
        server.worker_pids().len(),
        2,
        "more processes than --max-workers"
    );
    assert_eq!(echo(&mut one, b"still\n"), b"still\n");
}

/// The idle timeout is the worker's: a silent client is closed, and the
/// process goes back to the pool and serves the next one.
#[test]
fn a_silent_client_is_closed_and_the_process_serves_on() {
    let server = Server::start(&[
        "--model",
        "prefork",
        "--min-spare",
        "1",
        "--max-spare",
        "1",
        "--idle-timeout",
        "1",
    ]);
    let (mut silent, worker) = server.connect_served_worker();
    assert_eq!(
        read_once(&mut silent, &mut [0u8; 1]).expect("an orderly close"),
        0
    );
    server.wait_for_log_line(&[&format!("worker {worker} finished status=3 (idle timeout)")]);
    let (mut next, again) = server.connect_served_worker();
    assert_eq!(again, worker);
    assert_eq!(echo(&mut next, b"next\n"), b"next\n");
    assert_eq!(server.figures().get("exited_idle"), 1);
}

/// SIGTERM: the client being served is closed, idle processes leave at
/// once, the master exits 0 with its final figures and nothing is left.
#[test]
fn prefork_shuts_down_closing_every_client_and_the_pool() {
    let mut server = Server::start(&["--model", "prefork", "--min-spare", "3", "--max-spare", "3"]);
    let pool = pool_of(&server, 3);
    let (client, worker) = server.connect_served_worker();
    let log = crate::models::sigterm_closes_the_client_and_exits_0(&mut server, client);
    assert!(
        log.contains(&format!("INFO worker[{worker}]: disconnect peer="))
            && log.contains("reason=server shutting down"),
        "{log}"
    );
    for member in pool {
        assert!(
            !process_exists(member),
            "pool process {member} outlived the master"
        );
    }
}

/// A reload renews the pool, so that no process keeps writing to a log
/// file that was rotated away: idle processes are replaced at once.
#[test]
fn a_reload_replaces_the_idle_processes() {
    let server = Server::start(&["--model", "prefork", "--min-spare", "2", "--max-spare", "2"]);
    let before = pool_of(&server, 2);
    server.signal(libc::SIGHUP);
    server.wait_for_log_line(&["reload: 2 idle pool processes replaced"]);
    let after = wait_for("a renewed pool", TIMEOUT, || {
        let pids = server.worker_pids();
        (pids.len() == 2 && pids.iter().all(|p| !before.contains(p))).then_some(pids)
    });
    let (mut client, worker) = server.connect_served_worker();
    assert!(after.contains(&worker));
    assert_eq!(echo(&mut client, b"fresh\n"), b"fresh\n");
}

/// The pool's options make sense only with the pool, and only in an order
/// that lets it settle: anything else is refused with status 2.
#[test]
fn pool_options_are_refused_where_they_make_no_sense() {
    for (args, why) in [
        (
            &["serve", "--min-spare", "3"][..],
            "--min-spare cannot be used with --model exec",
        ),
        (
            &["serve", "--model", "fork", "--max-requests", "3"][..],
            "--max-requests cannot be used with --model fork",
        ),
        (
            &[
                "serve",
                "--model",
                "prefork",
                "--min-spare",
                "4",
                "--max-spare",
                "2",
            ][..],
            "--max-spare 2 is below --min-spare 4",
        ),
        (
            &[
                "serve",
                "--model",
                "prefork",
                "--max-workers",
                "2",
                "--min-spare",
                "3",
            ][..],
            "--min-spare 3 is above --max-workers 2",
        ),
        (
            &["serve", "--model", "prefork", "--worker", "/bin/true"][..],
            "--worker cannot be used with --model prefork",
        ),
    ] {
        let output = run_mpecho(args, b"");
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(why), "{args:?}: {stderr}");
    }
}

/// Idle processes beyond `--max-spare`, left by a burst, are retired
/// (gradually, half the surplus a second) down to `--max-spare`.
#[test]
fn a_surplus_of_idle_processes_is_retired() {
    let server = Server::start(&["--model", "prefork", "--min-spare", "1", "--max-spare", "2"]);
    let burst: Vec<_> = (0..6).map(|_| server.connect_served()).collect();
    // The spare is forked on the loop turn after the sixth client's.
    wait_for("6 busy and 1 spare", TIMEOUT, || {
        (server.worker_pids().len() >= 7).then_some(())
    });
    drop(burst);
    server.wait_for_log_count(" finished status=0 ", 6);
    let left = wait_for("the surplus retired", TIMEOUT, || {
        let pids = server.worker_pids();
        (pids.len() == 2).then_some(pids)
    });
    let (mut client, worker) = server.connect_served_worker();
    assert!(left.contains(&worker), "{worker} is not one of {left:?}");
    assert_eq!(echo(&mut client, b"kept\n"), b"kept\n");
}

/// `--on-full defer` holds as in `exec`: at the limit, the next client
/// waits in the backlog, and is served once the first leaves.
#[test]
fn at_the_limit_a_deferred_client_waits_for_a_process() {
    let server = Server::start(&[
        "--model",
        "prefork",
        "--max-workers",
        "1",
        "--on-full",
        "defer",
    ]);
    let (first, worker) = server.connect_served_worker();
    let mut second = server.connect();
    second.write_all(b"waiting\n").expect("send while waiting");
    server.wait_for_log_line(&["new connections wait in the backlog"]);
    drop(first);
    let mut echoed = [0u8; 8];
    second
        .read_exact(&mut echoed)
        .expect("the echo, once served");
    assert_eq!(&echoed, b"waiting\n");
    assert_eq!(server.worker_serving(&second), worker);
    assert_eq!(server.figures().get("rejected_full"), 0);
}
