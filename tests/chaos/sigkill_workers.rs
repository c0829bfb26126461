//! SIGKILL of random workers while others echo.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::thread;

use mpecho_testkit::{
    CpuMeter, Leftovers, TIMEOUT, assert_cpu_bounded, field_number, proc_state, reconcile,
    send_signal, wait_for,
};

use crate::clients::{Ending, Tally, start_clients};
use crate::load::{Gate, Load, Plan};
use crate::scenario::{Rng, Scenario, Summary};
use crate::{CPU_BOUND, shut_down, start};

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
