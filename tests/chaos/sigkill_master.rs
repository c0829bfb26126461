//! SIGKILL of the master mid-load, and a new master on the same port.

use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::Ordering;
use std::time::Instant;

use mpecho_testkit::{
    CpuMeter, Leftovers, Reaped, Subreaper, TIMEOUT, assert_cpu_bounded, field_number, log_field,
    proc_state, process_exists, reap_adopted, replay, send_signal, wait_for, worker_pids_in,
};

use crate::clients::{Ending, Tally, start_clients};
use crate::load::{Gate, Load, Plan};
use crate::scenario::{Scenario, Summary};
use crate::{CPU_BOUND, shut_down, start};

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
