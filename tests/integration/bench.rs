//! `mpecho bench`: each scenario against the real server, the figures its
//! JSON report gives, byte verification against deliberately corrupting
//! servers, and what it does when the target is unreachable or silent.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;

use mpecho_testkit::{ChildGuard, Server, TIMEOUT, mpecho_bin, run_mpecho, text, wait_for};

/// Runs `mpecho bench ARGS --json` and returns its output and the one JSON
/// object it printed on stdout.
fn bench_json(args: &[&str]) -> (Output, Value) {
    let mut all = vec!["bench"];
    all.extend_from_slice(args);
    all.push("--json");
    let output = run_mpecho(&all, b"");
    (output.clone(), parse_report(&output))
}

/// The JSON report on stdout: exactly one object on one line.
fn parse_report(output: &Output) -> Value {
    let stdout = text(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "expected one line of JSON on stdout, got {stdout:?}; stderr:\n{}",
        text(&output.stderr)
    );
    let value: Value = serde_json::from_str(lines[0])
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", lines[0]));
    assert!(value.is_object(), "not a JSON object: {value}");
    value
}

/// A number in the report at `path` (`latency_us.p50`); fails if missing.
fn num(report: &Value, path: &str) -> f64 {
    path.split('.')
        .try_fold(report, |v, key| v.get(key))
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("no number at {path} in {report}"))
}

/// What every clean run reports: operations done, no error of any kind,
/// percentiles in order, a throughput and the generator's own CPU time.
fn assert_clean_run(output: &Output, report: &Value, unit: &str) {
    assert!(
        output.status.success(),
        "bench failed ({}): {report}\nstderr:\n{}",
        output.status,
        text(&output.stderr)
    );
    assert_eq!(report["unit"], unit, "{report}");
    assert!(
        num(report, "completed") > 0.0,
        "nothing completed: {report}"
    );
    assert!(num(report, "throughput_per_sec") > 0.0, "{report}");
    for kind in [
        "total", "refused", "reset", "timeout", "mismatch", "eof", "other",
    ] {
        assert_eq!(num(report, &format!("errors.{kind}")), 0.0, "{report}");
    }
    assert_eq!(report["error_examples"], serde_json::json!({}), "{report}");
    assert!(report["unreachable"].is_null(), "{report}");
    for histogram in ["latency_us", "connect_us"] {
        let p = |q: &str| num(report, &format!("{histogram}.{q}"));
        assert!(p("count") > 0.0, "{histogram} is empty: {report}");
        assert!(
            0.0 < p("p50")
                && p("p50") <= p("p90")
                && p("p90") <= p("p99")
                && p("p99") <= p("p99_9")
                && p("p99_9") <= p("max"),
            "{histogram} percentiles out of order: {report}"
        );
    }
    assert!(num(report, "cpu.total_secs") >= 0.0, "{report}");
    let cpu = num(report, "cpu.user_secs") + num(report, "cpu.system_secs");
    assert!(
        (cpu - num(report, "cpu.total_secs")).abs() < 0.002,
        "{report}"
    );
    assert!(num(report, "cpu.per_op_us") >= 0.0, "{report}");
}

/// churn against the real server: connections opened, echoed, verified and
/// closed in a loop; the latency count is the number of connections.
#[test]
fn churn_against_the_server_reports_verified_connections() {
    let server = Server::start(&[]);
    let target = server.addr.to_string();
    let (output, report) =
        bench_json(&["churn", "--target", &target, "-c", "2", "--duration", "0.5"]);
    assert_clean_run(&output, &report, "connection");
    assert_eq!(report["scenario"], "churn");
    let completed = num(&report, "completed");
    assert_eq!(num(&report, "latency_us.count"), completed, "{report}");
    assert_eq!(num(&report, "bytes_verified"), completed * 64.0, "{report}");
    assert!(num(&report, "elapsed_secs") >= 0.5, "{report}");
}

/// steady against the real server: persistent connections doing round
/// trips of 1000 bytes, every one verified.
#[test]
fn steady_against_the_server_reports_verified_round_trips() {
    let server = Server::start(&[]);
    let target = server.addr.to_string();
    let (output, report) = bench_json(&[
        "steady",
        "--target",
        &target,
        "-c",
        "4",
        "--size",
        "1000",
        "--duration",
        "0.5",
    ]);
    assert_clean_run(&output, &report, "round trip");
    assert_eq!(report["scenario"], "steady");
    assert_eq!(num(&report, "opened"), 4.0, "{report}");
    assert_eq!(num(&report, "connect_us.count"), 4.0, "{report}");
    // The open phase verifies one echo per connection, untimed.
    assert_eq!(
        num(&report, "bytes_verified"),
        (num(&report, "completed") + 4.0) * 1000.0,
        "{report}"
    );
}

