//! Hardening (issue 4): the idle timeout, the descriptor limit raised at
//! start-up, dropping root with `--user`/`--group`, the capacity self-check,
//! the pidfds the master holds for its workers, workers that outlive a
//! SIGKILLed master, and the environment a worker is given.
//!
//! Tests that need root (changing user, running something as another user)
//! print a `SKIPPED` line and return when the suite runs unprivileged.

use std::ffi::CString;
use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use mpecho_testkit::{
    ChildGuard, Server, ServerOptions, TIMEOUT, assert_connection_ended, connect_to, count_lines,
    echo, log_field, mpecho_bin, pidfds, proc_state, run_mpecho, send_signal, stall_worker_writing,
    text, wait_for,
};

/// The idle timeout most tests use: short enough to keep them quick.
const IDLE: &str = "1";

/// Bounds for "closed after the 1 s idle timeout": never early, and late
/// only by what a loaded machine can explain.
const IDLE_AT_LEAST: Duration = Duration::from_millis(900);
const IDLE_AT_MOST: Duration = Duration::from_secs(5);

// ------------------------------------------------------------------ helpers

fn is_root() -> bool {
    // SAFETY: geteuid has no memory effects.
    unsafe { libc::geteuid() == 0 }
}

fn setpriv_available() -> bool {
    ["/usr/bin/setpriv", "/bin/setpriv", "/usr/sbin/setpriv"]
        .iter()
        .any(|p| Path::new(p).exists())
}

/// The log line without its timestamp: `LEVEL component[pid]: message`.
fn without_stamp(line: &str) -> &str {
    line.split_once(' ').map_or(line, |(_, rest)| rest)
}

/// The numbers of a `Key:` line of /proc/PID/status (`Uid`, `Gid`,
/// `Groups`), in the order the kernel lists them.
fn status_ids(pid: i32, key: &str) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    let prefix = format!("{key}:");
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {key}: line in /proc/{pid}/status"));
    line.split_whitespace()
        .map(|n| n.parse().expect("a numeric id"))
        .collect()
}

/// Soft and hard values of a limit in /proc/PID/limits (`Max open files`,
/// `Max processes`); `None` stands for `unlimited`.
fn proc_limit(pid: i32, name: &str) -> (Option<u64>, Option<u64>) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/limits: {e}"));
    let rest = limits
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name:?} in /proc/{pid}/limits:\n{limits}"));
    let mut values = rest.split_whitespace().map(|v| v.parse().ok());
    (values.next().flatten(), values.next().flatten())
}

/// The fields of `name` in the `getent DATABASE` entry, if there is one.
fn getent(database: &str, name: &str) -> Option<Vec<String>> {
    let out = Command::new("getent")
        .args([database, name])
        .output()
        .expect("run getent");
    let line = text(&out.stdout);
    out.status
        .success()
        .then(|| line.trim_end().split(':').map(str::to_string).collect())
}

/// The uid and primary gid of `user`.
fn user_ids(user: &str) -> (u32, u32) {
    let fields = getent("passwd", user).unwrap_or_else(|| panic!("user {user} exists"));
    (fields[2].parse().unwrap(), fields[3].parse().unwrap())
}

fn group_id(group: &str) -> u32 {
    let fields = getent("group", group).unwrap_or_else(|| panic!("group {group} exists"));
    fields[2].parse().unwrap()
}

/// What `initgroups(user, gid)` sets: `gid` plus the user's supplementary
/// groups, sorted as /proc lists them.
fn initgroups_of(user: &str, gid: u32) -> Vec<u32> {
    let name = CString::new(user).unwrap();
    let mut groups = vec![0 as libc::gid_t; 1024];
    let mut count = groups.len() as libc::c_int;
    // SAFETY: `name` is a valid C string and `groups` has room for `count`
    // entries; the call writes at most that many.
    let ret = unsafe { libc::getgrouplist(name.as_ptr(), gid, groups.as_mut_ptr(), &mut count) };
    assert!(ret >= 0, "the group list of {user} fits in 1024 entries");
    groups.truncate(count as usize);
    groups.sort_unstable();
    groups.dedup();
    groups
}

