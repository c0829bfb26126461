//! Verification: servers that corrupt, swap or duplicate what they echo
//! are caught, counted as mismatches, shown, and fail the run.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};

use mpecho_testkit::{TIMEOUT, text};

use crate::{bench_json, num};

/// How a `CorruptingServer` betrays its clients.
#[derive(Clone, Copy)]
enum Corruption {
    /// The third chunk each connection echoes has one byte flipped.
    FlipOneByte,
    /// Connections are paired and each gets the other's bytes.
    SwapConnections,
    /// Every chunk is echoed twice.
    Duplicate,
}

/// A tiny echo server, thread per connection, that corrupts what it
/// echoes. Stopped (and its acceptor joined) on drop; connection threads
/// end when the client closes, or after their read timeout.
struct CorruptingServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl CorruptingServer {
    fn start(corruption: Corruption) -> CorruptingServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the corrupting server");
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let acceptor = thread::spawn(move || {
            let mut unpaired: Option<TcpStream> = None;
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                stream.set_read_timeout(Some(TIMEOUT)).unwrap();
                match corruption {
                    Corruption::SwapConnections => match unpaired.take() {
                        None => unpaired = Some(stream),
                        Some(first) => {
                            let (a, b) = (first.try_clone().unwrap(), stream.try_clone().unwrap());
                            thread::spawn(move || relay(first, stream, corruption));
                            thread::spawn(move || relay(b, a, corruption));
                        }
                    },
                    _ => {
                        let back = stream.try_clone().unwrap();
                        thread::spawn(move || relay(stream, back, corruption));
                    }
                }
            }
        });
        CorruptingServer {
            addr,
            stop,
            acceptor: Some(acceptor),
        }
    }
}

impl Drop for CorruptingServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the acceptor from accept() so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// Copies what `from` sends to `to`, corrupted, until `from` closes.
fn relay(mut from: TcpStream, mut to: TcpStream, corruption: Corruption) {
    let mut buf = [0u8; 4096];
    let mut chunks = 0;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        chunks += 1;
        let data = &mut buf[..n];
        if let Corruption::FlipOneByte = corruption
            && chunks == 3
        {
            data[n / 2] ^= 0x10;
        }
        let copies = if let Corruption::Duplicate = corruption {
            2
        } else {
            1
        };
        if (0..copies).any(|_| to.write_all(data).is_err()) {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
}

/// steady against a corrupting server: the bench counts mismatches, shows
/// one, and exits 1.
fn assert_corruption_caught(corruption: Corruption) {
    let server = CorruptingServer::start(corruption);
    let target = server.addr.to_string();
    let (output, report) = bench_json(&[
        "steady",
        "--target",
        &target,
        "-c",
        "2",
        "--duration",
        "0.3",
        "--timeout",
        "1",
    ]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "a corrupting server must fail the run: {report}"
    );
    assert!(
        num(&report, "errors.mismatch") > 0.0,
        "no mismatch counted: {report}"
    );
    assert!(num(&report, "errors.total") >= num(&report, "errors.mismatch"));
    let example = report["error_examples"]["mismatch"]
        .as_str()
        .unwrap_or_else(|| panic!("no mismatch example: {report}"));
    assert!(example.contains("request"), "{example}");
    let stderr = text(&output.stderr);
    assert!(stderr.contains("errors counted"), "stderr: {stderr}");
}

/// A server that flips one byte of one chunk per connection is caught.
#[test]
fn a_server_flipping_one_byte_is_caught() {
    assert_corruption_caught(Corruption::FlipOneByte);
}

/// A server that sends each connection's bytes to another connection
/// (cross-talk) is caught.
#[test]
fn a_server_swapping_data_between_connections_is_caught() {
    assert_corruption_caught(Corruption::SwapConnections);
}

/// A server that echoes everything twice (duplication) is caught.
#[test]
fn a_server_duplicating_its_echo_is_caught() {
    assert_corruption_caught(Corruption::Duplicate);
}
