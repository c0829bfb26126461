//! `serve --rules FILE`: access rules applied by the master before any
//! process starts, with the longest prefix winning, per-rule limits and
//! environment, tcprules lines, and an atomic reload on SIGHUP that keeps
//! the rules in force when the new file is bad.

use std::io::Read;
use std::net::{IpAddr, TcpStream};
use std::path::Path;

use mpecho_testkit::{Server, assert_connection_ended, connect_from, echo, run_mpecho, text};

fn ip(text: &str) -> IpAddr {
    text.parse().expect("an address")
}

/// A server with `rules` in a file of its own, and that file's path.
fn with_rules(rules: &str, extra: &[&str]) -> (Server, tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("access.rules");
    std::fs::write(&file, rules).expect("write the rules");
    let path = file.display().to_string();
    let mut args = vec!["--rules", path.as_str()];
    args.extend_from_slice(extra);
    let server = Server::start(&args);
    (server, dir, file)
}

fn client_from(server: &Server, from: &str) -> TcpStream {
    connect_from(ip(from), server.addr)
}

/// Whether a client from `from` is served (its echo comes back) or turned
/// away at once.
fn served(server: &Server, from: &str) -> bool {
    let mut client = client_from(server, from);
    let _ = std::io::Write::write_all(&mut client, b"ping\n");
    let mut back = [0u8; 5];
    client.read_exact(&mut back).is_ok() && &back == b"ping\n"
}

/// A denied address is closed at once and counted with reason `rule`, the
/// log naming the rule's line; the longest prefix wins over a shorter one;
/// tcprules lines and the default work alike.
#[test]
fn rules_deny_before_any_process_starts() {
    let (server, _dir, _file) = with_rules(
        "allow 127.0.0.0/8\n\
         deny 127.0.0.2\n\
         127.0.0.3:deny\n\
         allow 127.0.0.4/32 max-per-ip=1\n\
         default deny\n",
        &[],
    );
    assert!(served(&server, "127.0.0.1"));
    let mut denied = client_from(&server, "127.0.0.2");
    assert_connection_ended(&mut denied, true, "a client from a denied address");
    server.wait_for_log_line(&[
        "rejected peer=127.0.0.2:",
        "denied by the access rule on line 2 (127.0.0.2/32)",
    ]);
    assert!(!served(&server, "127.0.0.3"), "the tcprules line denies");
    let mut one = client_from(&server, "127.0.0.4");
    assert_eq!(echo(&mut one, b"one\n"), b"one\n");
    let mut two = client_from(&server, "127.0.0.4");
    assert_connection_ended(
        &mut two,
        true,
        "a second client beyond the rule's max-per-ip=1",
    );
    let figures = server.figures();
    assert_eq!(figures.get("rejected_rule"), 2);
    assert_eq!(figures.get("rejected_per_ip"), 1);
    // The client from 127.0.0.1 is gone, but its worker lives until it has
    // read the EOF and exited: counted before that, it is a second worker.
    server.wait_for_log_line(&[" exited status=0 peer=127.0.0.1:"]);
    assert_eq!(
        server.worker_pids().len(),
        1,
        "only the one served has a worker"
    );
}

/// A rule's variables reach an `--exec` program; the connection's own
/// variables cannot be replaced by a rule.
#[test]
fn a_rule_gives_the_program_its_environment() {
    let (server, _dir, _file) = with_rules(
        "allow 127.0.0.1 GREETING=\"hello there\" TCPREMOTEIP=10.6.6.6\n",
        &["--exec", "sh", "-c", "echo \"$GREETING from $TCPREMOTEIP\""],
    );
    let mut client = client_from(&server, "127.0.0.1");
    let mut answer = String::new();
    client
        .read_to_string(&mut answer)
        .expect("read to the close");
    assert_eq!(answer, "hello there from 127.0.0.1\n");
}

/// SIGHUP reads the file again and puts it in force whole; a file that does
/// not parse leaves the rules as they were, and the log names the file and
/// the line; connections being served are never touched.
#[test]
fn rules_reload_atomically_on_sighup() {
    let (server, _dir, file) = with_rules("deny 127.0.0.7\n", &[]);
    assert!(!served(&server, "127.0.0.7"));
    let mut held = client_from(&server, "127.0.0.8");
    assert_eq!(echo(&mut held, b"before\n"), b"before\n");

    write_and_reload(&server, &file, "allow 127.0.0.7\ndeny 127.0.0.8\n", 2);
    assert!(served(&server, "127.0.0.7"), "the new rules allow .7");
    assert!(!served(&server, "127.0.0.8"), "the new rules deny .8");
    assert_eq!(
        echo(&mut held, b"after\n"),
        b"after\n",
        "a served client is untouched"
    );

    std::fs::write(&file, "allow 127.0.0.7\nbogus line here\n").expect("write");
    server.signal(libc::SIGHUP);
    let line = server.wait_for_log_line(&["rules not reloaded, the previous ones stay in force"]);
    assert!(
        line.contains(&format!("{}:2:", file.display())),
        "the error names the file and the line: {line}"
    );
    assert!(
        served(&server, "127.0.0.7"),
        "the previous rules are still in force"
    );
    assert!(!served(&server, "127.0.0.8"));
}

/// Writes `rules` to `file`, sends SIGHUP and waits for the `nth` `rules:`
/// line (the first is the start's).
fn write_and_reload(server: &Server, file: &Path, rules: &str, nth: usize) {
    std::fs::write(file, rules).expect("write the rules");
    server.signal(libc::SIGHUP);
    server.wait_for_log_count("]: rules: ", nth);
}

/// A rules file that does not parse stops the start: exit status 1, and a
/// line naming the file and the line.
#[test]
fn a_bad_rules_file_is_refused_at_startup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.rules");
    std::fs::write(&file, "allow 10.0.0.0/33\n").expect("write");
    let path = file.display().to_string();
    let output = run_mpecho(&["serve", "-l", "127.0.0.1:0", "--rules", &path], b"");
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("--rules: {path}:1:")), "{stderr}");
}