/// The environment of process `pid`, one `NAME=value` per entry, sorted.
fn environ(pid: i32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/environ: {e}"));
    let mut vars: Vec<String> = raw
        .split(|&b| b == 0)
        .filter(|v| !v.is_empty())
        .map(text)
        .collect();
    vars.sort();
    vars
}

/// Whether `pid` has ended: gone, or a zombie nobody of ours will reap
/// (an orphan is reparented, and its new parent may reap it late or never).
fn has_ended(pid: i32) -> bool {
    match proc_state(pid) {
        None => true,
        Some((state, ppid)) => state == 'Z' && ppid != std::process::id() as i32,
    }
}

/// Whether `pid` is still an mpecho worker (and not some later process
/// that was given the same number).
fn is_live_worker(pid: i32) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    cmdline.starts_with(b"mpecho\0worker\0") && !has_ended(pid)
}

/// Workers whose master was SIGKILLed: nobody stops them for us, so they
/// are killed on drop if still running, and a failing test leaks nothing.
struct Orphans(Vec<i32>);

impl Drop for Orphans {
    fn drop(&mut self) {
        for &pid in &self.0 {
            if is_live_worker(pid) {
                send_signal(pid, libc::SIGKILL);
            }
        }
    }
}

/// Kills the master with SIGKILL and reaps it (the test started it, so the
/// test must); its workers become orphans.
fn kill_master(server: &mut Server) {
    send_signal(server.pid, libc::SIGKILL);
    let status = server.wait_exit(TIMEOUT);
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
}

// -------------------------------------------------------------- idle timeout

/// With `--idle-timeout 1`, a client that connects and never sends anything
/// is closed by its worker after about a second: the client reads EOF, the
/// worker exits with status 3 and logs why, the master logs the status as
/// `idle timeout` and counts it as `exited_idle`.
#[test]
fn silent_client_is_closed_after_the_idle_timeout() {
    let server = Server::start(&["--idle-timeout", IDLE, "--monitor-interval", "0"]);
    let started = server.wait_for_log_line(&["started: listening on "]);
    assert!(started.contains(" idle_timeout=1s "), "{started:?}");

    let connected = Instant::now();
    let mut client = server.connect();
    let peer = client.local_addr().unwrap();
    let worker = server.worker_serving(&client);
    assert_connection_ended(&mut client, false, "a silent client");
    let waited = connected.elapsed();
    assert!(
        (IDLE_AT_LEAST..=IDLE_AT_MOST).contains(&waited),
        "a client silent since it connected was closed after {waited:?}, expected about 1s"
    );

    let exit = server.wait_for_log_line(&[&format!(" worker {worker} exited ")]);
    assert!(
        without_stamp(&exit).starts_with(&format!(
            "INFO master[{}]: worker {worker} exited status=3 (idle timeout) peer={peer} lived=",
            server.pid
        )),
        "{exit:?}"
    );
    let disconnect = server.wait_for_log_line(&[&format!("worker[{worker}]: disconnect ")]);
    let message = without_stamp(&disconnect);
    assert!(
        message.starts_with(&format!(
            "INFO worker[{worker}]: disconnect peer={peer} bytes=0 duration="
        )) && message.ends_with(" reason=idle timeout (1s)"),
        "{disconnect:?}"
    );

    let figures = server.figures();
    assert_eq!(figures.get("exited_idle"), 1, "{figures:?}");
    assert_eq!(figures.get("exited_ok"), 0, "{figures:?}");
    assert_eq!(figures.get("exited_error"), 0, "{figures:?}");
    assert_eq!(figures.get("active"), 0, "{figures:?}");
    assert!(server.zombies().is_empty());
}

/// A client that sends a line every 300 ms, eight times (2.4 s, more than
/// twice the 1 s idle timeout), is never idle and is never closed: the
/// timeout counts from the last activity, not from the connection.
#[test]
fn client_that_keeps_sending_is_not_closed() {
    let server = Server::start(&["--idle-timeout", IDLE, "--monitor-interval", "0"]);
    let (mut client, worker) = server.connect_served_worker();
    let started = Instant::now();
    for n in 0..8 {
        // The pause is the scenario (a client that talks slowly), not a
        // wait for the server: every echo is checked as it comes back.
        std::thread::sleep(Duration::from_millis(300));
        let line = format!("tick {n}\n");
        assert_eq!(
            text(&echo(&mut client, line.as_bytes())),
            line,
            "an active client after {:?}",
            started.elapsed()
        );
    }
    assert!(
        !server
            .log()
            .contains(&format!("worker[{worker}]: disconnect ")),
        "an active client was disconnected:\n{}",
        server.log()
    );
    assert_eq!(server.worker_pids(), vec![worker]);
    let figures = server.figures();
    assert_eq!(figures.get("exited_idle"), 0, "{figures:?}");
    assert_eq!(figures.get("active"), 1, "{figures:?}");
}

