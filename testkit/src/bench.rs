//! The load generator as tests run it: `mpecho-bench` against any target
//! (a master, or a balancer in front of several), its JSON report read once
//! it has finished. Bounded like every child: killed and reaped on drop.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::bin::binary;
use crate::child::ChildGuard;
use crate::wait::TIMEOUT;

/// Starts `mpecho-bench SCENARIO` (`churn`, `steady`, `hold`) against
/// `target` with `connections` for `secs` seconds, its report as JSON on
/// a pipe.
pub fn start_bench(
    target: SocketAddr,
    scenario: &str,
    connections: &str,
    secs: &str,
) -> ChildGuard {
    let child = Command::new(binary("mpecho-bench"))
        .args([scenario, "--target", &target.to_string()])
        .args(["-c", connections, "--duration", secs, "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mpecho-bench");
    ChildGuard(child)
}

/// The bench's report, once it has finished. A bench that exits non-zero
/// (it does when it counted errors) still has its report read: the caller
/// asserts on the counts, which say more than the status.
pub fn bench_report(bench: &mut ChildGuard) -> serde_json::Value {
    bench_report_within(bench, TIMEOUT)
}

/// `bench_report`, waiting up to `within` for the bench to finish: for a
/// bench whose `--duration` is still running when its report is asked for
/// (the time left of it plus `TIMEOUT`).
pub fn bench_report_within(bench: &mut ChildGuard, within: Duration) -> serde_json::Value {
    let output = bench.wait_output_within(within);
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "mpecho-bench gave no JSON report ({e}; {}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
    })
}
