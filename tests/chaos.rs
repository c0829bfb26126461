//! The chaos suite (issue 4): the real `mpecho serve` under load from many
//! client threads while the test misbehaves around it. It SIGKILLs random
//! workers, SIGSTOPs some and shuts down, floods past the global and
//! per-address limits, takes the master's descriptors away, holds a 64 MiB
//! slow reader, kills the master itself and starts another on its port, and
//! shuts the master down right after a burst of rejections.
//!
//! After every scenario the same checks run:
//! - every client got back exactly the bytes it sent until its connection
//!   ended. Each connection sends its own deterministic stream, so loss,
//!   duplication and cross-talk all show. A connection the scenario cut short
//!   may end early, but what it received must be an exact prefix of what it
//!   sent;
//! - the master's figures reconcile: with themselves (accepted = exited +
//!   active), with its own log replayed line by line (every accept and every
//!   exit, the `active=` of each line, the peak, the per-address counts),
//!   and with what the clients saw (every connection made is accepted,
//!   rejected or counted as a failed accept, exactly once);
//! - no worker is left, neither as a zombie nor as an orphan;
//! - the master's CPU stayed bounded while the load ran.
//!
//! The scenarios run one at a time: they share two cores and measure CPU.
//! Each prints a summary line on standard error, and the last one to finish
//! prints them all again. These lines are written to the stream directly,
//! not through `eprintln!`, whose output the test harness captures, so that
//! a plain `cargo test` shows them.

use std::collections::BTreeSet;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use mpecho_testkit::{
    CpuMeter, Leftovers, Reaped, RestoreLimit, Server, Subreaper, TIMEOUT, assert_cpu_bounded,
    connect_from, field_number, final_figures, log_field, open_fds, pidfds, proc_state,
    process_exists, reap_adopted, reconcile, rejections_in_log, replay, send_signal,
    set_soft_nofile, wait_for, worker_pids_in,
};

/// Client threads stop starting new connections or rounds after this long,
/// so that a server that stops answering fails a scenario instead of
/// hanging it. Every scenario normally finishes in a few seconds.
const LOAD_DEADLINE: Duration = Duration::from_secs(30);

/// The grace period every scenario's master gets at shutdown (`--grace`).
const GRACE: Duration = Duration::from_secs(2);

/// Largest share of one core the master may use while clients flood it.
/// A master that spins (retries a failing `accept` at once, or polls a
/// listener it cannot drain) takes a whole core: 100 %, or as much of it as
/// the scheduler grants while the flood runs on the same two cores. The
/// client threads sleep in `read` most of the time, so a spinner still
/// gets most of a core. Doing its real work (accept, posix_spawn, one log
/// line, reap), the master used at most 11 % in any scenario here, also with
/// the integration suite or a second chaos run alongside. CPU time comes in
/// 10 ms clock ticks, and the shortest window is about 0.3 s, so a tick or
/// two of rounding costs a few percent; hence the wide margin.
const CPU_BOUND: f64 = 0.60;

/// The same bound while the master is out of descriptors (issue 4 item 5:
/// under 20 %). Every accept then fails and the master only sheds one
/// waiting client per 100 ms pause, which costs next to nothing, so a loop
/// that retried at once is obvious.
const STARVED_CPU_BOUND: f64 = 0.20;

/// How many scenarios this file has, for the closing table.
const SCENARIOS: usize = 7;

// ------------------------------------------------------------ the scenarios

/// kill -9 of random workers while others echo: 240 connections of 256 KiB
/// each from 24 threads, up to 25 SIGKILLs spread over the load. Only the killed
/// workers' clients are cut short (and even they received an exact prefix);
/// every other client gets every byte back; each kill is reaped once and
/// counted as `exited_signal`; nothing else is counted.
#[test]
fn chaos_sigkill_random_workers_while_others_echo() {
    const THREADS: u64 = 24;
    const PER_THREAD: u64 = 10;
    const ROUNDS: u64 = 64;
    const KILLS: u64 = 25;
    let scenario = Scenario::begin("sigkill workers");
    let server = start(&["--idle-timeout", "10"]);
    let mut leftovers = Leftovers::default();
    leftovers.watch(&server);

    let load = Load::new(server.addr);
    // Clients echo on until every kill has landed (then each finishes after
    // one more round), so a slow or loaded machine cannot let the load end
    // before the kills begin.
    let kills_done = Gate::new();
    let plans = (0..THREADS)
        .map(|t| {
            (0..PER_THREAD)
                .map(|i| {
                    Plan::echo(t * PER_THREAD + i, None, ROUNDS * 1000, 4096)
                        .busy_until(&kills_done)
                })
                .collect()
        })
        .collect();
    let cpu = CpuMeter::start(server.pid);
    let clients = start_clients(&load, plans);

    // Kill a random live worker, wait until the master has reaped it, then
    // let the others echo some more rounds before the next kill.
    let mut rng = Rng(0x5eed_0001);
    let mut targets = BTreeSet::new();
    let pace = THREADS * PER_THREAD * ROUNDS / (KILLS * 4);
    while (targets.len() as u64) < KILLS && !clients.all_finished() {
        assert!(
            !load.past_deadline(),
            "the kill loop outlived the load deadline"
        );
        let live = server.worker_pids();
        if live.is_empty() {
            thread::yield_now();
            continue;
        }
        let victim = live[rng.below(live.len() as u64) as usize];
        send_signal(victim, libc::SIGKILL);
        targets.insert(victim);
        wait_for(
            &format!("the master to reap the killed worker {victim}"),
            TIMEOUT,
            || (proc_state(victim).map(|(_, ppid)| ppid) != Some(server.pid)).then_some(()),
        );
        let rounds = load.rounds.load(Ordering::SeqCst);
        wait_for("the other clients to echo on", TIMEOUT, || {
            (load.rounds.load(Ordering::SeqCst) >= rounds + pace || clients.all_finished())
                .then_some(())
        });
    }
    kills_done.open();
    let outcomes = clients.join();
    let cpu = cpu.share();

    let tally = Tally::of(&outcomes);
    tally.assert_no_faults();
    assert_eq!(tally.not_connected, 0, "{tally:?}");
    let figures = server.figures();
    let log = server.log();
    let replay = reconcile(&log, server.pid, figures.line());
    let killed = replay.killed_by("SIGKILL");
    assert!(
        killed.iter().all(|pid| targets.contains(pid)),
        "workers killed by SIGKILL that the test did not kill: {:?} (targets {targets:?})",
        killed.difference(&targets).collect::<Vec<_>>()
    );
    assert!(!killed.is_empty(), "none of the kills {targets:?} landed");
    // Every client whose worker was not killed got every byte back and a
    // clean end; a client cut short was served by a killed worker.
    let by_peer = replay.workers_by_peer();
    for outcome in outcomes.iter().filter(|o| o.ending != Ending::Complete) {
        let local = outcome.local.expect("a connected client has an address");
        let workers = by_peer.get(&local).cloned().unwrap_or_default();
        assert!(
            workers.iter().any(|pid| killed.contains(pid)),
            "client {} ({local}) was cut short ({} of {} bytes sent came back, {} planned), but \
             its worker {workers:?} was not killed",
            outcome.id,
            outcome.received,
            outcome.sent,
            outcome.planned
        );
    }
    let connections = tally.connections as u64;
    let (_, final_figures) = shut_down(server, &mut leftovers);
    let num = |name| field_number(&final_figures, name);
    assert_eq!(num("accepted"), connections, "{final_figures}");
    assert_eq!(num("rejected") + num("accept_errors"), 0, "{final_figures}");
    assert_eq!(num("exited_signal"), killed.len() as u64, "{final_figures}");
    assert_eq!(
        num("exited_ok") + num("exited_signal"),
        connections,
        "{final_figures}"
    );
    assert_cpu_bounded(cpu, CPU_BOUND, "while workers were killed");
    scenario.done(Summary {
        connections,
        kills: killed.len() as u64,
        rejections: 0,
        bytes: tally.bytes,
        cpu: cpu.to_string(),
        details: format!(
            "{} SIGKILLs sent to workers, {} clients cut short",
            targets.len(),
            tally.connections - tally.complete
        ),
    });
}

