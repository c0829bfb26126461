//! The signal examples of `examples/`, run as built and driven with real
//! signals: each test waits for the line that says a program is ready for
//! the next signal before it sends one (signals coalesce, and a fixed sleep
//! would only guess), then asserts every line and how the program ended.
//!
//! A plain `cargo test` builds the examples before it runs this; `cargo
//! test --test examples` alone does not: `cargo build --examples` first.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use mpecho_testkit::{ChildGuard, Collected, example, send_signal};

/// An example program under test: its standard output read as it comes,
/// and the process killed and reaped on drop if it still runs.
struct Running {
    child: ChildGuard,
    stdout: Collected,
    pid: i32,
}

impl Running {
    fn start(name: &str, args: &[&str]) -> Running {
        let mut child = ChildGuard(
            Command::new(example(name))
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("start the example {name}: {e}")),
        );
        let stdout = Collected::from_pipe(child.0.stdout.take().expect("stdout is piped"));
        let pid = i32::try_from(child.0.id()).expect("a pid fits in an i32");
        Running { child, stdout, pid }
    }

    /// Waits until the program has printed at least `count` lines and
    /// returns the first `count` (`finish` sees whatever follows).
    fn lines(&self, count: usize) -> Vec<String> {
        let mut lines = self.stdout.wait_for_lines(count);
        lines.truncate(count);
        lines
    }

    fn signal(&self, sig: i32) {
        send_signal(self.pid, sig);
    }

    /// Waits for the program to exit and returns how it ended and every
    /// line it printed.
    fn finish(&mut self) -> (ExitStatus, Vec<String>) {
        let status = self.child.wait_exit();
        let text = self.stdout.wait_for_close();
        (status, text.lines().map(str::to_string).collect())
    }
}

/// `caught SIGINT: N lives left`, as `sigint_lives` counts down.
fn lives_left(left: u32) -> String {
    let lives = if left == 1 { "life" } else { "lives" };
    format!("caught SIGINT: {left} {lives} left")
}

/// Ten SIGINTs are caught, each answered by its own line counting the lives
/// left, and the eleventh ends the program by SIGINT's default action.
#[test]
fn sigint_lives_survives_ten_sigints_and_dies_of_the_eleventh() {
    let mut program = Running::start("sigint_lives", &[]);
    let mut expected = vec![format!("pid {}: press Ctrl-C (10 lives)", program.pid)];
    assert_eq!(program.lines(1), expected);
    for left in (0..10).rev() {
        program.signal(libc::SIGINT);
        expected.push(lives_left(left));
        assert_eq!(program.lines(expected.len()), expected);
    }
    // The tenth line, then the one saying the default action is back: only
    // then does the eleventh SIGINT go.
    expected
        .push("SIGINT has its default action again: the next Ctrl-C ends the program".to_string());
    assert_eq!(program.lines(expected.len()), expected);
    program.signal(libc::SIGINT);
    let (status, lines) = program.finish();
    assert_eq!(status.signal(), Some(libc::SIGINT), "{status}");
    assert_eq!(lines, expected);
}

/// The process's ignored signals, from the `SigIgn:` mask of
/// /proc/PID/status (bit N - 1 for signal N).
fn ignored_signals(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    let mask = status
        .lines()
        .find_map(|line| line.strip_prefix("SigIgn:"))
        .expect("a SigIgn: line");
    u64::from_str_radix(mask.trim(), 16).expect("a hexadecimal mask")
}

/// SIGINT sent twice during the countdown changes nothing: it is in the
/// process's ignored mask, the countdown goes on to `done`, and the
/// program exits 0.
#[test]
fn sigaction_ignore_counts_down_through_sigint_and_exits_0() {
    let mut program = Running::start("sigaction_ignore", &["--seconds", "2"]);
    let ready = program.lines(2);
    assert_eq!(
        ready,
        [
            format!(
                "pid {}: SIGINT is ignored; counting down 2 seconds",
                program.pid
            ),
            "2".to_string()
        ]
    );
    assert_ne!(
        ignored_signals(program.pid) & (1 << (libc::SIGINT - 1)),
        0,
        "SIGINT is not in the SigIgn mask"
    );
    program.signal(libc::SIGINT);
    assert_eq!(program.lines(3)[2], "1");
    program.signal(libc::SIGINT);
    let (status, lines) = program.finish();
    assert_eq!(status.code(), Some(0), "{status}");
    assert_eq!(
        lines,
        ready
            .into_iter()
            .chain(["1".into(), "done".into()])
            .collect::<Vec<_>>()
    );
}

/// With one second between alarms and two alarms, `Time out` comes once
/// per alarm, the second after the loop re-armed it, and the program exits
/// 0 no sooner than two seconds after it started.
#[test]
fn alarm_timeout_prints_time_out_at_every_alarm_then_exits_0() {
    let started = Instant::now();
    let mut program = Running::start("alarm_timeout", &["--interval", "1", "--count", "2"]);
    let (status, lines) = program.finish();
    let took = started.elapsed();
    assert_eq!(status.code(), Some(0), "{status}");
    assert_eq!(
        lines,
        [
            format!(
                "pid {}: `Time out` every 1 s, 2 times; Ctrl-C stops it",
                program.pid
            ),
            "Time out".to_string(),
            "Time out".to_string(),
            "2 alarms: done".to_string(),
        ]
    );
    assert!(
        took >= Duration::from_secs(2),
        "two one-second alarms in a row took {took:?}"
    );
}

/// SIGINT stops the program long before its first alarm: it says how many
/// alarms it had and exits 130 (128 + SIGINT).
#[test]
fn alarm_timeout_stops_at_sigint() {
    let mut program = Running::start("alarm_timeout", &["--interval", "60"]);
    let ready = program.lines(1);
    program.signal(libc::SIGINT);
    let (status, lines) = program.finish();
    assert_eq!(status.code(), Some(130), "{status}");
    assert_eq!(
        lines,
        [
            ready[0].clone(),
            "SIGINT: stopped after 0 of 5 alarms".to_string()
        ]
    );
}
