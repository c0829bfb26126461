//! The unit files shipped in `contrib/systemd/`: `systemd-analyze verify`
//! accepts them (pid 1 need not be systemd: `--man=no --generators=no`, on
//! copies whose ExecStart= names the binaries under test, since verify
//! checks that they exist), their numbers agree with each other and with mpecho's
//! defaults, and their command lines really serve when given sockets the
//! way their .socket units pass them.
//!
//! Its readers of a unit (`unit`, `setting`, `exec_args`, `option_value`,
//! `seconds`) are shared with `kubernetes.rs`, which holds the Kubernetes
//! manifests to the same unit.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use mpecho::cli::DEFAULT_LISTEN;
use mpecho_testkit::{Server, ServerOptions, echo, mpecho_bin, text, worker_bin};

use super::{accepting_program, activator, free_port, knock, loopback, socket_activate};

/// The units as shipped.
const UNITS: [&str; 4] = [
    "mpecho.service",
    "mpecho.socket",
    "mpecho-accept.socket",
    "mpecho-accept@.service",
];

/// Where the units find the binaries: `mpecho`, and `mpecho-worker` beside
/// it (for the `Accept=yes` template, which runs it directly).
const INSTALLED_IN: &str = "/usr/local/bin/";

fn contrib() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/systemd")
}