/// SIGSTOP some workers, then shut down: 30 clients echo without pause, a
/// third of their workers are stopped, the others keep echoing; on SIGTERM
/// the master closes the listener and sends SIGTERM then SIGCONT, so every
/// worker, stopped ones included, finishes on its own well within the grace
/// period (none is killed), and every client received an exact prefix.
#[test]
fn chaos_sigstop_workers_then_shut_down_within_the_grace_period() {
    const CLIENTS: u64 = 30;
    let scenario = Scenario::begin("sigstop + shutdown");
    let mut server = start(&["--idle-timeout", "10"]);
    let mut leftovers = Leftovers::default();
    leftovers.watch(&server);

    let load = Load::new(server.addr);
    let never = Gate::new();
    let plans = (0..CLIENTS)
        .map(|id| vec![Plan::echo(id, None, 1_000_000, 2048).busy_until(&never)])
        .collect();
    let cpu = CpuMeter::start(server.pid);
    let clients = start_clients(&load, plans);
    load.wait_served(CLIENTS);
    let workers = server.wait_for_workers(CLIENTS as usize);
    let stopped: Vec<i32> = workers.iter().copied().step_by(3).collect();
    for &pid in &stopped {
        send_signal(pid, libc::SIGSTOP);
    }
    for &pid in &stopped {
        wait_for(&format!("worker {pid} to stop"), TIMEOUT, || {
            (proc_state(pid).map(|(state, _)| state) == Some('T')).then_some(())
        });
    }
    // The others echo on: every one of them completes rounds meanwhile.
    let rounds = load.rounds.load(Ordering::SeqCst);
    let running = CLIENTS - stopped.len() as u64;
    wait_for("the clients of running workers to echo on", TIMEOUT, || {
        (load.rounds.load(Ordering::SeqCst) >= rounds + 300 * running).then_some(())
    });
    let cpu = cpu.share();

    let signalled = Instant::now();
    server.signal(libc::SIGTERM);
    let status = server.wait_exit(TIMEOUT);
    let took = signalled.elapsed();
    assert!(status.success(), "the master exited with {status:?}");
    assert!(
        took < GRACE,
        "shutdown took {took:?}, not within the grace period of {GRACE:?}"
    );
    never.open();
    let outcomes = clients.join();
    let tally = Tally::of(&outcomes);
    tally.assert_no_faults();
    assert_eq!(tally.connections as u64, CLIENTS, "{tally:?}");

    let log = server.log();
    let final_figures = final_figures(&log, server.pid);
    reconcile(&log, server.pid, &final_figures);
    let num = |name| field_number(&final_figures, name);
    assert_eq!(num("accepted"), CLIENTS, "{final_figures}");
    assert_eq!(num("exited_ok"), CLIENTS, "none killed: {final_figures}");
    assert_eq!(num("active"), 0, "{final_figures}");
    assert!(
        !log.contains(" remaining workers"),
        "no worker should need SIGKILL:\n{log}"
    );
    assert_eq!(
        log.matches(" reason=server shutting down").count() as u64,
        CLIENTS,
        "every worker ended because of the shutdown:\n{log}"
    );
    let checked = leftovers.assert_none_left(&[server.pid]);
    assert_cpu_bounded(cpu, CPU_BOUND, "while clients echoed");
    scenario.done(Summary {
        connections: CLIENTS,
        kills: 0,
        rejections: 0,
        bytes: tally.bytes,
        cpu: cpu.to_string(),
        details: format!(
            "{} workers stopped, shutdown in {:.0} ms (grace {}s), {checked} workers gone",
            stopped.len(),
            took.as_secs_f64() * 1000.0,
            GRACE.as_secs()
        ),
    });
}

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

/// Rejections held back by the throttle right before a shutdown: 20 clients
/// turned away at `--max-workers 1`, then SIGTERM at once. The master exits
/// within the throttle's second, and the rejections it held back must still
/// reach the log: one line or one `suppressed N more` summary for each.
#[test]
fn chaos_rejections_held_back_reach_the_log_before_the_master_exits() {
    const BURST: u64 = 20;
    let scenario = Scenario::begin("rejections before exit");
    let server = start(&["--max-workers", "1"]);
    let mut leftovers = Leftovers::default();
    leftovers.watch(&server);
    let load = Load::new(server.addr);
    let leave = Gate::new();
    let held = start_clients(
        &load,
        vec![vec![Plan::echo(0, None, 2, 512).idle_until(&leave)]],
    );
    load.wait_served(1);
    let burst: Vec<Outcome> = (1..=BURST)
        .map(|id| run_connection(&load, &Plan::echo(id, None, 1, 512)))
        .collect();
    assert!(burst.iter().all(Outcome::turned_away), "{burst:?}");
    leave.open();
    let held = held.join();
    assert!(
        held.iter().all(|o| o.ending == Ending::Complete),
        "{held:?}"
    );

    let pid = server.pid;
    let (log, final_figures) = shut_down(server, &mut leftovers);
    assert_eq!(
        field_number(&final_figures, "rejected_full"),
        BURST,
        "{final_figures}"
    );
    let [(lines, suppressed), _] = rejections_in_log(&log, pid);
    assert_eq!(
        lines + suppressed,
        BURST,
        "{lines} rejection lines and {suppressed} summarised: the master exited without \
         writing the summary of what its throttle held back; log:\n{log}"
    );
    scenario.done(Summary {
        connections: BURST + 1,
        kills: 0,
        rejections: BURST,
        bytes: held.iter().chain(&burst).map(|o| o.received).sum(),
        cpu: "not measured".to_string(),
        details: format!("{lines} rejections logged, {suppressed} summarised"),
    });
}

