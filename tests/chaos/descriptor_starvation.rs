//! Descriptor starvation of the master under a flood.

use std::sync::atomic::Ordering;

use mpecho_testkit::{
    CpuMeter, Leftovers, RestoreLimit, TIMEOUT, assert_cpu_bounded, field_number, open_fds, pidfds,
    reconcile, set_soft_nofile, wait_for,
};

use crate::clients::{Tally, start_clients};
use crate::load::{Gate, Load, Plan};
use crate::scenario::{Scenario, Summary};
use crate::{CPU_BOUND, STARVED_CPU_BOUND, shut_down, start};

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
