//! Privileges (issue 4): `--user`/`--group` bind the port and open the log
//! as root, then drop to the user's (or the given) group and supplementary
//! groups for the master and every worker; unknown names, `--group`
//! without `--user` and `--user` without root are refused; serving as root
//! without `--user` is warned about once.
//!
//! Tests that need root (changing user, running something as another user)
//! print a `SKIPPED` line and return when the suite runs unprivileged.

use std::ffi::CString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Command, Output, Stdio};

use mpecho_testkit::{
    ChildGuard, Server, count_lines, echo, is_root, mpecho_bin, run_mpecho, setpriv_available,
    status_ids, text, without_stamp,
};

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
