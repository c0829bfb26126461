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

use mpecho_testkit::{
    ChildGuard, Collected, Subreaper, children_of, example, reap_adopted, send_signal,
};

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

/// What each child of `reap_children` is meant to do (its `forked` line)
/// and how it must be reported reaped, in the order they are forked.
const CHILDREN: [(&str, &str); 5] = [
    ("exit with status 0", "exited with status 0"),
    ("exit with status 1", "exited with status 1"),
    ("exit with status 42", "exited with status 42"),
    ("be killed by SIGTERM", "killed by SIGTERM"),
    ("be killed by SIGKILL", "killed by SIGKILL"),
];

/// The pids and plans of the `forked child PID: it will PLAN` lines.
fn forked_children(lines: &[String]) -> Vec<(i32, String)> {
    lines
        .iter()
        .filter_map(|line| {
            let (pid, plan) = line
                .strip_prefix("forked child ")?
                .split_once(": it will ")?;
            Some((pid.parse().expect("a pid"), plan.to_string()))
        })
        .collect()
}

/// Five children released by one pipe end in the same instant, their
/// SIGCHLDs coalescing; every one is reaped and reported once with its own
/// exit status or signal, and the program sees no child left at the end.
#[test]
fn reap_children_reports_every_child_of_a_simultaneous_end() {
    let mut program = Running::start("reap_children", &[]);
    let (status, lines) = program.finish();
    assert_eq!(status.code(), Some(0), "{status}: {lines:#?}");
    assert_eq!(lines.len(), 14, "{lines:#?}");
    assert_eq!(lines[0], format!("pid {}: forking 5 children", program.pid));
    let forked = forked_children(&lines[1..6]);
    let plans: Vec<&str> = forked.iter().map(|(_, plan)| plan.as_str()).collect();
    assert_eq!(plans, CHILDREN.map(|(plan, _)| plan));
    assert_eq!(lines[6], "starting them all at once");
    // Reaped in whatever order they ended: each pid once, as planned.
    let mut reaped: Vec<&str> = lines[7..12].iter().map(String::as_str).collect();
    reaped.sort_unstable();
    let mut expected: Vec<String> = forked
        .iter()
        .zip(CHILDREN)
        .map(|((pid, _), (_, end))| format!("reaped child {pid}: {end}"))
        .collect();
    expected.sort_unstable();
    assert_eq!(reaped, expected);
    let wakeups: usize = lines[12]
        .strip_prefix("all 5 children reaped after ")
        .and_then(|rest| rest.strip_suffix(" SIGCHLD wake-up(s)"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not the summary line: {:?}", lines[12]));
    assert!(
        (1..=5).contains(&wakeups),
        "{wakeups} wake-ups for 5 children"
    );
    assert_eq!(
        lines[13],
        "waitpid(-1): ECHILD, no child is left, so no zombie either"
    );
}

/// No child outlives the program, not even as a zombie: the test, made a
/// child subreaper, would adopt whatever child the program left behind
/// when it exited, and it adopts none of them.
#[test]
fn reap_children_leaves_no_zombie_behind() {
    let _subreaper = Subreaper::become_one();
    let mut program = Running::start("reap_children", &[]);
    let (status, lines) = program.finish();
    assert_eq!(status.code(), Some(0), "{status}: {lines:#?}");
    let forked: Vec<i32> = forked_children(&lines)
        .into_iter()
        .map(|(pid, _)| pid)
        .collect();
    assert_eq!(forked.len(), 5, "{lines:#?}");
    // The program has exited and been reaped: its children were handed
    // over during its exit, before that.
    let me = i32::try_from(std::process::id()).expect("a pid fits in an i32");
    let adopted: Vec<(i32, char)> = children_of(me)
        .into_iter()
        .filter(|(pid, _)| forked.contains(pid))
        .collect();
    for &(pid, _) in &adopted {
        reap_adopted(pid, Duration::from_secs(1));
    }
    assert!(
        adopted.is_empty(),
        "children left behind, adopted by the test (pid, state): {adopted:?}"
    );
}
