//! `mpecho chat [HOST] [PORT]` as a real process against a real relay: it
//! joins before anything is typed, prints what others send each on its own
//! line, sends what is typed, and on `END`, end of input, Ctrl-C, a dead
//! receiving process or an unreachable server it leaves with the right
//! status, its receiving process ended and reaped.
//!
//! The client's stdin stays open until a test closes it, so a test decides
//! when input ends; the other side of the chat is a plain `UdpSocket`
//! client (`Peer`).

use std::io::{Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;

use crate::chat::{Peer, join_all, start_relay, tag};
use mpecho_testkit::{
    Server, TIMEOUT, children_of, mpecho_bin, proc_state, process_group_members, send_signal,
    wait_for,
};

/// A running `mpecho chat`, in its own process group. On drop, anything
/// left of that group (the client, its receiving process) is killed and the
/// client reaped, so a failing test leaves nothing behind.
struct Chat {
    child: Child,
    pid: i32,
    stdin: Option<ChildStdin>,
    /// Chunks of stdout as they are read; disconnected at EOF, that is once
    /// the client *and* its receiving process have closed it.
    stdout: mpsc::Receiver<Vec<u8>>,
    unread: Vec<u8>,
    /// All of stderr, sent once at EOF.
    stderr: mpsc::Receiver<Vec<u8>>,
}

impl Chat {
    /// Starts `mpecho chat 127.0.0.1 PORT` with piped stdin, stdout and
    /// stderr.
    fn start(port: u16) -> Chat {
        let mut child = Command::new(mpecho_bin())
            .args(["chat", "127.0.0.1", &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("start mpecho chat");
        let pid = child.id() as i32;
        let stdin = child.stdin.take();

        let (out_tx, stdout) = mpsc::channel();
        let mut out = child.stdout.take().expect("stdout is piped");
        thread::spawn(move || {
            let mut buf = [0u8; 65_536];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 || out_tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let (err_tx, stderr) = mpsc::channel();
        let mut err = child.stderr.take().expect("stderr is piped");
        thread::spawn(move || {
            let mut all = Vec::new();
            let _ = err.read_to_end(&mut all);
            let _ = err_tx.send(all);
        });

        Chat {
            child,
            pid,
            stdin,
            stdout,
            unread: Vec::new(),
            stderr,
        }
    }

    /// The receiving process: the client's one live child.
    fn receiver(&self) -> i32 {
        let pid = wait_for("the receiving process", TIMEOUT, || {
            let live: Vec<i32> = children_of(self.pid)
                .into_iter()
                .filter(|&(_, state)| state != 'Z')
                .map(|(pid, _)| pid)
                .collect();
            (!live.is_empty()).then_some(live)
        });
        assert_eq!(pid.len(), 1, "the client must have exactly one child");
        pid[0]
    }

    fn type_in(&mut self, input: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin is still open");
        stdin.write_all(input).expect("write to the client's stdin");
        stdin.flush().unwrap();
    }

    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Asserts that stdout goes on with exactly `expected` (waiting for it
    /// to be written, while the client runs).
    fn expect_stdout(&mut self, expected: &[u8]) {
        while self.unread.len() < expected.len() {
            match self.stdout.recv_timeout(TIMEOUT) {
                Ok(chunk) => self.unread.extend_from_slice(&chunk),
                Err(e) => panic!(
                    "stdout: waited for {:?}, got only {:?} ({e})",
                    String::from_utf8_lossy(expected),
                    String::from_utf8_lossy(&self.unread)
                ),
            }
        }
        let got: Vec<u8> = self.unread.drain(..expected.len()).collect();
        assert!(
            got == expected,
            "stdout: expected {:?}, got {:?}",
            String::from_utf8_lossy(expected),
            String::from_utf8_lossy(&got)
        );
    }

    /// Everything still to come on stdout, up to EOF: once the client has
    /// exited, EOF also proves its receiving process is gone.
    fn rest_of_stdout(&mut self) -> Vec<u8> {
        let mut rest = std::mem::take(&mut self.unread);
        loop {
            match self.stdout.recv_timeout(TIMEOUT) {
                Ok(chunk) => rest.extend_from_slice(&chunk),
                Err(mpsc::RecvTimeoutError::Disconnected) => return rest,
                Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                    "stdout still open {TIMEOUT:?} after the client exited: \
                     its receiving process is still running"
                ),
            }
        }
    }

    /// All of stderr (once the client has exited).
    fn stderr(&self) -> String {
        let all = self
            .stderr
            .recv_timeout(TIMEOUT)
            .expect("stderr reaches EOF after the client exits");
        String::from_utf8_lossy(&all).into_owned()
    }

    fn wait_exit(&mut self) -> ExitStatus {
        wait_for("the chat client to exit", TIMEOUT, || {
            self.child.try_wait().ok().flatten()
        })
    }
}

impl Drop for Chat {
    fn drop(&mut self) {
        // While the client is unreaped its pid, the group's id, cannot be
        // reused; afterwards the group is only signalled if members remain.
        if matches!(self.child.try_wait(), Ok(None)) {
            send_signal(-self.pid, libc::SIGKILL);
            let _ = self.child.wait();
        }
        if !process_group_members(self.pid).is_empty() {
            send_signal(-self.pid, libc::SIGKILL);
        }
    }
}

/// A relay with one plain client `peer` already known to it.
fn relay_with_peer() -> (Server, Peer) {
    let relay = start_relay(&[]);
    let peer = Peer::new(&relay);
    join_all(&relay, &[&peer]);
    (relay, peer)
}

/// Starts a chat client and waits until `peer` hears it join, before
/// anything is typed; returns it with its address as the relay sees it.
fn join_chat(relay: &Server, peer: &Peer) -> (Chat, SocketAddr) {
    let chat = Chat::start(relay.addr.port());
    let joined = peer.recv();
    let text = String::from_utf8_lossy(&joined).into_owned();
    let port: u16 = text
        .strip_prefix("127.0.0.1: ")
        .and_then(|rest| rest.strip_suffix(">> joined"))
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("expected `127.0.0.1: PORT>> joined`, got {text:?}"));
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    relay.wait_for_log_line(&[&format!("joined peer={addr} ")]);
    (chat, addr)
}

/// Asserts that `peer`'s next datagram is `data` from the chat client.
fn expect_from_chat(peer: &Peer, chat: SocketAddr, data: &[u8]) {
    let mut expected = tag(chat).into_bytes();
    expected.extend_from_slice(data);
    peer.expect(&expected);
}

/// Asserts that the receiving process `receiver` of client `client` was
/// reaped: it is gone, or (pid reused) neither a zombie nor the client's.
fn assert_reaped(receiver: i32, client: i32) {
    let state = proc_state(receiver);
    assert!(
        state.is_none_or(|(state, ppid)| state != 'Z' && ppid != client),
        "the receiving process {receiver} was left behind: (state, ppid) = {state:?}"
    );
}

/// The client joins before anything is typed and hears others at once;
/// what others send is printed each on its own line (a newline added only
/// when missing); typed lines are sent without their newline; `END` leaves
/// with status 0, nothing typed after it is sent, and the receiving process
/// is ended and reaped.
#[test]
fn joins_before_typing_relays_both_ways_and_leaves_on_end() {
    let (relay, peer) = relay_with_peer();
    let (mut chat, me) = join_chat(&relay, &peer);
    let receiver = chat.receiver();

    // Heard before typing anything, each on its own line, as it comes.
    let them = tag(peer.addr);
    peer.send(b"hello");
    chat.expect_stdout(format!("{them}hello\n").as_bytes());
    peer.send(b"already a line\n");
    chat.expect_stdout(format!("{them}already a line\n").as_bytes());
    peer.send(b"two\nlines");
    chat.expect_stdout(format!("{them}two\nlines\n").as_bytes());
    peer.send(b"\x00\xff binary");
    let mut binary = them.clone().into_bytes();
    binary.extend_from_slice(b"\x00\xff binary\n");
    chat.expect_stdout(&binary);

    // Typed lines, one datagram each, without the newline.
    chat.type_in(b"hi there\n");
    expect_from_chat(&peer, me, b"hi there");
    chat.type_in(b"first\nsecond\n");
    expect_from_chat(&peer, me, b"first");
    expect_from_chat(&peer, me, b"second");
    chat.type_in(b"in two ");
    chat.type_in(b"writes\n");
    expect_from_chat(&peer, me, b"in two writes");

    chat.type_in(b"END\nnot sent\n");
    let status = chat.wait_exit();
    assert_eq!(status.code(), Some(0), "stderr: {}", chat.stderr());
    expect_from_chat(&peer, me, b"left");
    assert_eq!(chat.rest_of_stdout(), b"", "stdout after END");
    assert_reaped(receiver, chat.pid);
    relay.wait_for_log_line(&[&format!("left peer={me} ")]);
    // Nothing came after END: a fence from another client is next.
    let other = Peer::new(&relay);
    other.send(b"fence");
    peer.expect_from(&other, b"joined");
    peer.expect_from(&other, b"fence");
}

/// End of input leaves like `END`: status 0, `left` at the relay, the
/// receiving process reaped.
#[test]
fn end_of_input_leaves_with_status_0() {
    let (relay, peer) = relay_with_peer();
    let (mut chat, me) = join_chat(&relay, &peer);
    let receiver = chat.receiver();
    chat.type_in(b"last words\n");
    expect_from_chat(&peer, me, b"last words");
    chat.close_stdin();
    let status = chat.wait_exit();
    assert_eq!(status.code(), Some(0), "stderr: {}", chat.stderr());
    expect_from_chat(&peer, me, b"left");
    assert_eq!(chat.rest_of_stdout(), b"");
    assert_reaped(receiver, chat.pid);
}

/// A receiving process killed from outside is noticed at once (no input
/// needed): the client reaps it, sends `END`, says so and exits 1.
#[test]
fn killed_receiver_makes_the_client_leave_with_status_1() {
    let (relay, peer) = relay_with_peer();
    let (mut chat, me) = join_chat(&relay, &peer);
    let receiver = chat.receiver();
    send_signal(receiver, libc::SIGKILL);
    // stdin stays open: only the death of the child can end the client
    // within TIMEOUT (its next wake-up otherwise is the 60 s keep-alive).
    let status = chat.wait_exit();
    let stderr = chat.stderr();
    assert_eq!(status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.contains("receiving process"), "stderr: {stderr}");
    expect_from_chat(&peer, me, b"left");
    relay.wait_for_log_line(&[&format!("left peer={me} ")]);
    assert_eq!(chat.rest_of_stdout(), b"");
    assert_reaped(receiver, chat.pid);
}

/// Ctrl-C (SIGINT to the whole process group) leaves like `END`, with
/// status 130, and the receiving process reaped.
#[test]
fn ctrl_c_leaves_with_status_130() {
    let (relay, peer) = relay_with_peer();
    let (mut chat, me) = join_chat(&relay, &peer);
    let receiver = chat.receiver();
    peer.send(b"before Ctrl-C");
    chat.expect_stdout(format!("{}before Ctrl-C\n", tag(peer.addr)).as_bytes());
    send_signal(-chat.pid, libc::SIGINT);
    let status = chat.wait_exit();
    assert_eq!(status.code(), Some(130), "stderr: {}", chat.stderr());
    expect_from_chat(&peer, me, b"left");
    relay.wait_for_log_line(&[&format!("left peer={me} ")]);
    assert_eq!(chat.rest_of_stdout(), b"");
    assert_reaped(receiver, chat.pid);
}

/// With nothing listening on the port, the client says the server is
/// unreachable and exits 1, without waiting for input.
#[test]
fn unreachable_server_exits_1() {
    let port = {
        let probe = UdpSocket::bind("127.0.0.1:0").expect("find a free UDP port");
        probe.local_addr().unwrap().port()
    };
    let mut chat = Chat::start(port);
    let status = chat.wait_exit();
    let stderr = chat.stderr();
    assert_eq!(status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.contains("unreachable"), "stderr: {stderr}");
    assert_eq!(chat.rest_of_stdout(), b"");
}
