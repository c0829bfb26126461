//! What one connection costs: connect → echo 64 bytes → close through a
//! fresh worker, 1000 times one after another, against the real binary on
//! loopback; then the memory of the master and of 50 idle workers.
//!
//! Run with `cargo bench --bench roundtrip`; `MPECHO_BIN=PATH cargo bench
//! --bench roundtrip` measures another mpecho build instead (before/after
//! comparisons). Bounded: 1000 round trips and a 60 s deadline; the server
//! is stopped (SIGTERM, then SIGKILL) on exit, and what it logged (warnings
//! only) is shown.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const ROUND_TRIPS: usize = 1000;
const DEADLINE: Duration = Duration::from_secs(60);
/// Idle workers held open for the memory figures (PSS divides shared pages
/// among them, as in DESIGN §11).
const HELD: usize = 50;
const MESSAGE: &[u8; 64] = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n";

use mpecho_testkit::{Server, ServerOptions};

fn main() {
    let server = Server::start_with(ServerOptions {
        args: [
            "-l",
            "127.0.0.1:0",
            "--log-level",
            "warn",
            "--monitor-interval",
            "0",
        ]
        .map(String::from)
        .to_vec(),
        // Ctrl-C on the bench stops the server too.
        own_process_group: false,
        ..ServerOptions::default()
    });
    let addr = server.addr;

    let started = Instant::now();
    let mut samples = Vec::with_capacity(ROUND_TRIPS);
    let mut back = [0u8; MESSAGE.len()];
    for _ in 0..ROUND_TRIPS {
        if started.elapsed() > DEADLINE {
            eprintln!("deadline reached after {} round trips", samples.len());
            break;
        }
        let t = Instant::now();
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).expect("set TCP_NODELAY");
        stream.write_all(MESSAGE).expect("send");
        stream.read_exact(&mut back).expect("read the echo");
        drop(stream);
        samples.push(t.elapsed());
        assert_eq!(&back, MESSAGE, "echo differs");
    }
    samples.sort_unstable();
    let pct = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
    println!(
        "connect→echo→close through a fresh worker, {} round trips: median {:?}, p90 {:?}, p99 {:?}, min {:?}, max {:?} ({:.0} per second, sequential)",
        samples.len(),
        pct(0.5),
        pct(0.9),
        pct(0.99),
        samples[0],
        samples[samples.len() - 1],
        samples.len() as f64 / started.elapsed().as_secs_f64()
    );

    let master = server.pid;
    let mut held = Vec::with_capacity(HELD);
    for _ in 0..HELD {
        let mut stream = TcpStream::connect(addr).expect("connect a held client");
        stream.write_all(MESSAGE).expect("send");
        stream.read_exact(&mut back).expect("read the echo");
        held.push(stream);
    }
    let workers = server.worker_pids();
    assert_eq!(workers.len(), HELD, "one worker per held client");
    let kb =
        |pid: i32, file: &str, key: &str| proc_kb(&format!("/proc/{pid}/{file}"), key).unwrap_or(0);
    let average = |file: &str, key: &str| {
        workers.iter().map(|&w| kb(w, file, key)).sum::<u64>() / workers.len() as u64
    };
    println!(
        "master (pid {master}) with {HELD} idle workers: RSS {} kB, PSS {} kB",
        kb(master, "status", "VmRSS:"),
        kb(master, "smaps_rollup", "Pss:")
    );
    println!(
        "idle worker, average of {HELD}: RSS {} kB, PSS {} kB",
        average("status", "VmRSS:"),
        average("smaps_rollup", "Pss:")
    );
    drop(held);
    let log = server.log();
    if !log.is_empty() {
        eprint!("the server logged:\n{log}");
    }
}

fn proc_kb(path: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
