//! The harness every mpecho test and bench crate shares: start the real
//! binary, wait for its `listening on` line, talk to it over loopback, read
//! its log and its processes in /proc, and stop and reap everything on
//! drop — also when the test fails.
//!
//! What it must never do: sleep a fixed time to "let things settle" (every
//! wait polls a real condition and gives up at a deadline, `wait.rs`),
//! leave a process behind (whatever it starts is stopped and reaped on
//! drop), or run an mpecho other than the one `bin.rs` decides on.
//!
//! - `bin.rs`: where the binaries and examples are (`MPECHO_BIN` overrides);
//! - `wait.rs`: `wait_for`, `TIMEOUT`;
//! - `server.rs`: `Server`, `ServerOptions`;
//! - `child.rs`: `ChildGuard`, `run_mpecho`/`run_binary`, other processes
//!   started by hand, `Collected` (a pipe read as it comes), scripts for
//!   `--exec`;
//! - `net.rs`: clients: connect, echo, how a connection ended, a program's
//!   lines up to `END`;
//! - `process.rs`: /proc: pids, children, states, descriptors, pidfds,
//!   groups, credentials, limits, environment, CPU ticks;
//! - `bench.rs`: `mpecho-bench` run against a target, its JSON report;
//! - `cpu.rs`: the CPU a process uses over a stretch;
//! - `log.rs`: log lines, fields, figures, shape, timestamps;
//! - `replay.rs`: a master's log replayed and reconciled with its figures;
//! - `leftovers.rs`: workers that must not outlive a test, orphans adopted
//!   as a subreaper;
//! - `ptrace.rs`: a worker whose SIGTERM is held back;
//! - `proxy.rs`: PROXY protocol headers (v1, v2, TLVs) made by hand;
//! - `random.rs`: one seeded generator for many cases without a crate.
//!
//! Everything is re-exported at the root: `use mpecho_testkit::{Server, …}`.

pub mod bench;
pub mod bin;
pub mod child;
pub mod cpu;
pub mod leftovers;
pub mod log;
pub mod net;
pub mod process;
pub mod proxy;
pub mod ptrace;
pub mod random;
pub mod replay;
pub mod server;
pub mod wait;

pub use bench::{bench_report, bench_report_within, start_bench};
pub use bin::{MPECHO_BIN, binary, example, mpecho_bin, worker_bin};
pub use child::{
    ChildGuard, Collected, pass_as_descriptor_3, run_binary, run_mpecho, setpriv_available,
    write_script,
};
pub use cpu::{CpuMeter, CpuShare, assert_cpu_bounded};
pub use leftovers::{Leftovers, Reaped, Subreaper, reap_adopted};
pub use log::{
    Figures, assert_log_lines, count_lines, count_peer_lines, field_number, final_figures,
    is_well_formed_log_line, log_field, log_time_ms, names_peer, rejections_in_log,
    suppressed_total, without_stamp, worker_pids_in,
};
pub use net::{
    assert_connection_ended, connect_from, connect_to, connect_when_listening, echo, free_port,
    lines_until_end, metrics_text, read_once, stall_worker_writing, text,
};
pub use process::{
    RestoreLimit, all_pids, blocked_in_syscall, children_of, cpu_ticks, environ, has_ended,
    is_root, is_worker_process, open_fds, pidfds, proc_limit, proc_state, process_exists,
    process_group_members, send_signal, set_soft_nofile, stat_fields, status_ids,
};
pub use proxy::{
    encode_tlvs, proxy_v1, proxy_v1_unknown, proxy_v2, proxy_v2_checksummed, proxy_v2_local,
    proxy_v2_raw,
};
pub use ptrace::SigtermSwallower;
pub use random::Random;
pub use replay::{Exit, Replay, reconcile, replay};
pub use server::{Server, ServerOptions};
pub use wait::{TIMEOUT, poll_for, wait_for};
