//! Relays sharing one room through a real `redis-server` (`chat-server
//! --redis`): delivery across relays byte for byte with the sender's tag,
//! no echo and no duplicates, per-sender order, joined and left across
//! relays, the reflection guard and the oversize rule before publishing,
//! Redis killed and restarted under the relays, and garbage on the room's
//! channel.
//!
//! `RedisServer` starts Debian's `redis-server` on a free loopback port,
//! waits for its `Ready to accept connections` line, and kills it on drop,
//! even when the test fails. Each test has a loopback address and a room of
//! its own: a port freed while one test's Redis is down must not let
//! another test's relays into its room. Without `redis-server` on PATH the
//! tests fail saying so, as the HAProxy ones do (`.ci/run` installs it).

use std::net::{TcpListener, UdpSocket};
use std::process::{Child, Command, Stdio};

use mpecho_testkit::{Collected, Server, TIMEOUT, wait_for};

use super::peer::{Peer, join_after, start_relay, tag, tagged};

/// A `redis-server` of the test's own, killed on drop.
struct RedisServer {
    ip: String,
    port: u16,
    room: String,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Redis on 127.0.54.`host`, serving room `room` of the test.
    fn start(host: u8, room: &str) -> RedisServer {
        let ip = format!("127.0.54.{host}");
        let port = TcpListener::bind((ip.as_str(), 0))
            .and_then(|l| l.local_addr())
            .expect("find a free loopback port")
            .port();
        let mut redis = RedisServer {
            ip,
            port,
            room: room.to_string(),
            child: None,
            dir: tempfile::tempdir().expect("create a temporary directory"),
        };
        redis.restart();
        redis
    }

    fn url(&self) -> String {
        format!("redis://{}:{}", self.ip, self.port)
    }

