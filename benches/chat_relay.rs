//! Relay throughput of `mpecho chat-server`: datagrams relayed per second
//! among 10 clients on loopback, median of 3 runs.
//!
//! Each run: 10 UDP clients join; messages are sent round-robin from the 10
//! clients, each relayed by the server to the 9 others, with at most
//! `WINDOW` messages in flight so that socket buffers never overflow (a
//! loss would be counted, not hidden). Bounded: `MESSAGES` per run and a
//! 20 s deadline. Run with `cargo bench --bench chat_relay` (`MPECHO_BIN=PATH`
//! to measure another mpecho build).

use mpecho_testkit::{Server, ServerOptions};

#[path = "shared/chat_load.rs"]
mod chat_load;

use chat_load::{CLIENTS, PAYLOAD, RUNS, joined_clients, measure, median};

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

    let sockets = joined_clients(&[addr]);

    let (rate, lost) = measure(&sockets);
    let log = server.log();
    if !log.is_empty() {
        eprint!("the server logged:\n{log}");
    }
    (rate, lost)
}