/// Descriptor starvation: six clients echo without pause while the master's
/// soft descriptor limit is lowered (prlimit) to its first free descriptor
/// number, and 180 connections flood it from 12 threads. While starved, each
/// waiting client is accepted with the spare descriptor and closed, no
/// client is served, and the master stays under 20 % CPU while the six
/// served clients echo on. Three of them leave meanwhile and are reaped and
/// counted as usual; SIGUSR1 still gets figures. Once the limit is restored
/// the master serves the rest of the flood by itself. Every connection is
/// accepted or counted as a failed accept exactly once.
#[test]
fn chaos_descriptor_starvation_under_a_flood() {
    const HELD: u64 = 6;
    const THREADS: u64 = 12;
    const PER_THREAD: u64 = 15;
    let scenario = Scenario::begin("descriptor starvation");
    let server = start(&["--idle-timeout", "10"]);
    let mut leftovers = Leftovers::default();
    leftovers.watch(&server);
    let idle_fds = open_fds(server.pid);

    let held_load = Load::new(server.addr);
    let (leave_first, leave_rest) = (Gate::new(), Gate::new());
    let held = (0..HELD)
        .map(|id| {
            let gate = if id < HELD / 2 {
                &leave_first
            } else {
                &leave_rest
            };
            vec![Plan::echo(id, None, 1_000_000, 2048).busy_until(gate)]
        })
        .collect();
    let held = start_clients(&held_load, held);
    held_load.wait_served(HELD);
    // The master keeps one pidfd per worker and nothing of the clients.
    let serving_fds = wait_for("the master to hold one pidfd per worker", TIMEOUT, || {
        let fds = open_fds(server.pid);
        (fds.len() == idle_fds.len() + HELD as usize && pidfds(server.pid).len() == HELD as usize)
            .then_some(fds)
    });
    // Every number below the first free one is in use, and the kernel
    // refuses numbers at or above the soft limit: the master can open
    // nothing new. This is the lowest limit that still covers every
    // descriptor the master uses. Any limit above it leaves the master at
    // least that one free number, which each accept takes and the spawn
    // gives back, so the master would never run out.
    let first_free = (0..)
        .find(|n| !serving_fds.contains(n))
        .expect("a free descriptor number");
    let old_limit = set_soft_nofile(server.pid, first_free as u64);
    let mut limit = RestoreLimit {
        pid: server.pid,
        limit: Some(old_limit),
    };

    let flood_load = Load::new(server.addr);
    let plans = (0..THREADS)
        .map(|t| {
            (0..PER_THREAD)
                .map(|i| Plan::echo(100 + t * PER_THREAD + i, None, 2, 1024))
                .collect()
        })
        .collect();
    let cpu = CpuMeter::start(server.pid);
    let held_rounds = held_load.rounds.load(Ordering::SeqCst);
    let flood = start_clients(&flood_load, plans);
    wait_for("10 flood clients to be turned away", TIMEOUT, || {
        (flood_load.turned_away.load(Ordering::SeqCst) >= 10).then_some(())
    });
    let starved_cpu = cpu.share();
    assert_eq!(
        flood_load.served.load(Ordering::SeqCst),
        0,
        "no flood client is served while the master has no descriptor"
    );
    let echoed_meanwhile = held_load.rounds.load(Ordering::SeqCst) - held_rounds;
    assert!(
        echoed_meanwhile >= HELD,
        "the served clients echoed only {echoed_meanwhile} rounds while the master starved"
    );

    // Three clients leave while the master is starved: their workers are
    // reaped and counted as usual, and the master still answers SIGUSR1
    // with figures that reconcile. Their pidfds are closed, but those
    // numbers lie above the limit (the lowest free number, where each
    // client landed for a moment, is below them), so the master stays
    // starved until the limit is restored.
    leave_first.open();
    let pid = server.pid;
    wait_for("the three leaving workers to be reaped", TIMEOUT, || {
        let log = server.log();
        let reaped = log
            .lines()
            .filter(|l| l.contains(&format!("master[{pid}]: worker ")))
            .filter(|l| l.contains(" exited status=0 "))
            .count();
        (reaped == (HELD / 2) as usize).then_some(())
    });
    let starved = server.figures();
    reconcile(&server.log(), pid, starved.line());
    assert!(starved.get("accept_errors") >= 10, "{starved:?}");
    assert_eq!(starved.get("active"), HELD - HELD / 2, "{starved:?}");

    // Restored, the master serves everyone left without being told.
    limit.restore();
    let mut outcomes = flood.join();
    let flood_cpu = cpu.share();
    leave_rest.open();
    outcomes.extend(held.join());

    let tally = Tally::of(&outcomes);
    tally.assert_no_faults();
    assert_eq!(tally.not_connected, 0, "{tally:?}");
    assert_eq!(
        tally.complete + tally.turned_away,
        tally.connections,
        "{tally:?}"
    );
    let connections = tally.connections as u64;
    assert_eq!(connections, HELD + THREADS * PER_THREAD);
    let (_, final_figures) = shut_down(server, &mut leftovers);
    let num = |name| field_number(&final_figures, name);
    assert_eq!(
        num("accepted") + num("rejected") + num("accept_errors") + num("spawn_failures"),
        connections,
        "every connection counted once: {final_figures}"
    );
    assert_eq!(
        num("accept_errors") + num("spawn_failures") + num("rejected"),
        tally.turned_away as u64,
        "{final_figures}"
    );
    assert_eq!(num("accepted"), tally.complete as u64, "{final_figures}");
    assert_eq!(num("exited_ok"), num("accepted"), "{final_figures}");
    assert_cpu_bounded(starved_cpu, STARVED_CPU_BOUND, "while out of descriptors");
    assert_cpu_bounded(flood_cpu, CPU_BOUND, "during the whole flood");
    scenario.done(Summary {
        connections,
        kills: 0,
        rejections: num("rejected") + num("accept_errors") + num("spawn_failures"),
        bytes: tally.bytes,
        cpu: format!("{starved_cpu} starved, {flood_cpu} overall"),
        details: format!(
            "descriptor limit {old_limit} -> {first_free} -> {old_limit}, {} accepted, {} shed \
             with the spare descriptor (accept errors)",
            num("accepted"),
            num("accept_errors")
        ),
    });
}

