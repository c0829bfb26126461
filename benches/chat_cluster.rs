//! Relay throughput across relays sharing a room through Redis (`chat-server
//! --redis`), beside one relay alone: datagrams delivered per second among
//! 10 clients on loopback, median of 3 runs each.
//!
//! Same load as `chat_relay.rs` (round-robin senders, each message
//! delivered to the 9 others, at most `WINDOW` messages in flight so that no
//! buffer overflows; a loss is counted, not hidden), once with the 10
//! clients on one relay, once with 5 on each of two relays in one room of a
//! `redis-server` started here (Debian's package) on a free loopback port
//! and killed at the end. Bounded: `MESSAGES` per run, a 20 s deadline.
//! Run with `cargo bench --bench chat_cluster`.

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use mpecho_testkit::{Collected, Server, ServerOptions};

#[path = "shared/chat_load.rs"]
mod chat_load;

use chat_load::{CLIENTS, PAYLOAD, RUNS, joined_clients, measure, median};

/// The bench's own redis-server, killed on drop.
struct Redis(Child, u16);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_redis() -> Redis {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("find a free port")
        .port();
    let mut child = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start redis-server (apt-get install redis-server)");
    let out = Collected::from_pipe(child.stdout.take().expect("piped stdout"));
    let redis = Redis(child, port);
    out.wait_for_line(&["Ready to accept connections"]);
    redis
}

fn main() {
    let redis = start_redis();
    // Interleaved, one relay then two through Redis in each round, so that
    // the machine's drift touches both alike.
    let (mut alone, mut shared) = (Vec::new(), Vec::new());
    for round in 1..=RUNS {
        for (setup, port, rates) in [
            ("one relay", None, &mut alone),
            ("two relays through Redis", Some(redis.1), &mut shared),
        ] {
            let (rate, lost) = one_run(port);
            println!("round {round}, {setup}: {rate:.0} delivered datagrams/s ({lost} lost)");
            rates.push(rate);
        }
    }
    println!(
        "chat, {CLIENTS} clients, {}-byte messages, interleaved, median of {RUNS} runs: one relay \
         {:.0} delivered datagrams/s; two relays through Redis {:.0}",
        PAYLOAD.len(),
        median(alone),
        median(shared)
    );
}

fn start_relay(redis_port: Option<u16>, room: &str) -> Server {
    let mut args: Vec<String> = ["-l", "127.0.0.1:0", "--max-clients"]
        .map(String::from)
        .to_vec();
    args.push(CLIENTS.to_string());
    if let Some(port) = redis_port {
        args.extend([
            "--redis".into(),
            format!("redis://127.0.0.1:{port}"),
            "--room".into(),
            room.into(),
        ]);
    }
    let relay = Server::start_with(ServerOptions {
        subcommand: "chat-server",
        args,
        own_process_group: false,
        ..ServerOptions::default()
    });
    if redis_port.is_some() {
        relay.wait_for_log_line(&["cluster up:"]);
    }
    relay
}

fn one_run(redis_port: Option<u16>) -> (f64, u64) {
    static ROOM: AtomicU64 = AtomicU64::new(0);
    let room = format!("bench{}", ROOM.fetch_add(1, Ordering::Relaxed));
    let relays: Vec<Server> = match redis_port {
        None => vec![start_relay(None, &room)],
        Some(_) => vec![
            start_relay(redis_port, &room),
            start_relay(redis_port, &room),
        ],
    };
    let addrs: Vec<SocketAddr> = relays.iter().map(|r| r.addr).collect();
    let sockets = joined_clients(&addrs);
    let (rate, lost) = measure(&sockets);
    if lost > 0 {
        for relay in &relays {
            eprint!("a relay logged:\n{}", relay.log());
        }
    }
    (rate, lost)
}