/// A client that sends without ever reading stalls its worker on a write
/// once the socket buffers are full; the worker must not block there
/// forever: one idle timeout after the last byte moved, it closes the
/// connection with data still unsent and exits with status 3.
#[test]
fn client_that_never_reads_is_idle_even_with_data_to_send() {
    // The worker is stalled once the kernel shows it blocked in sendto
    // (/proc/PID/syscall), not merely slow to read.
    let server = Server::start(&[
        "--idle-timeout",
        IDLE,
        "--monitor-interval",
        "0",
        "--log-level",
        "debug",
    ]);
    let mut client = server.connect();
    let worker = server.worker_serving(&client);
    let sent = stall_worker_writing(&mut client, worker);
    let stopped = Instant::now();

    let exit = server.wait_for_log_line(&[&format!(" worker {worker} exited ")]);
    let waited = stopped.elapsed();
    assert!(
        waited <= IDLE_AT_MOST,
        "the stalled worker exited {waited:?} after the client stopped, expected about 1s"
    );
    assert!(
        exit.contains(&format!(
            "]: worker {worker} exited status=3 (idle timeout) peer="
        )),
        "{exit:?}"
    );
    let disconnect = server.wait_for_log_line(&[&format!("worker[{worker}]: disconnect ")]);
    assert!(
        disconnect.ends_with(" reason=idle timeout (1s)"),
        "{disconnect:?}"
    );
    let echoed: usize = log_field(&disconnect, "bytes").parse().unwrap();
    assert!(
        echoed < sent,
        "the worker echoed {echoed} of {sent} bytes: it should have had data left to send"
    );
    let figures = server.figures();
    assert_eq!(figures.get("exited_idle"), 1, "{figures:?}");
}

/// `--idle-timeout 0` turns the timeout off: a silent client is still
/// connected (and echoed) well past the 1 s the other tests time out at.
/// Only a bounded stretch can be checked, not "never"; 2.5 s is enough to
/// catch a zero timeout taken literally (closing at once) or a default
/// of a second or two.
#[test]
fn idle_timeout_zero_keeps_silent_clients() {
    let server = Server::start(&["--idle-timeout", "0", "--monitor-interval", "0"]);
    let started = server.wait_for_log_line(&["started: listening on "]);
    assert!(started.contains(" idle_timeout=0s "), "{started:?}");

    let mut client = server.connect();
    let worker = server.worker_serving(&client);
    client
        .set_read_timeout(Some(Duration::from_millis(2_500)))
        .unwrap();
    let mut buf = [0u8; 16];
    match client.read(&mut buf) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        Ok(0) => panic!("a silent client was closed with the idle timeout off"),
        other => panic!("a silent client read {other:?}"),
    }
    client.set_read_timeout(Some(TIMEOUT)).unwrap();
    assert_eq!(echo(&mut client, b"still here\n"), b"still here\n");
    assert_eq!(server.worker_pids(), vec![worker]);
    assert!(!server.log().contains(" disconnect "), "{}", server.log());
}

// -------------------------------------------------------- descriptor limit

