//! `--max-per-ip`: the connection one client address has too many of is
//! turned away and counted as `rejected_per_ip` while other addresses are
//! served; a slot is released exactly once however the worker ends; an
//! IPv4-mapped IPv6 client counts, and is logged, as its IPv4 address.

use std::net::{SocketAddr, TcpListener, TcpStream};

use mpecho_testkit::{
    Server, assert_connection_ended, connect_from, connect_to, count_lines, count_peer_lines, echo,
    send_signal,
};

use super::{
    assert_figures, connect_turned_away, loopback, per_ip_rejection, send_and_assert_turned_away,
};

/// With `--max-per-ip 2`, a third concurrent connection from 127.0.0.1 is
/// closed at once (never echoed, no worker) and logged as rejected for the
/// per-IP limit, while a client from 127.0.0.2 is still served; the figures
/// count it as a per-IP rejection, not a worker-limit one.
#[test]
fn third_connection_from_one_address_is_rejected_but_others_are_served() {
    let server = Server::start(&[
        "--max-per-ip",
        "2",
        "--max-workers",
        "100",
        "--monitor-interval",
        "0",
    ]);
    let mut first = server.connect_served();
    let mut second = server.connect_served();

    let third = connect_turned_away(&server, "a third client from 127.0.0.1");
    let third_peer = third.local_addr().unwrap();
    server.wait_for_log_line(&[&per_ip_rejection(&server, third_peer, 2, 2)]);

    let mut other = connect_from(loopback(2), server.addr);
    assert_eq!(echo(&mut other, b"from .2\n"), b"from .2\n");
    let other_peer = other.local_addr().unwrap();
    assert_eq!(other_peer.ip(), loopback(2));
    server.wait_for_log_line(&[&format!("]: accept peer={other_peer} worker="), " active=3"]);

    assert_figures(
        &server,
        &[
            ("active", 3),
            ("accepted", 3),
            ("rejected", 1),
            ("rejected_per_ip", 1),
            ("rejected_full", 0),
        ],
    );
    assert_eq!(server.worker_pids().len(), 3);
    let log = server.log();
    assert_eq!(count_peer_lines(&log, third_peer), 1, "{log}");
    assert_eq!(echo(&mut first, b"one\n"), b"one\n");
    assert_eq!(echo(&mut second, b"two\n"), b"two\n");
}

/// A client from 127.0.0.1 served in a freed per-IP slot; the next one is
/// rejected again, the figures showing `rejected_per_ip` at `rejected`: the
/// slot was released once, not twice.
fn assert_exactly_one_slot_freed(server: &Server, rejected: u64) -> (TcpStream, i32) {
    let served = server.connect_served_worker();
    connect_turned_away(server, "a client past the per-IP limit");
    assert_figures(
        server,
        &[("rejected_per_ip", rejected), ("rejected_full", 0)],
    );
    served
}

/// With `--max-per-ip 2`, the slot of a worker is released exactly once
/// whichever way it ends — its client leaves, it is killed with SIGKILL,
/// it is asked to finish with SIGTERM — so that exactly one new client from
/// the address gets in after each. (At shutdown the master exits: there is
/// no later connection to count against.)
#[test]
fn per_ip_slot_is_released_once_however_the_worker_ends() {
    let server = Server::start(&["--max-per-ip", "2", "--monitor-interval", "0"]);
    let (client_a, worker_a) = server.connect_served_worker();
    let (mut client_b, worker_b) = server.connect_served_worker();
    connect_turned_away(&server, "a client past the per-IP limit");
    assert_figures(&server, &[("rejected_per_ip", 1)]);

    // The client leaves: the worker exits 0.
    drop(client_a);
    server.wait_for_log_line(&[&format!("]: worker {worker_a} exited status=0 ")]);
    let (mut client_c, worker_c) = assert_exactly_one_slot_freed(&server, 2);

    // The worker crashes.
    send_signal(worker_b, libc::SIGKILL);
    server.wait_for_log_line(&[&format!("]: worker {worker_b} killed by SIGKILL ")]);
    assert_connection_ended(&mut client_b, true, "the client of a killed worker");
    let (_client_d, _) = assert_exactly_one_slot_freed(&server, 3);

    // The worker is asked to finish.
    send_signal(worker_c, libc::SIGTERM);
    server.wait_for_log_line(&[&format!("]: worker {worker_c} exited status=0 ")]);
    assert_connection_ended(&mut client_c, false, "the client of a terminated worker");
    let (_client_e, _) = assert_exactly_one_slot_freed(&server, 4);

    assert_figures(
        &server,
        &[
            ("active", 2),
            ("accepted", 5),
            ("exited_ok", 2),
            ("exited_signal", 1),
            ("rejected", 4),
        ],
    );
    assert_eq!(server.worker_pids().len(), 2);
}

/// On a dual-stack `[::]` listener an IPv4 client arrives IPv4-mapped
/// (`::ffff:127.0.0.1`): it is logged as `127.0.0.1:PORT`, and with
/// `--max-per-ip 1` a connection to `::ffff:127.0.0.1` spelled out counts
/// against the same address and is rejected, while `::1` is another
/// address and is served.
#[test]
fn ipv4_mapped_clients_are_logged_and_counted_as_ipv4() {
    if let Err(e) = TcpListener::bind("[::]:0").and_then(|_| TcpListener::bind("[::1]:0")) {
        println!("skipped: IPv6 is not available here ({e})");
        return;
    }
    let server = Server::start(&[
        "-l",
        "[::]:0",
        "--max-per-ip",
        "1",
        "--monitor-interval",
        "0",
    ]);
    let port = server.addr.port();

    let mut plain = connect_to(SocketAddr::new(loopback(1), port));
    assert_eq!(echo(&mut plain, b"v4\n"), b"v4\n");
    let plain_peer = plain.local_addr().unwrap();
    // The worker's `connect peer=127.0.0.1:PORT` line, and the master's.
    server.worker_serving(&plain);
    server.wait_for_log_line(&[&format!("]: accept peer={plain_peer} worker=")]);

    let mapped_addr: SocketAddr = format!("[::ffff:127.0.0.1]:{port}").parse().unwrap();
    let mut mapped = connect_to(mapped_addr);
    let mapped_local = mapped.local_addr().unwrap();
    assert!(mapped_local.is_ipv6(), "an IPv6 socket, not {mapped_local}");
    send_and_assert_turned_away(&mut mapped, b"mapped\n", "a mapped client from 127.0.0.1");
    let shown = SocketAddr::new(loopback(1), mapped_local.port());
    server.wait_for_log_line(&[&per_ip_rejection(&server, shown, 1, 1)]);

    let mut v6 = connect_to(SocketAddr::new("::1".parse().unwrap(), port));
    assert_eq!(echo(&mut v6, b"v6\n"), b"v6\n");
    let v6_peer = v6.local_addr().unwrap();
    server.wait_for_log_line(&[&format!("]: accept peer={v6_peer} worker="), " active=2"]);

    assert_figures(
        &server,
        &[
            ("accepted", 2),
            ("rejected_per_ip", 1),
            ("rejected_full", 0),
        ],
    );
    let log = server.log();
    assert_eq!(
        count_lines(&log, "::ffff:"),
        0,
        "mapped addresses in:\n{log}"
    );
}