/// A 64 MiB slow reader and a client that never reads, with
/// `--idle-timeout 2`. Each sends up to 64 MiB. The slow one reads the
/// first MiB, then stops reading. Their workers, unable to write, are closed
/// by the idle timeout (status 3, `idle timeout` in the master's log,
/// `exited_idle=2`), never blocking forever, while the master stays
/// responsive and serves other clients meanwhile. What either client did
/// read is an exact prefix of what it sent.
#[test]
fn chaos_64_mib_slow_reader_is_closed_by_the_idle_timeout() {
    const SEND: u64 = 64 << 20;
    const READ_FIRST: u64 = 1 << 20;
    const IDLE: Duration = Duration::from_secs(2);
    let scenario = Scenario::begin("64 MiB slow reader");
    let server = start(&["--idle-timeout", "2"]);
    let mut leftovers = Leftovers::default();
    leftovers.watch(&server);
    let cpu = CpuMeter::start(server.pid);

    // Ids far from the echo clients' ones: their streams differ.
    let slow = SlowClient::start(server.addr, 1_000_001, SEND);
    let mute = SlowClient::start(server.addr, 1_000_002, SEND);
    let mut slow_reader = slow.reader();
    slow_reader.read_up_to(READ_FIRST);
    assert_eq!(
        slow_reader.received, READ_FIRST,
        "the slow reader read its first MiB: {:?}",
        slow_reader.fault
    );
    let stopped_reading = Instant::now();
    let slow_worker = server.worker_serving(&slow.stream);
    let mute_worker = server.worker_serving(&mute.stream);

    // Meanwhile other clients are served as usual.
    let load = Load::new(server.addr);
    let plans = (0..8)
        .map(|t| {
            (0..4)
                .map(|i| Plan::echo(t * 4 + i, None, 4, 4096))
                .collect()
        })
        .collect();
    let others = start_clients(&load, plans).join();
    let during = server.figures();

    let pid = server.pid;
    let timed_out = |worker: i32| {
        format!("master[{pid}]: worker {worker} exited status=3 (idle timeout) peer=")
    };
    let slow_line = server.wait_for_log_line(&[&timed_out(slow_worker)]);
    let mute_line = server.wait_for_log_line(&[&timed_out(mute_worker)]);
    let cut_after = stopped_reading.elapsed();
    let log = server.log();
    // At least one of the other clients was accepted and done before the
    // stuck workers timed out: the master served while they were stuck.
    let first_exit = log
        .find(&timed_out(slow_worker))
        .min(log.find(&timed_out(mute_worker)));
    let served_meanwhile = log[..first_exit.expect("the idle lines are in the log")]
        .matches(" exited status=0 peer=")
        .count();
    assert!(
        served_meanwhile >= 1,
        "no other client was served while the two workers were stuck:\n{log}"
    );
    for (line, who) in [(&slow_line, "slow reader"), (&mute_line, "mute reader")] {
        let lived: f64 = log_field(line, "lived")
            .trim_end_matches('s')
            .parse()
            .expect("lived=");
        assert!(
            lived >= IDLE.as_secs_f64(),
            "the {who}'s worker timed out after {lived}s, before the idle timeout: {line}"
        );
    }
    assert!(
        cut_after < IDLE + Duration::from_secs(6),
        "the idle timeouts fired {cut_after:?} after the reader stopped"
    );
    for worker in [slow_worker, mute_worker] {
        assert!(
            log.contains(&format!("worker[{worker}]: disconnect peer="))
                && log
                    .lines()
                    .any(|l| l.contains(&format!("worker[{worker}]: disconnect "))
                        && l.ends_with(" reason=idle timeout (2s)")),
            "worker {worker} logs why it closed:\n{log}"
        );
    }

    // What the slow clients did receive, read now: an exact prefix.
    slow_reader.read_up_to(SEND);
    let mut mute_reader = mute.reader();
    mute_reader.read_up_to(SEND);
    let slow_sent = slow.finish();
    let mute_sent = mute.finish();
    for (reader, sent, who) in [
        (&slow_reader, slow_sent, "slow reader"),
        (&mute_reader, mute_sent, "mute reader"),
    ] {
        assert!(reader.fault.is_none(), "{who}: {:?}", reader.fault);
        assert!(
            reader.received <= sent,
            "{who} received {} bytes of {sent} sent",
            reader.received
        );
    }
    let tally = Tally::of(&others);
    tally.assert_no_faults();
    assert_eq!(tally.complete, tally.connections, "{tally:?}");
    let cpu = cpu.share();

    let (_, final_figures) = shut_down(server, &mut leftovers);
    let num = |name| field_number(&final_figures, name);
    assert_eq!(num("exited_idle"), 2, "{final_figures}");
    assert_eq!(
        num("accepted"),
        tally.connections as u64 + 2,
        "{final_figures}"
    );
    assert_eq!(
        num("exited_ok"),
        tally.connections as u64,
        "{final_figures}"
    );
    assert!(during.get("active") >= 2, "{during:?}");
    assert_cpu_bounded(cpu, CPU_BOUND, "while the slow readers were held");
    scenario.done(Summary {
        connections: tally.connections as u64 + 2,
        kills: 0,
        rejections: 0,
        bytes: tally.bytes + slow_reader.received + mute_reader.received,
        cpu: cpu.to_string(),
        details: format!(
            "slow reader sent {slow_sent} bytes and read {} back, mute reader sent {mute_sent} \
             and read {}, both closed {:.2}s after the slow reader stopped",
            slow_reader.received,
            mute_reader.received,
            cut_after.as_secs_f64()
        ),
    });
}

