//! A 64 MiB slow reader and a client that never reads, closed by the idle
//! timeout.

use std::time::{Duration, Instant};

use mpecho_testkit::{CpuMeter, Leftovers, assert_cpu_bounded, field_number, log_field};

use crate::clients::{Tally, start_clients};
use crate::load::{Load, Plan};
use crate::scenario::{Scenario, Summary};
use crate::slow::SlowClient;
use crate::{CPU_BOUND, shut_down, start};

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
    // The race is the claim itself (served while stuck, and being stuck
    // ends at the idle timeout), and it is not close: the stuck workers
    // live at least IDLE (checked below), about 4 s in practice since the
    // slow one still makes progress until the buffers fill, while the
    // first of the 32 others is done within milliseconds of starting (all
    // 32 were, before either idle line, in five runs with two busy loops).
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
    // An upper bound, so that an idle timeout firing late fails the test:
    // about 4.1 s is seen, with or without two busy loops beside (the
    // buffers' filling, not CPU-bound), against 8 s.
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
