//! `--proxy-protocol`: behind a load balancer, the master reads the PROXY
//! header (v1 or v2) of every connection from a `--trusted-proxy` before
//! admission, and from then on the connection is the real client's: for
//! `--max-per-ip`, the log, and the worker's or program's environment.
//! Headers made by hand (testkit's `proxy.rs`) over real sockets, then a
//! real HAProxy (Debian's `haproxy`) in front of mpecho.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::{Command, Stdio};

use mpecho_testkit::{
    ChildGuard, Server, ServerOptions, TIMEOUT, assert_connection_ended, connect_from, echo,
    free_port, lines_until_end, metrics_text, proxy_v1, proxy_v1_unknown, proxy_v2, proxy_v2_local,
    proxy_v2_raw, wait_for, write_script,
};

/// The options every server here runs with: headers from 127.0.0.1 only.
const TRUST_LOOPBACK: [&str; 3] = ["--proxy-protocol", "--trusted-proxy", "127.0.0.1/32"];

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("a socket address")
}

fn server(extra: &[&str]) -> Server {
    let args: Vec<&str> = TRUST_LOOPBACK.iter().chain(extra).copied().collect();
    Server::start(&args)
}

/// A connection from `from` that sends `header` and `payload` in one write.
fn relayed(server: &Server, from: &str, header: &[u8], payload: &[u8]) -> TcpStream {
    let mut client = connect_from(from.parse::<IpAddr>().expect("an address"), server.addr);
    let mut bytes = header.to_vec();
    bytes.extend_from_slice(payload);
    client.write_all(&bytes).expect("send the header");
    client
}

/// Reads exactly `n` bytes.
fn read_n(client: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut back = vec![0u8; n];
    client.read_exact(&mut back).expect("read the echo");
    back
}

/// A v1 and a v2 header, each followed in the same write by the client's
/// first bytes: the bytes are echoed untouched (the header never reaches
/// the worker), and the master's and the worker's lines name the client
/// the header gave, never the balancer.
#[test]
fn a_header_of_either_version_makes_the_connection_the_real_clients() {
    let server = server(&[]);
    let cases = [
        (
            proxy_v1(addr("203.0.113.9:5555"), addr("192.0.2.1:443")),
            "203.0.113.9:5555",
        ),
        (
            proxy_v2(addr("198.51.100.7:4242"), addr("192.0.2.1:443"), &[]),
            "198.51.100.7:4242",
        ),
        (
            proxy_v1(addr("[2001:db8::5]:6000"), addr("[2001:db8::1]:443")),
            "[2001:db8::5]:6000",
        ),
    ];
    for (header, client) in cases {
        let payload = b"\r\n\r\nPROXY TCP4 not a header, the client's own bytes\n";
        let mut conn = relayed(&server, "127.0.0.1", &header, payload);
        assert_eq!(read_n(&mut conn, payload.len()), payload);
        assert_eq!(echo(&mut conn, b"and more\n"), b"and more\n");
        server.wait_for_log_line(&["INFO worker[", &format!("connect peer={client}")]);
        server.wait_for_log_line(&["INFO master[", &format!("accept peer={client} worker=")]);
        drop(conn);
        server.wait_for_log_line(&[" exited status=0 peer=", client]);
    }
    let figures = server.figures();
    assert_eq!(figures.get("accepted"), 3);
    assert_eq!(figures.get("rejected_proxy"), 0);
    assert!(
        !server.log().contains("peer=127.0.0.1:"),
        "the balancer's address was logged as a peer:\n{}",
        server.log()
    );
}