/// SIGKILL of the master mid-load, then a new master on the same port: 20
/// clients are half-way through their sessions and 8 threads open short
/// connections without pause. The old master dies; its workers live on,
/// adopted by the test (a child subreaper), and finish their clients after
/// the new master has bound the port at once and is serving new clients.
/// Then they exit with status 0. The only clients not served are those
/// caught in the dead master's backlog, or refused while no master
/// listened. The new master counts only its own clients.
#[test]
fn chaos_sigkill_master_mid_load_and_start_a_new_one() {
    const OLD_CLIENTS: u64 = 20;
    const CHURN_THREADS: u64 = 8;
    const CHURN_PER_THREAD: u64 = 2_000;
    let scenario = Scenario::begin("sigkill master");
    let _subreaper = Subreaper::become_one();
    let mut old = start(&["--idle-timeout", "10"]);
    let mut leftovers = Leftovers::default();
    leftovers.watch(&old);

    let load = Load::new(old.addr);
    let new_serves = Gate::new();
    let sessions = (0..OLD_CLIENTS)
        .map(|id| vec![Plan::echo(id, None, 6, 4096).idle_until(&new_serves)])
        .collect();
    let sessions = start_clients(&load, sessions);
    load.wait_served(OLD_CLIENTS);
    let churn_load = Load::new(old.addr);
    let churn = (0..CHURN_THREADS)
        .map(|t| {
            (0..CHURN_PER_THREAD)
                .map(|i| Plan::echo(1000 + t * CHURN_PER_THREAD + i, None, 2, 512))
                .collect()
        })
        .collect();
    let churn = start_clients(&churn_load, churn);
    wait_for("the churn to be under way", TIMEOUT, || {
        (churn_load.served.load(Ordering::SeqCst) >= 20).then_some(())
    });

    send_signal(old.pid, libc::SIGKILL);
    let status = old.wait_exit(TIMEOUT);
    let old_gone = Instant::now();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    // Its workers live on, adopted by us.
    let old_log = old.log();
    let session_workers: Vec<i32> = sessions_workers(&old_log, OLD_CLIENTS as usize);
    for &pid in &session_workers {
        assert_eq!(
            proc_state(pid).map(|(_, ppid)| ppid),
            Some(std::process::id() as i32),
            "worker {pid} outlived its master and was adopted by the subreaper"
        );
    }

    let addr = old.addr.to_string();
    let new = start(&["-l", &addr, "--idle-timeout", "10"]);
    let new_ready = Instant::now();
    leftovers.watch(&new);
    assert_eq!(new.addr, old.addr);
    let cpu = CpuMeter::start(new.pid);
    new.wait_for_log_count("]: accept peer=", 300);
    // Now the old workers finish their sessions, while the new master
    // serves the churn.
    new_serves.open();
    let mut outcomes = sessions.join();
    assert!(
        outcomes.iter().all(|o| o.ending == Ending::Complete),
        "every session on an old worker completes after its master died"
    );
    churn_load.stop.open();
    let churn = churn.join();
    let cpu = cpu.share();

    let refused = churn
        .iter()
        .filter(|o| o.ending == Ending::NotConnected)
        .count();
    for outcome in &churn {
        match outcome.ending {
            Ending::Complete => {}
            Ending::Early => assert!(
                outcome.turned_away() && outcome.attempted < old_gone,
                "churn client {} ended early after {} bytes, attempted {:?} after the old master \
                 was gone",
                outcome.id,
                outcome.received,
                outcome.attempted.saturating_duration_since(old_gone)
            ),
            Ending::NotConnected => assert!(
                outcome.attempted < new_ready,
                "churn client {} could not connect after the new master was ready: {:?}",
                outcome.id,
                outcome.fault
            ),
        }
    }
    outcomes.extend(churn);
    let tally = Tally {
        faults: Vec::new(),
        ..Tally::of(&outcomes)
    };
    let real_faults: Vec<&String> = outcomes
        .iter()
        .filter(|o| o.ending != Ending::NotConnected)
        .filter_map(|o| o.fault.as_ref())
        .collect();
    assert!(real_faults.is_empty(), "{real_faults:?}");

    // Every old worker the old master did not reap is reaped by us, with
    // status 0. The log is read again: workers started just before the kill
    // wrote their lines after it.
    let old_log = old.log();
    let old_replay = replay(&old_log, old.pid);
    let old_workers = worker_pids_in(&old_log);
    let mut adopted = 0;
    for &pid in &old_workers {
        if old_replay.exited(pid) {
            continue;
        }
        match reap_adopted(pid, TIMEOUT) {
            Reaped::Status(status) => {
                adopted += 1;
                assert!(
                    libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                    "adopted worker {pid} ended with wait status {status:#x}"
                );
            }
            Reaped::NotOurs => assert!(
                !process_exists(pid),
                "worker {pid} of the killed master is neither reaped nor ours"
            ),
            Reaped::StillRunning => {
                panic!("worker {pid} of the killed master still runs after its client left")
            }
        }
    }
    assert!(adopted >= OLD_CLIENTS, "{adopted} workers adopted");

    // The connections that got a worker (of either master) are exactly the
    // completed ones; the new master counts only its own.
    let served_by_old = old_log.matches("]: connect peer=").count();
    let new_pid = new.pid;
    let (new_log, final_figures) = shut_down(new, &mut leftovers);
    let served_by_new = new_log.matches("]: connect peer=").count();
    assert_eq!(
        served_by_old + served_by_new,
        tally.complete,
        "clients served by the old and the new master"
    );
    let num = |name| field_number(&final_figures, name);
    assert_eq!(num("accepted"), served_by_new as u64, "{final_figures}");
    assert_eq!(num("exited_ok"), num("accepted"), "{final_figures}");
    assert_eq!(
        num("rejected") + num("accept_errors") + num("spawn_failures"),
        0,
        "{final_figures}"
    );
    for pid in &old_workers {
        assert!(
            !new_log.contains(&format!("worker {pid} ")),
            "the new master knows the old worker {pid}"
        );
    }
    let checked = leftovers.assert_none_left(&[old.pid, new_pid]);
    assert_cpu_bounded(cpu, CPU_BOUND, "while the new master served the churn");
    scenario.done(Summary {
        connections: tally.connections as u64,
        kills: 1,
        rejections: 0,
        bytes: tally.bytes,
        cpu: format!("{cpu} (the new one)"),
        details: format!(
            "the master SIGKILLed; {served_by_old} served by it ({adopted} of its workers \
             adopted and reaped with status 0), {served_by_new} by the new one, {} lost in the \
             dead master's backlog, {refused} attempts refused while no master listened, \
             {checked} workers gone",
            tally.turned_away
        ),
    });
}

// ------------------------------------------------------------ the harness

/// Starts a server with the settings every scenario shares plus `args`.
fn start(args: &[&str]) -> Server {
    let grace = GRACE.as_secs().to_string();
    let mut all = vec!["--monitor-interval", "0", "--grace", &grace];
    all.extend_from_slice(args);
    Server::start(&all)
}

