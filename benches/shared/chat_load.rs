//! The load both chat benches put on relays (`chat_relay.rs`, one relay;
//! `chat_cluster.rs`, relays sharing a room through Redis), defined once so
//! that their figures compare: round-robin senders, each message delivered
//! to every other client, at most `WINDOW` messages in flight so that no
//! buffer overflows (a loss is counted, not hidden), bounded by `MESSAGES`
//! and `DEADLINE`. Included by both with `#[path]`; a bench of its own it
//! is not (cargo finds only `benches/*.rs`).

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

pub const CLIENTS: usize = 10;
pub const MESSAGES: u64 = 20_000;
pub const WINDOW: u64 = 64;
pub const PAYLOAD: &[u8] = b"a 64-byte chat message, relayed to nine others by the server....";
pub const DEADLINE: Duration = Duration::from_secs(20);
pub const RUNS: usize = 3;

/// The median of `rates`.
pub fn median(mut rates: Vec<f64>) -> f64 {
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

/// `CLIENTS` clients spread round-robin over `relays`, joined one by one:
/// each join is announced to every client already there (on any relay),
/// so the next join cannot race the announcement.
pub fn joined_clients(relays: &[SocketAddr]) -> Vec<UdpSocket> {
    let sockets: Vec<UdpSocket> = (0..CLIENTS)
        .map(|i| {
            let s = UdpSocket::bind("127.0.0.1:0").expect("bind a client socket");
            s.connect(relays[i % relays.len()])
                .expect("connect to a relay");
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .expect("set a timeout");
            s
        })
        .collect();
    for (i, s) in sockets.iter().enumerate() {
        s.send(&[]).expect("join");
        for earlier in &sockets[..i] {
            let mut buf = [0u8; 128];
            earlier
                .recv(&mut buf)
                .expect("receive a joined announcement");
        }
    }
    sockets
}

/// Sends `MESSAGES` round-robin from the joined `sockets`, each delivered
/// to the others, and returns the datagrams delivered per second and how
/// many never arrived.
pub fn measure(sockets: &[UdpSocket]) -> (f64, u64) {
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
