//! What a scrape says: every family the README lists, each with HELP and
//! TYPE, read by the real parser; the values after a known sequence of
//! connections; the histogram of worker lifetimes; and agreement with the
//! figures line written right after.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use mpecho_testkit::{
    Server, TIMEOUT, assert_connection_ended, connect_from, echo, send_signal, wait_for,
};

use super::{Scrape, scrape, start};

/// Every family, as the parser names it (counters without `_total`), and
/// its type: the README's table lists the same.
const FAMILIES: [(&str, &str); 22] = [
    ("mpecho_connections_accepted", "counter"),
    ("mpecho_connections_rejected", "counter"),
    ("mpecho_accept_errors", "counter"),
    ("mpecho_worker_exits", "counter"),
    ("mpecho_deferrals", "counter"),
    ("mpecho_log_write_errors", "counter"),
    ("mpecho_workers_active", "gauge"),
    ("mpecho_workers_peak", "gauge"),
    ("mpecho_listener_state", "gauge"),
    ("mpecho_model", "gauge"),
    ("mpecho_max_workers", "gauge"),
    ("mpecho_max_per_ip", "gauge"),
    ("mpecho_idle_timeout_seconds", "gauge"),
    ("mpecho_uptime_seconds", "gauge"),
    ("process_start_time_seconds", "gauge"),
    ("process_resident_memory_bytes", "gauge"),
    ("process_open_fds", "gauge"),
    ("process_max_fds", "gauge"),
    ("mpecho_worker_lifetime_seconds", "histogram"),
    ("mpecho_metrics_responses", "counter"),
    ("mpecho_metrics_connections_rejected", "counter"),
    ("mpecho_metrics_connections_timed_out", "counter"),
];

/// Asserts what the parser cannot: each family has a HELP line directly
/// followed by its TYPE line, before its samples, once; the families are
/// exactly [`FAMILIES`]; counters end in `_total`; every histogram's buckets
/// are cumulative and end with `+Inf`, equal to `_count`.
fn assert_well_formed(scrape: &Scrape) {
    let lines: Vec<&str> = scrape.text.lines().collect();
    let mut declared = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, _) = rest.split_once(' ').expect("# TYPE NAME TYPE");
            let help = format!("# HELP {name} ");
            assert!(
                i > 0 && lines[i - 1].starts_with(&help),
                "no HELP right before {line:?}"
            );
            declared.push(name.to_string());
        } else if !line.starts_with("# HELP ") {
            let family = declared.last().expect("a sample before any TYPE line");
            assert!(
                line.starts_with(family.as_str()),
                "{line:?} outside {family}"
            );
        }
    }
    let mut unique = declared.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), declared.len(), "a family declared twice");

    let found: Vec<(&str, &str)> = scrape
        .families
        .iter()
        .map(|f| (f.name.as_str(), f.kind.as_str()))
        .collect();
    assert_eq!(found, FAMILIES, "families (name, type) as parsed");
    for family in &scrape.families {
        assert!(!family.help.is_empty(), "{} has no HELP text", family.name);
        assert!(!family.samples.is_empty(), "{} has no sample", family.name);
        if family.kind == "counter" {
            for sample in &family.samples {
                assert!(sample.name.ends_with("_total"), "{}", sample.name);
            }
        }
        if family.kind == "histogram" {
            assert_histogram(scrape, &family.name);
        }
    }
}

/// A histogram's buckets in the order served: increasing bounds, counts
/// that never decrease, `+Inf` last and equal to `_count`. Returns the
/// `(bound, cumulative count)` pairs.
fn assert_histogram(scrape: &Scrape, name: &str) -> Vec<(f64, u64)> {
    let family = scrape.family(name);
    let bucket = format!("{name}_bucket");
    let buckets: Vec<(f64, u64)> = family
        .samples
        .iter()
        .filter(|s| s.name == bucket)
        .map(|s| {
            let le = &s.labels["le"];
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().expect("a numeric le")
            };
            (bound, s.value as u64)
        })
        .collect();
    assert!(buckets.len() > 1, "{name} has no buckets");
    assert!(
        buckets
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
        "{name}'s buckets are not cumulative: {buckets:?}"
    );
    let (last_bound, last) = buckets[buckets.len() - 1];
    assert_eq!(last_bound, f64::INFINITY, "{name}'s last bucket");
    assert_eq!(last, scrape.count(&format!("{name}_count"), &[]), "+Inf");
    buckets
}

