//! The endpoint in the master's life: bound at boot like the echo listener
//! (a bind error is one line and status 1), never reaching a worker, served
//! while draining, and no reason to wait at exit.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use mpecho_testkit::{
    SigtermSwallower, TIMEOUT, connect_to, open_fds, run_mpecho, send_signal, text,
};

use super::{DEADLINE_SECS, scrape, start};

/// `mpecho serve ARGS` must fail at once with status 1, nothing on stdout
/// and one line on stderr, which it returns.
fn refused(args: &[&str]) -> String {
    let output = run_mpecho(args, b"");
    assert_eq!(output.status.code(), Some(1), "status of mpecho {args:?}");
    assert!(
        output.stdout.is_empty(),
        "stdout: {:?}",
        text(&output.stdout)
    );
    let stderr = text(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "stderr: {stderr:?}");
    stderr
}

/// A metrics address in use (by another socket, or by `--listen` itself)
/// stops the server before it serves anything: one line naming the
/// address and `--metrics`, status 1.
#[test]
fn a_metrics_address_in_use_is_one_clear_line_and_status_1() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("occupy a port");
    let addr = taken.local_addr().expect("its address").to_string();
    let line = refused(&["serve", "-l", "127.0.0.1:0", "--metrics", &addr]);
    assert!(
        line.starts_with(&format!(
            "mpecho serve: could not serve metrics on {addr}: "
        )),
        "{line:?}"
    );
    assert!(
        line.contains("in use") && line.contains("another port with --metrics"),
        "{line:?}"
    );

    let free = TcpListener::bind("127.0.0.1:0").expect("find a free port");
    let addr = free.local_addr().expect("its address").to_string();
    drop(free);
    let line = refused(&["serve", "-l", &addr, "--metrics", &addr]);
    assert!(
        line.contains(&format!("could not serve metrics on {addr}")),
        "{line:?}"
    );

    let line = refused(&["serve", "-l", "127.0.0.1:0", "--metrics", "192.0.2.1:9464"]);
    assert!(line.contains("address not available"), "{line:?}");
}

/// The metrics listener and the scrape connections are the master's own:
/// a worker started while a scraper is connected holds exactly descriptors
/// 0-4 (the client on 3, the log file on 4).
#[test]
fn no_metrics_descriptor_reaches_a_worker() {
    let (server, metrics) = start(&[]);
    let _silent = connect_to(metrics);
    let _deaf = {
        let mut deaf = connect_to(metrics);
        std::io::Write::write_all(&mut deaf, b"GET /metrics HTTP/1.1\r\n\r\n")
            .expect("send a request");
        deaf
    };
    let (_client, worker) = server.connect_served_worker();
    assert_eq!(open_fds(worker), vec![0, 1, 2, 3, 4]);
}

/// While draining, the endpoint still answers (the listener `closed`, the
/// held worker still active), and once that worker is gone the master
/// exits at once, with a scraper still connected: it does not wait for
/// the scraper's deadline.
#[test]
fn metrics_are_served_while_draining_and_never_delay_the_exit() {
    let (mut server, metrics) = start(&["--grace", "30"]);
    let (_held_client, held) = server.connect_served_worker();
    let swallower = SigtermSwallower::attach(held);
    server.signal(libc::SIGTERM);
    server.wait_for_log_line(&["]: shutting down (SIGTERM received)"]);
    swallower.wait_swallowed();

    let draining = scrape(metrics);
    assert_eq!(
        draining.count("mpecho_listener_state", &[("state", "closed")]),
        1
    );
    assert_eq!(draining.count("mpecho_workers_active", &[]), 1);

    let _silent = connect_to(metrics);
    let killed = Instant::now();
    send_signal(held, libc::SIGKILL);
    let status = server.wait_exit(TIMEOUT);
    let exited_after = killed.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(
        exited_after < Duration::from_secs(DEADLINE_SECS),
        "the master took {exited_after:?} to exit after its last worker died"
    );
    swallower.wait_done();
}
