//! `mpecho-bench` as users run it: each scenario against the real mpecho
//! server, byte verification against deliberately corrupting servers, its
//! bounds when the target is unreachable or silent, and the executable on
//! its own. Every test runs the real binaries through the shared testkit.
//!
//! This test target is also what makes `cargo test` build the
//! `mpecho-bench` executable: Cargo builds a package's binaries only for its
//! own integration tests.

mod bounds;
mod cli;
mod corrupting;
mod scenarios;

use std::path::Path;
use std::process::Output;

use mpecho_testkit::{run_binary, text};
use serde_json::Value;

/// The `mpecho-bench` executable cargo built for these tests.
pub fn mpecho_bench_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_mpecho-bench"))
}

/// Runs `mpecho-bench ARGS` with `stdin` as its input, bounded in time.
pub fn run_mpecho_bench(args: &[&str], stdin: &[u8]) -> Output {
    run_binary(mpecho_bench_bin(), args, stdin)
}

/// Runs `mpecho-bench ARGS --json` and returns its output and the one JSON
/// object it printed on stdout.
pub fn bench_json(args: &[&str]) -> (Output, Value) {
    let mut all = args.to_vec();
    all.push("--json");
    let output = run_mpecho_bench(&all, b"");
    (output.clone(), parse_report(&output))
}

/// The JSON report on stdout: exactly one object on one line.
pub fn parse_report(output: &Output) -> Value {
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
pub fn num(report: &Value, path: &str) -> f64 {
    path.split('.')
        .try_fold(report, |v, key| v.get(key))
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("no number at {path} in {report}"))
}

/// What every clean run reports: operations done, no error of any kind,
/// percentiles in order, a throughput and the generator's own CPU time.
pub fn assert_clean_run(output: &Output, report: &Value, unit: &str) {
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
