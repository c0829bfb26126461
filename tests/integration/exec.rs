//! `--exec PROG [ARG...]`: any program per connection, the UCSPI way: the
//! connection on 0 and 1, standard error inherited, the TCP variables in
//! the environment, and every limit, log line and figure of the master.
//! Real programs: `cat` (an echo), `date` (a daytime service), a script
//! that prints its environment, and `git daemon --inetd` driven by a real
//! `git clone`.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use mpecho_testkit::{
    Server, ServerOptions, TIMEOUT, assert_connection_ended, echo, lines_until_end, open_fds,
    run_mpecho, text, wait_for, write_script,
};

/// Everything a connection sends until it closes.
fn read_to_close(client: &mut std::net::TcpStream) -> String {
    let mut out = String::new();
    client
        .read_to_string(&mut out)
        .expect("read until the close");
    out
}

/// `cat` is an echo: the connection on its standard input and output, its
/// standard error mpecho's, nothing else open; its exit is logged and
/// counted as a worker's.
#[test]
fn cat_serves_each_connection_as_an_echo() {
    let server = Server::start(&["--exec", "cat"]);
    let mut client = server.connect();
    assert_eq!(echo(&mut client, b"hello\n"), b"hello\n");
    let [worker] = server.wait_for_workers(1)[..] else {
        unreachable!()
    };
    let exe = std::fs::read_link(format!("/proc/{worker}/exe")).expect("read exe");
    assert!(exe.ends_with("cat"), "{exe:?}");
    assert_eq!(open_fds(worker), vec![0, 1, 2]);
    for fd in [0, 1] {
        let target = std::fs::read_link(format!("/proc/{worker}/fd/{fd}")).expect("fd link");
        assert!(
            target.to_string_lossy().starts_with("socket:"),
            "{target:?}"
        );
    }
    assert_eq!(
        std::fs::read_link(format!("/proc/{worker}/fd/2")).ok(),
        std::fs::read_link(format!("/proc/{}/fd/2", server.pid)).ok(),
        "standard error is the master's"
    );
    client
        .shutdown(std::net::Shutdown::Write)
        .expect("half-close");
    assert_eq!(read_to_close(&mut client), "");
    server.wait_for_log_line(&[&format!("worker {worker} exited status=0 peer=")]);
    let figures = server.figures();
    assert_eq!(figures.get("exited_ok"), 1);
    assert_eq!(figures.get("accepted"), 1);
}

/// `date` is a daytime service: it writes the time and exits, and the
/// client sees the close.
#[test]
fn date_answers_as_a_daytime_service() {
    let server = Server::start(&["--exec", "date", "-u", "+%s"]);
    let mut client = server.connect();
    let answer = read_to_close(&mut client);
    let then: u64 = answer
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{answer:?}"));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    assert!(now.abs_diff(then) <= 5, "date said {then}, it is {now}");
    server.wait_for_log_line(&[" exited status=0 peer="]);
}

/// A script sees the UCSPI variables (TCPCONNNUM counting the connections
/// open from its address) and the allow-listed environment, nothing of the
/// master's own; its arguments are everything after `--exec PROG`, even
/// words that look like mpecho's options.
#[test]
fn a_program_sees_the_ucspi_environment_and_its_own_arguments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env_script = dir.path().join("show-env");
    write_script(&env_script, "echo \"args: $*\"; env; echo END; exec cat");
    let server = Server::start_with(ServerOptions {
        args: vec![
            "--exec".into(),
            env_script.display().to_string(),
            "--max-workers".into(),
            "5".into(),
        ],
        env: vec![("MPECHO_TEST_SECRET".into(), "hidden".into())],
        ..ServerOptions::default()
    });
    let first = server.connect();
    let vars = lines_until_end(&first);
    let port = first.local_addr().expect("local").port();
    for expected in [
        "args: --max-workers 5".to_string(),
        "PROTO=TCP".to_string(),
        "TCPREMOTEIP=127.0.0.1".to_string(),
        format!("TCPREMOTEPORT={port}"),
        "TCPLOCALIP=127.0.0.1".to_string(),
        format!("TCPLOCALPORT={}", server.addr.port()),
        "TCPCONNNUM=1".to_string(),
    ] {
        assert!(vars.contains(&expected), "{expected:?} not in {vars:?}");
    }
    assert!(vars.iter().any(|v| v.starts_with("PATH=")), "{vars:?}");
    assert!(
        !vars.iter().any(|v| v.starts_with("MPECHO_TEST_SECRET=")),
        "the master's environment leaked: {vars:?}"
    );
    let second = server.connect();
    assert!(lines_until_end(&second).contains(&"TCPCONNNUM=2".to_string()));
    drop(first);
}

