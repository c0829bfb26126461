//! SIGHUP and the log, as logrotate and service managers use them: a
//! rotated file is reopened at its path, a reopen that fails keeps the old
//! file, SIGHUP never stops a server, and lines that cannot be written (a
//! full filesystem, a dead pipe) are counted, never silently lost.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use mpecho_testkit::{
    Server, ServerOptions, TIMEOUT, blocked_in_syscall, echo, is_root, is_well_formed_log_line,
    wait_for,
};

/// Waits until the file at `path` has a line containing `needle`, and
/// returns that line.
fn wait_for_line_in(path: &Path, needle: &str) -> String {
    wait_for(
        &format!("a line with {needle:?} in {}", path.display()),
        TIMEOUT,
        || {
            fs::read_to_string(path)
                .ok()?
                .lines()
                .find(|l| l.contains(needle))
                .map(str::to_string)
        },
    )
}

fn assert_well_formed(path: &Path) {
    let text = fs::read_to_string(path).expect("read the log");
    for line in text.lines() {
        assert!(
            is_well_formed_log_line(line),
            "torn or malformed line in {}: {line:?}",
            path.display()
        );
    }
    assert!(text.ends_with('\n'), "{} ends mid-line", path.display());
}

/// logrotate's `create` rotation: the file is renamed, SIGHUP makes the
/// master reopen the path. The master and workers started afterwards write
/// to the new file; a worker started before keeps the old one to its end;
/// no line is torn, and the master never stops.
#[test]
fn sighup_after_a_rename_reopens_the_log_file() {
    let mut server = Server::start(&[]);
    let log = server.log_path().to_path_buf();
    let rotated = log.with_extension("log.1");
    let (mut before, old_worker) = server.connect_served_worker();

    fs::rename(&log, &rotated).expect("rotate the log by renaming it");
    server.signal(libc::SIGHUP);
    let reopened = wait_for_line_in(&log, "reopened log file");
    assert!(
        reopened.contains(&format!(
            "master[{}]: reopened log file {}",
            server.pid,
            log.display()
        )),
        "{reopened}"
    );

    let (mut after, new_worker) = server.connect_served_worker();
    assert_eq!(echo(&mut before, b"old\n"), b"old\n");
    assert_eq!(echo(&mut after, b"new\n"), b"new\n");
    drop(before);
    drop(after);
    server.wait_for_log_line(&[&format!("worker {old_worker} exited status=0")]);
    server.wait_for_log_line(&[&format!("worker {new_worker} exited status=0")]);
    wait_for_line_in(&rotated, &format!("worker[{old_worker}]: disconnect"));

    let new_log = fs::read_to_string(&log).expect("read the new log");
    let old_log = fs::read_to_string(&rotated).expect("read the rotated log");
    assert!(
        new_log.contains(&format!("worker[{new_worker}]: connect")),
        "{new_log}"
    );
    assert!(
        !new_log.contains(&format!("worker[{old_worker}]:")),
        "{new_log}"
    );
    assert!(
        old_log.contains(&format!("worker[{old_worker}]: connect")),
        "{old_log}"
    );
    assert!(!old_log.contains("reopened log file"), "{old_log}");
    assert_well_formed(&log);
    assert_well_formed(&rotated);
    assert!(server.is_running(), "SIGHUP stopped the master");
}

/// A reopen that cannot work (the log's directory has gone) keeps the old
/// file, says why at ERROR in it, and the master goes on serving and
/// logging there.
#[test]
fn failed_reopen_keeps_the_old_file_and_says_why() {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let sub = dir.path().join("logs");
    fs::create_dir(&sub).expect("create the log directory");
    let log = sub.join("mpecho.log");
    let mut server = Server::start_with(ServerOptions {
        args: vec!["--log-file".into(), log.display().to_string()],
        log_to_file: false,
        ..ServerOptions::default()
    });
    wait_for_line_in(&log, "started: listening on");

    let moved: PathBuf = dir.path().join("logs.old");
    fs::rename(&sub, &moved).expect("move the log directory away");
    let old = moved.join("mpecho.log");
    server.signal(libc::SIGHUP);
    let error = wait_for_line_in(&old, "SIGHUP received but");
    assert!(error.contains(" ERROR master["), "{error}");
    assert!(
        error.contains(&format!("could not open log file {}", log.display()))
            && error.contains("still writing to the old file"),
        "{error}"
    );

    let mut client = server.connect();
    assert_eq!(echo(&mut client, b"still here\n"), b"still here\n");
    drop(client);
    wait_for_line_in(&old, "exited status=0");
    assert!(
        !log.exists(),
        "a log file appeared in a directory that is gone"
    );
    assert!(server.is_running());
}