/// `--max-per-ip 1` counts the client the header names: two connections
/// from the one balancer address carrying two clients are both served,
/// and a second one for the same client is turned away.
#[test]
fn the_per_address_limit_counts_the_real_client() {
    let server = server(&["--max-per-ip", "1"]);
    let dst = addr("127.0.0.1:9190");
    let mut a = relayed(
        &server,
        "127.0.0.1",
        &proxy_v1(addr("198.51.100.1:1000"), dst),
        b"",
    );
    let mut b = relayed(
        &server,
        "127.0.0.1",
        &proxy_v1(addr("198.51.100.2:1000"), dst),
        b"",
    );
    assert_eq!(echo(&mut a, b"a\n"), b"a\n");
    assert_eq!(echo(&mut b, b"b\n"), b"b\n");
    let v2 = proxy_v2(addr("198.51.100.1:2000"), dst, &[]);
    let mut again = relayed(&server, "127.0.0.1", &v2, b"x\n");
    assert_connection_ended(&mut again, true, "a second connection for 198.51.100.1");
    server.wait_for_log_line(&[
        "rejected peer=198.51.100.1:2000: per-IP limit reached (1 active from 198.51.100.1",
    ]);
    let figures = server.figures();
    assert_eq!(figures.get("rejected_per_ip"), 1);
    assert_eq!(figures.get("accepted"), 2);
}

/// An `--exec` program sees the client as TCPREMOTEIP/PORT, the address
/// it connected to (the header's destination) as TCPLOCALIP/PORT, and the
/// balancer as TCPPROXYIP/PORT; a connection without a relayed client
/// (v2 LOCAL) has the connection's own addresses.
#[test]
fn a_program_sees_the_client_its_destination_and_the_balancer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let show = dir.path().join("show-env");
    write_script(&show, "env | grep '^TCP' | sort; echo END");
    let server = Server::start_with(ServerOptions {
        args: TRUST_LOOPBACK
            .iter()
            .map(|s| s.to_string())
            .chain(["--exec".into(), show.display().to_string()])
            .collect(),
        ..ServerOptions::default()
    });
    let header = proxy_v2(addr("203.0.113.9:5555"), addr("192.0.2.1:443"), &[]);
    let conn = relayed(&server, "127.0.0.1", &header, b"");
    let balancer_port = conn.local_addr().expect("local address").port();
    assert_eq!(
        lines_until_end(&conn),
        [
            "TCPCONNNUM=1".to_string(),
            "TCPLOCALIP=192.0.2.1".into(),
            "TCPLOCALPORT=443".into(),
            "TCPPROXYIP=127.0.0.1".into(),
            format!("TCPPROXYPORT={balancer_port}"),
            "TCPREMOTEIP=203.0.113.9".into(),
            "TCPREMOTEPORT=5555".into(),
        ]
    );
    let local = relayed(&server, "127.0.0.1", &proxy_v2_local(), b"");
    let own_port = local.local_addr().expect("local address").port();
    let vars = lines_until_end(&local);
    for expected in [
        "TCPREMOTEIP=127.0.0.1".to_string(),
        format!("TCPREMOTEPORT={own_port}"),
        format!("TCPLOCALPORT={}", server.addr.port()),
        "TCPPROXYIP=127.0.0.1".into(),
    ] {
        assert!(vars.contains(&expected), "{expected:?} not in {vars:?}");
    }
}

/// v2 LOCAL (a balancer's health check) and v1 UNKNOWN carry no client:
/// the worker's and the master's lines name the connection's own peer.
#[test]
fn local_and_unknown_headers_keep_the_connections_own_address() {
    let server = server(&[]);
    for header in [proxy_v2_local(), proxy_v1_unknown()] {
        let mut conn = relayed(&server, "127.0.0.1", &header, b"hi\n");
        let own = conn.local_addr().expect("local address");
        assert_eq!(read_n(&mut conn, 3), b"hi\n");
        server.wait_for_log_line(&["INFO worker[", &format!("connect peer={own}")]);
        server.wait_for_log_line(&[&format!("accept peer={own} worker=")]);
    }
}

