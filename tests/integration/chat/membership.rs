//! Who the relay knows: a newcomer is announced as `joined`; exactly `END`
//! leaves and is announced as `left`; a full list turns newcomers away with
//! `server full`; a slot freed by `END` or by idle expiry (only what a
//! client sends keeps it known) is taken by the next newcomer.

use std::time::{Duration, Instant};

use mpecho_testkit::{TIMEOUT, wait_for};

use super::peer::{Peer, figures, join_all, start_relay, tagged, wait_until_handled};

/// A newcomer is announced as `joined` before its first datagram; `END`
/// (bare, with `\n` or `\r\n`) removes a client, is announced as `left` and
/// is never relayed; `END` from an unknown sender is ignored.
#[test]
fn joined_and_left_announcements() {
    let relay = start_relay(&[]);
    let (a, b, c) = (Peer::new(&relay), Peer::new(&relay), Peer::new(&relay));
    join_all(&relay, &[&a, &b]);
    // b hears nothing about a, who was there first: its next datagram is
    // a's.
    a.says(b"hi b", &[&b]);

    // A first datagram with content: `joined` first, then the content.
    c.send(b"hi all");
    for other in [&a, &b] {
        other.expect_from(&c, b"joined");
        other.expect_from(&c, b"hi all");
    }

    for end in [&b"END"[..], b"END\n", b"END\r\n"] {
        c.send(end);
        a.expect_from(&c, b"left");
        b.expect_from(&c, b"left");
        // c is unknown again: no relay reaches it, and a fresh datagram
        // makes it join again.
        a.says(b"c is gone", &[&b]);
        c.expect_nothing_queued();
        c.send(b"back");
        for other in [&a, &b] {
            other.expect_from(&c, b"joined");
            other.expect_from(&c, b"back");
        }
    }

    // END from a stranger announces nothing and does not register it: its
    // next datagram makes it join.
    let d = Peer::new(&relay);
    d.send(b"END");
    d.send(b"END\n");
    a.says(b"fence", &[&b, &c]);
    d.expect_nothing_queued();
    d.send(b"hello");
    for other in [&a, &b, &c] {
        other.expect_from(&d, b"joined");
        other.expect_from(&d, b"hello");
    }
    assert!(
        !relay.log().contains(&format!("left peer={} ", d.addr)),
        "{}",
        relay.log()
    );
}

/// Only `END`, `END\n` and `END\r\n` leave: anything else that merely looks
/// like it is an ordinary message, relayed unchanged.
#[test]
fn only_an_exact_end_leaves() {
    let relay = start_relay(&[]);
    let (a, b) = (Peer::new(&relay), Peer::new(&relay));
    join_all(&relay, &[&a, &b]);
    for not_end in [
        &b"END\n\n"[..],
        b" END",
        b"ENDS",
        b"end",
        b"END\r",
        b"END\n\r",
        b"END\r\r\n",
        b"\nEND",
    ] {
        b.says(not_end, &[&a]);
    }
    a.says(b"b is still here", &[&b]);
}

/// With the list full, a newcomer's datagram is dropped, it gets exactly
/// `server full` (at most once a second), a warning is logged, and the
/// known clients keep relaying.
#[test]
fn full_list_turns_newcomers_away_with_server_full() {
    let relay = start_relay(&["--max-clients", "2"]);
    let (a, b, c) = (Peer::new(&relay), Peer::new(&relay), Peer::new(&relay));
    join_all(&relay, &[&a, &b]);

    let first_try = Instant::now();
    c.send(b"let me in");
    c.expect(b"server full");
    relay.wait_for_log_line(&[" WARN ", "server full", &format!("{}", c.addr)]);
    // Within the second: dropped without a reply (empty join attempts too).
    c.send(b"again");
    c.send(b"");
    let f = wait_until_handled(&relay, 5);
    assert_eq!(f["clients"], 2, "{f:?}");
    assert_eq!(f["drops"], 3, "{f:?}");
    c.expect_nothing_queued();
    // Nothing of c's reached the known clients, not even `joined`.
    a.says(b"still here", &[&b]);
    b.says(b"me too", &[&a]);
    assert!(
        !relay.log().contains(&format!("joined peer={} ", c.addr)),
        "{}",
        relay.log()
    );

    // After a second, another try gets another reply.
    let second_reply = wait_for("a second `server full` reply", TIMEOUT, || {
        c.send(b"knock");
        c.socket.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 64];
        let got = c.socket.recv(&mut buf).ok().map(|n| buf[..n].to_vec());
        c.socket.set_nonblocking(false).unwrap();
        got
    });
    assert_eq!(second_reply, b"server full");
    assert!(
        first_try.elapsed() >= Duration::from_secs(1),
        "two `server full` replies within {:?}",
        first_try.elapsed()
    );
    // The known clients were never evicted.
    a.says(b"fence", &[&b]);
    b.says(b"fence", &[&a]);
    assert_eq!(figures(&relay)["clients"], 2);
}

