//! SIGUSR2, the upgrade in place: the master re-executes the binary at the
//! path it was started from, in the same process, and carries on with its
//! listener, workers, counters and log, refusing a binary that fails the
//! check. The two "builds" are copies of the binary under test stamped
//! with different build ids (`src/version.rs`): a different version as far
//! as the master can tell, without a second compilation.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use mpecho_testkit::{
    ChildGuard, Server, ServerOptions, TIMEOUT, bench_report_within, children_of, count_lines,
    echo, is_root, metrics_text, mpecho_bin, proxy_v1, start_bench, stat_fields, status_ids,
    wait_for, write_script,
};

/// The prefix of the build id's marker in the executable.
const MARKER: &[u8] = b"MPECHO_BUILD_ID=";

/// The version a copy stamped with `id` reports.
fn version_of(id: &str) -> String {
    format!("{}+{id}", env!("CARGO_PKG_VERSION"))
}

/// A copy of the binary under test in `dir`, stamped with the 8-byte `id`.
fn stamped_copy(dir: &Path, id: &str) -> PathBuf {
    assert_eq!(id.len(), 8, "a build id is 8 bytes");
    let mut bytes = fs::read(mpecho_bin()).expect("read the mpecho binary");
    let found: Vec<usize> = bytes
        .windows(MARKER.len())
        .enumerate()
        .filter(|(_, w)| *w == MARKER)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(found.len(), 1, "the build id marker must occur once");
    let at = found[0] + MARKER.len();
    bytes[at..at + 8].copy_from_slice(id.as_bytes());
    let path = dir.join(format!("mpecho-{id}"));
    fs::write(&path, bytes).expect("write the stamped copy");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
    let said = Command::new(&path)
        .arg("--version")
        .output()
        .expect("run --version");
    assert_eq!(
        String::from_utf8_lossy(&said.stdout),
        format!("mpecho {}\n", version_of(id))
    );
    path
}

/// Puts a copy of `build` at `exe` by rename, as a package manager does:
/// the running image's file is replaced, never written over.
fn install(build: &Path, exe: &Path) {
    let staged = exe.with_extension("new");
    fs::copy(build, &staged).expect("stage the new build");
    fs::rename(&staged, exe).expect("rename the new build into place");
}

/// Two stamped builds and the path the master runs from (build `AAAAAAAA`).
struct Builds {
    dir: tempfile::TempDir,
    a: PathBuf,
    b: PathBuf,
    exe: PathBuf,
}

impl Builds {
    fn new() -> Builds {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let a = stamped_copy(dir.path(), "AAAAAAAA");
        let b = stamped_copy(dir.path(), "BBBBBBBB");
        let exe = dir.path().join("mpecho");
        install(&a, &exe);
        Builds { dir, a, b, exe }
    }

    fn start(&self, args: &[&str]) -> Server {
        Server::start_with(ServerOptions {
            args: args.iter().map(|s| s.to_string()).collect(),
            binary: Some(self.exe.clone()),
            ..ServerOptions::default()
        })
    }
}

/// Sends SIGUSR2 and waits for the `upgraded from` line it leads to;
/// returns that line.
fn upgrade(server: &Server) -> String {
    let done = count_lines(&server.log(), "upgraded from");
    server.signal(libc::SIGUSR2);
    server.wait_for_log_count("upgraded from", done + 1);
    server
        .log()
        .lines()
        .filter(|l| l.contains("upgraded from"))
        .nth(done)
        .map(str::to_string)
        .unwrap_or_default()
}

/// The master's start time in clock ticks (field 22 of /proc/PID/stat):
/// the same process, not merely the same pid, as long as it is unchanged.
fn start_time(pid: i32) -> String {
    stat_fields(pid)
        .and_then(|f| f.get(19).cloned())
        .unwrap_or_default()
}

/// The inode of the program process `pid` runs (followed through
/// /proc/PID/exe, which still opens a file replaced on disk).
fn exe_inode(pid: i32) -> u64 {
    fs::metadata(format!("/proc/{pid}/exe"))
        .expect("stat /proc/PID/exe")
        .ino()
}

fn inode(path: &Path) -> u64 {
    fs::metadata(path).expect("stat a build").ino()
}

/// Every zombie child the master has now is reaped soon after: none is
/// left behind (under churn a worker that has just exited is a zombie for
/// the moment the loop takes to reap it).
fn assert_no_zombie_left(server: &Server, when: &str) {
    let zombies: Vec<i32> = children_of(server.pid)
        .into_iter()
        .filter(|&(_, state)| state == 'Z')
        .map(|(pid, _)| pid)
        .collect();
    wait_for(
        &format!("zombies {zombies:?} reaped {when}"),
        TIMEOUT,
        || {
            let left = children_of(server.pid);
            zombies
                .iter()
                .all(|z| !left.iter().any(|&(pid, state)| pid == *z && state == 'Z'))
                .then_some(())
        },
    );
}

