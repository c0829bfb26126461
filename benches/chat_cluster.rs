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

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use mpecho_testkit::{Collected, Server, ServerOptions};

const CLIENTS: usize = 10;
const MESSAGES: u64 = 20_000;
const WINDOW: u64 = 64;
const PAYLOAD: &[u8] = b"a 64-byte chat message, relayed to nine others by the server....";
const DEADLINE: Duration = Duration::from_secs(20);
const RUNS: usize = 3;

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
    let alone = median(|| one_run(None));
    let redis = start_redis();
    let shared = median(|| one_run(Some(redis.1)));
    println!(
        "chat, {CLIENTS} clients, {}-byte messages, median of {RUNS} runs: one relay {alone:.0} \
         delivered datagrams/s; two relays through Redis {shared:.0}",
        PAYLOAD.len()
    );
}

fn median(mut run: impl FnMut() -> (f64, u64)) -> f64 {
    let mut rates: Vec<f64> = (1..=RUNS)
        .map(|i| {
            let (rate, lost) = run();
            println!("run {i}: {rate:.0} delivered datagrams/s ({lost} lost)");
            rate
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    rates[RUNS / 2]
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
    let sockets: Vec<UdpSocket> = (0..CLIENTS)
        .map(|i| {
            let s = UdpSocket::bind("127.0.0.1:0").expect("bind a client socket");
            s.connect(addrs[i % addrs.len()])
                .expect("connect to a relay");
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .expect("set a timeout");
            s
        })
        .collect();
    // Join one by one; each join is announced to every client already there
    // (on either relay), so the next join cannot race the announcement.
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
    if lost > 0 {
        for relay in &relays {
            eprint!("a relay logged:\n{}", relay.log());
        }
    }
    (rate, lost)
}

fn measure(sockets: &[UdpSocket]) -> (f64, u64) {
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
    let fanout = CLIENTS as u64 - 1;
    let expected = MESSAGES * fanout;
    let started = Instant::now();
    let mut sent = 0;
    while received.load(Ordering::Relaxed) < expected && started.elapsed() < DEADLINE {
        let in_flight = (sent * fanout).saturating_sub(received.load(Ordering::Relaxed));
        if sent < MESSAGES && in_flight < WINDOW * fanout {
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
    (
        got as f64 / elapsed.as_secs_f64(),
        expected.saturating_sub(got),
    )
}
