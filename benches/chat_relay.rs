//! Relay throughput of `mpecho chat-server`: datagrams relayed per second
//! among 10 clients on loopback, median of 3 runs.
//!
//! Each run: 10 UDP clients join; messages are sent round-robin from the 10
//! clients, each relayed by the server to the 9 others, with at most
//! `WINDOW` messages in flight so that socket buffers never overflow (a
//! loss would be counted, not hidden). Bounded: `MESSAGES` per run and a
//! 20 s deadline. Run with `cargo bench --bench chat_relay` (`MPECHO_BIN=PATH`
//! to measure another mpecho build).

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

const CLIENTS: usize = 10;
const MESSAGES: u64 = 20_000;
const WINDOW: u64 = 64;
const PAYLOAD: &[u8] = b"a 64-byte chat message, relayed to nine others by the server....";
const DEADLINE: Duration = Duration::from_secs(20);
const RUNS: usize = 3;

use mpecho_testkit::{Server, ServerOptions};

fn main() {
    let mut rates = Vec::new();
    for run in 1..=RUNS {
        let (rate, lost) = one_run();
        println!("run {run}: {rate:.0} relayed datagrams/s ({lost} lost)");
        rates.push(rate);
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "chat relay, {CLIENTS} clients, {}-byte messages: median {:.0} relayed datagrams/s over {RUNS} runs",
        PAYLOAD.len(),
        rates[RUNS / 2]
    );
}

fn one_run() -> (f64, u64) {
    let server = Server::start_with(ServerOptions {
        subcommand: "chat-server",
        args: vec![
            "-l".into(),
            "127.0.0.1:0".into(),
            "--log-level".into(),
            "warn".into(),
            "--max-clients".into(),
            CLIENTS.to_string(),
        ],
        // Ctrl-C on the bench stops the server too.
        own_process_group: false,
        ..ServerOptions::default()
    });
    let addr = server.addr;

    let sockets: Vec<UdpSocket> = (0..CLIENTS)
        .map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0").expect("bind a client socket");
            s.connect(addr).expect("connect to the relay");
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .expect("set a timeout");
            s
        })
        .collect();
    // Join one by one; each join is announced to those already there.
    for (i, s) in sockets.iter().enumerate() {
        s.send(&[]).expect("join");
        for earlier in &sockets[..i] {
            let mut buf = [0u8; 128];
            earlier
                .recv(&mut buf)
                .expect("receive a joined announcement");
        }
    }

    let received = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let receivers: Vec<_> = sockets
        .iter()
        .map(|s| {
            let s = s.try_clone().expect("clone a socket");
            let received = Arc::clone(&received);
            let done = Arc::clone(&done);
            thread::spawn(move || {
                let mut buf = [0u8; 256];
                while !done.load(Ordering::Relaxed) {
                    if s.recv(&mut buf).is_ok() {
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();

    let expected = MESSAGES * (CLIENTS as u64 - 1);
    let started = Instant::now();
    let mut sent = 0;
    while received.load(Ordering::Relaxed) < expected && started.elapsed() < DEADLINE {
        let in_flight = sent * (CLIENTS as u64 - 1) - received.load(Ordering::Relaxed);
        if sent < MESSAGES && in_flight < WINDOW * (CLIENTS as u64 - 1) {
            sockets[sent as usize % CLIENTS]
                .send(PAYLOAD)
                .expect("send a message");
            sent += 1;
        } else {
            thread::yield_now();
        }
    }
    let elapsed = started.elapsed();
    done.store(true, Ordering::Relaxed);
    for r in receivers {
        let _ = r.join();
    }
    let got = received.load(Ordering::Relaxed);
    let log = server.log();
    if !log.is_empty() {
        eprint!("the server logged:\n{log}");
    }
    (
        got as f64 / elapsed.as_secs_f64(),
        expected.saturating_sub(got),
    )
}
