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
use std::time::Duration;

use mpecho_testkit::{Server, ServerOptions};

#[path = "shared/chat_load.rs"]
mod chat_load;

use chat_load::{CLIENTS, PAYLOAD, RUNS, measure, median};

fn main() {
    let mut rates = Vec::new();
    for run in 1..=RUNS {
        let (rate, lost) = one_run();
        println!("run {run}: {rate:.0} relayed datagrams/s ({lost} lost)");
        rates.push(rate);
    }
    println!(
        "chat relay, {CLIENTS} clients, {}-byte messages: median {:.0} relayed datagrams/s over {RUNS} runs",
        PAYLOAD.len(),
        median(rates)
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

    let (rate, lost) = measure(&sockets);
    let log = server.log();
    if !log.is_empty() {
        eprint!("the server logged:\n{log}");
    }
    (rate, lost)
}