/// Shuts the server down (SIGTERM), checks that it exited 0 within the
/// grace period, that its final figures reconcile with its log, and that
/// none of its workers is left; returns the log and the final figures line.
fn shut_down(mut server: Server, leftovers: &mut Leftovers) -> (String, String) {
    server.signal(libc::SIGTERM);
    let status = server.wait_exit(GRACE + TIMEOUT);
    assert!(status.success(), "the master exited with {status:?}");
    let log = server.log();
    let line = final_figures(&log, server.pid);
    reconcile(&log, server.pid, &line);
    assert_eq!(field_number(&line, "active"), 0, "{line}");
    leftovers.assert_none_left(&[server.pid]);
    (log, line)
}

/// How one scenario runs: one at a time, and its summary line is written
/// (or `FAILED`) when it ends, however it ends.
struct Scenario {
    name: &'static str,
    started: Instant,
    summary: Option<Summary>,
    _serial: MutexGuard<'static, ()>,
}

/// What a scenario reports: the same four numbers for every one, then
/// what is particular to it.
struct Summary {
    connections: u64,
    /// Processes killed with SIGKILL (workers, or the master).
    kills: u64,
    /// Connections turned away before any echo: rejected at a limit, shed
    /// for lack of descriptors, or refused a worker.
    rejections: u64,
    bytes: u64,
    cpu: String,
    details: String,
}

static SERIAL: Mutex<()> = Mutex::new(());
static SUMMARIES: Mutex<Vec<String>> = Mutex::new(Vec::new());

impl Scenario {
    fn begin(name: &'static str) -> Scenario {
        // A scenario that failed poisons the lock; the next one still runs.
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        Scenario {
            name,
            started: Instant::now(),
            summary: None,
            _serial: serial,
        }
    }

    fn done(mut self, summary: Summary) {
        self.summary = Some(summary);
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        let took = self.started.elapsed().as_secs_f64();
        let line = match self.summary.take() {
            Some(s) => format!(
                "chaos {}: {} connections, {} kills, {} rejections, {} bytes verified, master CPU \
                 {}, {took:.1}s; {}",
                self.name, s.connections, s.kills, s.rejections, s.bytes, s.cpu, s.details
            ),
            None => format!("chaos {}: FAILED after {took:.1}s", self.name),
        };
        say(&line);
        let mut all = SUMMARIES.lock().unwrap_or_else(|e| e.into_inner());
        all.push(line);
        if all.len() == SCENARIOS {
            say("chaos suite, one line per scenario:");
            for line in all.iter() {
                say(&format!("  {line}"));
            }
        }
    }
}

/// Writes a line straight to standard error (see the file's header).
fn say(line: &str) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}

/// A small deterministic generator (xorshift64) for choosing victims.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

// ------------------------------------------------------------ payloads

/// Fills `buf` with bytes `offset..` of connection `id`'s stream: 8-byte
/// words of a counter-based mix, so any stretch can be made without the
/// ones before it, and no two connections (or offsets) share a stretch.
fn fill(id: u64, offset: u64, buf: &mut [u8]) {
    let seed = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xC0FF_EE00_0000_0000;
    let mut pos = offset;
    let mut i = 0;
    while i < buf.len() {
        let word = mix(seed ^ (pos / 8)).to_le_bytes();
        let start = (pos % 8) as usize;
        let n = (8 - start).min(buf.len() - i);
        buf[i..i + n].copy_from_slice(&word[start..start + n]);
        i += n;
        pos += n as u64;
    }
}

/// splitmix64's finaliser.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Checks that `got` is bytes `offset..` of connection `id`'s stream.
fn check(id: u64, offset: u64, got: &[u8], scratch: &mut Vec<u8>) -> Result<(), String> {
    scratch.resize(got.len(), 0);
    fill(id, offset, scratch);
    match got.iter().zip(scratch.iter()).position(|(a, b)| a != b) {
        None => Ok(()),
        Some(i) => Err(format!(
            "connection {id}: byte {} is {:#04x}, expected {:#04x} (a read of {} bytes at \
             offset {offset}): lost, duplicated or foreign data",
            offset + i as u64,
            got[i],
            scratch[i],
            got.len()
        )),
    }
}

// ------------------------------------------------------------ clients

/// One connection a client thread makes.
#[derive(Clone)]
struct Plan {
    id: u64,
    /// The address to connect from (127.0.0.2, …): another client address.
    source: Option<IpAddr>,
    /// Rounds of `chunk` bytes sent and read back, at most.
    rounds: u64,
    chunk: usize,
    hold: Hold,
}

/// What a connection does after its first round.
#[derive(Clone)]
enum Hold {
    /// Goes on with its rounds.
    None,
    /// Waits, sending nothing, until the gate opens, then does the rest.
    Idle(Arc<Gate>),
    /// Echoes round after round until the gate opens, then ends.
    Busy(Arc<Gate>),
}

impl Plan {
    fn echo(id: u64, source: Option<IpAddr>, rounds: u64, chunk: usize) -> Plan {
        Plan {
            id,
            source,
            rounds,
            chunk,
            hold: Hold::None,
        }
    }

    fn idle_until(mut self, gate: &Arc<Gate>) -> Plan {
        self.hold = Hold::Idle(Arc::clone(gate));
        self
    }

    fn busy_until(mut self, gate: &Arc<Gate>) -> Plan {
        self.hold = Hold::Busy(Arc::clone(gate));
        self
    }
}

/// A one-way switch threads can wait on.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    changed: Condvar,
}

impl Gate {
    fn new() -> Arc<Gate> {
        Arc::new(Gate::default())
    }

    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.changed.notify_all();
    }

    fn is_open(&self) -> bool {
        *self.open.lock().unwrap()
    }

    /// Waits until the gate opens or `deadline` passes.
    fn wait(&self, deadline: Instant) {
        let mut open = self.open.lock().unwrap();
        while !*open {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            open = self.changed.wait_timeout(open, left).unwrap().0;
        }
    }
}

/// A group of client threads and what they have done so far.
struct Load {
    addr: SocketAddr,
    deadline: Instant,
    /// Opened to make the threads start no further connections.
    stop: Arc<Gate>,
    /// Rounds echoed completely.
    rounds: AtomicU64,
    /// Connections that got their first round back.
    served: AtomicU64,
    /// Connections that ended before any echo.
    turned_away: AtomicU64,
}

