//! Bounds and refusals: an unreachable or silent target, oversized buffers,
//! bad options; and spawn-probe, which needs no server.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mpecho_testkit::{ChildGuard, TIMEOUT, text, wait_for};

use crate::{bench_json, mpecho_bench_bin, num, parse_report, run_mpecho_bench};

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
    let output = run_mpecho_bench(
        &[
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
        Command::new(mpecho_bench_bin())
            .args(["spawn-probe", "--duration", "0.3", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start mpecho-bench spawn-probe"),
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
        &["churn", "-c", "0"][..],
        &["steady", "--duration", "0"],
        &["hold", "--size", "0"],
        &["hold", "--target", "127.0.0.1"],
        &["stampede"],
        &["churn", "--timeout", "forever"],
    ] {
        let output = run_mpecho_bench(args, b"");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(output.stdout.is_empty(), "{args:?}");
        let stderr = text(&output.stderr);
        assert!(stderr.contains("Usage: mpecho-bench"), "{args:?}: {stderr}");
    }
}