/// Every kind of refusal closes the connection before any worker exists,
/// is counted as `rejected_proxy` (`reason="proxy"` in the metrics) and
/// logged with its reason: a source that is not trusted (nothing read), a
/// malformed header, an oversized one, one that does not arrive within
/// `--proxy-timeout`, one abandoned half-way.
#[test]
fn bad_slow_and_untrusted_headers_are_closed_and_counted() {
    let oversized = proxy_v2_raw(0x21, 0x11, &[0u8; 5000]);
    let cases: [(&str, Vec<u8>, bool, &str); 5] = [
        (
            "127.0.0.2",
            proxy_v1(addr("203.0.113.9:1"), addr("192.0.2.1:2")),
            false,
            "not a trusted proxy",
        ),
        (
            "127.0.0.1",
            b"GET / HTTP/1.0\r\n\r\n".to_vec(),
            false,
            "bad PROXY header: no PROXY protocol signature",
        ),
        (
            "127.0.0.1",
            oversized,
            false,
            "bad PROXY header: v2 header over 4096 bytes",
        ),
        (
            "127.0.0.1",
            b"PROXY TCP4 203.0.113.9 ".to_vec(),
            false,
            "no whole PROXY header within 1s (--proxy-timeout)",
        ),
        (
            "127.0.0.1",
            b"PROXY TCP4 203.0.113.9 ".to_vec(),
            true,
            "closed before sending a whole PROXY header",
        ),
    ];
    for (from, bytes, half_close, reason) in cases {
        // A server each, so that each reason gets its own (throttled) line.
        let server = server(&["--proxy-timeout", "1", "--metrics", "127.0.0.1:0"]);
        let mut conn = relayed(&server, from, &bytes, b"");
        if half_close {
            conn.shutdown(std::net::Shutdown::Write).expect("shutdown");
        }
        assert_connection_ended(&mut conn, true, reason);
        server.wait_for_log_line(&["WARN master[", &format!("rejected peer={from}:"), reason]);
        let figures = server.figures();
        assert_eq!(figures.get("rejected_proxy"), 1, "{reason}");
        assert_eq!(figures.get("rejected"), 1, "{reason}");
        assert_eq!(figures.get("accepted"), 0, "{reason}");
        assert!(server.worker_pids().is_empty(), "{reason}: a worker ran");
        let scrape = metrics_text(server.metrics_addr());
        assert!(
            scrape.contains("mpecho_connections_rejected_total{reason=\"proxy\"} 1\n"),
            "{reason}: {scrape}"
        );
    }
}

/// The forked models (`fork`, `prefork`, whose children get no UCSPI
/// environment) and `iterative` (the master serves) name the real client
/// in their `connect` lines too.
#[test]
fn every_model_names_the_real_client() {
    for model in ["fork", "prefork", "iterative"] {
        let server = server(&["--model", model]);
        let header = proxy_v1(addr("203.0.113.20:7777"), addr("192.0.2.1:443"));
        let mut conn = relayed(&server, "127.0.0.1", &header, b"hi\n");
        assert_eq!(read_n(&mut conn, 3), b"hi\n", "{model}");
        server.wait_for_log_line(&["connect peer=203.0.113.20:7777"]);
        drop(conn);
        server.wait_for_log_line(&["disconnect peer=203.0.113.20:7777"]);
    }
}

/// SIGTERM closes connections still waiting for their header at once: they
/// hold up neither the loop nor the exit.
#[test]
fn shutdown_closes_connections_waiting_for_their_header() {
    let mut server = server(&["--proxy-timeout", "60"]);
    let mut waiting = relayed(&server, "127.0.0.1", b"PROXY TCP4 ", b"");
    // Served meanwhile: the waiting connection does not hold the loop.
    let header = proxy_v1(addr("203.0.113.9:1"), addr("192.0.2.1:2"));
    let mut other = relayed(&server, "127.0.0.1", &header, b"ok\n");
    assert_eq!(read_n(&mut other, 3), b"ok\n");
    drop(other);
    server.wait_for_log_line(&[" exited status=0 peer=203.0.113.9:1"]);
    server.signal(libc::SIGTERM);
    assert_connection_ended(&mut waiting, true, "a connection waiting for its header");
    let status = server.wait_exit(TIMEOUT);
    assert!(status.success(), "{status:?}");
    server.wait_for_log_line(&["closed 1 connections still waiting for their PROXY header"]);
}

