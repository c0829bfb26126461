//! Socket activation of `mpecho serve`: the listening socket a service
//! manager passes (here `systemd-socket-activate`, which sets LISTEN_PID,
//! LISTEN_FDS and LISTEN_FDNAMES as systemd does) is served instead of
//! binding one; a name picks among several; the others are closed; an
//! explicit `--listen` gives way with a log line; and anything but a
//! listening TCP socket is refused with status 1 and a message that names
//! the unit setting to fix.

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::process::Command;

use mpecho_testkit::{Server, ServerOptions, echo, environ, mpecho_bin, open_fds, run_mpecho};

use super::{
    activate, activator, assert_refused, free_port, knock, loopback, run_knocking, run_poking,
    socket_activate,
};

/// Starts `systemd-socket-activate OPTIONS -l ADDR… mpecho serve ARGS` and
/// returns the server with the first client, the one whose knock (at
/// `knock_at`) made systemd-socket-activate start it.
fn serve_activated(
    tool: &str,
    listen: &[SocketAddr],
    options: &[&str],
    args: &[&str],
    knock_at: SocketAddr,
) -> (Server, TcpStream) {
    let first = knock(knock_at);
    let server = Server::start_with(ServerOptions {
        args: args.iter().map(|a| a.to_string()).collect(),
        wrapper: activator(tool, options, listen),
        ..ServerOptions::default()
    });
    let first = first.join().expect("the first client's thread");
    (server, first)
}

/// The socket passed on descriptor 3 is served: `listening on` and the
/// `started:` line give its address, the client that knocked before the
/// server existed is echoed, and so is the next one. Workers see no
/// LISTEN_* variable and hold no passed descriptor: exactly 0-2, the
/// client on 3 and the log on 4.
#[test]
fn serves_the_socket_systemd_passes() {
    let Some(tool) = socket_activate("serves_the_socket_systemd_passes") else {
        return;
    };
    let addr = free_port(loopback(1));
    let (server, mut first) = serve_activated(tool, &[addr], &[], &[], addr);
    assert_eq!(server.addr, addr);
    server.wait_for_log_line(&[&format!("started: listening on {addr},")]);
    server.wait_for_log_line(&["serving the socket systemd passed on descriptor 3 (LISTEN_FDS=1)"]);
    assert_eq!(echo(&mut first, b"knock knock\n"), b"knock knock\n");

    let (mut second, worker) = server.connect_served_worker();
    assert_eq!(echo(&mut second, b"next\n"), b"next\n");
    let env = environ(worker);
    assert!(
        !env.iter().any(|v| v.starts_with("LISTEN_")),
        "a worker saw the activation variables: {env:?}"
    );
    assert_eq!(open_fds(worker), vec![0, 1, 2, 3, 4]);
}

/// Passes two sockets (on 127.0.0.1 and 127.0.0.2, with `options`), runs
/// `mpecho serve ARGS` on them and asserts that it serves socket `served`
/// (0 or 1) and closed the other: nothing listens there any more once the
/// master runs, and its workers hold only their own descriptors.
fn assert_serves_one_of_two(tool: &str, options: &[&str], args: &[&str], served: usize) -> Server {
    let addrs = [free_port(loopback(1)), free_port(loopback(2))];
    let (server, mut first) = serve_activated(tool, &addrs, options, args, addrs[served]);
    assert_eq!(server.addr, addrs[served]);
    assert_eq!(echo(&mut first, b"first\n"), b"first\n");
    let other = addrs[1 - served];
    assert!(
        TcpStream::connect(other).is_err(),
        "the socket not served ({other}) is still listening"
    );
    let (_client, worker) = server.connect_served_worker();
    assert_eq!(open_fds(worker), vec![0, 1, 2, 3, 4]);
    server
}

/// `--listen-fd-name` picks the socket of that name (LISTEN_FDNAMES), the
/// other one is closed.
#[test]
fn a_name_picks_the_socket_and_the_other_is_closed() {
    let Some(tool) = socket_activate("a_name_picks_the_socket_and_the_other_is_closed") else {
        return;
    };
    let args = ["--listen-fd-name", "two"];
    let server = assert_serves_one_of_two(tool, &["--fdname=one:two"], &args, 1);
    server.wait_for_log_line(&["descriptor 4 named \"two\" (LISTEN_FDS=2)"]);
}

/// With several sockets and no name, the first (descriptor 3, the first
/// `-l`/`ListenStream=`) is served, the other closed.
#[test]
fn without_a_name_the_first_socket_is_served() {
    let Some(tool) = socket_activate("without_a_name_the_first_socket_is_served") else {
        return;
    };
    assert_serves_one_of_two(tool, &[], &[], 0);
}

