//! Talking to a server as a client over loopback: connect (from a chosen
//! address too), echo, and the ways a connection ends.
//!
//! Every socket made here has read and write timeouts of `TIMEOUT`, so no
//! read or write can block a test forever.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};

use crate::process::blocked_in_syscall;
use crate::wait::{TIMEOUT, wait_for};

/// A connected client of `addr` with read and write timeouts.
pub fn connect_to(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect to the server");
    with_timeouts(stream)
}

/// A client of `addr` connected as soon as something listens there
/// (within `TIMEOUT`), with read and write timeouts: for a listener that
/// another program is about to open (`systemd-socket-activate`).
pub fn connect_when_listening(addr: SocketAddr) -> TcpStream {
    let stream = wait_for(&format!("something to listen on {addr}"), TIMEOUT, || {
        TcpStream::connect(addr).ok()
    });
    with_timeouts(stream)
}

/// A client connected to `addr` from `local_ip` (bound before connecting,
/// any port), with read and write timeouts as `connect_to`: a second
/// loopback address (127.0.0.2, …) is a different client address.
pub fn connect_from(local_ip: IpAddr, addr: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )
    .expect("create a client socket");
    socket
        .bind(&SocketAddr::new(local_ip, 0).into())
        .unwrap_or_else(|e| panic!("bind a client socket to {local_ip}: {e}"));
    socket
        .connect(&addr.into())
        .unwrap_or_else(|e| panic!("connect from {local_ip} to {addr}: {e}"));
    with_timeouts(socket.into())
}

fn with_timeouts(stream: TcpStream) -> TcpStream {
    stream
        .set_read_timeout(Some(TIMEOUT))
        .expect("set the client's read timeout");
    stream
        .set_write_timeout(Some(TIMEOUT))
        .expect("set the client's write timeout");
    stream
}

/// Sends `data` and reads back exactly as many bytes.
pub fn echo(stream: &mut TcpStream, data: &[u8]) -> Vec<u8> {
    stream.write_all(data).expect("send to the server");
    let mut back = vec![0u8; data.len()];
    stream.read_exact(&mut back).expect("read the echo back");
    back
}

/// Asserts that the server ended `client`'s connection: the client reads
/// EOF, or a reset where `reset_ok` (the kernel had data nobody read),
/// never data, within its read timeout. `whose` names the client in the
/// failure message.
pub fn assert_connection_ended(client: &mut TcpStream, reset_ok: bool, whose: &str) {
    let expected = if reset_ok { "EOF or a reset" } else { "EOF" };
    let mut buf = [0u8; 64];
    match read_once(client, &mut buf) {
        Ok(0) => {}
        Err(e) if reset_ok && e.kind() == ErrorKind::ConnectionReset => {}
        Ok(n) => panic!(
            "{whose} should read {expected}, but read {:?}",
            text(&buf[..n])
        ),
        Err(e) => panic!("{whose} should read {expected}, got: {e}"),
    }
}

/// One `read`, again after an interruption: a socket with a read timeout
/// returns EINTR when this process is frozen and thawed (as a sandbox's
/// snapshot does to every process at once), which says nothing about the
/// connection.
pub fn read_once(client: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match client.read(buf) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            done => return done,
        }
    }
}

/// Bytes as text, invalid UTF-8 replaced, for comparisons and messages.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Sends from a non-blocking `client` until the kernel shows `worker`
/// blocked writing to it (the client never reads, so both socket buffers
/// fill up); returns how many bytes were sent. Bounded by `TIMEOUT` and
/// 256 MiB.
pub fn stall_worker_writing(client: &mut TcpStream, worker: i32) -> usize {
    client
        .set_nonblocking(true)
        .expect("make the client non-blocking");
    let chunk = vec![b'x'; 64 * 1024];
    let mut sent = 0;
    wait_for(
        "the worker to stall writing to a client that never reads",
        TIMEOUT,
        || {
            loop {
                match client.write(&chunk) {
                    Ok(n) => sent += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => panic!("sending after {sent} bytes: {e}"),
                }
                assert!(
                    sent < 256 << 20,
                    "{sent} bytes sent and the worker still reads"
                );
            }
            blocked_in_syscall(worker, libc::SYS_sendto).then_some(())
        },
    );
    sent
}

/// The lines `client` receives up to (not including) a line `END`, which
/// the test's program prints after what it has to say.
pub fn lines_until_end(client: &TcpStream) -> Vec<String> {
    use std::io::{BufRead, BufReader};
    let mut lines = Vec::new();
    for line in BufReader::new(client.try_clone().expect("clone the client")).lines() {
        let line = line.expect("a line");
        if line == "END" {
            return lines;
        }
        lines.push(line);
    }
    panic!("no END line: {lines:?}");
}

/// The metrics endpoint's exposition as raw text (`GET /metrics` over
/// HTTP/1.0, read to the close), for tests that look for a line or two; the
/// metrics tests read it with the real Prometheus parser instead.
pub fn metrics_text(at: SocketAddr) -> String {
    let mut conn = TcpStream::connect(at).expect("connect to the metrics");
    conn.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    conn.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
        .expect("send the request");
    let mut response = String::new();
    conn.read_to_string(&mut response)
        .expect("read the response");
    response
}

/// A port on `ip` nothing listens on now: bound and given back, for a
/// program the test starts to bind a moment later.
pub fn free_port(ip: IpAddr) -> SocketAddr {
    let probe = std::net::TcpListener::bind(SocketAddr::new(ip, 0))
        .unwrap_or_else(|e| panic!("bind a probe on {ip} to find a free port: {e}"));
    probe.local_addr().expect("the probe's address")
}