/// hold against the real server: every connection is verified, held (the
/// server really has a worker for each meanwhile) and verified again.
#[test]
fn hold_keeps_every_connection_and_reports_survivors() {
    let server = Server::start(&[]);
    let target = server.addr.to_string();
    let mut bench = ChildGuard(
        Command::new(mpecho_bin())
            .args(["bench", "hold", "--target", &target])
            .args(["-c", "20", "--duration", "1", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start mpecho bench"),
    );
    server.wait_for_workers(20);
    let output = bench.wait_output();
    let report = parse_report(&output);
    assert_clean_run(&output, &report, "connection");
    assert_eq!(report["scenario"], "hold");
    assert_eq!(num(&report, "survivors"), 20.0, "{report}");
    assert_eq!(num(&report, "opened"), 20.0, "{report}");
    assert_eq!(num(&report, "completed"), 20.0, "{report}");
    assert_eq!(num(&report, "connect_us.count"), 20.0, "{report}");
    assert_eq!(num(&report, "latency_us.count"), 40.0, "{report}");
    assert!(num(&report, "held_secs") >= 1.0, "{report}");
    assert!(num(&report, "open_secs") > 0.0, "{report}");
}

/// The human report (without --json) names the figures and says there
/// were no errors.
#[test]
fn human_report_shows_throughput_latency_errors_and_cpu() {
    let server = Server::start(&[]);
    let target = server.addr.to_string();
    let output = run_mpecho(
        &[
            "bench",
            "steady",
            "--target",
            &target,
            "-c",
            "2",
            "--duration",
            "0.3",
        ],
        b"",
    );
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    for expected in [
        "round trips/s",
        "p50 ",
        "p99.9 ",
        "max ",
        "errors     none",
        "own CPU",
        "per round trip",
    ] {
        assert!(stdout.contains(expected), "no {expected:?} in:\n{stdout}");
    }
}

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

/// Nothing listening: the run stops at once, counts the refusal, says so
/// plainly and exits 1.
#[test]
fn an_unreachable_target_is_refused_and_fails() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let target = format!("127.0.0.1:{port}");
    for scenario in ["churn", "steady", "hold"] {
        let started = Instant::now();
        let (output, report) = bench_json(&[scenario, "--target", &target, "--duration", "5"]);
        assert_eq!(output.status.code(), Some(1), "{scenario}: {report}");
        assert!(
            num(&report, "errors.refused") >= 1.0,
            "{scenario}: {report}"
        );
        assert_eq!(
            num(&report, "errors.total"),
            num(&report, "errors.refused"),
            "{scenario}: only refusals: {report}"
        );
        assert_eq!(num(&report, "completed"), 0.0, "{scenario}: {report}");
        let reason = report["unreachable"].as_str().unwrap_or_default();
        assert!(reason.contains("refused"), "{scenario}: {report}");
        let stderr = text(&output.stderr);
        assert!(
            stderr.contains(&format!("could not connect to {target}"))
                && stderr.contains("refused"),
            "{scenario}: stderr: {stderr}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{scenario}: an unreachable target should end the run at once"
        );
    }
}

/// More request buffer than a run may allocate is refused before anything
/// is opened, with a message saying what to change.
#[test]
fn oversized_buffers_are_refused_up_front() {
    let output = run_mpecho(
        &[
            "bench",
            "hold",
            "-c",
            "100000",
            "--size",
            "1048576",
            "--target",
            "127.0.0.1:9",
        ],
        b"",
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("smaller --size"), "{stderr}");
}

/// A server that accepts but never answers: every echo times out, the run
/// still ends within its bounds, and the timeouts are counted.
#[test]
fn a_silent_server_times_out_and_the_run_stays_bounded() {
    // Connections complete in the listen backlog; nothing is ever read.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = silent.local_addr().unwrap().to_string();
    let started = Instant::now();
    let (output, report) = bench_json(&[
        "churn",
        "--target",
        &target,
        "-c",
        "2",
        "--duration",
        "0.3",
        "--timeout",
        "0.3",
    ]);
    assert_eq!(output.status.code(), Some(1), "{report}");
    assert!(num(&report, "errors.timeout") >= 2.0, "{report}");
    assert_eq!(num(&report, "completed"), 0.0, "{report}");
    assert!(report["unreachable"].is_null(), "{report}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    drop(silent);
}

/// spawn-probe measures spawns per second with one and with two children
/// in flight; its program is an executable temporary file while it runs,
/// removed afterwards.
#[test]
fn spawn_probe_reports_spawns_per_second() {
    let mut probe = ChildGuard(
        Command::new(mpecho_bin())
            .args(["bench", "spawn-probe", "--duration", "0.3", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start mpecho bench spawn-probe"),
    );
    let program = std::env::temp_dir().join(format!("mpecho-spawn-probe-{}", probe.0.id()));
    let mode = wait_for("the probe program on disk", TIMEOUT, || {
        std::fs::metadata(&program)
            .ok()
            .map(|m| m.permissions().mode() & 0o777)
    });
    assert_eq!(mode, 0o755, "{}", program.display());
    let output = probe.wait_output();
    let report = parse_report(&output);
    assert!(
        output.status.success(),
        "{report}\nstderr:\n{}",
        text(&output.stderr)
    );
    assert!(!program.exists(), "{} was left behind", program.display());
    assert_eq!(report["scenario"], "spawn-probe");
    assert!(num(&report, "program_bytes") > 0.0, "{report}");
    for round in ["in_flight_1", "in_flight_2"] {
        let figure = |name: &str| num(&report, &format!("{round}.{name}"));
        assert!(figure("spawns") > 0.0, "{report}");
        assert_eq!(figure("failures"), 0.0, "{report}");
        assert!(figure("spawns_per_sec") > 0.0, "{report}");
        assert!(figure("us_per_spawn") > 0.0, "{report}");
    }
}

/// Bad options are usage errors: status 2 and the scenario's usage.
#[test]
fn bad_options_are_usage_errors() {
    for args in [
        &["bench", "churn", "-c", "0"][..],
        &["bench", "steady", "--duration", "0"],
        &["bench", "hold", "--size", "0"],
        &["bench", "hold", "--target", "127.0.0.1"],
        &["bench", "stampede"],
        &["bench", "churn", "--timeout", "forever"],
    ] {
        let output = run_mpecho(args, b"");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(output.stdout.is_empty(), "{args:?}");
        let stderr = text(&output.stderr);
        assert!(stderr.contains("Usage: mpecho bench"), "{args:?}: {stderr}");
    }
}
