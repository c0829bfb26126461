//! A flood of 1,000 connections past both limits, global and per address.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use mpecho_testkit::{
    CpuMeter, Leftovers, TIMEOUT, assert_cpu_bounded, field_number, rejections_in_log, replay,
    wait_for,
};

use crate::clients::{Outcome, Tally, run_connection, start_clients};
use crate::load::{Gate, Load, Plan};
use crate::scenario::{Scenario, Summary};
use crate::{CPU_BOUND, shut_down, start};

/// A flood of 1,000 connections past `--max-workers 50` and
/// `--max-per-ip 20`, from 127.0.0.1 and from 127.0.0.2–9. First both
/// limits are probed exactly: 20 clients from 127.0.0.1 held, 10 more from
/// there turned away per address; 30 more from other addresses fill the
/// server, 10 more turned away at the worker limit. Then 930 connections
/// from 93 threads while the 20 from 127.0.0.1 stay. Every 127.0.0.1 client
/// of the flood is turned away; every accepted client gets every byte. The
/// log never shows more than 50 workers, or 20 from one address, at once.
/// Rejections are counted exactly once, and logged at most once a second
/// with the rest summarised.
#[test]
fn chaos_flood_of_1000_connections_past_both_limits() {
    const TOTAL: u64 = 1000;
    const MAX_WORKERS: u64 = 50;
    const MAX_PER_IP: u64 = 20;
    const PROBE: u64 = 10;
    const OTHERS_HELD: u64 = MAX_WORKERS - MAX_PER_IP;
    const FLOOD_THREADS: u64 = 93;
    const FLOOD_LOCAL_THREADS: u64 = 30;
    const PER_THREAD: u64 = 10;
    let scenario = Scenario::begin("flood past limits");
    let server = start(&[
        "--max-workers",
        "50",
        "--max-per-ip",
        "20",
        "--idle-timeout",
        "10",
    ]);
    let mut leftovers = Leftovers::default();
    leftovers.watch(&server);
    let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let other = |n: u64| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (n % 8) as u8));
    let mut ids = 0..;
    let mut next_id = || ids.next().unwrap();

    // 20 from 127.0.0.1, held for the whole flood.
    let load = Load::new(server.addr);
    let release_local = Gate::new();
    let plug = (0..MAX_PER_IP)
        .map(|_| vec![Plan::echo(next_id(), Some(local), 2, 1024).idle_until(&release_local)])
        .collect();
    let plug = start_clients(&load, plug);
    load.wait_served(MAX_PER_IP);
    let mut probes = Vec::new();
    for _ in 0..PROBE {
        probes.push(run_connection(
            &load,
            &Plan::echo(next_id(), Some(local), 1, 512),
        ));
    }
    let after_per_ip = server.figures();
    assert_eq!(
        after_per_ip.get("rejected_per_ip"),
        PROBE,
        "{after_per_ip:?}"
    );
    assert_eq!(after_per_ip.get("rejected_full"), 0, "{after_per_ip:?}");
    assert_eq!(after_per_ip.get("active"), MAX_PER_IP, "{after_per_ip:?}");

    // 30 from the other addresses fill the server.
    let release_others = Gate::new();
    let filling = (0..OTHERS_HELD)
        .map(|n| vec![Plan::echo(next_id(), Some(other(n)), 2, 1024).idle_until(&release_others)])
        .collect();
    let filling = start_clients(&load, filling);
    load.wait_served(MAX_WORKERS);
    for n in 0..PROBE {
        probes.push(run_connection(
            &load,
            &Plan::echo(next_id(), Some(other(n)), 1, 512),
        ));
    }
    let full = server.figures();
    assert_eq!(full.get("rejected_full"), PROBE, "{full:?}");
    assert_eq!(full.get("rejected_per_ip"), PROBE, "{full:?}");
    assert_eq!(full.get("active"), MAX_WORKERS, "{full:?}");
    assert!(
        probes.iter().all(Outcome::turned_away),
        "every probe past a limit is turned away before any echo"
    );

    // The flood, with the 127.0.0.1 clients still held.
    release_others.open();
    let mut flood = Vec::new();
    for t in 0..FLOOD_THREADS {
        let source = if t < FLOOD_LOCAL_THREADS {
            local
        } else {
            other(t)
        };
        flood.push(
            (0..PER_THREAD)
                .map(|_| Plan::echo(next_id(), Some(source), 32, 4096))
                .collect(),
        );
    }
    let made_before_flood = MAX_WORKERS + 2 * PROBE;
    assert_eq!(
        made_before_flood + FLOOD_THREADS * PER_THREAD,
        TOTAL,
        "the scenario makes exactly {TOTAL} connections"
    );
    let cpu = CpuMeter::start(server.pid);
    let flood_started = Instant::now();
    let flood = start_clients(&load, flood).join();
    let cpu = cpu.share();
    let flood_took = flood_started.elapsed();
    release_local.open();
    let mut outcomes = plug.join();
    outcomes.extend(filling.join());
    outcomes.extend(probes);
    let local_turned_away = flood
        .iter()
        .filter(|o| o.source == Some(local))
        .filter(|o| o.turned_away())
        .count() as u64;
    outcomes.extend(flood);

    let tally = Tally::of(&outcomes);
    tally.assert_no_faults();
    assert_eq!(tally.connections as u64, TOTAL, "{tally:?}");
    assert_eq!(tally.not_connected, 0, "{tally:?}");
    assert_eq!(
        local_turned_away,
        FLOOD_LOCAL_THREADS * PER_THREAD,
        "127.0.0.1 had its 20 connections throughout: all its flood clients are turned away"
    );
    // Turned away means rejected before any echo; everybody else got all.
    assert_eq!(
        tally.complete + tally.turned_away,
        tally.connections,
        "{tally:?}"
    );

    // Each rejection is logged once or summarised once (the throttle's
    // timer writes the summary about a second after the flood), and the log
    // stays small: at most one line per kind per second of the scenario.
    let settled = server.figures();
    let pid = server.pid;
    let expected = [settled.get("rejected_full"), settled.get("rejected_per_ip")];
    let told = wait_for("every rejection logged or summarised", TIMEOUT, || {
        let told = rejections_in_log(&server.log(), pid);
        (told.map(|(lines, suppressed)| lines + suppressed) == expected).then_some(told)
    });
    let seconds = scenario.started.elapsed().as_secs() + 1;
    for (lines, _) in told {
        assert!(
            lines <= seconds,
            "{lines} rejection lines of one kind in {seconds}s"
        );
    }

    let (log, final_figures) = shut_down(server, &mut leftovers);
    let replay = replay(&log, pid);
    let num = |name| field_number(&final_figures, name);
    assert_eq!(
        [num("rejected_full"), num("rejected_per_ip")],
        expected,
        "{final_figures}"
    );
    assert_eq!(
        num("accepted") + num("rejected") + num("accept_errors") + num("spawn_failures"),
        TOTAL,
        "every connection counted once: {final_figures}"
    );
    assert_eq!(num("accepted"), tally.complete as u64, "{final_figures}");
    assert_eq!(
        num("rejected") + num("accept_errors") + num("spawn_failures"),
        tally.turned_away as u64,
        "{final_figures}"
    );
    assert_eq!(num("exited_ok"), num("accepted"), "{final_figures}");
    assert_eq!(replay.max_active, MAX_WORKERS as usize, "peak of the log");
    for (ip, max) in &replay.max_per_ip {
        assert!(
            *max <= MAX_PER_IP as usize,
            "{max} workers at once for {ip} in the log"
        );
    }
    assert_eq!(replay.max_per_ip.get(&local), Some(&(MAX_PER_IP as usize)));
    assert_cpu_bounded(cpu, CPU_BOUND, "during the flood");
    scenario.done(Summary {
        connections: TOTAL,
        kills: 0,
        rejections: num("rejected"),
        bytes: tally.bytes,
        cpu: cpu.to_string(),
        details: format!(
            "{} accepted, rejected {} at the worker limit and {} per address, {} accept errors, \
             peak {}, flood of {} in {:.2}s",
            num("accepted"),
            num("rejected_full"),
            num("rejected_per_ip"),
            num("accept_errors"),
            num("peak"),
            FLOOD_THREADS * PER_THREAD,
            flood_took.as_secs_f64()
        ),
    });
}
