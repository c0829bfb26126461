//! Bad input gets a clear error and changes nothing: a port in use, an
//! unwritable log file, bad command-line usage, a worker started by hand,
//! and the help texts that say how to do it right.

use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use mpecho_testkit::{
    ChildGuard, mpecho_bin, pass_as_descriptor_3, process_group_members, run_mpecho, text,
};

/// Every serve option, as `--help` must list it.
const SERVE_OPTIONS: [&str; 7] = [
    "--listen",
    "--max-workers",
    "--log-file",
    "--monitor-interval",
    "--grace",
    "--backlog",
    "--log-level",
];

/// Runs `command` in a process group of its own, with nothing on stdin, and
/// returns its output and pid (also the group's id) once it has exited.
pub(crate) fn run_in_own_group(mut command: Command) -> (Output, i32) {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = ChildGuard(command.spawn().expect("start the command"));
    let pid = child.0.id() as i32;
    (child.wait_output(), pid)
}

/// Runs `mpecho worker` by hand, in a shell that first applies
/// `redirection` (to descriptor 3).
fn run_worker_by_hand_after(redirection: &str) -> Output {
    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg(format!("{redirection}; exec \"$0\" worker"))
        .arg(mpecho_bin());
    run_in_own_group(command).0
}

/// Asserts that `output` has nothing on stdout.
fn assert_no_stdout(output: &Output) {
    assert!(
        output.stdout.is_empty(),
        "nothing on stdout: {:?}",
        text(&output.stdout)
    );
}

/// The single line on stderr; fails if there are none or several.
fn single_stderr_line(output: &Output) -> String {
    let stderr = text(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "expected exactly one line on stderr, got:\n{stderr}"
    );
    lines[0].to_string()
}

/// `mpecho serve ARGS` must fail with status 1 and one stderr line, print
/// nothing on stdout (no `listening on` line) and leave no process behind;
/// returns the stderr line.
fn serve_refused_with(args: &[&str]) -> String {
    serve_refused_with_binary(mpecho_bin(), args)
}

/// `serve_refused_with`, for the mpecho executable at `binary`.
pub(crate) fn serve_refused_with_binary(binary: &Path, args: &[&str]) -> String {
    let mut command = Command::new(binary);
    command.arg("serve").args(args);
    let (output, pgid) = run_in_own_group(command);
    assert_eq!(
        output.status.code(),
        Some(1),
        "status of `mpecho serve {}`",
        args.join(" ")
    );
    let line = single_stderr_line(&output);
    assert_no_stdout(&output);
    assert_eq!(
        process_group_members(pgid),
        Vec::<i32>::new(),
        "processes left behind"
    );
    line
}

/// `mpecho serve` started with these options and a bad log file must fail
/// with status 1 and one stderr line naming the file.
fn assert_log_file_refused(path: &str) {
    let line = serve_refused_with(&["-l", "127.0.0.1:0", "--log-file", path]);
    assert!(
        line.contains(path),
        "the message must name {path}: {line:?}"
    );
}

/// Bad usage must give status 2, the usage on stderr, nothing on stdout.
fn assert_usage_error(args: &[&str]) {
    let output = run_mpecho(args, b"");
    let stderr = text(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(2),
        "status of `mpecho {}`; stderr:\n{stderr}",
        args.join(" ")
    );
    assert!(
        stderr.contains("Usage"),
        "`mpecho {}` must show the usage on stderr, got:\n{stderr}",
        args.join(" ")
    );
    assert_no_stdout(&output);
}

/// A worker started by hand must explain that `mpecho serve` starts it, and
/// exit with status 2.
pub(crate) fn assert_worker_refuses(output: &Output, case: &str) {
    let stderr = text(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(2),
        "status of a worker with {case}; stderr:\n{stderr}"
    );
    assert!(
        stderr.contains("mpecho serve"),
        "a worker with {case} must say that `mpecho serve` starts it, got:\n{stderr}"
    );
    assert_no_stdout(output);
}