/// The scenario: under churn and steady load for the whole test,
/// ten upgrades in a row alternate between two builds; no connection is
/// refused, reset or answered wrongly, the master stays the same process,
/// no zombie is left at any point, and the figures reconcile at the end
/// (accepted = exited + active, and every accepted connection is in the
/// log, across all the images).
#[test]
fn ten_upgrades_under_load_lose_nothing() {
    let builds = Builds::new();
    let server = builds.start(&["--monitor-interval", "0"]);
    let (pid, started) = (server.pid, start_time(server.pid));
    // The load must outlast the ten upgrades: they take about 2 s on the
    // 2-core machine, also with two busy loops beside them, but once took
    // more than 5 s in a busy CI run, which a 6 s load did not cover (the
    // next upgrade then waited for accepts that never came). The length
    // is incidental to what the test proves, so it is generous: every
    // round's own waits are bounded by `TIMEOUT` anyway, and the reports
    // are read with a bound of the time left of the load plus `TIMEOUT`.
    const LOAD: Duration = Duration::from_secs(15);
    let load_started = Instant::now();
    let secs = LOAD.as_secs().to_string();
    let mut steady = start_bench(server.addr, "steady", "100", &secs);
    let mut churn = start_bench(server.addr, "churn", "16", &secs);
    let load_on = |steady: &mut ChildGuard, churn: &mut ChildGuard| {
        steady.0.try_wait().expect("poll the bench").is_none()
            && churn.0.try_wait().expect("poll the bench").is_none()
    };
    // The load is on: the steady connections are held and churn flows.
    server.wait_for_log_count("accept peer=", 300);
    let upgrading = Instant::now();

    for round in 0..10 {
        assert!(
            load_on(&mut steady, &mut churn),
            "the load ended before upgrade {round}, {:?} after it started: raise LOAD",
            load_started.elapsed()
        );
        let (from, to, build) = match round % 2 {
            0 => ("AAAAAAAA", "BBBBBBBB", &builds.b),
            _ => ("BBBBBBBB", "AAAAAAAA", &builds.a),
        };
        install(build, &builds.exe);
        let accepted = count_lines(&server.log(), "accept peer=");
        let line = upgrade(&server);
        assert!(
            line.contains(&format!(
                "upgraded from {} (pid {pid}) to {}",
                version_of(from),
                version_of(to)
            )),
            "round {round}: {line}"
        );
        assert_eq!(
            start_time(pid),
            started,
            "round {round}: the master changed"
        );
        assert_eq!(
            exe_inode(pid),
            inode(&builds.exe),
            "round {round}: not the new build"
        );
        assert_no_zombie_left(&server, &format!("after upgrade {round}"));
        // The new image serves before the next upgrade.
        server.wait_for_log_count("accept peer=", accepted + 50);
    }
    eprintln!("10 upgrades took {:?}", upgrading.elapsed());
    assert!(
        load_on(&mut steady, &mut churn),
        "the load ended before the tenth upgrade was done: raise LOAD"
    );

    // Each bench ends at the end of LOAD and reports at once (its in-flight
    // operations may take a few seconds more only if the server stalls).
    let report = |bench: &mut ChildGuard| {
        bench_report_within(
            bench,
            (LOAD + TIMEOUT).saturating_sub(load_started.elapsed()),
        )
    };
    let steady = report(&mut steady);
    let churn = report(&mut churn);
    for report in [&steady, &churn] {
        assert_eq!(report["errors"]["total"], 0, "bench errors: {report}");
    }
    eprintln!(
        "10 upgrades under load: churn {} connections, steady {} round trips on 100 connections, \
         errors 0",
        churn["completed"], steady["completed"]
    );
    server.wait_for_workers(0);
    let figures = server.figures();
    let ended = ["exited_ok", "exited_error", "exited_signal", "exited_idle"]
        .iter()
        .map(|k| figures.get(k))
        .sum::<u64>();
    assert_eq!(
        figures.get("accepted"),
        ended + figures.get("active"),
        "{figures:?}"
    );
    assert_eq!(figures.get("active"), 0, "{figures:?}");
    assert_eq!(
        figures.get("accepted"),
        count_lines(&server.log(), "accept peer=") as u64,
        "{figures:?}"
    );
    assert!(
        figures.get("accepted") >= churn["completed"].as_u64().unwrap_or(0) + 100,
        "{figures:?}"
    );
    assert_no_zombie_left(&server, "at the end");
    assert_eq!(start_time(pid), started);
}

