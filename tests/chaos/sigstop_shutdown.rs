//! SIGSTOP of some workers, then a shutdown within the grace period.

use std::sync::atomic::Ordering;
use std::time::Instant;

use mpecho_testkit::{
    CpuMeter, Leftovers, TIMEOUT, assert_cpu_bounded, field_number, final_figures, proc_state,
    reconcile, send_signal, wait_for,
};

use crate::clients::{Tally, start_clients};
use crate::load::{Gate, Load, Plan};
use crate::scenario::{Scenario, Summary};
use crate::{CPU_BOUND, GRACE, start};

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