/// A sample's labels, as `(name, value)` pairs.
type Labels<'a> = &'a [(&'a str, &'a str)];

fn from(last_byte: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last_byte))
}

fn exits(scrape: &Scrape, how: &str) -> u64 {
    scrape.count("mpecho_worker_exits_total", &[("how", how)])
}

/// Waits until the master has reaped every worker and logged it.
fn wait_all_reaped(server: &Server, exits: usize) {
    server.wait_for_log_count("]: worker ", exits);
    wait_for("every worker reaped", TIMEOUT, || {
        (server.worker_pids().is_empty() && server.zombies().is_empty()).then_some(())
    });
}

/// A known sequence, with `--max-workers 2 --max-per-ip 1 --idle-timeout
/// 3`: three connections served, one rejected for its address, one at the
/// worker limit; one worker killed by a signal, one left by its client, one
/// closed for idleness. The scrape parses, every family has HELP and TYPE,
/// and it counts exactly that.
#[test]
fn a_scrape_parses_and_counts_a_known_sequence() {
    let (server, metrics) = start(&[
        "--max-workers",
        "2",
        "--max-per-ip",
        "1",
        "--idle-timeout",
        "3",
    ]);
    let mut a = connect_from(from(1), server.addr);
    assert_eq!(echo(&mut a, b"a\n"), b"a\n");
    let mut same_address = connect_from(from(1), server.addr);
    assert_connection_ended(&mut same_address, true, "a second client from 127.0.0.1");
    let mut c = connect_from(from(2), server.addr);
    assert_eq!(echo(&mut c, b"c\n"), b"c\n");
    let c_worker = server.worker_serving(&c);
    let mut beyond = connect_from(from(3), server.addr);
    assert_connection_ended(&mut beyond, true, "a third client at --max-workers 2");

    send_signal(c_worker, libc::SIGKILL);
    server.wait_for_log_line(&[&format!("worker {c_worker} killed by SIGKILL")]);
    // `a` talks just before leaving: its idle timeout never comes.
    assert_eq!(echo(&mut a, b"a\n"), b"a\n");
    drop(a);
    server.wait_for_log_line(&["exited status=0 peer=127.0.0.1:"]);
    let mut idle = connect_from(from(4), server.addr);
    assert_eq!(echo(&mut idle, b"e\n"), b"e\n");
    server.wait_for_log_line(&["(idle timeout) peer=127.0.0.4:"]);
    wait_all_reaped(&server, 3);

    let scrape = scrape(metrics);
    assert_well_formed(&scrape);
    let count = |name: &str, labels: &[(&str, &str)]| scrape.count(name, labels);
    assert_eq!(count("mpecho_connections_accepted_total", &[]), 3);
    let rejected = "mpecho_connections_rejected_total";
    assert_eq!(count(rejected, &[("reason", "worker_limit")]), 1);
    assert_eq!(count(rejected, &[("reason", "per_ip")]), 1);
    assert_eq!(count(rejected, &[("reason", "spawn_failure")]), 0);
    assert_eq!(count("mpecho_accept_errors_total", &[]), 0);
    assert_eq!(
        [
            exits(&scrape, "ok"),
            exits(&scrape, "error"),
            exits(&scrape, "signal"),
            exits(&scrape, "idle")
        ],
        [1, 0, 1, 1],
        "exits ok, error, signal, idle"
    );
    assert_eq!(count("mpecho_deferrals_total", &[]), 0);
    assert_eq!(count("mpecho_workers_active", &[]), 0);
    assert_eq!(count("mpecho_workers_peak", &[]), 2);
    assert_eq!(count("mpecho_max_workers", &[]), 2);
    assert_eq!(count("mpecho_max_per_ip", &[]), 1);
    assert_eq!(count("mpecho_idle_timeout_seconds", &[]), 3);
    for (state, expected) in [
        ("listening", 1),
        ("paused", 0),
        ("deferred", 0),
        ("closed", 0),
    ] {
        assert_eq!(
            count("mpecho_listener_state", &[("state", state)]),
            expected,
            "{state}"
        );
    }
    for (model, expected) in [("exec", 1), ("fork", 0), ("iterative", 0)] {
        assert_eq!(
            count("mpecho_model", &[("model", model)]),
            expected,
            "{model}"
        );
    }
    assert_eq!(count("mpecho_worker_lifetime_seconds_count", &[]), 3);
    // The idle worker lived at least its 3 s; the others far less.
    assert!(scrape.value("mpecho_worker_lifetime_seconds_sum", &[]) >= 3.0);
    let bucket = "mpecho_worker_lifetime_seconds_bucket";
    assert!(
        count(bucket, &[("le", "2.5")]) <= 2,
        "the idle worker is above 2.5 s"
    );
    assert_eq!(count(bucket, &[("le", "300")]), 3);
    let rss = scrape.value("process_resident_memory_bytes", &[]);
    assert!(rss > 100_000.0 && rss < 1e9, "RSS {rss}");
    assert!(scrape.count("process_open_fds", &[]) >= 5);
    let started = scrape.value("process_start_time_seconds", &[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs_f64();
    let uptime = scrape.value("mpecho_uptime_seconds", &[]);
    assert!(
        started <= now && now - started >= uptime,
        "start {started}, now {now}, uptime {uptime}"
    );
    assert!(
        server.extra_stdout().is_empty(),
        "nothing but `listening on` on stdout"
    );
}

/// The histogram after workers of known lifetimes (five that live a few
/// milliseconds, one held for over a second): `_count` equals the exits,
/// the buckets are cumulative, `+Inf` equals `_count`, and the held worker
/// sits above the 1 s bucket.
#[test]
fn the_lifetime_histogram_counts_every_exit_once() {
    let (server, metrics) = start(&[]);
    for i in 0..5 {
        let mut client = server.connect();
        let message = format!("quick {i}\n");
        assert_eq!(echo(&mut client, message.as_bytes()), message.as_bytes());
    }
    let mut held = server.connect_served();
    std::thread::sleep(Duration::from_millis(1_200));
    assert_eq!(echo(&mut held, b"bye\n"), b"bye\n");
    drop(held);
    wait_all_reaped(&server, 6);

    let scrape = scrape(metrics);
    let buckets = assert_histogram(&scrape, "mpecho_worker_lifetime_seconds");
    let all_exits: u64 = ["ok", "error", "signal", "idle"]
        .iter()
        .map(|how| exits(&scrape, how))
        .sum();
    assert_eq!(all_exits, 6);
    assert_eq!(
        scrape.count("mpecho_worker_lifetime_seconds_count", &[]),
        all_exits
    );
    let at = |bound: f64| buckets.iter().find(|(b, _)| *b == bound).map(|&(_, n)| n);
    assert_eq!(
        at(1.0).map(|n| n <= 5),
        Some(true),
        "the held worker is above 1 s: {buckets:?}"
    );
    assert_eq!(at(14_400.0), Some(6));
    assert!(scrape.value("mpecho_worker_lifetime_seconds_sum", &[]) >= 1.2);
}

/// Metrics and figures agree: after connections served, rejected at the
/// limit and killed, a scrape and then (the server idle in between) a
/// SIGUSR1 figures line give the same counts; the process figures agree
/// within what the scrape itself changes (its own descriptor, some RSS,
/// elapsed time).
#[test]
fn metrics_agree_with_the_figures_line() {
    let (server, metrics) = start(&["--max-workers", "1"]);
    for i in 0..3 {
        let mut client = server.connect();
        assert_eq!(echo(&mut client, b"ok\n"), b"ok\n");
        drop(client);
        // One worker at a time: the next client must not find it alive.
        wait_all_reaped(&server, i + 1);
    }
    let (_held, worker) = server.connect_served_worker();
    for _ in 0..2 {
        let mut turned_away = server.connect();
        assert_connection_ended(&mut turned_away, true, "a client beyond --max-workers 1");
    }
    send_signal(worker, libc::SIGKILL);
    wait_all_reaped(&server, 4);

    let scrape = scrape(metrics);
    let figures = server.figures();
    let rejected = "mpecho_connections_rejected_total";
    let exits = "mpecho_worker_exits_total";
    let pairs: [(&str, &str, Labels); 15] = [
        ("active", "mpecho_workers_active", &[]),
        ("peak", "mpecho_workers_peak", &[]),
        ("accepted", "mpecho_connections_accepted_total", &[]),
        ("spawn_failures", rejected, &[("reason", "spawn_failure")]),
        ("accept_errors", "mpecho_accept_errors_total", &[]),
        ("exited_ok", exits, &[("how", "ok")]),
        ("exited_error", exits, &[("how", "error")]),
        ("exited_signal", exits, &[("how", "signal")]),
        ("exited_idle", exits, &[("how", "idle")]),
        ("rejected_full", rejected, &[("reason", "worker_limit")]),
        ("rejected_per_ip", rejected, &[("reason", "per_ip")]),
        ("deferred", "mpecho_deferrals_total", &[]),
        ("log_write_errors", "mpecho_log_write_errors_total", &[]),
        ("accepted", "mpecho_worker_lifetime_seconds_count", &[]),
        ("fds", "process_open_fds", &[]),
    ];
    for (figure, metric, labels) in pairs {
        // The scrape's own connection is one descriptor more.
        let extra = u64::from(figure == "fds");
        assert_eq!(
            figures.get(figure) + extra,
            scrape.count(metric, labels),
            "figure {figure} and {metric}{labels:?}; figures {figures:?}"
        );
    }
    assert_eq!(figures.get("accepted"), 4);
    assert_eq!(figures.get("rejected_full"), 2);
    assert_eq!(
        figures.get("rejected"),
        scrape.count(rejected, &[("reason", "worker_limit")])
            + scrape.count(rejected, &[("reason", "per_ip")])
    );
    let rss_kb = scrape.count("process_resident_memory_bytes", &[]) / 1024;
    assert!(
        rss_kb.abs_diff(figures.get("rss_kb")) <= 512,
        "RSS {rss_kb} kB in the scrape; figures {figures:?}"
    );
    let uptime = scrape.value("mpecho_uptime_seconds", &[]);
    let uptime_s = figures.get("uptime_s") as f64;
    assert!(
        uptime_s >= uptime.floor() && uptime_s <= uptime + TIMEOUT.as_secs_f64(),
        "uptime {uptime} s in the scrape; figures {figures:?}"
    );
}

/// The process figures of a scrape name the master's own numbers: its
/// descriptor limit as /proc shows it.
#[test]
fn process_max_fds_is_the_masters_soft_limit() {
    let (server, metrics) = start(&[]);
    let scrape = scrape(metrics);
    let (soft, _) = mpecho_testkit::proc_limit(server.pid, "Max open files");
    assert_eq!(Some(scrape.count("process_max_fds", &[])), soft);
}

/// `--model prefork`: the pool's processes by state, read by the real
/// parser, agree with what the test set up (one client served, two spares)
/// and with the processes the master has.
#[test]
fn a_prefork_scrape_counts_the_pool_by_state() {
    let (server, metrics) = start(&["--model", "prefork", "--min-spare", "2", "--max-spare", "2"]);
    let mut client = server.connect();
    assert_eq!(echo(&mut client, b"held\n"), b"held\n");
    // One busy and, once the loop has forked it, a second spare.
    server.wait_for_workers(3);
    let scrape = scrape(metrics);
    let pool = |state: &str| scrape.value("mpecho_pool_processes", &[("state", state)]) as u64;
    assert_eq!((pool("idle"), pool("busy"), pool("leaving")), (2, 1, 0));
    let family = scrape
        .families
        .iter()
        .find(|f| f.name == "mpecho_pool_processes")
        .expect("the pool's family");
    assert_eq!(family.kind, "gauge");
    assert!(!family.help.is_empty());
    assert_eq!(scrape.value("mpecho_model", &[("model", "prefork")]), 1.0);
}
