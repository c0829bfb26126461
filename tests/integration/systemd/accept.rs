//! Per-connection units (`Accept=yes`): the service manager accepts each
//! connection itself and starts one `mpecho worker` for it, the connection
//! on descriptor 3 with `LISTEN_FDS=1`, no master and no options. Here
//! `systemd-socket-activate --accept` plays systemd: each client is echoed
//! by a process of its own, whose lines go to stderr (the journal). A
//! worker given a listening socket (a unit with `Accept=no`) or several
//! sockets says what the unit needs and exits 2.

use mpecho_testkit::echo;

use super::{
    accepting, activate, assert_refused, free_port, knock, loopback, run_knocking, socket_activate,
};

/// Three clients in a row, each served by its own worker process, which
/// logs `connect` and `disconnect` on the stderr it shares with
/// systemd-socket-activate and exits 0.
#[test]
fn each_connection_is_served_by_its_own_worker() {
    let Some(tool) = socket_activate("each_connection_is_served_by_its_own_worker") else {
        return;
    };
    let addr = free_port(loopback(1));
    let (activator, stderr) = accepting(tool, addr, &["worker"]);

    let mut pids = Vec::new();
    for i in 0..3 {
        let mut client = knock(addr).join().expect("the client's thread");
        let message = format!("client {i}\n");
        assert_eq!(echo(&mut client, message.as_bytes()), message.as_bytes());
        let peer = client.local_addr().expect("the client's address");
        drop(client);
        let connect = stderr.wait_for_line(&[" INFO worker[", &format!("]: connect peer={peer}")]);
        let pid = connect
            .split_once(" worker[")
            .and_then(|(_, rest)| rest.split_once(']'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
            .unwrap_or_else(|| panic!("no worker pid in {connect:?}"));
        stderr.wait_for_line(&[
            &format!(
                " worker[{pid}]: disconnect peer={peer} bytes={}",
                message.len()
            ),
            "reason=client closed",
        ]);
        stderr.wait_for_line(&[&format!("Child {pid} died with code 0")]);
        pids.push(pid);
    }
    pids.dedup();
    assert_eq!(pids.len(), 3, "one worker per connection: {pids:?}");
    assert!(
        !pids.contains(&activator.0.id()),
        "a worker must be a process of its own"
    );
}

/// systemd-socket-activate without `--accept` passes the listening
/// socket, as a unit with `Accept=no` would: the worker refuses it, says
/// the unit needs Accept=yes (or `mpecho serve`), and exits 2.
#[test]
fn a_worker_given_a_listening_socket_asks_for_accept_yes() {
    let Some(tool) = socket_activate("a_worker_given_a_listening_socket_asks_for_accept_yes")
    else {
        return;
    };
    let addr = free_port(loopback(1));
    let output = run_knocking(activate(tool, &[], &[addr], &["worker"]), addr);
    assert_refused(
        &output,
        2,
        "mpecho worker: descriptor 3 is not a connected TCP socket",
    );
    assert_refused(&output, 2, "a worker needs Accept=yes there");
}

/// Two sockets passed to a worker: it serves exactly one connection, and
/// says so.
#[test]
fn a_worker_given_two_sockets_refuses() {
    let Some(tool) = socket_activate("a_worker_given_two_sockets_refuses") else {
        return;
    };
    let (one, two) = (free_port(loopback(1)), free_port(loopback(2)));
    let output = run_knocking(activate(tool, &[], &[one, two], &["worker"]), one);
    assert_refused(
        &output,
        2,
        "mpecho worker: LISTEN_FDS=2: mpecho worker serves exactly one connection",
    );
}