/// `-l` given together with a passed socket: the passed socket wins
/// (systemd's convention) and the log says the option was ignored.
#[test]
fn an_explicit_listen_gives_way_with_a_log_line() {
    let Some(tool) = socket_activate("an_explicit_listen_gives_way_with_a_log_line") else {
        return;
    };
    let addr = free_port(loopback(1));
    let (server, mut first) = serve_activated(tool, &[addr], &[], &["-l", "127.0.0.1:1"], addr);
    assert_eq!(server.addr, addr);
    server.wait_for_log_line(&[
        " INFO master[",
        "--listen 127.0.0.1:1 ignored: the socket passed by systemd wins",
    ]);
    assert_eq!(echo(&mut first, b"wins\n"), b"wins\n");
}

/// LISTEN_* meant for another process (LISTEN_PID is not ours, as when a
/// variable was inherited) are not ours: the server binds `--listen`.
#[test]
fn variables_for_another_process_are_ignored() {
    let server = Server::start_with(ServerOptions {
        env: vec![
            ("LISTEN_PID".into(), "1".into()),
            ("LISTEN_FDS".into(), "1".into()),
        ],
        ..ServerOptions::default()
    });
    let mut client = server.connect();
    assert_eq!(echo(&mut client, b"bound\n"), b"bound\n");
}

/// A UDP socket passed (`ListenDatagram=`) is refused: status 1 and a
/// message naming what was found and what the unit needs.
#[test]
fn a_udp_socket_is_refused() {
    let Some(tool) = socket_activate("a_udp_socket_is_refused") else {
        return;
    };
    let addr = free_port(loopback(1));
    let command = activate(tool, &["--datagram"], &[addr], &["serve"]);
    let udp = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP client");
    let output = run_poking(command, || {
        let _ = udp.send_to(b"knock", addr);
    });
    assert_refused(
        &output,
        1,
        "mpecho serve: LISTEN_FDS=1 but descriptor 3 is a UDP socket: mpecho serve needs a \
         listening TCP socket (ListenStream= in the .socket unit, with Accept=no)",
    );
}

/// A listening Unix socket (`ListenStream=/run/…`) is refused likewise.
#[test]
fn a_unix_socket_is_refused() {
    let Some(tool) = socket_activate("a_unix_socket_is_refused") else {
        return;
    };
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let path = dir.path().join("mpecho.sock");
    let mut command = Command::new(tool);
    command.arg("-l").arg(&path).arg(mpecho_bin()).arg("serve");
    let output = run_poking(command, || {
        let _ = UnixStream::connect(&path);
    });
    assert_refused(
        &output,
        1,
        "descriptor 3 is a Unix socket: mpecho serve needs",
    );
}

/// A TCP connection on descriptor 3 (what `Accept=yes` passes) is not a
/// listening socket: refused, pointing at `mpecho worker`. The variables
/// are set by a shell that then execs the server, keeping its pid.
#[test]
fn a_connection_on_descriptor_3_is_refused() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a listener");
    let port = listener.local_addr().expect("its address").port();
    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg(format!(
            "exec 3<>/dev/tcp/127.0.0.1/{port} && LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" serve"
        ))
        .arg(mpecho_bin());
    let output = run_poking(command, || {});
    assert_refused(
        &output,
        1,
        "descriptor 3 is a TCP connection, not a listening socket (Accept=yes passes \
         connections: such a unit runs `mpecho worker`)",
    );
}

/// A name no socket has, a name without socket activation, and a garbled
/// LISTEN_FDS: status 1, each with its own message.
#[test]
fn names_and_counts_that_do_not_fit_are_refused() {
    let output = run_mpecho(&["serve", "--listen-fd-name", "web"], b"");
    assert_refused(
        &output,
        1,
        "--listen-fd-name web needs a socket passed by systemd, but none was passed",
    );

    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg("LISTEN_PID=$$ LISTEN_FDS=two exec \"$0\" serve")
        .arg(mpecho_bin());
    assert_refused(
        &run_poking(command, || {}),
        1,
        "LISTEN_FDS=\"two\" is not a number of descriptors",
    );

    let Some(tool) = socket_activate("names_and_counts_that_do_not_fit_are_refused") else {
        return;
    };
    let addr = free_port(loopback(1));
    let command = activate(
        tool,
        &["--fdname=web"],
        &[addr],
        &["serve", "--listen-fd-name", "admin"],
    );
    let output = run_knocking(command, addr);
    assert_refused(
        &output,
        1,
        "no socket passed is named \"admin\" (LISTEN_FDNAMES=\"web\")",
    );
}