/// The master raises its soft descriptor limit to the hard limit at
/// start-up and says so: started with a soft limit of 256, it runs with
/// soft = hard and logs `raised the descriptor limit from 256 to HARD`.
/// Already at the hard limit, it logs nothing about it.
#[test]
fn soft_descriptor_limit_is_raised_to_the_hard_limit() {
    let own = std::process::id() as i32;
    let (own_soft, hard) = proc_limit(own, "Max open files");
    let hard = hard.expect("a finite hard descriptor limit");
    if hard <= 256 {
        println!(
            "SKIPPED soft_descriptor_limit_is_raised_to_the_hard_limit: the hard limit ({hard}) \
             leaves nothing to raise from 256"
        );
        return;
    }
    let server = Server::start_with(ServerOptions {
        args: vec!["--monitor-interval".into(), "0".into()],
        shell_prefix: Some("ulimit -Sn 256 || exit 1;".into()),
        ..ServerOptions::default()
    });
    assert_eq!(
        proc_limit(server.pid, "Max open files"),
        (Some(hard), Some(hard)),
        "the master's descriptor limits"
    );
    let raised = format!(
        "INFO master[{}]: raised the descriptor limit from 256 to {hard}",
        server.pid
    );
    let log = server.log();
    assert_eq!(
        log.lines().filter(|l| without_stamp(l) == raised).count(),
        1,
        "expected {raised:?} once in:\n{log}"
    );
    assert_eq!(count_lines(&log, "descriptor limit"), 1, "{log}");

    // Started with this test's own limits.
    let plain = Server::start(&["--monitor-interval", "0"]);
    let expected = match own_soft {
        Some(soft) if soft < hard => 1,
        _ => 0,
    };
    assert_eq!(
        count_lines(&plain.log(), "raised the descriptor limit"),
        expected,
        "soft {own_soft:?}, hard {hard}:\n{}",
        plain.log()
    );
}

// ----------------------------------------------------------- privilege drop

/// `--user nobody` as root: the master binds and opens its log (a file
/// only root may write) as root, then runs as nobody with
/// nobody's primary and supplementary groups; its workers run as nobody
/// too; serving works, and master and workers keep writing the log.
#[test]
fn user_option_drops_root_for_master_and_workers() {
    if !is_root() {
        println!("SKIPPED user_option_drops_root_for_master_and_workers: needs root");
        return;
    }
    let (uid, gid) = user_ids("nobody");
    let server = Server::start(&["--user", "nobody", "--monitor-interval", "0"]);
    // Root's file, not writable by others: nobody could not have opened
    // it for writing, so every line below was written through the
    // descriptor opened before the drop.
    let log_meta = std::fs::metadata(server.log_path()).unwrap();
    assert_eq!(log_meta.uid(), 0, "the log file's owner");
    assert_eq!(
        log_meta.permissions().mode() & 0o002,
        0,
        "others cannot write the log"
    );

    let groups = initgroups_of("nobody", gid);
    assert_credentials(server.pid, uid, gid, &groups, "the master");
    let running = format!(
        "INFO master[{}]: running as user nobody (uid {uid}), group primary (gid {gid})",
        server.pid
    );
    server.wait_for_log_line(&[&running]);
    assert_eq!(count_lines(&server.log(), "serving as root"), 0);

    let (mut client, worker) = server.connect_served_worker();
    assert_credentials(worker, uid, gid, &groups, "a worker");
    assert_eq!(echo(&mut client, b"unprivileged\n"), b"unprivileged\n");
    drop(client);
    // "ping\n" from connect_served, then "unprivileged\n".
    server.wait_for_log_line(&[&format!("worker[{worker}]: disconnect "), "bytes=18 "]);
    server.wait_for_log_line(&[&format!(" worker {worker} exited status=0 ")]);
}

/// `--user nobody --group daemon`: the master and its workers run with
/// daemon's gid (and the groups initgroups gives for it) instead of
/// nobody's primary group.
#[test]
fn group_option_replaces_the_primary_group() {
    if !is_root() {
        println!("SKIPPED group_option_replaces_the_primary_group: needs root");
        return;
    }
    let (uid, _) = user_ids("nobody");
    let gid = group_id("daemon");
    let server = Server::start(&[
        "--user",
        "nobody",
        "--group",
        "daemon",
        "--monitor-interval",
        "0",
    ]);
    let groups = initgroups_of("nobody", gid);
    assert_credentials(server.pid, uid, gid, &groups, "the master");
    server.wait_for_log_line(&[&format!(
        "INFO master[{}]: running as user nobody (uid {uid}), group daemon (gid {gid})",
        server.pid
    )]);
    let (mut client, worker) = server.connect_served_worker();
    assert_credentials(worker, uid, gid, &groups, "a worker");
    assert_eq!(echo(&mut client, b"as daemon\n"), b"as daemon\n");
}

