//! Signals under sustained load: while clients keep the master's loop busy
//! (something is ready at every wake-up), SIGUSR1 and SIGTERM are still
//! acted on at once, not when the load stops.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Instant;

use mpecho_testkit::{Server, ServerOptions, TIMEOUT, log_time_ms};

/// Client threads connecting, echoing and closing as fast as they can
/// until told to stop (and at most for `TIMEOUT`).
struct Churn {
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<u64>>,
}

impl Churn {
    fn start(addr: SocketAddr, threads: usize) -> Churn {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..threads)
            .map(|_| {
                let stop = Arc::clone(&stop);
                thread::spawn(move || {
                    let started = Instant::now();
                    let mut done = 0;
                    while !stop.load(Ordering::Relaxed) && started.elapsed() < TIMEOUT {
                        let Ok(mut client) = TcpStream::connect(addr) else {
                            continue;
                        };
                        let _ = client.set_read_timeout(Some(TIMEOUT));
                        let mut back = [0u8; 6];
                        if client.write_all(b"churn\n").is_ok()
                            && client.read_exact(&mut back).is_ok()
                        {
                            done += 1;
                        }
                    }
                    done
                })
            })
            .collect();
        Churn { stop, threads }
    }

    /// Stops the clients; returns how many round trips they completed.
    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.threads
            .into_iter()
            .map(|t| t.join().unwrap_or(0))
            .sum()
    }
}

/// Milliseconds since the epoch, as log timestamps count them.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_millis() as i64
}

/// Sends SIGUSR1 three times and SIGTERM once to `server` while `load`
/// keeps it busy, and asserts each is acted on within a second (a figures
/// line, then `shutting down`). Returns once the SIGTERM is acted on.
fn assert_signals_answered_promptly(server: &Server, load: &str) {
    for round in 0..3 {
        let sent = now_ms();
        let figures = server.figures();
        let answered = log_time_ms(figures.line());
        assert!(
            answered - sent < 1_000,
            "SIGUSR1 {round} under {load} was answered {} ms later",
            answered - sent
        );
    }
    let sent = now_ms();
    server.signal(libc::SIGTERM);
    let line = server.wait_for_log_line(&["]: shutting down (SIGTERM received)"]);
    let answered = log_time_ms(&line);
    assert!(
        answered - sent < 1_000,
        "SIGTERM under {load} was acted on {} ms later",
        answered - sent
    );
}

/// Under a churn of clients, a SIGUSR1 is answered with a figures line
/// within a second (while the clients are still going), and so is a
/// SIGTERM with `shutting down`.
#[test]
fn signals_are_handled_at_once_under_sustained_load() {
    let mut server = Server::start(&["--monitor-interval", "0"]);
    let churn = Churn::start(server.addr, 8);
    server.wait_for_log_count("]: accept peer=", 200);
    assert_signals_answered_promptly(&server, "load");
    let completed = churn.stop();
    assert!(completed > 200, "only {completed} round trips: no load");
    let status = server.wait_exit(TIMEOUT);
    assert!(status.success(), "{status:?}");
}

/// Under a steady stream of datagrams, the chat relay answers SIGUSR1 with
/// its figures within a second, and SIGTERM too: its `ppoll` loop, like
/// the master's, never sleeps while datagrams keep arriving.
#[test]
fn the_chat_relay_handles_signals_under_a_stream_of_datagrams() {
    let mut relay = Server::start_with(ServerOptions {
        subcommand: "chat-server",
        ..ServerOptions::default()
    });
    // Three clients taking turns: each datagram is relayed to the two
    // others, so the relay has more to do per datagram than the sender and
    // its socket is never empty when it looks.
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (stop, relay_addr) = (Arc::clone(&stop), relay.addr);
        thread::spawn(move || {
            let clients: Vec<UdpSocket> = (0..3)
                .map(|_| UdpSocket::bind("127.0.0.1:0").expect("bind a UDP client"))
                .collect();
            let started = Instant::now();
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) && started.elapsed() < TIMEOUT {
                let client = &clients[sent as usize % clients.len()];
                if client.send_to(&[b'x'; 64], relay_addr).is_ok() {
                    sent += 1;
                }
            }
            sent
        })
    };
    relay.wait_for_log_line(&["]: ", " joined"]);
    assert_signals_answered_promptly(&relay, "a datagram stream");
    stop.store(true, Ordering::Relaxed);
    let datagrams = sender.join().unwrap_or(0);
    assert!(
        datagrams > 1_000,
        "only {datagrams} datagrams sent: no load"
    );
    assert!(relay.wait_exit(TIMEOUT).success());
}
