//! `--max-rate-per-ip N/SECS`: a token bucket per client address. A
//! connection over its address's rate is closed at once and counted, while
//! every other address is served and the listener never stops accepting.

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};

use mpecho_testkit::{Server, connect_from};

fn from(server: &Server, ip: &str) -> TcpStream {
    connect_from(ip.parse::<IpAddr>().expect("an address"), server.addr)
}

/// Whether a client from `ip` gets its echo back (or is turned away).
fn served(server: &Server, ip: &str) -> bool {
    let mut client = from(server, ip);
    let _ = client.write_all(b"ping\n");
    let mut back = [0u8; 5];
    client.read_exact(&mut back).is_ok() && &back == b"ping\n"
}

/// Three a minute from one address: the fourth is turned away, logged with
/// the rate and counted; a second address is unaffected.
#[test]
fn a_source_over_its_rate_is_turned_away_and_others_are_not() {
    let server = Server::start(&["--max-rate-per-ip", "3/60"]);
    for n in 1..=3 {
        assert!(
            served(&server, "127.0.0.9"),
            "connection {n} is within the rate"
        );
    }
    assert!(!served(&server, "127.0.0.9"), "the fourth is over the rate");
    server.wait_for_log_line(&[
        "rejected peer=127.0.0.9:",
        "rate limit reached for 127.0.0.9 (max_rate_per_ip=3/60s)",
    ]);
    assert!(served(&server, "127.0.0.10"), "another address is served");
    let figures = server.figures();
    assert_eq!(figures.get("rejected_rate"), 1);
    assert_eq!(figures.get("accepted"), 4);
}

/// Many sources at once, each one over its own rate: every one is limited
/// on its own, and the service keeps accepting throughout.
#[test]
fn many_sources_are_limited_each_on_its_own() {
    let server = Server::start(&["--max-rate-per-ip", "1/60"]);
    let sources: Vec<String> = (1..=40).map(|i| format!("127.0.1.{i}")).collect();
    for ip in &sources {
        assert!(served(&server, ip), "the first from {ip}");
    }
    for ip in &sources {
        assert!(
            !served(&server, ip),
            "the second from {ip} within the minute"
        );
    }
    let figures = server.figures();
    assert_eq!(figures.get("rejected_rate"), 40);
    assert_eq!(figures.get("accepted"), 40);
    assert!(served(&server, "127.0.2.1"), "still accepting new sources");
}

/// A rule's `max-rate-per-ip=` replaces the global rate for its addresses:
/// `0` lifts it, a rate of its own tightens it.
#[test]
fn a_rule_replaces_the_global_rate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("rates.rules");
    std::fs::write(
        &rules,
        "allow 127.0.3.1 max-rate-per-ip=0\nallow 127.0.3.2 max-rate-per-ip=1/60\n",
    )
    .expect("write the rules");
    let path = rules.display().to_string();
    let server = Server::start(&["--max-rate-per-ip", "2/60", "--rules", &path]);
    for _ in 0..5 {
        assert!(served(&server, "127.0.3.1"), "no rate for 127.0.3.1");
    }
    assert!(served(&server, "127.0.3.2"));
    assert!(!served(&server, "127.0.3.2"), "one a minute for 127.0.3.2");
    assert!(served(&server, "127.0.3.3"));
    assert!(served(&server, "127.0.3.3"));
    assert!(!served(&server, "127.0.3.3"), "the global two a minute");
}
