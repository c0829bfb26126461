//! Each scenario against the real mpecho server: clean runs, verified
//! bytes, and the figures of the JSON and the human report.

use std::process::{Command, Stdio};

use mpecho_testkit::{ChildGuard, Server, text};

use crate::{assert_clean_run, bench_json, mpecho_bench_bin, num, parse_report, run_mpecho_bench};

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
        Command::new(mpecho_bench_bin())
            .args(["hold", "--target", &target])
            .args(["-c", "20", "--duration", "1", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start mpecho-bench"),
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
    let output = run_mpecho_bench(
        &[
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

/// `mpecho-bench churn --expect-close ... --json` against `target`, the
/// options written as on a command line.
fn expect_close_json(target: &str, options: &str) -> (std::process::Output, serde_json::Value) {
    let line = format!("churn --target {target} --expect-close {options}");
    bench_json(&line.split_whitespace().collect::<Vec<_>>())
}

/// churn --expect-close against a master whose workers do nothing (the
/// ceiling): every connection is closed by the server with nothing sent,
/// and each such close counts as one completed connection.
#[test]
fn expect_close_counts_the_closes_of_do_nothing_workers() {
    let server = Server::start(&["--do-nothing-workers"]);
    let (output, report) = expect_close_json(&server.addr.to_string(), "-c 2 --duration 0.5");
    assert_clean_run(&output, &report, "connection");
    assert_eq!(report["scenario"], "churn");
    assert_eq!(report["expect_close"], true, "{report}");
    let completed = num(&report, "completed");
    assert_eq!(num(&report, "latency_us.count"), completed, "{report}");
    assert_eq!(num(&report, "bytes_verified"), 0.0, "{report}");
    server.wait_for_log_count("exited status=0", completed as usize);
}

/// churn --expect-close against a real echo server: its workers wait for
/// the client, so no close comes, and every connection fails as a
/// timeout instead of passing for a ceiling.
#[test]
fn expect_close_against_an_echo_server_times_out() {
    let server = Server::start(&[]);
    let (output, report) = expect_close_json(
        &server.addr.to_string(),
        "-c 2 --duration 0.2 --timeout 0.3",
    );
    assert_eq!(output.status.code(), Some(1), "{report}");
    assert_eq!(num(&report, "completed"), 0.0, "{report}");
    assert_eq!(num(&report, "errors.timeout"), 2.0, "{report}");
    let example = report["error_examples"]["timeout"].as_str();
    assert!(
        example.is_some_and(|m| m.contains("not closed by the server")),
        "{report}"
    );
}