/// The program's standard error is mpecho's own, as `tcpserver` leaves it.
#[test]
fn standard_error_is_left_inherited() {
    let server = Server::start_with(ServerOptions {
        args: vec![
            "--exec".into(),
            "sh".into(),
            "-c".into(),
            "echo \"complaint from $$\" >&2".into(),
        ],
        log_to_file: true,
        ..ServerOptions::default()
    });
    let mut client = server.connect();
    assert_eq!(read_to_close(&mut client), "");
    let line = wait_for("the program's line on mpecho's stderr", TIMEOUT, || {
        server
            .stderr()
            .lines()
            .find(|l| l.starts_with("complaint from "))
            .map(str::to_string)
    });
    let pid = line.trim_start_matches("complaint from ");
    server.wait_for_log_line(&[&format!("worker {pid} exited status=0 ")]);
}

/// A real inetd-style program with its real client: `git daemon --inetd`
/// serves a repository the test creates, and `git clone git://…` gets it.
#[test]
fn git_daemon_serves_a_clone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args([
                "-c",
                "user.name=mpecho",
                "-c",
                "user.email=mpecho@localhost",
            ])
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("git must be installed (.ci/run installs it)");
        assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    git(&["init", "-q", "source"]);
    git(&[
        "-C",
        "source",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "served by mpecho",
    ]);
    git(&["clone", "-q", "--bare", "source", "served.git"]);
    let base = dir.path().display().to_string();
    let server = Server::start(&[
        "--exec",
        "git",
        "daemon",
        "--inetd",
        "--export-all",
        &format!("--base-path={base}"),
    ]);
    let url = format!("git://{}/served.git", server.addr);
    git(&["clone", "-q", &url, "clone"]);
    let log = git(&["-C", "clone", "log", "--format=%s"]);
    assert_eq!(log.trim(), "served by mpecho");
    server.wait_for_log_line(&[" exited status=0 peer="]);
}

/// A program that does not exist or cannot be run is refused at startup,
/// with exit status 1 and a line saying which and why.
#[test]
fn a_missing_or_unrunnable_program_is_refused_at_startup() {
    let output = run_mpecho(
        &[
            "serve",
            "-l",
            "127.0.0.1:0",
            "--exec",
            "no-such-program-here",
        ],
        b"",
    );
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--exec no-such-program-here: no such program in PATH"),
        "{stderr}"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = dir.path().join("not-executable");
    std::fs::write(&plain, "#!/bin/sh\n").expect("write");
    let plain = plain.display().to_string();
    let output = run_mpecho(&["serve", "-l", "127.0.0.1:0", "--exec", &plain], b"");
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("--exec {plain}: Permission denied")),
        "{stderr}"
    );
}

/// A program that fails at once is logged and counted, connection after
/// connection, and one that can no longer be run (made unexecutable after
/// start) is a failed start: neither stops or stalls the master.
#[test]
fn failing_programs_never_bring_the_master_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    let program = dir.path().join("fails");
    write_script(&program, "exit 7");
    let server = Server::start(&["--exec", &program.display().to_string()]);
    for _ in 0..5 {
        let mut client = server.connect();
        assert_connection_ended(&mut client, true, "a client of a failing program");
    }
    server.wait_for_log_count(" exited status=7 peer=", 5);
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let mut client = server.connect();
    assert_connection_ended(&mut client, true, "a client of an unrunnable program");
    server.wait_for_log_line(&["could not start a worker for peer=", "Permission denied"]);
    let figures = server.figures();
    assert_eq!(figures.get("exited_error"), 5);
    assert_eq!(figures.get("spawn_failures"), 1);
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    write_script(&program, "exec cat");
    let mut client = server.connect();
    client.write_all(b"back\n").expect("write");
    let mut back = [0u8; 5];
    client.read_exact(&mut back).expect("served again");
    assert_eq!(&back, b"back\n");
}

/// The idle timeout holds for a program too: a silent client is closed
/// and counted as an idle timeout, while one that keeps talking is not.
#[test]
fn the_idle_timeout_closes_a_silent_client_of_a_program() {
    let server = Server::start(&["--idle-timeout", "1", "--exec", "cat"]);
    let mut busy = server.connect();
    let mut silent = server.connect();
    assert_eq!(echo(&mut silent, b"once\n"), b"once\n");
    // The busy client talks every 300 ms, for longer than the timeout.
    for _ in 0..6 {
        assert_eq!(echo(&mut busy, b"still here\n"), b"still here\n");
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    assert_eq!(
        read_to_close(&mut silent),
        "",
        "the silent client is closed"
    );
    server.wait_for_log_line(&[" (idle timeout) peer="]);
    assert_eq!(echo(&mut busy, b"and now\n"), b"and now\n");
    let figures = server.figures();
    assert_eq!(figures.get("exited_idle"), 1);
    assert_eq!(figures.get("active"), 1);
}

/// With `--exec` the model is always exec: another is refused (status 2).
#[test]
fn exec_refuses_the_other_models() {
    for model in ["fork", "prefork", "iterative"] {
        let output = run_mpecho(&["serve", "--model", model, "--exec", "cat"], b"");
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(&format!("--model {model} cannot be used with --exec")),
            "{stderr}"
        );
    }
}