/// `END` frees a slot: the next newcomer takes it and is announced.
#[test]
fn end_frees_a_slot_that_a_new_client_then_takes() {
    let relay = start_relay(&["--max-clients", "2"]);
    let (a, b, c) = (Peer::new(&relay), Peer::new(&relay), Peer::new(&relay));
    join_all(&relay, &[&a, &b]);
    c.send(b"hello");
    c.expect(b"server full");

    b.send(b"END\n");
    a.expect_from(&b, b"left");
    c.send(b"hello again");
    a.expect_from(&c, b"joined");
    a.expect_from(&c, b"hello again");
    a.says(b"welcome", &[&c]);
    // b is now the one turned away.
    b.send(b"can I come back?");
    b.expect(b"server full");
    c.says(b"fence", &[&a]);
}

/// A client silent for longer than `--idle-timeout` is expired and
/// announced as `left`; a client that keeps sending (empty datagrams
/// included) stays; the freed slot is taken by a newcomer.
#[test]
fn idle_expiry_frees_a_slot_that_a_new_client_then_takes() {
    let relay = start_relay(&["--max-clients", "2", "--idle-timeout", "1"]);
    let (a, b, c) = (Peer::new(&relay), Peer::new(&relay), Peer::new(&relay));
    // Taken before b's only datagram: the relay heard b after this.
    let b_last_sent = Instant::now();
    join_all(&relay, &[&a, &b]);
    c.send(b"hello");
    c.expect(b"server full");

    // a keeps itself known with empty datagrams only; b says nothing.
    let expired = format!("expired peer={} ", b.addr);
    let line = wait_for("b to be expired", TIMEOUT, || {
        a.send(b"");
        relay
            .log()
            .lines()
            .find(|l| l.contains(&expired))
            .map(str::to_string)
    });
    assert!(
        b_last_sent.elapsed() > Duration::from_secs(1),
        "b expired after only {:?}: {line:?}",
        b_last_sent.elapsed()
    );
    a.expect_from(&b, b"left");
    assert!(
        !relay.log().contains(&format!("expired peer={} ", a.addr)),
        "a kept sending keep-alives yet was expired:\n{}",
        relay.log()
    );

    c.send(b"hello again");
    a.expect_from(&c, b"joined");
    a.expect_from(&c, b"hello again");
    a.says(b"welcome", &[&c]);
}

/// Only what a client *sends* keeps it known: one that only receives is
/// expired all the same.
#[test]
fn receiving_does_not_keep_a_silent_client_known() {
    let relay = start_relay(&["--idle-timeout", "1"]);
    let (a, b) = (Peer::new(&relay), Peer::new(&relay));
    join_all(&relay, &[&a, &b]);
    let expired = format!("expired peer={} ", b.addr);
    // a talks (every fifth poll, so that b's receive buffer cannot fill up)
    // and b hears it, but b itself sends nothing.
    let mut polls = 0;
    let mut ticks = 0u64;
    wait_for("b to be expired", TIMEOUT, || {
        if relay.log().contains(&expired) {
            return Some(());
        }
        if polls % 5 == 0 {
            a.send(format!("tick {ticks}").as_bytes());
            ticks += 1;
        }
        polls += 1;
        None
    });
    a.expect_from(&b, b"left");
    // b no longer receives a's messages.
    a.send(b"b cannot hear this");
    wait_until_handled(&relay, 2 + ticks + 1);
    // What b got: the ticks relayed while it was known, in order, and
    // nothing after.
    let mut heard = 0;
    b.socket.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 128];
    while let Ok(n) = b.socket.recv(&mut buf) {
        assert_eq!(buf[..n], tagged(&a, format!("tick {heard}").as_bytes()));
        heard += 1;
    }
    assert!(heard > 0, "b heard no tick before it expired");
}
