//! Echo behaviour: byte-exact, binary-safe, concurrent, half-close.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::thread;

use mpecho_testkit::{Server, echo};

/// A line sent by a client comes back byte for byte.
#[test]
fn echoes_a_line() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    assert_eq!(echo(&mut client, b"hello, world\n"), b"hello, world\n");
}

/// NUL bytes and invalid UTF-8 survive the round trip unchanged.
#[test]
fn echo_is_binary_safe() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    let data: Vec<u8> = (0..=255u8).chain([0, 0, 0xff, 0xfe, 0xc3, 0x28]).collect();
    assert_eq!(echo(&mut client, &data), data);
}

/// A 4 MiB payload written in one go, read concurrently, comes back whole.
#[test]
fn echoes_a_large_payload_written_in_one_go() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    let payload: Vec<u8> = (0..4 * 1024 * 1024u32)
        .map(|i| (i * 7 + i / 251) as u8)
        .collect();
    let mut reader = client.try_clone().unwrap();
    let expected_len = payload.len();
    let collector = thread::spawn(move || {
        let mut back = vec![0u8; expected_len];
        reader.read_exact(&mut back).map(|()| back)
    });
    client.write_all(&payload).unwrap();
    let back = collector.join().unwrap().expect("read the whole echo");
    assert!(back == payload, "4 MiB echo differs from what was sent");
}

/// After the client shuts down its write side, the worker sends back all
/// it received and then closes (the client reads EOF).
#[test]
fn half_close_gets_everything_back_then_eof() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    let data = vec![b'x'; 200_000];
    client.write_all(&data).unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    let mut back = Vec::new();
    client
        .read_to_end(&mut back)
        .expect("read until the worker closes");
    assert_eq!(back.len(), data.len());
    assert!(back == data);
}

/// Fifty clients connected at once each have a live worker, and each one's
/// echo comes back (last connected first) while the other 49 stay connected
/// and idle: no client waits for another to leave.
#[test]
fn fifty_idle_clients_do_not_delay_each_other() {
    const CLIENTS: usize = 50;
    let server = Server::start(&[]);
    let mut clients: Vec<_> = (0..CLIENTS).map(|_| server.connect_served()).collect();
    server.wait_for_workers(CLIENTS);
    for (i, client) in clients.iter_mut().enumerate().rev() {
        let data = format!("client {i} of {CLIENTS}\n");
        assert_eq!(echo(client, data.as_bytes()), data.as_bytes());
        assert_eq!(
            server.worker_pids().len(),
            CLIENTS,
            "a worker ended while client {i} was served"
        );
    }
}