/// A binary that fails the check (a script that exits 1, a file that is
/// not executable, an mpecho that reads other state formats) is refused with one ERROR line each: the master
/// serves on, unchanged, and a later good upgrade still works.
#[test]
fn a_bad_binary_is_refused_and_the_master_serves_on() {
    let builds = Builds::new();
    let server = builds.start(&[]);
    let mut client = server.connect_served();

    let script = builds.dir.path().join("bad.sh");
    write_script(&script, "exit 1");
    install(&script, &builds.exe);
    server.signal(libc::SIGUSR2);
    let refused = server.wait_for_log_line(&["ERROR", "upgrade failed"]);
    assert!(refused.contains("exited with status 1"), "{refused}");
    assert_eq!(echo(&mut client, b"still here\n"), b"still here\n");

    fs::set_permissions(&builds.exe, fs::Permissions::from_mode(0o644)).expect("chmod");
    server.signal(libc::SIGUSR2);
    server.wait_for_log_count("upgrade failed", 2);
    assert_eq!(count_lines(&server.log(), "ERROR"), 2, "{}", server.log());
    assert_eq!(echo(&mut client, b"again\n"), b"again\n");
    assert_eq!(echo(&mut server.connect(), b"new\n"), b"new\n");

    // An mpecho that would not read this master's state.
    write_script(
        &script,
        "printf 'mpecho-upgrade-check\\nversion 9.9.9\\nstate-formats 2 3\\n'",
    );
    install(&script, &builds.exe);
    server.signal(libc::SIGUSR2);
    server.wait_for_log_count("upgrade failed", 3);
    let refused = server.wait_for_log_line(&["version 9.9.9"]);
    assert!(refused.contains("reads state formats"), "{refused}");
    assert_eq!(count_lines(&server.log(), "ERROR"), 3, "{}", server.log());

    install(&builds.b, &builds.exe);
    let line = upgrade(&server);
    assert!(line.contains(&version_of("BBBBBBBB")), "{line}");
    assert_eq!(echo(&mut client, b"after\n"), b"after\n");
}

/// `--model fork`: a worker started before an upgrade keeps running the
/// old build, one started after runs the new one; the new image reaps
/// the old worker when it ends, counted once; SIGTERM right after an
/// upgrade ends every worker, those of the previous build and the new.
#[test]
fn workers_keep_their_build_and_the_new_image_reaps_them() {
    let builds = Builds::new();
    let mut server = builds.start(&["--model", "fork"]);
    let old_build = inode(&builds.exe);
    let (mut old_client, old_worker) = server.connect_served_worker();
    assert_eq!(exe_inode(old_worker), old_build);

    install(&builds.b, &builds.exe);
    let new_build = inode(&builds.exe);
    upgrade(&server);
    let (mut new_client, new_worker) = server.connect_served_worker();
    assert_eq!(exe_inode(new_worker), new_build);
    assert_eq!(exe_inode(old_worker), old_build);
    assert_eq!(echo(&mut old_client, b"old\n"), b"old\n");

    drop(old_client);
    server.wait_for_log_line(&[&format!("worker {old_worker} exited status=0")]);
    assert_no_zombie_left(&server, "after the old worker's exit");
    assert_eq!(echo(&mut new_client, b"new\n"), b"new\n");
    let figures = server.figures();
    assert_eq!(figures.get("accepted"), 2, "{figures:?}");
    assert_eq!(figures.get("exited_ok"), 1, "{figures:?}");
    assert_eq!(figures.get("active"), 1, "{figures:?}");

    install(&builds.a, &builds.exe);
    upgrade(&server);
    let (_newest_client, newest_worker) = server.connect_served_worker();
    server.signal(libc::SIGTERM);
    let status = server.wait_exit(TIMEOUT);
    assert!(status.success(), "{status:?}\n{}", server.log());
    let log = server.log();
    for worker in [new_worker, newest_worker] {
        assert!(log.contains(&format!("worker {worker} exited")), "{log}");
    }
    assert!(
        log.contains("asking 2 workers to finish") && log.contains("final figures active=0"),
        "{log}"
    );
}

/// What cannot be handed over is refused, saying why, and the master
/// serves on: the pre-forked pool, the iterative server.
#[test]
fn prefork_and_iterative_refuse_the_upgrade_and_serve_on() {
    for model in ["prefork", "iterative"] {
        let builds = Builds::new();
        let server = builds.start(&["--model", model]);
        server.signal(libc::SIGUSR2);
        let line = server.wait_for_log_line(&["upgrade refused"]);
        assert!(line.contains(&format!("--model {model}")), "{line}");
        assert_eq!(echo(&mut server.connect(), b"hi\n"), b"hi\n");
    }
}

