//! A worker's environment (issue 4): only PATH, LANG, LC_ALL and TZ from
//! the master's (no secrets from whoever started it), plus the connection
//! described the UCSPI way (PROTO=TCP, TCPREMOTEIP/PORT, TCPLOCALIP/PORT),
//! with IPv4-mapped addresses given as IPv4.

use std::net::{SocketAddr, TcpStream};

use mpecho_testkit::{Server, ServerOptions, connect_to, echo, environ};

/// Variables set for the master: a secret and HOME that must not reach a
/// worker, and the locale and time zone that must.
const MASTER_ENV: &str =
    "export SECRET_TOKEN=x HOME=/home/secret LANG=C.UTF-8 LC_ALL=C TZ=UTC || exit 1;";

/// Starts a server listening on `listen` with `MASTER_ENV`, connects with
/// `connect`, and asserts that the worker's environment is exactly PATH
/// (as the master has it), LANG, LC_ALL and TZ, and the UCSPI description
/// of the connection with the given IPs.
fn assert_worker_environment(
    listen: &str,
    connect: impl Fn(SocketAddr) -> TcpStream,
    remote_ip: &str,
    local_ip: &str,
) {
    let server = Server::start_with(ServerOptions {
        args: vec![
            "-l".into(),
            listen.into(),
            "--monitor-interval".into(),
            "0".into(),
        ],
        shell_prefix: Some(MASTER_ENV.into()),
        ..ServerOptions::default()
    });
    let master_env = environ(server.pid);
    for var in ["SECRET_TOKEN=x", "HOME=/home/secret", "TZ=UTC"] {
        assert!(
            master_env.iter().any(|v| v == var),
            "the master lacks {var}"
        );
    }

    let mut client = connect(server.addr);
    assert_eq!(echo(&mut client, b"env\n"), b"env\n");
    let worker = server.worker_serving(&client);
    let mut expected: Vec<String> = master_env
        .iter()
        .filter(|v| v.starts_with("PATH="))
        .cloned()
        .collect();
    let client_port = client.local_addr().unwrap().port();
    expected.extend([
        "LANG=C.UTF-8".to_string(),
        "LC_ALL=C".to_string(),
        "TZ=UTC".to_string(),
        "PROTO=TCP".to_string(),
        format!("TCPREMOTEIP={remote_ip}"),
        format!("TCPREMOTEPORT={client_port}"),
        format!("TCPLOCALIP={local_ip}"),
        format!("TCPLOCALPORT={}", server.addr.port()),
        "TCPCONNNUM=1".to_string(),
    ]);
    expected.sort();
    assert_eq!(environ(worker), expected);
}

/// A worker's environment holds only PATH, LANG, LC_ALL and TZ from the
/// master's (no SECRET_TOKEN, no HOME) plus PROTO=TCP, the four
/// TCPREMOTE*/TCPLOCAL* variables describing its IPv4 connection, and
/// TCPCONNNUM (one connection from that address).
#[test]
fn worker_environment_is_filtered_and_describes_the_connection() {
    assert_worker_environment("127.0.0.1:0", connect_to, "127.0.0.1", "127.0.0.1");
}

/// On an IPv6 listener on [::1] the worker's TCPREMOTEIP and TCPLOCALIP are
/// `::1`.
#[test]
fn worker_environment_over_ipv6() {
    assert_worker_environment("[::1]:0", connect_to, "::1", "::1");
}

/// On a dual-stack `[::]` listener reached over 127.0.0.1 the addresses are
/// given as IPv4, never as `::ffff:127.0.0.1`.
#[test]
fn worker_environment_shows_mapped_addresses_as_ipv4() {
    assert_worker_environment(
        "[::]:0",
        |addr| connect_to(SocketAddr::from(([127, 0, 0, 1], addr.port()))),
        "127.0.0.1",
        "127.0.0.1",
    );
}
