//! Relays sharing one room through a real `redis-server` (`chat-server
//! --redis`): delivery across relays byte for byte with the sender's tag,
//! no echo and no duplicates, per-sender order, joined and left across
//! relays (idle expiry's included), the reflection guard and the oversize
//! rule before publishing, Redis killed and restarted under the relays, a
//! Redis that stops reading (the outbox's limit, then the reply deadline),
//! a stalled Redis found by idle PINGs, and garbage on the room's channel.
//!
//! `RedisServer` starts Debian's `redis-server` on a free loopback port,
//! waits for its `Ready to accept connections` line, and kills it on drop,
//! even when the test fails. Each test has a loopback address and a room of
//! its own: a port freed while one test's Redis is down must not let
//! another test's relays into its room. Without `redis-server` on PATH the
//! tests fail saying so, as the HAProxy ones do (`.ci/run` installs it).

use std::io::ErrorKind;
use std::net::{TcpListener, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mpecho_testkit::{Collected, Server, TIMEOUT, proc_state, send_signal, wait_for};

use super::peer::{Peer, join_after, start_relay, tag, tagged};

/// The largest datagram a relay sends, tag included (`src/chat/mod.rs`).
const MAX_DATAGRAM: usize = 65_507;
/// `REPLY_TIMEOUT` and `PING_INTERVAL` in src/chat/cluster.rs: a reply
/// overdue by this much ends the connections, and a quiet connection is
/// pinged after this long.
const REPLY_TIMEOUT: Duration = Duration::from_secs(3);
const PING_INTERVAL: Duration = Duration::from_secs(5);
/// The logged reason when Redis stops answering.
const NO_ANSWER: &str = "redis did not answer within 3s";

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

    /// SIGSTOP: the connections stay open and Redis reads nothing from
    /// them, so what the relays write piles up in the kernel's buffers.
    /// Returns once the kernel shows it stopped; the guard sends SIGCONT
    /// when dropped, also when the test fails.
    fn stop(&self) -> StoppedRedis<'_> {
        let pid = self.pid();
        send_signal(pid, libc::SIGSTOP);
        wait_for("redis-server to be stopped", TIMEOUT, || {
            proc_state(pid).filter(|&(state, _)| state == 'T')
        });
        StoppedRedis(self)
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().expect("redis-server is running").id() as i32
    }

    /// `redis-cli PUBLISH CHANNEL MESSAGE`, as anyone on the network could.
    fn publish(&self, message: &str) {
        let channel = format!("mpecho:chat:0:{}", self.room);
        self.cli(&["PUBLISH", &channel, message]);
    }

    /// How many PINGs Redis has run since it started (`INFO commandstats`).
    fn pings(&self) -> u64 {
        let stats = self.cli(&["INFO", "commandstats"]);
        stats
            .lines()
            .find_map(|l| l.strip_prefix("cmdstat_ping:calls=")?.split(',').next())
            .map_or(0, |n| n.parse().expect("a number of calls"))
    }

    /// `redis-cli ARGS`, asserting it succeeds; its standard output.
    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", &self.ip, "-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("run redis-cli");
        assert!(out.status.success(), "redis-cli failed: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Redis stopped by `RedisServer::stop`, continued (SIGCONT) on drop.
struct StoppedRedis<'a>(&'a RedisServer);

impl StoppedRedis<'_> {
    /// SIGCONT now: Redis reads what waited in its sockets.
    fn resume(self) {}
}

impl Drop for StoppedRedis<'_> {
    fn drop(&mut self) {
        send_signal(self.0.pid(), libc::SIGCONT);
    }
}

/// A relay in the test's room, once it has subscribed.
fn start_member(redis: &RedisServer) -> Server {
    start_member_with(redis, &[])
}

/// Two relays in `redis`'s room, with the clients of `first_clients`.
fn two_relays(redis: &RedisServer) -> (Server, Server, Peer, Peer) {
    let (r1, r2) = (start_member(redis), start_member(redis));
    let (a, c) = first_clients(&r1, &r2);
    (r1, r2, a, c)
}

