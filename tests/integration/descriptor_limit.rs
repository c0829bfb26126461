//! The descriptor limit at start-up (issue 4): the master raises its soft
//! `RLIMIT_NOFILE` to the hard limit, and says so only when it did.

use mpecho_testkit::{Server, ServerOptions, count_lines, proc_limit, without_stamp};

/// The master raises its soft descriptor limit to the hard limit at
/// start-up and says so: started with a soft limit of 256, it runs with
/// soft = hard and logs `raised the descriptor limit from 256 to HARD`.
/// Already at the hard limit, it logs nothing about it.
#[test]
fn soft_descriptor_limit_is_raised_to_the_hard_limit() {
    let own = std::process::id() as i32;
    let (own_soft, hard) = proc_limit(own, "Max open files");
    let hard = hard.expect("a finite hard descriptor limit");
    if hard <= 256 {
        println!(
            "SKIPPED soft_descriptor_limit_is_raised_to_the_hard_limit: the hard limit ({hard}) \
             leaves nothing to raise from 256"
        );
        return;
    }
    let server = Server::start_with(ServerOptions {
        args: vec!["--monitor-interval".into(), "0".into()],
        shell_prefix: Some("ulimit -Sn 256 || exit 1;".into()),
        ..ServerOptions::default()
    });
    assert_eq!(
        proc_limit(server.pid, "Max open files"),
        (Some(hard), Some(hard)),
        "the master's descriptor limits"
    );
    let raised = format!(
        "INFO master[{}]: raised the descriptor limit from 256 to {hard}",
        server.pid
    );
    let log = server.log();
    assert_eq!(
        log.lines().filter(|l| without_stamp(l) == raised).count(),
        1,
        "expected {raised:?} once in:\n{log}"
    );
    assert_eq!(count_lines(&log, "descriptor limit"), 1, "{log}");

    // Started with this test's own limits.
    let plain = Server::start(&["--monitor-interval", "0"]);
    let expected = match own_soft {
        Some(soft) if soft < hard => 1,
        _ => 0,
    };
    assert_eq!(
        count_lines(&plain.log(), "raised the descriptor limit"),
        expected,
        "soft {own_soft:?}, hard {hard}:\n{}",
        plain.log()
    );
}