    /// Starts (again) on the same port, and waits until it serves.
    fn restart(&mut self) {
        let mut child = Command::new("redis-server")
            .args(["--bind", &self.ip, "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (Debian: apt-get install redis-server redis-tools)");
        let stdout = Collected::from_pipe(child.stdout.take().expect("piped stdout"));
        self.child = Some(child);
        stdout.wait_for_line(&["Ready to accept connections"]);
    }

    /// SIGKILL, as a crash: no goodbye to the clients.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `redis-cli PUBLISH CHANNEL MESSAGE`, as anyone on the network could.
    fn publish(&self, message: &str) {
        let channel = format!("mpecho:chat:0:{}", self.room);
        let out = Command::new("redis-cli")
            .args(["-h", &self.ip, "-p", &self.port.to_string()])
            .args(["PUBLISH", &channel, message])
            .output()
            .expect("run redis-cli");
        assert!(out.status.success(), "redis-cli failed: {out:?}");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A relay in the test's room, once it has subscribed.
fn start_member(redis: &RedisServer) -> Server {
    let relay = start_relay(&["--redis", &redis.url(), "--room", &redis.room]);
    relay.wait_for_log_line(&["cluster up: subscribed to"]);
    relay
}

/// Waits until `relay` has taken `count` messages from other relays, so
/// that a client joining next hears none of them: a relay delivers to the
/// clients it knows when a message arrives from Redis, and a join racing
/// the room's earlier announcements would otherwise hear them.
fn wait_received(relay: &Server, count: u64) {
    wait_for(
        &format!("{count} messages from other relays"),
        TIMEOUT,
        || (relay.figures().get("cluster_received") >= count).then_some(()),
    );
}

/// Two relays (three clients on the first, one on the second) and a third
/// relay: every message reaches every other client in the room exactly
/// once, in the order sent, byte for byte and with the sender's tag;
/// joined and left announcements cross relays; nothing returns to its
/// sender.
#[test]
fn relays_share_one_room() {
    let redis = RedisServer::start(1, "relays_share_one_room");
    let (r1, r2, r3) = (
        start_member(&redis),
        start_member(&redis),
        start_member(&redis),
    );
    let (c, d) = (Peer::new(&r2), Peer::new(&r3));
    let (a, b) = (Peer::new(&r1), Peer::new(&r1));
    c.send(b"");
    r2.wait_for_log_line(&[&format!("joined peer={} ", c.addr)]);
    wait_received(&r3, 1);
    join_after(&d, &[&c]);
    wait_received(&r1, 2);
    join_after(&a, &[&c, &d]);
    join_after(&b, &[&a, &c, &d]);

    let all_bytes: Vec<u8> = (0..=255u8).collect();
    a.says(&all_bytes, &[&b, &c, &d]);
    c.says(b"from the second relay\r\n", &[&a, &b, &d]);
    d.says(b"from the third", &[&a, &b, &c]);
    // Per-sender order: a burst arrives whole and in order everywhere.
    for i in 0..50 {
        a.send(format!("burst {i}").as_bytes());
    }
    for peer in [&b, &c, &d] {
        for i in 0..50 {
            peer.expect_from(&a, format!("burst {i}").as_bytes());
        }
    }
    // Fences: the next datagram of each client is the fence, so nothing
    // came back to a and nobody got a second copy.
    d.says(b"fence", &[&a, &b, &c]);
    b.says(b"fence", &[&a, &c, &d]);

    b.send(b"END");
    for peer in [&a, &c, &d] {
        peer.expect_from(&b, b"left");
    }
    let f = r1.figures();
    assert!(f.line().contains("cluster=up"), "{f:?}");
    assert_eq!(f.get("cluster_bad"), 0, "{f:?}");
    assert_eq!(f.get("cluster_dropped"), 0, "{f:?}");
    // a's joined, all_bytes, 50, b's joined, b's fence, b's left.
    assert_eq!(f.get("cluster_published"), 55, "{f:?}");
}

/// Redis killed mid-test: each relay logs the loss once and keeps relaying
/// among its own clients (what it cannot publish is dropped and counted);
/// when Redis is back, they reconnect and share the room again.
#[test]
fn relays_survive_redis_restarting() {
    let mut redis = RedisServer::start(2, "relays_survive_redis_restarting");
    let (r1, r2) = (start_member(&redis), start_member(&redis));
    let c = Peer::new(&r2);
    c.send(b"");
    r2.wait_for_log_line(&[&format!("joined peer={} ", c.addr)]);
    let (a, b) = (Peer::new(&r1), Peer::new(&r1));
    wait_received(&r1, 1);
    join_after(&a, &[&c]);
    join_after(&b, &[&a, &c]);

    redis.kill();
    r1.wait_for_log_line(&["cluster down:"]);
    r2.wait_for_log_line(&["cluster down:"]);
    a.says(b"while redis is down", &[&b]);
    let f = r1.figures();
    assert!(f.line().contains("cluster=down"), "{f:?}");
    assert_eq!(f.get("cluster_dropped"), 1, "{f:?}");

    redis.restart();
    r1.wait_for_log_count("cluster up:", 2);
    r2.wait_for_log_count("cluster up:", 2);
    // c's next datagram is this one: the message sent while Redis was down
    // was dropped, not delivered late.
    a.says(b"redis is back", &[&b, &c]);
    c.says(b"and so is the room", &[&a, &b]);
    for relay in [&r1, &r2] {
        let log = relay.log();
        assert_eq!(log.matches("cluster down:").count(), 1, "{log}");
    }
}

/// Relays down at start-up relay locally, then join the room when Redis
/// appears.
#[test]
fn a_relay_started_without_redis_joins_later() {
    let mut redis = RedisServer::start(3, "a_relay_started_without_redis_joins_later");
    redis.kill();
    let r1 = start_relay(&["--redis", &redis.url(), "--room", &redis.room]);
    r1.wait_for_log_line(&["cluster down:"]);
    let (a, b) = (Peer::new(&r1), Peer::new(&r1));
    a.send(b"");
    r1.wait_for_log_line(&[&format!("joined peer={} ", a.addr)]);
    join_after(&b, &[&a]);
    a.says(b"local only", &[&b]);
    redis.restart();
    r1.wait_for_log_line(&["cluster up:"]);
    let r2 = start_member(&redis);
    let c = Peer::new(&r2);
    join_after(&c, &[&a, &b]);
    b.says(b"hello, second relay", &[&a, &c]);
}

/// Anything on the room's channel that is not a relay's message is dropped,
/// counted and logged, and the room goes on.
#[test]
fn garbage_on_the_channel_is_dropped_and_counted() {
    let redis = RedisServer::start(4, "garbage_on_the_channel_is_dropped_and_counted");
    let (r1, r2) = (start_member(&redis), start_member(&redis));
    let c = Peer::new(&r2);
    c.send(b"");
    r2.wait_for_log_line(&[&format!("joined peer={} ", c.addr)]);
    let a = Peer::new(&r1);
    wait_received(&r1, 1);
    join_after(&a, &[&c]);

    redis.publish("garbage");
    // A future version of the format, long enough to pass the header.
    redis.publish("MPCH\u{2}from a later mpecho");
    r1.wait_for_log_line(&[
        "cluster: dropped 1 bad message(s)",
        "shorter than the header",
    ]);
    a.says(b"still here", &[&c]);
    c.says(b"me too", &[&a]);
    for relay in [&r1, &r2] {
        let f = relay.figures();
        assert_eq!(f.get("cluster_bad"), 2, "{f:?}");
        assert!(f.line().contains("cluster=up"), "{f:?}");
        // Rate-limited: the second one, right after, is counted unlogged.
        let log = relay.log();
        assert_eq!(log.matches("bad message(s)").count(), 1, "{log}");
    }
}

/// The reflection guard and the oversize rule run before publishing: what
/// a relay would not relay never reaches the room, while the largest
/// datagram that fits crosses relays whole.
#[test]
fn only_what_a_relay_would_relay_is_published() {
    const MAX_DATAGRAM: usize = 65_507;
    let redis = RedisServer::start(5, "only_what_a_relay_would_relay_is_published");
    let (r1, r2) = (start_member(&redis), start_member(&redis));
    let c = Peer::new(&r2);
    c.send(b"");
    r2.wait_for_log_line(&[&format!("joined peer={} ", c.addr)]);
    let a = Peer::new(&r1);
    wait_received(&r1, 1);
    join_after(&a, &[&c]);

    let privileged = (600..1000)
        .find_map(|port| UdpSocket::bind(("127.0.0.1", port)).ok())
        .expect("bind a UDP socket to a port below 1024 (tests run as root)");
    let attacker = Peer::on(privileged, &r1);
    attacker.send(b"reflect me");
    let room = MAX_DATAGRAM - tag(a.addr).len();
    let too_large: Vec<u8> = (0..room + 1).map(|i| (i % 251) as u8).collect();
    a.send(&too_large);
    // c's next datagram is the largest that fits: nothing before it crossed.
    a.send(&too_large[..room]);
    let got = c.recv();
    assert_eq!(got.len(), MAX_DATAGRAM);
    assert!(
        got == tagged(&a, &too_large[..room]),
        "the datagram changed"
    );
    c.says(b"fence", &[&a]);
    let f = r1.figures();
    // a's joined and the largest datagram.
    assert_eq!(f.get("cluster_published"), 2, "{f:?}");
}

/// A "Redis" that accepts connections and never answers cannot stall the
/// relay: local clients are served at once, and the attempt is given up
/// (logged once) and retried.
#[test]
fn a_silent_redis_never_blocks_the_relay() {
    // The kernel completes the handshakes in the backlog; nobody reads.
    let silent = TcpListener::bind("127.0.54.6:0").expect("bind a silent listener");
    let url = format!("redis://{}", silent.local_addr().expect("its address"));
    let relay = start_relay(&["--redis", &url]);
    let (a, b) = (Peer::new(&relay), Peer::new(&relay));
    a.send(b"");
    relay.wait_for_log_line(&[&format!("joined peer={} ", a.addr)]);
    join_after(&b, &[&a]);
    a.says(b"no need to wait for redis", &[&b]);
    relay.wait_for_log_line(&["cluster down:", "did not answer in time"]);
    b.says(b"still relaying", &[&a]);
    let f = relay.figures();
    assert!(f.line().contains("cluster=down"), "{f:?}");
    let log = relay.log();
    assert_eq!(log.matches("cluster down:").count(), 1, "{log}");
}