/// Serving on an address another socket already listens on prints one
/// line naming the address and the problem, exits 1, leaves no process
/// behind and leaves the other listener working.
#[test]
fn address_in_use_is_one_clear_line_and_status_1() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind a listener to occupy a port");
    let addr = taken.local_addr().unwrap().to_string();
    let line = serve_refused_with(&["-l", &addr]);
    assert!(
        line.contains(&addr),
        "the message must name {addr}: {line:?}"
    );
    assert!(
        line.contains("in use"),
        "the message must say the address is in use: {line:?}"
    );

    // The port still belongs to the first listener.
    let _client = TcpStream::connect(&addr).expect("connect to the original listener");
    taken.set_nonblocking(false).unwrap();
    taken.accept().expect("the original listener still accepts");
}

/// A log file in a directory that does not exist: one line naming the file,
/// status 1.
#[test]
fn log_file_in_missing_directory_is_refused() {
    assert_log_file_refused("/nonexistent-dir/x.log");
}

/// A log file path that is a directory: one line naming it, status 1.
#[test]
fn log_file_that_is_a_directory_is_refused() {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    assert_log_file_refused(dir.path().to_str().expect("temporary path is UTF-8"));
}

/// An unknown flag is a usage error.
#[test]
fn unknown_flag_is_a_usage_error() {
    assert_usage_error(&["serve", "--no-such-flag"]);
}

/// A listen address that is not an address is a usage error.
#[test]
fn unparsable_listen_address_is_a_usage_error() {
    assert_usage_error(&["serve", "-l", "nonsense"]);
}

/// A listen address without a port is a usage error.
#[test]
fn listen_address_without_port_is_a_usage_error() {
    assert_usage_error(&["serve", "-l", "127.0.0.1"]);
}

/// A number option given something that is not a number is a usage error.
#[test]
fn unparsable_number_is_a_usage_error() {
    assert_usage_error(&["serve", "--max-workers", "many"]);
}

/// `--max-workers 0` (a server that could serve nobody) is a usage error.
#[test]
fn zero_max_workers_is_a_usage_error() {
    assert_usage_error(&["serve", "--max-workers", "0"]);
}

/// `mpecho worker` by hand, with descriptor 3 closed.
#[test]
fn worker_without_descriptor_3_explains_and_exits_2() {
    let output = run_worker_by_hand_after("exec 3<&-");
    assert_worker_refuses(&output, "descriptor 3 closed");
}

/// `mpecho worker` by hand, with descriptor 3 open on a file, not a socket.
#[test]
fn worker_with_a_file_on_descriptor_3_explains_and_exits_2() {
    let output = run_worker_by_hand_after("exec 3</dev/null");
    assert_worker_refuses(&output, "/dev/null on descriptor 3");
}

/// `mpecho worker` by hand, with a listening (not connected) socket on
/// descriptor 3: it must refuse rather than serve or accept on it.
#[test]
fn worker_with_an_unconnected_socket_on_descriptor_3_explains_and_exits_2() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a listener");
    let fd = listener.as_raw_fd();
    let mut command = Command::new(mpecho_bin());
    command.arg("worker");
    pass_as_descriptor_3(&mut command, fd);
    let (output, _) = run_in_own_group(command);
    assert_worker_refuses(&output, "a listening socket on descriptor 3");
    drop(listener);
}

/// `mpecho --help` exits 0 and names the subcommands.
#[test]
fn top_level_help_exits_0_and_lists_the_commands() {
    let output = run_mpecho(&["--help"], b"");
    assert_eq!(output.status.code(), Some(0));
    let help = text(&output.stdout);
    for command in ["serve", "client"] {
        assert!(
            help.contains(command),
            "`mpecho --help` must list `{command}`:\n{help}"
        );
    }
}

/// `mpecho serve --help` (and `mpecho help serve`) exits 0 and lists every
/// serve option.
#[test]
fn serve_help_exits_0_and_lists_every_option() {
    for args in [&["serve", "--help"][..], &["help", "serve"][..]] {
        let output = run_mpecho(args, b"");
        assert_eq!(
            output.status.code(),
            Some(0),
            "status of `mpecho {}`",
            args.join(" ")
        );
        let help = text(&output.stdout);
        for option in SERVE_OPTIONS {
            assert!(
                help.contains(option),
                "`mpecho {}` must list {option}:\n{help}",
                args.join(" ")
            );
        }
    }
}