/// `c`, a new client of `r2`, then `a`, a new client of `r1`, each
/// announced to the other across Redis.
fn first_clients(r1: &Server, r2: &Server) -> (Peer, Peer) {
    let c = Peer::new(r2);
    c.send(b"");
    r2.wait_for_log_line(&[&format!("joined peer={} ", c.addr)]);
    let a = Peer::new(r1);
    wait_received(r1, 1);
    join_after(&a, &[&c]);
    (a, c)
}

/// `start_member`, with more options for the relay.
fn start_member_with(redis: &RedisServer, more: &[&str]) -> Server {
    let url = redis.url();
    let mut args = vec!["--redis", &url, "--room", &redis.room];
    args.extend_from_slice(more);
    let relay = start_relay(&args);
    relay.wait_for_log_line(&["cluster up: subscribed to"]);
    relay
}

/// Waits until `relay` logs a line with all of `needles`, until `by`: for
/// waits bounded by the relay's own deadlines rather than `TIMEOUT`.
fn wait_for_log_line_by(relay: &Server, needles: &[&str], by: Instant) -> String {
    wait_for(
        &format!("a log line with {needles:?}"),
        by.saturating_duration_since(Instant::now()),
        || {
            relay
                .log()
                .lines()
                .find(|line| needles.iter().all(|n| line.contains(n)))
                .map(str::to_string)
        },
    )
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
    let (r1, r2, a, c) = two_relays(&redis);
    let b = Peer::new(&r1);
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
    let (r1, r2, a, c) = two_relays(&redis);

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
    let redis = RedisServer::start(5, "only_what_a_relay_would_relay_is_published");
    let (r1, _r2, a, c) = two_relays(&redis);

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

/// `key` (`VmRSS`, `VmHWM`: the peak) of /proc/PID/status, in bytes.
fn memory(pid: i32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().strip_suffix("kB")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key}: line in {status}"));
    kb * 1024
}