pub(crate) fn unit(name: &str) -> String {
    let path = contrib().join(name);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The value of `key=` in `unit` (the last one, as systemd reads it).
pub(crate) fn setting(unit: &str, key: &str) -> String {
    let prefix = format!("{key}=");
    unit.lines()
        .rev()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {key}= in the unit"))
        .to_string()
}

/// The binary `unit`'s ExecStart= runs (its file name in `INSTALLED_IN`),
/// and the arguments after it.
fn exec_command(unit: &str) -> (String, Vec<String>) {
    let exec = setting(unit, "ExecStart");
    let command = exec
        .strip_prefix(INSTALLED_IN)
        .unwrap_or_else(|| panic!("ExecStart={exec} does not run a binary in {INSTALLED_IN}"));
    let mut words = command.split_whitespace().map(str::to_string);
    let binary = words.next().unwrap_or_default();
    (binary, words.collect())
}

/// The arguments after `mpecho` in `unit`'s ExecStart=.
pub(crate) fn exec_args(unit: &str) -> Vec<String> {
    let (binary, args) = exec_command(unit);
    assert_eq!(binary, "mpecho", "the binary the unit runs");
    args
}

/// The number after `option` in `args`.
pub(crate) fn option_value(args: &[String], option: &str) -> u64 {
    args.iter()
        .position(|a| a == option)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number after {option} in {args:?}"))
}

pub(crate) fn seconds(value: &str) -> u64 {
    value
        .strip_suffix('s')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{value:?} is not a number of seconds like 15s"))
}

/// `systemd-analyze verify` finds nothing to say about any shipped unit:
/// no error and no warning (an unknown key is only a warning, and fails
/// this test too).
#[test]
fn shipped_units_pass_systemd_analyze_verify() {
    if !Path::new("/usr/bin/systemd-analyze").exists() {
        eprintln!(
            "skipped shipped_units_pass_systemd_analyze_verify: systemd-analyze is missing \
             (apt-get install systemd)"
        );
        return;
    }
    let dir = tempfile::tempdir().expect("create a temporary directory");
    // Both binaries sit in one directory, as installed.
    let binaries = format!(
        "{}/",
        mpecho_bin()
            .parent()
            .expect("the binary is in a directory")
            .display()
    );
    for name in UNITS {
        fs::write(
            dir.path().join(name),
            unit(name).replace(INSTALLED_IN, &binaries),
        )
        .unwrap_or_else(|e| panic!("copy {name}: {e}"));
    }
    let output = Command::new("systemd-analyze")
        .args(["verify", "--man=no", "--generators=no"])
        .args(UNITS.map(|name| dir.path().join(name)))
        .output()
        .expect("run systemd-analyze verify");
    let said = format!("{}{}", text(&output.stdout), text(&output.stderr));
    assert!(
        output.status.success() && said.trim().is_empty(),
        "systemd-analyze verify ({}):\n{said}",
        output.status
    );
}

/// The service's limits fit its own --max-workers (TasksMax= for the
/// workers and the master, LimitNOFILE= for a pidfd each plus the margin
/// the start-up check asks for), it stops after --grace with room to spare,
/// it is Type=notify with SIGHUP as reload, and mpecho.socket listens where
/// the service binds by default, so that it answers at one address with or
/// without the socket.
#[test]
fn the_service_unit_fits_its_own_command_line() {
    let service = unit("mpecho.service");
    let args = exec_args(&service);
    assert_eq!(args[0], "serve");
    let max_workers = option_value(&args, "--max-workers");
    let tasks: u64 = setting(&service, "TasksMax").parse().expect("TasksMax=N");
    let files: u64 = setting(&service, "LimitNOFILE")
        .parse()
        .expect("LimitNOFILE=N");
    assert!(
        tasks > max_workers + 64,
        "TasksMax={tasks} for {max_workers} workers"
    );
    assert!(
        files >= max_workers + 64,
        "LimitNOFILE={files} for {max_workers} workers"
    );
    let grace = option_value(&args, "--grace");
    let stop = seconds(&setting(&service, "TimeoutStopSec"));
    assert!(
        stop > grace + 5,
        "TimeoutStopSec={stop}s against --grace {grace}"
    );
    assert_eq!(setting(&service, "Type"), "notify");
    assert_eq!(setting(&service, "KillMode"), "mixed");
    assert_eq!(setting(&service, "ExecReload"), "kill -HUP $MAINPID");
    assert!(
        !args.iter().any(|a| a == "--user"),
        "DynamicUser= starts it unprivileged"
    );
    assert_eq!(
        setting(&unit("mpecho.socket"), "ListenStream"),
        DEFAULT_LISTEN.to_string()
    );
    assert_eq!(setting(&unit("mpecho-accept.socket"), "Accept"), "yes");
}

/// mpecho.service's ExecStart= arguments serve a socket passed the way
/// mpecho.socket passes it (systemd-socket-activate standing in for
/// systemd, on a free port instead of 9190).
#[test]
fn the_service_command_line_serves_a_passed_socket() {
    let Some(tool) = socket_activate("the_service_command_line_serves_a_passed_socket") else {
        return;
    };
    let args = exec_args(&unit("mpecho.service"));
    let addr = free_port(loopback(1));
    let first = knock(addr);
    let server = Server::start_with(ServerOptions {
        subcommand: "serve",
        args: args[1..].to_vec(),
        wrapper: activator(tool, &[], &[addr]),
        ..ServerOptions::default()
    });
    let mut first = first.join().expect("the first client's thread");
    assert_eq!(server.addr, addr);
    assert_eq!(echo(&mut first, b"unit\n"), b"unit\n");
}

/// mpecho-accept@.service's ExecStart= serves a connection passed the way
/// mpecho-accept.socket passes it (`--accept`): it runs the worker
/// executable itself, the one `mpecho serve` runs for its connections.
#[test]
fn the_accept_template_command_line_serves_a_connection() {
    let Some(tool) = socket_activate("the_accept_template_command_line_serves_a_connection") else {
        return;
    };
    let (binary, args) = exec_command(&unit("mpecho-accept@.service"));
    assert_eq!(
        binary, "mpecho-worker",
        "the binary the accept template runs"
    );
    let addr = free_port(loopback(1));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (_activator, stderr) = accepting_program(tool, addr, &worker_bin(), &args);
    let mut client = knock(addr).join().expect("the client's thread");
    assert_eq!(echo(&mut client, b"instance\n"), b"instance\n");
    drop(client);
    // The instance ends with its client and is reaped by its parent.
    stderr.wait_for_line(&["died with code 0"]);
}
