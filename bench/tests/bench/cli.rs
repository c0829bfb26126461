//! The `mpecho-bench` executable on its own, without a server: what it
//! says about itself and how it treats its standard output.

use std::io::{self, Read};
use std::process::{Command, Stdio};

fn mpecho_bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mpecho-bench"))
}

/// `--help` names every scenario, on stdout, with status 0.
#[test]
fn help_names_every_scenario() {
    let output = mpecho_bench()
        .arg("--help")
        .output()
        .expect("run mpecho-bench --help");
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("Usage: mpecho-bench <COMMAND>"), "{stdout}");
    for scenario in ["churn", "steady", "hold", "spawn-probe"] {
        assert!(
            stdout.lines().any(|l| l.trim_start().starts_with(scenario)),
            "no {scenario} in:\n{stdout}"
        );
    }
}

/// A report written to a closed pipe (`mpecho-bench ... | head -0`) is
/// not an error: the status is the run's, and nothing is said about it.
#[test]
fn a_closed_stdout_is_not_an_error() {
    let (reader, writer) = io::pipe().expect("create a pipe");
    drop(reader);
    let mut child = mpecho_bench()
        .args(["spawn-probe", "--duration", "0.05"])
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mpecho-bench spawn-probe");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr is piped")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    let status = child.wait().expect("wait for mpecho-bench");
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
    assert!(stderr.is_empty(), "stderr: {stderr}");
}
