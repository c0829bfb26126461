//! The metrics in the Prometheus text exposition format, version 0.0.4:
//! every family with its `# HELP` and `# TYPE` lines, then its samples.
//!
//! It owns the metric names, types and help texts, and the mapping from a
//! [`Snapshot`] (the numbers the figures line prints too) to samples. It
//! must never read a clock or /proc, or count anything itself (every number
//! comes from the snapshot or the endpoint's [`Stats`], so the metrics and
//! the figures cannot drift apart), never allocate per byte (it appends to
//! a `Vec` the endpoint reuses), and never write a byte a client sent.
//!
//! Names follow the Prometheus conventions: `mpecho_` and the thing counted,
//! base units (seconds, bytes), `_total` on counters; the process's own
//! resource use goes by the standard `process_` names.

use crate::cli::Model;
use std::fmt;
use std::io::Write as _;
use std::time::UNIX_EPOCH;

use crate::server::lifetimes::Lifetimes;
use crate::server::listener::State;
use crate::server::monitor::Snapshot;

use super::http::Status;
use super::{DEADLINE, MAX_CONNECTIONS, Stats};

/// The `Content-Type` of a scrape's response.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Appends the whole exposition of `s` and of the endpoint's own `scrapes`
/// to `out`.
pub fn render(out: &mut Vec<u8>, s: &Snapshot<'_>, scrapes: &Stats) {
    use Type::{Counter, Gauge};
    let c = s.counters;
    let mut w = Writer { out };

    w.single(
        "mpecho_connections_accepted_total",
        Counter,
        "Connections handed to a worker (figure accepted).",
        c.accepted,
    );
    w.labelled(
        "mpecho_connections_rejected_total",
        Counter,
        "Connections accepted and closed at once, by reason: worker_limit (figure \
         rejected_full), per_ip (rejected_per_ip), rule (an access rule denies the \
         address: rejected_rule), rate (over --max-rate-per-ip: rejected_rate), proxy (no usable PROXY header: \
         rejected_proxy), spawn_failure (no worker could be \
         started: spawn_failures).",
        "reason",
        &[
            ("worker_limit", c.rejected_full),
            ("per_ip", c.rejected_per_ip),
            ("rule", c.rejected_rule),
            ("rate", c.rejected_rate),
            ("proxy", c.rejected_proxy),
            ("spawn_failure", c.spawn_failures),
        ],
    );
    w.single(
        "mpecho_accept_errors_total",
        Counter,
        "Failed accept calls: connections aborted before they were taken, no \
         descriptors or memory left (figure accept_errors).",
        c.accept_errors,
    );
    w.labelled(
        "mpecho_worker_exits_total",
        Counter,
        "Workers reaped, by how they ended: ok (status 0), error (another status), \
         signal (killed by a signal), idle (closed an idle connection, status 3) \
         (figures exited_ok, exited_error, exited_signal, exited_idle).",
        "how",
        &[
            ("ok", c.exited_ok),
            ("error", c.exited_error),
            ("signal", c.exited_signal),
            ("idle", c.exited_idle),
        ],
    );
    w.single(
        "mpecho_deferrals_total",
        Counter,
        "Times accepting paused at the worker limit with --on-full defer (figure deferred).",
        c.deferred,
    );
    w.single(
        "mpecho_log_write_errors_total",
        Counter,
        "Log lines the master could not write, lost (figure log_write_errors).",
        s.log_write_errors,
    );

    w.single(
        "mpecho_workers_active",
        Gauge,
        "Workers alive now (figure active).",
        s.active,
    );
    w.single(
        "mpecho_workers_peak",
        Gauge,
        "Most workers alive at once since the master started (figure peak).",
        s.peak,
    );
    w.labelled(
        "mpecho_listener_state",
        Gauge,
        "1 for the listener's state, 0 for the others: listening; paused (out of \
         descriptors, memory or processes, for 100 ms); deferred (at the worker limit \
         with --on-full defer); closed (shutting down).",
        "state",
        &listener_states(s.listener),
    );
    w.labelled(
        "mpecho_model",
        Gauge,
        "1 for the execution model the master runs (--model), 0 for the others.",
        "model",
        &Model::ALL.map(|model| (model.name(), u64::from(model == s.config.model))),
    );
    if let Some(pool) = s.pool {
        w.labelled(
            "mpecho_pool_processes",
            Gauge,
            "Pool processes (--model prefork only) by state: idle (waiting for a client), \
             busy (serving one), leaving (retired or ending, not reaped yet).",
            "state",
            &[
                ("idle", pool.idle as u64),
                ("busy", pool.busy as u64),
                ("leaving", pool.leaving as u64),
            ],
        );
    }
    let admission = &s.config.admission;
    w.single(
        "mpecho_max_workers",
        Gauge,
        "Most workers at once (--max-workers).",
        admission.max_workers,
    );
    w.single(
        "mpecho_max_per_ip",
        Gauge,
        "Most workers for one client address (--max-per-ip); 0 is no limit.",
        admission.max_per_ip,
    );
    w.single(
        "mpecho_idle_timeout_seconds",
        Gauge,
        "Seconds a connection may stay idle before its worker closes it \
         (--idle-timeout); 0 is off.",
        s.config.worker.idle_timeout.as_secs(),
    );
    w.single(
        "mpecho_uptime_seconds",
        Gauge,
        "Seconds since the master started (figure uptime_s, which is rounded down).",
        s.uptime.as_secs_f64(),
    );
    w.single(
        "process_start_time_seconds",
        Gauge,
        "When the master started, in seconds since the Unix epoch.",
        s.started_at
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64(),
    );
    if let Some(kb) = s.process.rss_kb {
        w.single(
            "process_resident_memory_bytes",
            Gauge,
            "The master's resident memory, in bytes (figure rss_kb, times 1024).",
            kb * 1024,
        );
    }
    if let Some(fds) = s.process.open_fds {
        w.single(
            "process_open_fds",
            Gauge,
            "Descriptors the master holds, this scrape's connection included (figure fds).",
            fds,
        );
    }
    if let Some(max) = s.process.max_fds {
        w.single(
            "process_max_fds",
            Gauge,
            "The master's descriptor limit (soft RLIMIT_NOFILE; it holds one pidfd per \
             worker).",
            max,
        );
    }
    w.histogram(
        "mpecho_worker_lifetime_seconds",
        "How long workers lived, from accept to reap, observed when each is reaped; \
         the count is the sum of mpecho_worker_exits_total.",
        &c.lifetimes,
    );

    let mut codes = [("", 0); Status::ALL.len()];
    for (slot, status) in codes.iter_mut().zip(Status::ALL) {
        *slot = (status_label(status), scrapes.responses[status.index()]);
    }
    w.labelled(
        "mpecho_metrics_responses_total",
        Counter,
        "Responses of this endpoint, by HTTP status code (this scrape's own not yet \
         counted).",
        "code",
        &codes,
    );
    w.single(
        "mpecho_metrics_connections_rejected_total",
        Counter,
        &format!(
            "Connections to this endpoint closed at once because {MAX_CONNECTIONS} were \
             open already."
        ),
        scrapes.rejected,
    );
    w.single(
        "mpecho_metrics_connections_timed_out_total",
        Counter,
        &format!(
            "Connections to this endpoint closed at the {}s deadline before their \
             response was sent in full.",
            DEADLINE.as_secs()
        ),
        scrapes.timed_out,
    );
}