fn assert_credentials(pid: i32, uid: u32, gid: u32, groups: &[u32], who: &str) {
    assert_eq!(status_ids(pid, "Uid"), vec![uid; 4], "{who}'s uids");
    assert_eq!(status_ids(pid, "Gid"), vec![gid; 4], "{who}'s gids");
    let mut actual = status_ids(pid, "Groups");
    actual.sort_unstable();
    assert_eq!(actual, groups, "{who}'s supplementary groups");
}

/// Asserts that `mpecho serve` refused to start: status 1, nothing on
/// stdout (no `listening on`), exactly `stderr` on stderr.
fn assert_refused(output: &Output, stderr: &str) {
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_eq!(text(&output.stdout), "", "{output:?}");
    assert_eq!(text(&output.stderr), stderr);
}

/// An unknown `--user` or `--group` is refused before anything is opened:
/// status 1, one stderr line naming it, no log file created.
#[test]
fn unknown_user_or_group_refuses_to_start() {
    if !is_root() {
        println!("SKIPPED unknown_user_or_group_refuses_to_start: needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("mpecho.log");
    let log_arg = log.display().to_string();
    let base = ["serve", "-l", "127.0.0.1:0", "--log-file", &log_arg];

    let output = run_mpecho(
        &[&base[..], &["--user", "nosuchuser_xyz"][..]].concat(),
        b"",
    );
    assert_refused(
        &output,
        "mpecho serve: --user nosuchuser_xyz: no such user\n",
    );
    assert!(!log.exists(), "a refused start created its log file");

    let output = run_mpecho(
        &[
            &base[..],
            &["--user", "nobody", "--group", "nosuchgroup_xyz"][..],
        ]
        .concat(),
        b"",
    );
    assert_refused(
        &output,
        "mpecho serve: --group nosuchgroup_xyz: no such group\n",
    );
    assert!(!log.exists(), "a refused start created its log file");
}

/// `--group` without `--user` is a usage error: status 2, the missing
/// `--user` named and the usage shown.
#[test]
fn group_without_user_is_a_usage_error() {
    let output = run_mpecho(&["serve", "-l", "127.0.0.1:0", "--group", "daemon"], b"");
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert_eq!(text(&output.stdout), "");
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("--user <NAME>") && stderr.contains("Usage: mpecho serve"),
        "{stderr}"
    );
}

/// `--user` from an unprivileged process is refused with status 1 and one
/// line saying that it needs root (as root, mpecho is run as uid 65534
/// through setpriv).
#[test]
fn user_option_without_root_is_refused() {
    let mut command;
    let uid;
    if is_root() {
        if !setpriv_available() {
            println!("SKIPPED user_option_without_root_is_refused: setpriv is not installed");
            return;
        }
        uid = 65_534;
        command = Command::new("setpriv");
        command
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(mpecho_bin());
    } else {
        // SAFETY: geteuid has no memory effects.
        uid = unsafe { libc::geteuid() };
        command = Command::new(mpecho_bin());
    }
    command
        .args(["serve", "-l", "127.0.0.1:0", "--user", "nobody"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let output = ChildGuard(command.spawn().expect("start mpecho")).wait_output();
    assert_refused(
        &output,
        &format!(
            "mpecho serve: --user needs the server to start as root (it is running as uid {uid}); \
             start it as root, or leave --user out\n"
        ),
    );
}

/// As root without `--user`, the master warns exactly once that it (and
/// every worker) serves as root — not again per connection.
#[test]
fn serving_as_root_is_warned_once() {
    if !is_root() {
        println!("SKIPPED serving_as_root_is_warned_once: needs root");
        return;
    }
    let server = Server::start(&["--monitor-interval", "0"]);
    let (mut client, _) = server.connect_served_worker();
    assert_eq!(echo(&mut client, b"root\n"), b"root\n");
    drop(client);
    server.wait_for_log_line(&[" exited status=0 "]);
    let log = server.log();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("serving as root"))
        .map(without_stamp)
        .collect();
    assert_eq!(
        warnings,
        vec![format!(
            "WARN master[{}]: serving as root: every worker runs as root too; use --user to drop privileges",
            server.pid
        )],
        "{log}"
    );
}

// ---------------------------------------------------------- capacity check

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

// ------------------------------------------------------------------- pidfds

/// The master holds exactly one pidfd per live worker: three with three
/// clients served, two once one has left and been reaped, none at the end.
#[test]
fn master_holds_one_pidfd_per_live_worker() {
    let server = Server::start(&["--monitor-interval", "0"]);
    assert_eq!(pidfds(server.pid), Vec::<i32>::new());
    let mut clients: Vec<TcpStream> = (0..3).map(|_| server.connect_served()).collect();
    server.wait_for_workers(3);
    assert_eq!(pidfds(server.pid).len(), 3);

    drop(clients.pop());
    server.wait_for_log_count(" exited status=0 ", 1);
    wait_for("two pidfds in the master", TIMEOUT, || {
        (pidfds(server.pid).len() == 2).then_some(())
    });
    for client in &mut clients {
        assert_eq!(echo(client, b"still\n"), b"still\n");
    }
    drop(clients);
    server.wait_for_log_count(" exited status=0 ", 3);
    server.wait_for_workers(0);
    wait_for("no pidfd left in the master", TIMEOUT, || {
        pidfds(server.pid).is_empty().then_some(())
    });
}

// ------------------------------------------------------------- master crash

/// After the master is SIGKILLed, its two workers keep echoing for their
/// clients; a new master binds the same address at once and serves a new
/// client while the old ones are still served; each old worker exits on its
/// own when its client leaves, and the new master never counts them.
#[test]
fn workers_outlive_a_killed_master_and_a_new_master_takes_the_port() {
    let mut old = Server::start(&["--monitor-interval", "0"]);
    let (mut first, first_worker) = old.connect_served_worker();
    let (mut second, second_worker) = old.connect_served_worker();
    let _orphans = Orphans(vec![first_worker, second_worker]);
    kill_master(&mut old);

    for (client, worker) in [(&mut first, first_worker), (&mut second, second_worker)] {
        assert!(
            is_live_worker(worker),
            "worker {worker} died with its master"
        );
        assert_ne!(proc_state(worker).map(|s| s.1), Some(old.pid));
        assert_eq!(echo(client, b"orphaned\n"), b"orphaned\n");
    }

    let addr = old.addr.to_string();
    let new = Server::start(&["-l", &addr, "--monitor-interval", "0"]);
    assert_eq!(new.addr, old.addr);
    let (mut third, third_worker) = new.connect_served_worker();
    assert_eq!(proc_state(third_worker).map(|s| s.1), Some(new.pid));
    assert_eq!(echo(&mut first, b"old one\n"), b"old one\n");
    assert_eq!(echo(&mut second, b"old two\n"), b"old two\n");
    assert_eq!(echo(&mut third, b"new one\n"), b"new one\n");
    let figures = new.figures();
    assert_eq!(figures.get("active"), 1, "{figures:?}");
    assert_eq!(figures.get("accepted"), 1, "{figures:?}");

    for (client, worker) in [(first, first_worker), (second, second_worker)] {
        let peer = client.local_addr().unwrap();
        drop(client);
        wait_for(
            &format!("orphaned worker {worker} to exit"),
            TIMEOUT,
            || has_ended(worker).then_some(()),
        );
        // It still wrote to the old master's log on its way out.
        old.wait_for_log_line(&[
            &format!("worker[{worker}]: disconnect peer={peer} bytes="),
            " reason=client closed",
        ]);
    }
    assert_eq!(echo(&mut third, b"still new\n"), b"still new\n");
    let log = new.log();
    for worker in [first_worker, second_worker] {
        assert!(
            !log.contains(&format!("worker {worker} "))
                && !log.contains(&format!("worker={worker} ")),
            "the new master knows the old worker {worker}:\n{log}"
        );
    }
    assert_eq!(new.worker_pids(), vec![third_worker]);
}

/// A worker orphaned by a SIGKILLed master still enforces its idle timeout:
/// its client, served once more after the master died and then silent, is
/// closed on time and the worker exits, with no master to tell it to.
#[test]
fn orphaned_worker_still_closes_an_idle_client() {
    // 2 s rather than 1: room for the kill between the first echo and the
    // one after it, so that the timeout cannot fire while the master lives.
    let mut old = Server::start(&["--idle-timeout", "2", "--monitor-interval", "0"]);
    let (mut client, worker) = old.connect_served_worker();
    let _orphans = Orphans(vec![worker]);
    kill_master(&mut old);
    assert!(
        is_live_worker(worker),
        "worker {worker} died with its master"
    );
    // The last activity happens after the master is gone: from here on
    // only the orphan itself can end the connection.
    assert_eq!(echo(&mut client, b"orphaned\n"), b"orphaned\n");
    let silent = Instant::now();

    assert_connection_ended(&mut client, false, "the orphan's silent client");
    let waited = silent.elapsed();
    assert!(
        (Duration::from_millis(1_900)..=Duration::from_secs(6)).contains(&waited),
        "closed {waited:?} after its last echo, expected about 2s"
    );
    wait_for(
        &format!("orphaned worker {worker} to exit"),
        TIMEOUT,
        || has_ended(worker).then_some(()),
    );
    let disconnect = old.wait_for_log_line(&[&format!("worker[{worker}]: disconnect ")]);
    assert!(
        disconnect.ends_with(" reason=idle timeout (2s)"),
        "{disconnect:?}"
    );
}

// ------------------------------------------------------- worker environment

/// Variables set for the master: a secret and HOME that must not reach a
/// worker, and the locale and time zone that must.
const MASTER_ENV: &str =
    "export SECRET_TOKEN=x HOME=/home/secret LANG=C.UTF-8 LC_ALL=C TZ=UTC || exit 1;";

/// Starts a server listening on `listen` with `MASTER_ENV`, connects with
/// `connect`, and asserts that the worker's environment is exactly PATH
/// (as the master has it), LANG, LC_ALL and TZ, and the UCSPI description
/// of the connection with the given IPs.
fn assert_worker_environment(
    listen: &str,
    connect: impl Fn(SocketAddr) -> TcpStream,
    remote_ip: &str,
    local_ip: &str,
) {
    let server = Server::start_with(ServerOptions {
        args: vec![
            "-l".into(),
            listen.into(),
            "--monitor-interval".into(),
            "0".into(),
        ],
        shell_prefix: Some(MASTER_ENV.into()),
        ..ServerOptions::default()
    });
    let master_env = environ(server.pid);
    for var in ["SECRET_TOKEN=x", "HOME=/home/secret", "TZ=UTC"] {
        assert!(
            master_env.iter().any(|v| v == var),
            "the master lacks {var}"
        );
    }

    let mut client = connect(server.addr);
    assert_eq!(echo(&mut client, b"env\n"), b"env\n");
    let worker = server.worker_serving(&client);
    let mut expected: Vec<String> = master_env
        .iter()
        .filter(|v| v.starts_with("PATH="))
        .cloned()
        .collect();
    let client_port = client.local_addr().unwrap().port();
    expected.extend([
        "LANG=C.UTF-8".to_string(),
        "LC_ALL=C".to_string(),
        "TZ=UTC".to_string(),
        "PROTO=TCP".to_string(),
        format!("TCPREMOTEIP={remote_ip}"),
        format!("TCPREMOTEPORT={client_port}"),
        format!("TCPLOCALIP={local_ip}"),
        format!("TCPLOCALPORT={}", server.addr.port()),
    ]);
    expected.sort();
    assert_eq!(environ(worker), expected);
}

/// A worker's environment holds only PATH, LANG, LC_ALL and TZ from the
/// master's (no SECRET_TOKEN, no HOME) plus PROTO=TCP and the four
/// TCPREMOTE*/TCPLOCAL* variables describing its IPv4 connection.
#[test]
fn worker_environment_is_filtered_and_describes_the_connection() {
    assert_worker_environment("127.0.0.1:0", connect_to, "127.0.0.1", "127.0.0.1");
}

/// On an IPv6 listener on [::1] the worker's TCPREMOTEIP and TCPLOCALIP are
/// `::1`.
#[test]
fn worker_environment_over_ipv6() {
    assert_worker_environment("[::1]:0", connect_to, "::1", "::1");
}

/// On a dual-stack `[::]` listener reached over 127.0.0.1 the addresses are
/// given as IPv4, never as `::ffff:127.0.0.1`.
#[test]
fn worker_environment_shows_mapped_addresses_as_ipv4() {
    assert_worker_environment(
        "[::]:0",
        |addr| connect_to(SocketAddr::from(([127, 0, 0, 1], addr.port()))),
        "127.0.0.1",
        "127.0.0.1",
    );
}