/// The chat relay reopens its log on SIGHUP too, and keeps relaying.
#[test]
fn sighup_reopens_the_chat_relay_log() {
    let mut relay = Server::start_with(ServerOptions {
        subcommand: "chat-server",
        ..ServerOptions::default()
    });
    let log = relay.log_path().to_path_buf();
    fs::rename(&log, log.with_extension("log.1")).expect("rotate the relay's log");
    relay.signal(libc::SIGHUP);
    let line = wait_for_line_in(&log, "reopened log file");
    assert!(line.contains(" INFO chat-server["), "{line}");
    relay.signal(libc::SIGUSR1);
    wait_for_line_in(&log, "figures clients=0");
    assert!(relay.is_running(), "SIGHUP stopped the relay");
}

/// A tmpfs of a few pages, mounted for one test and unmounted on drop.
struct SmallFilesystem {
    dir: tempfile::TempDir,
}

impl SmallFilesystem {
    fn mount() -> SmallFilesystem {
        let dir = tempfile::tempdir().expect("create a mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(status.success(), "mount a 64 kB tmpfs: {status}");
        SmallFilesystem { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file until the filesystem is full.
    fn fill(&self) -> PathBuf {
        let filler = self.path().join("filler");
        let output = Command::new("dd")
            .args(["if=/dev/zero", "bs=4096"])
            .arg(format!("of={}", filler.display()))
            .output()
            .expect("run dd");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("No space left"),
            "dd did not fill the filesystem: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        filler
    }
}

/// Appends one well-formed line that ends the file on a page boundary, so
/// that once the filesystem is full not even part of a line fits (tmpfs
/// gives a file whole pages).
fn pad_to_a_page(log: &Path) {
    const PAGE: usize = 4096;
    const PREFIX: &str = "1970-01-01T00:00:00.000Z INFO test[1]: padding ";
    let len = fs::metadata(log).expect("stat the log").len() as usize;
    let mut room = PAGE - len % PAGE;
    if room < PREFIX.len() + 1 {
        room += PAGE;
    }
    let line = format!("{PREFIX}{}\n", "x".repeat(room - PREFIX.len() - 1));
    let mut file = fs::OpenOptions::new()
        .append(true)
        .open(log)
        .expect("open the log to pad it");
    std::io::Write::write_all(&mut file, line.as_bytes()).expect("pad the log");
}

impl Drop for SmallFilesystem {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// With the log on a full filesystem the server goes on serving, and every
/// line the master could not write is counted: once space is back, its
/// figures say how many were lost (`log_write_errors`).
#[test]
fn lines_lost_on_a_full_filesystem_are_counted() {
    if !is_root() {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    }
    let fs = SmallFilesystem::mount();
    let log = fs.path().join("mpecho.log");
    let server = Server::start_with(ServerOptions {
        args: vec!["--log-file".into(), log.display().to_string()],
        log_to_file: false,
        ..ServerOptions::default()
    });
    wait_for_line_in(&log, "started: listening on");
    pad_to_a_page(&log);
    let filler = fs.fill();

    // Each connection makes the master write two lines (accept, exited).
    for i in 0..3 {
        let mut client = server.connect();
        let message = format!("lost {i}\n");
        assert_eq!(echo(&mut client, message.as_bytes()), message.as_bytes());
        drop(client);
        // Reaped, and the master asleep again: its `exited` line was tried.
        wait_for("the worker to be reaped and logged", TIMEOUT, || {
            (server.worker_pids().is_empty()
                && server.zombies().is_empty()
                && blocked_in_syscall(server.pid, libc::SYS_epoll_pwait))
            .then_some(())
        });
    }
    fs::remove_file(&filler).expect("free the filesystem");
    server.signal(libc::SIGUSR1);
    let figures = wait_for_line_in(&log, "]: figures ");
    assert!(figures.contains("accepted=3 "), "{figures}");
    assert!(figures.contains(" log_write_errors=6 "), "{figures}");
    let text = fs::read_to_string(&log).expect("read the log");
    assert!(
        !text.contains("accept peer="),
        "a line was written on a full disk: {text}"
    );
}

/// A log on standard error piped to a reader that died: SIGPIPE does not
/// kill the master (it is ignored; the lines are lost and counted), and it
/// keeps serving.
#[test]
fn a_dead_log_reader_does_not_stop_the_master() {
    let mut server = Server::start_with(ServerOptions {
        log_to_file: false,
        shell_prefix: Some("exec 2> >(exit 0); wait $!;".into()),
        ..ServerOptions::default()
    });
    for _ in 0..3 {
        let mut client = server.connect();
        assert_eq!(echo(&mut client, b"hello\n"), b"hello\n");
    }
    server.signal(libc::SIGUSR1);
    server.signal(libc::SIGHUP);
    let mut client = server.connect();
    assert_eq!(echo(&mut client, b"still\n"), b"still\n");
    assert!(
        server.is_running(),
        "the master died writing to a dead pipe"
    );
}