/// The options hold together or are refused with a sentence (status 2).
#[test]
fn the_options_are_refused_without_each_other() {
    for (args, says) in [
        (
            &["--proxy-protocol"][..],
            "needs at least one --trusted-proxy",
        ),
        (
            &["--trusted-proxy", "10.0.0.0/8"][..],
            "--trusted-proxy cannot be used without --proxy-protocol",
        ),
        (
            &["--proxy-timeout", "5"][..],
            "--proxy-timeout cannot be used without --proxy-protocol",
        ),
        (
            &["--proxy-protocol", "--trusted-proxy", "10.1.0.0/8"][..],
            "the network is 10.0.0.0/8",
        ),
    ] {
        let mut all = vec!["serve", "-l", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let out = mpecho_testkit::run_mpecho(&all, b"");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

/// A real HAProxy, started in the foreground on a free loopback port with
/// a generated configuration, relaying to `backend` with `send`
/// (`send-proxy` or `send-proxy-v2`); killed and reaped on drop.
struct HaProxy {
    addr: SocketAddr,
    _child: ChildGuard,
    _dir: tempfile::TempDir,
}

impl HaProxy {
    fn start(backend: SocketAddr, send: &str) -> HaProxy {
        let installed = Command::new("haproxy")
            .arg("-v")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            installed,
            "haproxy is not installed: these tests need Debian's haproxy package \
             (apt-get install haproxy; .ci/run installs it)"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let addr = free_port(IpAddr::from([127, 0, 0, 1]));
        let config = dir.path().join("haproxy.cfg");
        std::fs::write(
            &config,
            format!(
                "global\n    maxconn 256\n\
                 defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 30s\n    \
                 timeout server 30s\n\
                 frontend echo\n    bind {addr}\n    default_backend mpecho\n\
                 backend mpecho\n    server s1 {backend} {send}\n"
            ),
        )
        .expect("write the configuration");
        let stderr = std::fs::File::create(dir.path().join("haproxy.stderr")).expect("stderr");
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start haproxy");
        let mut child = ChildGuard(child);
        wait_for("haproxy to answer on its port", TIMEOUT, || {
            if let Ok(Some(status)) = child.0.try_wait() {
                let said = std::fs::read_to_string(dir.path().join("haproxy.stderr"));
                panic!("haproxy exited ({status}): {}", said.unwrap_or_default());
            }
            TcpStream::connect(addr).ok()
        });
        HaProxy {
            addr,
            _child: child,
            _dir: dir,
        }
    }
}

/// Echo through a real HAProxy sending `send` from a client on 127.0.0.2:
/// mpecho names 127.0.0.2 (not HAProxy's 127.0.0.1) and holds it to
/// `--max-per-ip 1`.
fn through_haproxy(send: &str) {
    let server = server(&["--max-per-ip", "1"]);
    let haproxy = HaProxy::start(server.addr, send);
    let client_ip: IpAddr = "127.0.0.2".parse().expect("an address");
    let mut first = connect_from(client_ip, haproxy.addr);
    assert_eq!(echo(&mut first, b"through haproxy\n"), b"through haproxy\n");
    let me = first.local_addr().expect("local address");
    server.wait_for_log_line(&["INFO worker[", &format!("connect peer={me}")]);
    server.wait_for_log_line(&[&format!("accept peer={me} worker=")]);
    let mut second = connect_from(client_ip, haproxy.addr);
    let _ = second.write_all(b"over the limit\n");
    assert_connection_ended(&mut second, true, "a second client from 127.0.0.2");
    server.wait_for_log_line(&[
        "rejected peer=127.0.0.2:",
        "per-IP limit reached (1 active from 127.0.0.2",
    ]);
    assert_eq!(echo(&mut first, b"still here\n"), b"still here\n");
    assert_eq!(server.figures().get("rejected_proxy"), 0);
}

/// HAProxy's `send-proxy` (v1).
#[test]
fn haproxy_send_proxy_v1_relays_the_real_client() {
    through_haproxy("send-proxy");
}

/// HAProxy's `send-proxy-v2`.
#[test]
fn haproxy_send_proxy_v2_relays_the_real_client() {
    through_haproxy("send-proxy-v2");
}