impl Load {
    fn new(addr: SocketAddr) -> Arc<Load> {
        Arc::new(Load {
            addr,
            deadline: Instant::now() + LOAD_DEADLINE,
            stop: Gate::new(),
            rounds: AtomicU64::new(0),
            served: AtomicU64::new(0),
            turned_away: AtomicU64::new(0),
        })
    }

    fn past_deadline(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Waits until `n` connections of this load have been served.
    fn wait_served(&self, n: u64) {
        wait_for(&format!("{n} clients served"), TIMEOUT, || {
            (self.served.load(Ordering::SeqCst) >= n).then_some(())
        });
    }
}

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Every round came back, then EOF answered our half-close.
    Complete,
    /// EOF or a reset came before that.
    Early,
    /// `connect` failed.
    NotConnected,
}

/// What one connection saw.
#[derive(Debug)]
struct Outcome {
    id: u64,
    source: Option<IpAddr>,
    local: Option<SocketAddr>,
    /// When the connection was attempted.
    attempted: Instant,
    ending: Ending,
    sent: u64,
    /// Bytes received back, every one checked against what was sent.
    received: u64,
    planned: u64,
    /// Wrong bytes, no answer within `TIMEOUT`, or an unexpected error.
    fault: Option<String>,
}

impl Outcome {
    /// Closed (EOF or reset) before any echo: how a rejected client ends.
    fn turned_away(&self) -> bool {
        self.ending == Ending::Early && self.received == 0
    }
}

/// Client threads at work.
struct Clients(Vec<JoinHandle<Vec<Outcome>>>);

impl Clients {
    fn all_finished(&self) -> bool {
        self.0.iter().all(|h| h.is_finished())
    }

    /// Waits for every thread (each is bounded by its connections' count,
    /// the load's deadline and the sockets' timeouts), then passes on a
    /// panic of any of them.
    fn join(self) -> Vec<Outcome> {
        let mut outcomes = Vec::new();
        let mut panic = None;
        for handle in self.0 {
            match handle.join() {
                Ok(done) => outcomes.extend(done),
                Err(e) => panic = Some(e),
            }
        }
        if let Some(e) = panic {
            std::panic::resume_unwind(e);
        }
        outcomes
    }
}

/// One thread per list of plans, each making its connections in turn.
fn start_clients(load: &Arc<Load>, threads: Vec<Vec<Plan>>) -> Clients {
    Clients(
        threads
            .into_iter()
            .map(|plans| {
                let load = Arc::clone(load);
                thread::Builder::new()
                    .stack_size(256 * 1024)
                    .spawn(move || {
                        let mut outcomes = Vec::with_capacity(plans.len());
                        for plan in &plans {
                            if load.stop.is_open() || load.past_deadline() {
                                break;
                            }
                            let outcome = run_connection(&load, plan);
                            if outcome.ending == Ending::NotConnected {
                                // Refused: no server listens for a moment.
                                // Like any real client, back off a little
                                // rather than burn through every attempt.
                                thread::sleep(Duration::from_millis(5));
                            }
                            outcomes.push(outcome);
                        }
                        outcomes
                    })
                    .expect("start a client thread")
            })
            .collect(),
    )
}

/// Why a connection stopped before its plan was done.
enum Stop {
    /// EOF or a reset: the server ended it.
    Ended,
    Fault(String),
}

/// A client's side of one connection.
struct Conn {
    stream: TcpStream,
    id: u64,
    sent: u64,
    received: u64,
    buf: Vec<u8>,
    scratch: Vec<u8>,
}

fn open(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    match source {
        Some(ip) => Ok(connect_from(ip, addr)),
        None => {
            let stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
            stream.set_read_timeout(Some(TIMEOUT))?;
            stream.set_write_timeout(Some(TIMEOUT))?;
            Ok(stream)
        }
    }
}

/// Makes one connection as `plan` says and reports what it saw.
fn run_connection(load: &Load, plan: &Plan) -> Outcome {
    let mut outcome = Outcome {
        id: plan.id,
        source: plan.source,
        local: None,
        attempted: Instant::now(),
        ending: Ending::NotConnected,
        sent: 0,
        received: 0,
        planned: plan.rounds * plan.chunk as u64,
        fault: None,
    };
    let stream = match open(load.addr, plan.source) {
        Ok(stream) => stream,
        Err(e) => {
            outcome.fault = Some(format!("connect: {e}"));
            return outcome;
        }
    };
    outcome.local = stream.local_addr().ok();
    let mut conn = Conn {
        stream,
        id: plan.id,
        sent: 0,
        received: 0,
        buf: vec![0; 64 * 1024],
        scratch: Vec::new(),
    };
    let mut rounds = 0;
    let result = loop {
        if rounds >= plan.rounds || load.past_deadline() {
            break Ok(());
        }
        if let Hold::Busy(gate) = &plan.hold
            && rounds >= 1
            && gate.is_open()
        {
            break Ok(());
        }
        if let Err(stop) = conn.round(plan.chunk) {
            break Err(stop);
        }
        rounds += 1;
        load.rounds.fetch_add(1, Ordering::SeqCst);
        if rounds == 1 {
            load.served.fetch_add(1, Ordering::SeqCst);
            if let Hold::Idle(gate) = &plan.hold {
                gate.wait(load.deadline);
            }
        }
    };
    let result = result.and_then(|()| conn.finish());
    outcome.ending = match result {
        Ok(()) => Ending::Complete,
        Err(stopped) => {
            let fault = match stopped {
                Stop::Fault(f) => Some(f),
                Stop::Ended => match conn.drain() {
                    Err(Stop::Fault(f)) => Some(f),
                    _ => None,
                },
            };
            outcome.fault = fault;
            Ending::Early
        }
    };
    outcome.sent = conn.sent;
    outcome.received = conn.received;
    if outcome.turned_away() {
        load.turned_away.fetch_add(1, Ordering::SeqCst);
    }
    outcome
}

impl Conn {
    /// Sends the next `chunk` bytes of the stream and reads them back.
    fn round(&mut self, chunk: usize) -> Result<(), Stop> {
        let mut data = vec![0u8; chunk];
        fill(self.id, self.sent, &mut data);
        let mut done = 0;
        while done < chunk {
            match self.stream.write(&data[done..]) {
                Ok(0) => return Err(Stop::Ended),
                Ok(n) => {
                    done += n;
                    self.sent += n as u64;
                }
                Err(e) => return Err(stop(e, "sending")),
            }
        }
        while self.received < self.sent {
            let want = ((self.sent - self.received) as usize).min(self.buf.len());
            match self.stream.read(&mut self.buf[..want]) {
                Ok(0) => return Err(Stop::Ended),
                Ok(n) => self.take(n)?,
                Err(e) => return Err(stop(e, "waiting for the echo")),
            }
        }
        Ok(())
    }

