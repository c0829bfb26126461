//! The capacity check at start-up (issue 4): one WARN line for each system
//! limit (`RLIMIT_NPROC`, the cgroup's `pids.max`, `kernel.pid_max`,
//! `kernel.threads-max`, `RLIMIT_NOFILE`) too small for `--max-workers`
//! plus 64, with its value and how to raise it, and none for a limit that
//! is large enough or does not bind.
//!
//! Tests that need root print a `SKIPPED` line and return when the suite
//! runs unprivileged.

use std::path::Path;

use mpecho_testkit::{
    Server, ServerOptions, count_lines, echo, is_root, proc_limit, setpriv_available, status_ids,
    without_stamp,
};

/// What marks a capacity warning.
const SHORT: &str = ", below max_workers + 64 = ";

/// The capacity warnings the master must have logged for `max_workers`,
/// from the limits it runs with (read in /proc, as the master sees them
/// after raising its descriptor limit and dropping root).
fn expected_capacity_warnings(master: i32, max_workers: u64) -> Vec<String> {
    let needed = max_workers + 64;
    let mut limits: Vec<(&str, Option<u64>, &str)> = Vec::new();
    // RLIMIT_NPROC does not bind root, so it is only checked without it.
    if status_ids(master, "Uid")[1] != 0 {
        limits.push((
            "RLIMIT_NPROC (max user processes, counting every process of this user)",
            proc_limit(master, "Max processes").0,
            "raise it with `ulimit -u` or LimitNPROC= in the systemd unit",
        ));
    }
    // The cgroup v2 hierarchy, as the master reads it.
    let cgroup = std::fs::read_to_string(format!("/proc/{master}/cgroup")).unwrap();
    let pids_max = cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .and_then(|path| {
            let file = Path::new("/sys/fs/cgroup")
                .join(path.trim_start_matches('/'))
                .join("pids.max");
            std::fs::read_to_string(file).ok()?.trim().parse().ok()
        });
    limits.push((
        "the cgroup's pids.max",
        pids_max,
        "a systemd service defaults to about 4,915 tasks: set TasksMax= in the unit",
    ));
    let sysctl = |name: &str| -> Option<u64> {
        std::fs::read_to_string(format!("/proc/sys/kernel/{name}"))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    limits.push((
        "kernel.pid_max",
        sysctl("pid_max"),
        "raise it with `sysctl kernel.pid_max=N`",
    ));
    limits.push((
        "kernel.threads-max",
        sysctl("threads-max"),
        "raise it with `sysctl kernel.threads-max=N`",
    ));
    limits.push((
        "RLIMIT_NOFILE (the master holds a pidfd per worker)",
        proc_limit(master, "Max open files").0,
        "raise the hard limit with `ulimit -Hn` or LimitNOFILE= in the systemd unit",
    ));
    limits
        .into_iter()
        .filter_map(|(what, value, how)| {
            let value = value.filter(|&v| v < needed)?;
            Some(format!(
                "WARN master[{master}]: {what} is {value}{SHORT}{needed}: the master may fail \
                 to start workers before its limit; {how}"
            ))
        })
        .collect()
}

/// The capacity warnings in the server's log, without timestamps.
fn capacity_warnings(server: &Server) -> Vec<String> {
    // The check runs before the `started` line is logged; waiting for that
    // line matters when the log is stderr, which the harness collects on a
    // thread of its own, possibly after `listening on` arrived.
    server.wait_for_log_line(&["]: started: listening on "]);
    server
        .log()
        .lines()
        .filter(|l| l.contains(SHORT))
        .map(|l| without_stamp(l).to_string())
        .collect()
}

/// `--max-workers 100000` as root: one WARN line for each limit below
/// 100,064 — kernel.pid_max (32768 on most machines) and RLIMIT_NOFILE when
/// its hard limit is lower — with its value and how to raise it, each
/// exactly once, and none for RLIMIT_NPROC, which does not bind root.
#[test]
fn capacity_check_warns_once_per_limit_too_small() {
    if !is_root() {
        println!("SKIPPED capacity_check_warns_once_per_limit_too_small: needs root");
        return;
    }
    let server = Server::start(&["--max-workers", "100000", "--monitor-interval", "0"]);
    let expected = expected_capacity_warnings(server.pid, 100_000);
    assert_eq!(capacity_warnings(&server), expected);

    let log = server.log();
    let pid_max: u64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    if pid_max < 100_064 {
        let line = format!("kernel.pid_max is {pid_max}, below max_workers + 64 = 100064");
        assert_eq!(count_lines(&log, &line), 1, "{log}");
        assert_eq!(count_lines(&log, "sysctl kernel.pid_max=N"), 1, "{log}");
    }
    let nofile = proc_limit(server.pid, "Max open files").0.unwrap();
    let nofile_warnings = count_lines(
        &log,
        &format!("RLIMIT_NOFILE (the master holds a pidfd per worker) is {nofile},"),
    );
    assert_eq!(nofile_warnings, usize::from(nofile < 100_064), "{log}");
    assert_eq!(count_lines(&log, "RLIMIT_NPROC"), 0, "{log}");
    // Still serving: the warnings change nothing.
    let mut client = server.connect();
    assert_eq!(echo(&mut client, b"warned\n"), b"warned\n");
}

/// With the default `--max-workers 10000`, exactly the limits of this
/// machine that are below 10,064 are warned about (on a usual machine run
/// as root: none).
#[test]
fn capacity_check_with_the_defaults_warns_only_about_real_shortages() {
    let server = Server::start(&["--monitor-interval", "0"]);
    let started = server.wait_for_log_line(&["started: listening on "]);
    assert!(started.contains(" max_workers=10000 "), "{started:?}");
    let expected = expected_capacity_warnings(server.pid, 10_000);
    assert_eq!(capacity_warnings(&server), expected);
}

/// Unprivileged with `ulimit -u 500` and `--max-workers 1000`, the master
/// warns once that RLIMIT_NPROC is 500, the only limit below 1,064 here.
#[test]
fn capacity_check_warns_about_the_process_limit_when_unprivileged() {
    if !is_root() || !setpriv_available() {
        println!(
            "SKIPPED capacity_check_warns_about_the_process_limit_when_unprivileged: needs root \
             and setpriv to start the master as another user with a given process limit"
        );
        return;
    }
    // The limit is set before dropping root (the test could not change
    // another user's limit afterwards); the log goes to stderr, as the
    // temporary directory is root-only. The harness's own `exec` is never
    // reached: setpriv replaces the shell first.
    let server = Server::start_with(ServerOptions {
        args: vec![
            "--max-workers".into(),
            "1000".into(),
            "--monitor-interval".into(),
            "0".into(),
        ],
        log_to_file: false,
        shell_prefix: Some(
            "ulimit -u 500 || exit 1; \
             exec setpriv --reuid=65534 --regid=65534 --clear-groups \"$0\" serve \"$@\";"
                .into(),
        ),
        ..ServerOptions::default()
    });
    assert_eq!(status_ids(server.pid, "Uid"), vec![65_534; 4]);
    let warnings = capacity_warnings(&server);
    assert_eq!(warnings, expected_capacity_warnings(server.pid, 1_000));
    let nproc = format!(
        "WARN master[{}]: RLIMIT_NPROC (max user processes, counting every process of this \
         user) is 500{SHORT}1064: ",
        server.pid
    );
    assert_eq!(
        warnings.iter().filter(|w| w.starts_with(&nproc)).count(),
        1,
        "{warnings:#?}"
    );
    assert_eq!(count_lines(&server.log(), "serving as root"), 0);
}
