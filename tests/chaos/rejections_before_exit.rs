//! Rejections held back by the throttle reach the log before the master
//! exits.

use mpecho_testkit::{Leftovers, field_number, rejections_in_log};

use crate::clients::{Ending, Outcome, run_connection, start_clients};
use crate::load::{Gate, Load, Plan};
use crate::scenario::{Scenario, Summary};
use crate::{shut_down, start};

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