/// One `(state, 0 or 1)` per listener state, the current one at 1.
fn listener_states(current: State) -> [(&'static str, u64); 4] {
    let name = match current {
        State::Listening => "listening",
        State::Paused(_) => "paused",
        State::Deferred => "deferred",
        State::Closed => "closed",
    };
    ["listening", "paused", "deferred", "closed"].map(|state| (state, u64::from(state == name)))
}

fn status_label(status: Status) -> &'static str {
    match status {
        Status::Ok => "200",
        Status::BadRequest => "400",
        Status::NotFound => "404",
        Status::MethodNotAllowed => "405",
        Status::HeadTooLarge => "431",
    }
}

#[derive(Debug, Clone, Copy)]
enum Type {
    Counter,
    Gauge,
}

/// Appends families to the output. Writing into a `Vec` cannot fail, so
/// the results of `write!` are ignored.
struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

impl Writer<'_> {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = write!(self.out, "# HELP {name} ");
        // HELP text escapes backslash and newline (and nothing else).
        for b in help.bytes() {
            match b {
                b'\\' => self.out.extend_from_slice(b"\\\\"),
                b'\n' => self.out.extend_from_slice(b"\\n"),
                _ => self.out.push(b),
            }
        }
        let _ = write!(self.out, "\n# TYPE {name} {kind}\n");
    }

    fn type_name(kind: Type) -> &'static str {
        match kind {
            Type::Counter => "counter",
            Type::Gauge => "gauge",
        }
    }

    /// A family of one sample without labels.
    /// Values are integers, or floats in Rust's shortest round-trip form
    /// (never an exponent, never infinite or NaN here).
    fn single(&mut self, name: &str, kind: Type, help: &str, value: impl fmt::Display) {
        self.header(name, Self::type_name(kind), help);
        let _ = writeln!(self.out, "{name} {value}");
    }

    /// A family of one sample per value of one label. Label values are
    /// fixed words of this file, never anything a client sent, so they need
    /// no escaping (none has a backslash, a quote or a newline).
    fn labelled(
        &mut self,
        name: &str,
        kind: Type,
        help: &str,
        label: &str,
        samples: &[(&str, u64)],
    ) {
        self.header(name, Self::type_name(kind), help);
        for (value, count) in samples {
            debug_assert!(!value.contains(['\\', '"', '\n']));
            let _ = writeln!(self.out, "{name}{{{label}=\"{value}\"}} {count}");
        }
    }

    /// A histogram: cumulative `_bucket` samples with `le` labels ending
    /// with `+Inf`, then `_sum` and `_count`.
    fn histogram(&mut self, name: &str, help: &str, h: &Lifetimes) {
        self.header(name, "histogram", help);
        for (bound, count) in h.cumulative() {
            let _ = match bound {
                Some(bound) => writeln!(self.out, "{name}_bucket{{le=\"{bound}\"}} {count}"),
                None => writeln!(self.out, "{name}_bucket{{le=\"+Inf\"}} {count}"),
            };
        }
        let _ = writeln!(self.out, "{name}_sum {}", h.sum().as_secs_f64());
        let _ = writeln!(self.out, "{name}_count {}", h.count());
    }
}