/// Receives whatever is queued in `peer`'s socket right now, without
/// waiting, handing each datagram to `each`; returns how many there were.
fn drain(peer: &Peer, mut each: impl FnMut(&[u8])) -> u64 {
    peer.socket.set_nonblocking(true).unwrap();
    let mut buf = vec![0u8; 70_000];
    let mut count = 0;
    loop {
        match peer.socket.recv_from(&mut buf) {
            Ok((n, _)) => {
                each(&buf[..n]);
                count += 1;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => panic!("{}: unexpected receive error {e}", peer.addr),
        }
    }
    peer.socket.set_nonblocking(false).unwrap();
    count
}

/// The flood of `a_redis_that_stops_reading_makes_the_relay_drop_not_grow`:
/// datagrams of `size` bytes, numbered in their first 8, so that a receiver
/// can check each one whole and their order.
fn flood_datagram(seq: u64, size: usize) -> Vec<u8> {
    let mut data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    data[..8].copy_from_slice(&seq.to_be_bytes());
    data
}

/// Checks that `got` is one of `from`'s flood datagrams, tagged and whole,
/// numbered after `last`, which becomes its number.
fn check_flood(got: &[u8], from: &Peer, size: usize, last: &mut Option<u64>) {
    let tag = tag(from.addr);
    assert!(
        got.len() == tag.len() + size && got.starts_with(tag.as_bytes()),
        "not a flood datagram from {}: {} bytes starting {:?}",
        from.addr,
        got.len(),
        String::from_utf8_lossy(&got[..got.len().min(60)])
    );
    let seq = u64::from_be_bytes(got[tag.len()..tag.len() + 8].try_into().unwrap());
    assert!(
        got == tagged(from, &flood_datagram(seq, size)),
        "flood datagram {seq} changed"
    );
    assert!(
        last.is_none_or(|l| seq > l),
        "flood datagram {seq} after {last:?}"
    );
    *last = Some(seq);
}

/// A Redis that stops reading (SIGSTOP: its connections stay open, it
/// reads nothing) while a client floods relay 1 with the largest datagrams
/// it relays: once the kernel's buffers are full, relay 1 holds at most
/// its 4 MiB outbox of unsent PUBLISH commands and drops and counts the
/// rest (`cluster_dropped`) instead of growing; its local clients are
/// served throughout.
///
/// Redis holds the connections open but answers nothing, so each relay
/// declares the cluster down on its own deadline (relay 1 on its unanswered
/// PUBLISHes, relay 2 on an idle PING), saying why, once; when Redis runs
/// again both reconnect and the room goes on. Flood datagrams already in
/// Redis's socket buffer when it stopped may still reach relay 2's client
/// after SIGCONT, whole and in order.
#[test]
fn a_redis_that_stops_reading_makes_the_relay_drop_not_grow() {
    // `OUTBOX_LIMIT` in src/chat/cluster.rs.
    const OUTBOX_LIMIT: u64 = 4 * 1024 * 1024;
    // What relay 1 may allocate besides the outbox while flooded: one
    // message past the limit (the limit is checked before a message is
    // appended), the copies of one message while it is tagged and encoded,
    // the 64 KiB receive buffer, the allocator's rounding.
    const SLACK: u64 = 2 * 1024 * 1024;
    // The flood's bounds: 1,000 datagrams is 65 MB.
    const MOST_SENT: u64 = 1000;
    const LONGEST: Duration = Duration::from_secs(30);
    let redis = RedisServer::start(7, "a_redis_that_stops_reading");
    let (r1, r2, a, c) = two_relays(&redis);
    let b = Peer::new(&r1);
    join_after(&b, &[&a, &c]);
    let rss_before = memory(r1.pid, "VmRSS");

    let stopped = redis.stop();
    let stopped_at = Instant::now();
    // The bound on relay 1's growth, and how much it must have dropped for
    // the bound to mean something: messages it dropped were never sent
    // anywhere, so an outbox without a limit would hold every one of them
    // on top of what the bounded one holds. Flooding until the dropped
    // messages alone are twice the allowance puts "kept everything" (the
    // full outbox plus them) at more than 2.5 times the bound asserted.
    let allowance = OUTBOX_LIMIT + SLACK;
    let size = MAX_DATAGRAM - tag(a.addr).len();
    let must_drop = 2 * allowance / size as u64 + 1;
    let started = Instant::now();
    let mut sent = 0u64;
    let mut b_last = None;
    let mut b_heard = 0;
    let flooded = loop {
        for _ in 0..4 {
            a.send(&flood_datagram(sent, size));
            sent += 1;
        }
        b_heard += drain(&b, |got| check_flood(got, &a, size, &mut b_last));
        let f = r1.figures();
        if f.get("cluster_dropped") >= must_drop {
            break f;
        }
        assert!(
            sent < MOST_SENT && started.elapsed() < LONGEST,
            "{sent} datagrams of {size} bytes sent in {:?} and still not {must_drop} dropped: {f:?}",
            started.elapsed()
        );
    };

    // Relay 1 has taken every datagram still queued for it once two figures
    // lines in a row count the same datagrams: a figures line is written
    // at a wake-up before that wake-up's datagrams are read, and datagrams
    // waiting at a wake-up are read in it (at least one). Meanwhile b
    // empties its socket, so that its next datagram is the fence.
    let mut last_in = None;
    wait_for("relay 1 to have taken every datagram sent", TIMEOUT, || {
        b_heard += drain(&b, |got| check_flood(got, &a, size, &mut b_last));
        let now = r1.figures().get("datagrams_in");
        let settled = last_in == Some(now);
        last_in = Some(now);
        settled.then_some(())
    });
    b_heard += drain(&b, |got| check_flood(got, &a, size, &mut b_last));
    // Local service goes on with the outbox full.
    a.says(b"still relaying locally", &[&b]);
    let stalled = r1.figures();
    let peak = memory(r1.pid, "VmHWM");
    let rss = memory(r1.pid, "VmRSS");
    eprintln!(
        "flood: sent {sent} datagrams ({} bytes) in {:?}; relay 1 took {} of them, b heard {b_heard}; \
         RSS before {rss_before}, peak {peak}, now {rss}; {stalled:?}",
        sent * size as u64,
        started.elapsed(),
        stalled.get("datagrams_in") - 3,
    );
    for (what, bytes) in [("peak RSS (VmHWM)", peak), ("RSS", rss)] {
        assert!(
            bytes <= rss_before + allowance,
            "relay 1's {what} grew from {rss_before} to {bytes} bytes, more than the \
             outbox's {OUTBOX_LIMIT} and {SLACK} of slack; {stalled:?}"
        );
    }
    // Nothing entered the outbox since it filled up, the last message
    // included: it was dropped, not queued.
    assert_eq!(
        stalled.get("cluster_published"),
        flooded.get("cluster_published"),
        "{flooded:?} then {stalled:?}"
    );
    assert!(
        stalled.get("cluster_dropped") > flooded.get("cluster_dropped"),
        "{flooded:?} then {stalled:?}"
    );

    // Each relay gives up on the silent Redis by its own deadline: relay 1
    // within `REPLY_TIMEOUT` of its last answered PUBLISH, relay 2 (idle)
    // once a PING goes unanswered. The bound is the later of the two, plus
    // `TIMEOUT` of margin for a slow machine.
    let down_by = stopped_at + PING_INTERVAL + REPLY_TIMEOUT + TIMEOUT;
    for relay in [&r1, &r2] {
        wait_for_log_line_by(relay, &["cluster down:", NO_ANSWER], down_by);
        let f = relay.figures();
        assert!(f.line().contains("cluster=down"), "{f:?}");
    }
    // Still relaying locally; what cannot be published is dropped and
    // counted, and relay 1 has let go of its outbox.
    b_heard += drain(&b, |got| check_flood(got, &a, size, &mut b_last));
    a.says(b"still relaying, cluster down", &[&b]);
    let down = r1.figures();
    assert!(
        down.get("cluster_dropped") > stalled.get("cluster_dropped"),
        "{stalled:?} then {down:?}"
    );
    assert_eq!(
        down.get("cluster_published"),
        flooded.get("cluster_published"),
        "{down:?}"
    );
    let rss = memory(r1.pid, "VmRSS");
    assert!(rss <= rss_before + allowance, "RSS {rss}; {down:?}");
    eprintln!("cluster down: b heard {b_heard} in all; {down:?}");

    stopped.resume();
    r1.wait_for_log_count("cluster up:", 2);
    r2.wait_for_log_count("cluster up:", 2);
    // The room goes on. What Redis read of relay 1's flood before it
    // stopped may reach c first (the relays closed those connections, but
    // Redis still runs what it had received); then the new message.
    let new = b"redis answers again";
    a.send(new);
    b.expect_from(&a, new);
    let mut c_last = None;
    let mut c_flood = 0;
    loop {
        let got = c.recv();
        if got == tagged(&a, new) {
            break;
        }
        check_flood(&got, &a, size, &mut c_last);
        c_flood += 1;
    }
    eprintln!("after SIGCONT: c heard {c_flood} flood datagrams, then the new one");
    c.says(b"and relay 2 answers", &[&a, &b]);
    for relay in [&r1, &r2] {
        let f = relay.figures();
        assert!(f.line().contains("cluster=up"), "{f:?}");
        let log = relay.log();
        assert_eq!(log.matches("cluster down:").count(), 1, "{log}");
    }
    // c's joined and c's answer: relay 1 never hears its own flood.
    assert_eq!(r1.figures().get("cluster_received"), 2);
}

/// Relays in a quiet room: each connection is pinged after
/// `PING_INTERVAL` of silence, and the answers (a push, on the subscribed
/// connection) are taken as such: the next PING follows only an answered
/// one, and the room stays up. When Redis stops (SIGSTOP: connections
/// open, nothing answered), the unanswered PING makes each relay declare
/// the cluster down, saying why, within `PING_INTERVAL + REPLY_TIMEOUT`;
/// after SIGCONT both reconnect and the room works.
#[test]
fn a_stalled_redis_is_found_by_idle_pings() {
    let redis = RedisServer::start(9, "a_stalled_redis_is_found_by_idle_pings");
    let (r1, r2) = (start_member(&redis), start_member(&redis));
    // Four relay connections whose last command was a PING (redis-cli's
    // own connection shows `client|list`)...
    wait_for(
        "every relay connection to have sent a PING",
        PING_INTERVAL + TIMEOUT,
        || {
            let clients = redis.cli(&["CLIENT", "LIST"]);
            (clients.matches(" cmd=ping ").count() == 4).then_some(())
        },
    );
    // ...and a second round: a connection sends its next PING only once
    // the last is answered, and an answer not recognised would have ended
    // the connections `REPLY_TIMEOUT` after it was owed.
    wait_for(
        "every relay connection to have sent a second PING",
        PING_INTERVAL + TIMEOUT,
        || (redis.pings() >= 8).then_some(()),
    );
    for relay in [&r1, &r2] {
        let f = relay.figures();
        assert!(f.line().contains("cluster=up"), "{f:?}");
        assert_eq!(f.get("cluster_bad"), 0, "{f:?}");
        let log = relay.log();
        assert!(!log.contains("cluster down:"), "{log}");
    }

    let stopped = redis.stop();
    let down_by = Instant::now() + PING_INTERVAL + REPLY_TIMEOUT + TIMEOUT;
    for relay in [&r1, &r2] {
        wait_for_log_line_by(relay, &["cluster down:", NO_ANSWER], down_by);
        let f = relay.figures();
        assert!(f.line().contains("cluster=down"), "{f:?}");
    }

    stopped.resume();
    r1.wait_for_log_count("cluster up:", 2);
    r2.wait_for_log_count("cluster up:", 2);
    let (a, c) = first_clients(&r1, &r2);
    a.says(b"the room is back", &[&c]);
    c.says(b"so it is", &[&a]);
    for relay in [&r1, &r2] {
        let log = relay.log();
        assert_eq!(log.matches("cluster down:").count(), 1, "{log}");
    }
}

/// A client of relay 1 that stays silent past relay 1's `--idle-timeout`
/// (1 s, the smallest: 0 turns expiry off) is announced as `left` to the
/// clients of relay 2 too, with the same bytes (its tag, then `left`) as
/// relay 1's own clients hear, and exactly once.
#[test]
fn idle_expiry_is_announced_across_relays() {
    let redis = RedisServer::start(8, "idle_expiry_is_announced_across_relays");
    let r1 = start_member_with(&redis, &["--idle-timeout", "1"]);
    let r2 = start_member(&redis);
    let c = Peer::new(&r2);
    c.send(b"");
    r2.wait_for_log_line(&[&format!("joined peer={} ", c.addr)]);
    let (a, b) = (Peer::new(&r1), Peer::new(&r1));
    wait_received(&r1, 1);
    // Taken before a's only datagram: the relay heard a after this.
    let a_last_sent = Instant::now();
    join_after(&a, &[&c]);
    join_after(&b, &[&a, &c]);

    // b keeps itself known with empty datagrams (never relayed, never
    // published); a says nothing more.
    let expired = format!("expired peer={} ", a.addr);
    wait_for("a to be expired", TIMEOUT, || {
        b.send(b"");
        r1.log().contains(&expired).then_some(())
    });
    assert!(
        a_last_sent.elapsed() > Duration::from_secs(1),
        "a expired after only {:?}",
        a_last_sent.elapsed()
    );
    let local = b.recv();
    assert!(local == tagged(&a, b"left"), "b heard {local:?}");
    let remote = c.recv();
    assert!(
        remote == local,
        "relay 2's client heard {:?}, relay 1's heard {:?}",
        String::from_utf8_lossy(&remote),
        String::from_utf8_lossy(&local)
    );
    // Exactly once: relay 1 publishes on one connection, in order, so a
    // second `left` would arrive before this fence.
    b.says(b"fence", &[&c]);
    c.says(b"fence", &[&b]);
    let log = r1.log();
    assert_eq!(log.matches(&expired).count(), 1, "{log}");
    // a's and b's joined, a's left, b's fence.
    assert_eq!(r1.figures().get("cluster_published"), 4);
    assert_eq!(r2.figures().get("cluster_received"), 4);
}