/// A connection waiting for its PROXY header is not handed over: the
/// upgrade is refused while one waits, and works once none does.
#[test]
fn a_pending_proxy_header_defers_the_upgrade() {
    let builds = Builds::new();
    let server = builds.start(&["--proxy-protocol", "--trusted-proxy", "127.0.0.1/32"]);
    let mut waiting = server.connect();
    waiting
        .write_all(b"PROXY TCP4 ")
        .expect("send half a header");
    // Accepted after the waiting one, so served once that one is taken.
    let mut other = server.connect();
    other
        .write_all(&proxy_v1(
            "203.0.113.9:1".parse().expect("an address"),
            "192.0.2.1:2".parse().expect("an address"),
        ))
        .expect("send a header");
    assert_eq!(echo(&mut other, b"ok\n"), b"ok\n");

    server.signal(libc::SIGUSR2);
    let line = server.wait_for_log_line(&["upgrade refused"]);
    assert!(line.contains("waiting for their PROXY header"), "{line}");
    assert_eq!(echo(&mut other, b"still\n"), b"still\n");

    drop(waiting);
    wait_for("the abandoned header counted", TIMEOUT, || {
        (server.figures().get("rejected_proxy") == 1).then_some(())
    });
    install(&builds.b, &builds.exe);
    let line = upgrade(&server);
    assert!(line.contains(&version_of("BBBBBBBB")), "{line}");
    assert_eq!(echo(&mut other, b"after\n"), b"after\n");
}

/// `--user nobody`: the master, no longer root, still upgrades (the new
/// build is executable by it, the check runs as it), privileges are not
/// dropped again, the log goes on in the file opened as root, and old and
/// new clients are served.
#[test]
fn an_unprivileged_master_upgrades_too() {
    if !is_root() {
        eprintln!("skipped: --user needs root");
        return;
    }
    let builds = Builds::new();
    // The master, as nobody, must reach the builds to check and exec them.
    fs::set_permissions(builds.dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let server = builds.start(&["--user", "nobody"]);
    let nobody = status_ids(server.pid, "Uid");
    assert_ne!(nobody, vec![0; 4], "the master dropped root");
    let mut client = server.connect_served();

    install(&builds.b, &builds.exe);
    let line = upgrade(&server);
    assert!(line.contains(&version_of("BBBBBBBB")), "{line}");
    assert_eq!(status_ids(server.pid, "Uid"), nobody);
    assert_eq!(echo(&mut client, b"old\n"), b"old\n");
    assert_eq!(echo(&mut server.connect(), b"new\n"), b"new\n");
    assert_eq!(count_lines(&server.log(), "ERROR"), 0, "{}", server.log());
}

/// After a log rotation (rename, SIGHUP), the descriptor handed over is
/// the reopened file's: the new image and its workers write there, and
/// SIGHUP in the new image reopens the same path again.
#[test]
fn the_log_reopened_before_an_upgrade_is_the_one_handed_over() {
    let builds = Builds::new();
    let server = builds.start(&[]);
    let log = server.log_path().to_path_buf();
    let rotated = log.with_extension("log.1");
    fs::rename(&log, &rotated).expect("rotate the log");
    server.signal(libc::SIGHUP);
    server.wait_for_log_line(&["reopened log file"]);

    install(&builds.b, &builds.exe);
    upgrade(&server);
    let (client, worker) = server.connect_served_worker();
    drop(client);
    server.wait_for_log_line(&[&format!("worker {worker} exited status=0")]);
    let old = fs::read_to_string(&rotated).expect("read the rotated log");
    assert!(!old.contains("upgraded from"), "{old}");

    fs::rename(&log, &rotated).expect("rotate the log again");
    server.signal(libc::SIGHUP);
    server.wait_for_log_line(&["reopened log file"]);
    assert_eq!(echo(&mut server.connect(), b"hi\n"), b"hi\n");
}

/// `--metrics`: the metrics listener is handed over (same address, never
/// closed), and the counters and uptime go on from where they were.
#[test]
fn the_metrics_endpoint_and_its_counters_carry_on() {
    let builds = Builds::new();
    let server = builds.start(&["--metrics", "127.0.0.1:0"]);
    let metrics = server.metrics_addr();
    let (client, worker) = server.connect_served_worker();
    drop(client);
    server.wait_for_log_line(&[&format!("worker {worker} exited status=0")]);
    let before = metrics_text(metrics);
    assert!(
        before.contains("mpecho_connections_accepted_total 1\n"),
        "{before}"
    );

    install(&builds.b, &builds.exe);
    upgrade(&server);
    let _still = server.connect_served();
    let after = metrics_text(metrics);
    assert!(
        after.contains("mpecho_connections_accepted_total 2\n")
            && after.contains("mpecho_workers_active 1\n"),
        "{after}"
    );
    let started = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("process_start_time_seconds "))
            .map(str::to_string)
    };
    assert_eq!(started(&before), started(&after));
}
