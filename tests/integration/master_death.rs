//! When the master dies (issue 4): after a SIGKILL of the master its
//! workers keep serving their clients to the end, still enforce the idle
//! timeout, and exit on their own; a new master binds the same port at once
//! and never counts the old workers.

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use mpecho_testkit::{
    Server, TIMEOUT, assert_connection_ended, echo, has_ended, is_worker_process, proc_state,
    send_signal, wait_for,
};

/// Whether `pid` is still an mpecho worker (and not some later process
/// that was given the same number).
fn is_live_worker(pid: i32) -> bool {
    is_worker_process(pid) && !has_ended(pid)
}

/// Workers whose master was SIGKILLed: nobody stops them for us, so they
/// are killed on drop if still running, and a failing test leaks nothing.
struct Orphans(Vec<i32>);

impl Drop for Orphans {
    fn drop(&mut self) {
        for &pid in &self.0 {
            if is_live_worker(pid) {
                send_signal(pid, libc::SIGKILL);
            }
        }
    }
}

/// Kills the master with SIGKILL and reaps it (the test started it, so the
/// test must); its workers become orphans.
fn kill_master(server: &mut Server) {
    send_signal(server.pid, libc::SIGKILL);
    let status = server.wait_exit(TIMEOUT);
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
}

/// After the master is SIGKILLed, its two workers keep echoing for their
/// clients; a new master binds the same address at once and serves a new
/// client while the old ones are still served; each old worker exits on its
/// own when its client leaves, and the new master never counts them.
#[test]
fn workers_outlive_a_killed_master_and_a_new_master_takes_the_port() {
    let mut old = Server::start(&["--monitor-interval", "0"]);
    let (mut first, first_worker) = old.connect_served_worker();
    let (mut second, second_worker) = old.connect_served_worker();
    let _orphans = Orphans(vec![first_worker, second_worker]);
    kill_master(&mut old);

    for (client, worker) in [(&mut first, first_worker), (&mut second, second_worker)] {
        assert!(
            is_live_worker(worker),
            "worker {worker} died with its master"
        );
        assert_ne!(proc_state(worker).map(|s| s.1), Some(old.pid));
        assert_eq!(echo(client, b"orphaned\n"), b"orphaned\n");
    }

    let addr = old.addr.to_string();
    let new = Server::start(&["-l", &addr, "--monitor-interval", "0"]);
    assert_eq!(new.addr, old.addr);
    let (mut third, third_worker) = new.connect_served_worker();
    assert_eq!(proc_state(third_worker).map(|s| s.1), Some(new.pid));
    assert_eq!(echo(&mut first, b"old one\n"), b"old one\n");
    assert_eq!(echo(&mut second, b"old two\n"), b"old two\n");
    assert_eq!(echo(&mut third, b"new one\n"), b"new one\n");
    let figures = new.figures();
    assert_eq!(figures.get("active"), 1, "{figures:?}");
    assert_eq!(figures.get("accepted"), 1, "{figures:?}");

    for (client, worker) in [(first, first_worker), (second, second_worker)] {
        let peer = client.local_addr().unwrap();
        drop(client);
        wait_for(
            &format!("orphaned worker {worker} to exit"),
            TIMEOUT,
            || has_ended(worker).then_some(()),
        );
        // It still wrote to the old master's log on its way out.
        old.wait_for_log_line(&[
            &format!("worker[{worker}]: disconnect peer={peer} bytes="),
            " reason=client closed",
        ]);
    }
    assert_eq!(echo(&mut third, b"still new\n"), b"still new\n");
    let log = new.log();
    for worker in [first_worker, second_worker] {
        assert!(
            !log.contains(&format!("worker {worker} "))
                && !log.contains(&format!("worker={worker} ")),
            "the new master knows the old worker {worker}:\n{log}"
        );
    }
    assert_eq!(new.worker_pids(), vec![third_worker]);
}

/// A worker orphaned by a SIGKILLed master still enforces its idle timeout:
/// its client, served once more after the master died and then silent, is
/// closed on time and the worker exits, with no master to tell it to.
#[test]
fn orphaned_worker_still_closes_an_idle_client() {
    // 2 s rather than 1: room for the kill between the first echo and the
    // one after it, so that the timeout cannot fire while the master lives.
    let mut old = Server::start(&["--idle-timeout", "2", "--monitor-interval", "0"]);
    let (mut client, worker) = old.connect_served_worker();
    let _orphans = Orphans(vec![worker]);
    kill_master(&mut old);
    assert!(
        is_live_worker(worker),
        "worker {worker} died with its master"
    );
    // The last activity happens after the master is gone: from here on
    // only the orphan itself can end the connection.
    assert_eq!(echo(&mut client, b"orphaned\n"), b"orphaned\n");
    let silent = Instant::now();

    assert_connection_ended(&mut client, false, "the orphan's silent client");
    let waited = silent.elapsed();
    assert!(
        (Duration::from_millis(1_900)..=Duration::from_secs(6)).contains(&waited),
        "closed {waited:?} after its last echo, expected about 2s"
    );
    wait_for(
        &format!("orphaned worker {worker} to exit"),
        TIMEOUT,
        || has_ended(worker).then_some(()),
    );
    let disconnect = old.wait_for_log_line(&[&format!("worker[{worker}]: disconnect ")]);
    assert!(
        disconnect.ends_with(" reason=idle timeout (2s)"),
        "{disconnect:?}"
    );
}