    /// Checks `n` bytes just read into the buffer.
    fn take(&mut self, n: usize) -> Result<(), Stop> {
        if self.received + n as u64 > self.sent {
            return Err(Stop::Fault(format!(
                "connection {}: {} bytes back, only {} sent",
                self.id,
                self.received + n as u64,
                self.sent
            )));
        }
        check(self.id, self.received, &self.buf[..n], &mut self.scratch).map_err(Stop::Fault)?;
        self.received += n as u64;
        Ok(())
    }

    /// Half-closes and expects EOF (the worker's answer) and nothing more.
    fn finish(&mut self) -> Result<(), Stop> {
        if let Err(e) = self.stream.shutdown(Shutdown::Write) {
            return Err(stop(e, "half-closing"));
        }
        loop {
            match self.stream.read(&mut self.buf) {
                Ok(0) => return Ok(()),
                Ok(n) => self.take(n)?,
                Err(e) => return Err(stop(e, "waiting for EOF")),
            }
        }
    }

    /// After the server ended the connection: reads (and checks) whatever
    /// is still on its way.
    fn drain(&mut self) -> Result<(), Stop> {
        loop {
            match self.stream.read(&mut self.buf) {
                Ok(0) => return Ok(()),
                Ok(n) => self.take(n)?,
                Err(e) => return Err(stop(e, "draining")),
            }
        }
    }
}

/// Sorts an I/O error: the server ending the connection, or a fault.
fn stop(e: io::Error, doing: &str) -> Stop {
    match e.kind() {
        ErrorKind::ConnectionReset
        | ErrorKind::ConnectionAborted
        | ErrorKind::BrokenPipe
        | ErrorKind::NotConnected => Stop::Ended,
        ErrorKind::WouldBlock | ErrorKind::TimedOut => {
            Stop::Fault(format!("no answer within {TIMEOUT:?} while {doing}"))
        }
        _ => Stop::Fault(format!("{doing}: {e}")),
    }
}

/// Totals over the outcomes of a scenario.
#[derive(Debug, Default)]
struct Tally {
    connections: usize,
    complete: usize,
    turned_away: usize,
    not_connected: usize,
    bytes: u64,
    faults: Vec<String>,
}

impl Tally {
    fn of(outcomes: &[Outcome]) -> Tally {
        let mut tally = Tally::default();
        for o in outcomes {
            match o.ending {
                Ending::NotConnected => tally.not_connected += 1,
                Ending::Complete => tally.complete += 1,
                Ending::Early if o.received == 0 => tally.turned_away += 1,
                Ending::Early => {}
            }
            if o.ending != Ending::NotConnected {
                tally.connections += 1;
            }
            tally.bytes += o.received;
            if let Some(f) = &o.fault {
                tally.faults.push(f.clone());
            }
        }
        tally
    }

    fn assert_no_faults(&self) {
        assert!(
            self.faults.is_empty(),
            "{} of {} clients saw wrong bytes, no answer or an error; the first ones:\n{}",
            self.faults.len(),
            self.connections,
            self.faults
                .iter()
                .take(10)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// A client that sends up to `total` bytes from a thread of its own and
/// reads only when told: the slow reader.
struct SlowClient {
    stream: TcpStream,
    id: u64,
    writer: Option<JoinHandle<(u64, Option<io::Error>)>>,
}

impl SlowClient {
    fn start(addr: SocketAddr, id: u64, total: u64) -> SlowClient {
        let stream = open(addr, None).expect("connect the slow client");
        let mut out = stream.try_clone().expect("clone the slow client's socket");
        let writer = thread::spawn(move || {
            let mut sent = 0u64;
            let mut data = vec![0u8; 256 * 1024];
            while sent < total {
                let n = data.len().min((total - sent) as usize);
                fill(id, sent, &mut data[..n]);
                let mut done = 0;
                while done < n {
                    match out.write(&data[done..n]) {
                        Ok(0) => return (sent, None),
                        Ok(k) => {
                            done += k;
                            sent += k as u64;
                        }
                        Err(e) => return (sent, Some(e)),
                    }
                }
            }
            (sent, None)
        });
        SlowClient {
            stream,
            id,
            writer: Some(writer),
        }
    }

    fn reader(&self) -> SlowReader {
        SlowReader {
            stream: self
                .stream
                .try_clone()
                .expect("clone the slow client's socket"),
            id: self.id,
            received: 0,
            fault: None,
            buf: vec![0; 64 * 1024],
            scratch: Vec::new(),
        }
    }

    /// Waits for the writer and returns how much it sent; it must have
    /// stopped because the server ended the connection.
    fn finish(mut self) -> u64 {
        let (sent, error) = self
            .writer
            .take()
            .expect("finished once")
            .join()
            .expect("the slow client's writer");
        if let Some(e) = error {
            assert!(
                matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe),
                "the slow client's writer stopped with {e} after {sent} bytes, not because the \
                 server closed the connection"
            );
        }
        sent
    }
}

/// The reading side of a slow client.
struct SlowReader {
    stream: TcpStream,
    id: u64,
    received: u64,
    fault: Option<String>,
    buf: Vec<u8>,
    scratch: Vec<u8>,
}

impl SlowReader {
    /// Reads and checks until `total` bytes in all, EOF or a reset.
    fn read_up_to(&mut self, total: u64) {
        while self.received < total && self.fault.is_none() {
            let want = ((total - self.received) as usize).min(self.buf.len());
            match self.stream.read(&mut self.buf[..want]) {
                Ok(0) => return,
                Ok(n) => {
                    if let Err(f) = check(self.id, self.received, &self.buf[..n], &mut self.scratch)
                    {
                        self.fault = Some(f);
                    }
                    self.received += n as u64;
                }
                Err(e) => {
                    if let Stop::Fault(f) = stop(e, "reading the echo") {
                        self.fault = Some(f);
                    }
                    return;
                }
            }
        }
    }
}

// ------------------------------------------------------------ the log

/// The workers serving the first `n` connections of a log (the sessions
/// opened before anything else).
fn sessions_workers(log: &str, n: usize) -> Vec<i32> {
    let workers: Vec<i32> = log
        .lines()
        .filter(|l| l.contains("]: accept peer="))
        .take(n)
        .map(|l| log_field(l, "worker").parse().expect("worker="))
        .collect();
    assert_eq!(workers.len(), n, "accept lines in:\n{log}");
    workers
}
