//! What a run reports and how: the figures every scenario shares
//! (throughput, latency percentiles, connect times, errors by kind, the
//! generator's own CPU time), as a human report or as exactly one JSON
//! object.
//!
//! Rendering only: nothing here measures, and nothing here decides the
//! exit status. The JSON is written by hand (a dozen flat fields do not
//! need a serialisation framework); keys are stable, numbers are plain
//! decimals, durations are in seconds (`_secs`) or microseconds (`_us`).

use std::fmt::Write as _;
use std::time::Duration;

use mpecho::sys::CpuTime;

use crate::scenario::{NAME, Settings};
use crate::stats::{ErrorCounts, ErrorKind, Summary};

/// What one operation of a scenario is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Unit {
    #[default]
    Connection,
    RoundTrip,
}

impl Unit {
    fn singular(self) -> &'static str {
        match self {
            Unit::Connection => "connection",
            Unit::RoundTrip => "round trip",
        }
    }

    fn plural(self) -> &'static str {
        match self {
            Unit::Connection => "connections",
            Unit::RoundTrip => "round trips",
        }
    }
}

/// What a scenario measured, beyond what the engine counts.
#[derive(Debug, Default)]
pub struct Measured {
    pub unit: Unit,
    /// Operations that finished verified.
    pub completed: u64,
    /// The measured window: from its start until the last operation in
    /// flight at its end finished.
    pub elapsed: Duration,
    /// What the CPU time is divided by for the per-operation figure.
    pub per_op_count: u64,
    /// Operations per second, when not `completed / elapsed` (hold:
    /// connections opened per second of the open phase).
    pub throughput: Option<f64>,
    /// How long opening the connections took (steady, hold).
    pub open: Option<Duration>,
    /// Connections opened and verified once (hold).
    pub opened: Option<u64>,
    /// How long the connections were held (hold).
    pub held: Option<Duration>,
    /// Connections that passed both verifications (hold).
    pub survivors: Option<u64>,
}

/// Everything a report shows.
pub struct Report<'a> {
    pub scenario: &'static str,
    /// What the latency figures time.
    pub latency_of: &'static str,
    pub settings: &'a Settings,
    pub measured: &'a Measured,
    pub latency: Summary,
    pub connect: Summary,
    pub errors: &'a ErrorCounts,
    pub bytes_verified: u64,
    /// The generator's own CPU time during the run.
    pub cpu: CpuTime,
    /// Set when the target could not be reached at all.
    pub unreachable: Option<&'a str>,
}

impl Report<'_> {
    pub fn throughput(&self) -> f64 {
        self.measured.throughput.unwrap_or_else(|| {
            let secs = self.measured.elapsed.as_secs_f64();
            if secs > 0.0 {
                self.measured.completed as f64 / secs
            } else {
                0.0
            }
        })
    }

    /// CPU microseconds per operation; 0 when none was done.
    pub fn cpu_per_op_us(&self) -> f64 {
        match self.measured.per_op_count {
            0 => 0.0,
            n => self.cpu.total().as_secs_f64() * 1e6 / n as f64,
        }
    }

    pub fn to_json(&self) -> String {
        let m = self.measured;
        let mut j = Json::new();
        j.str("scenario", self.scenario);
        j.str("target", &self.settings.target.to_string());
        j.u64("connections", self.settings.connections as u64);
        j.u64("size", self.settings.size as u64);
        j.f64("duration_secs", self.settings.duration.as_secs_f64());
        j.f64("timeout_secs", self.settings.timeout.as_secs_f64());
        if self.settings.expect_close {
            j.bool("expect_close", true);
        }
        j.str("unit", m.unit.singular());
        j.u64("completed", m.completed);
        j.f64("elapsed_secs", m.elapsed.as_secs_f64());
        j.f64("throughput_per_sec", self.throughput());
        j.u64("bytes_verified", self.bytes_verified);
        j.summary("latency_us", self.latency_of, &self.latency);
        j.summary("connect_us", "connect() to established", &self.connect);
        j.begin("errors");
        j.u64("total", self.errors.total());
        for kind in ErrorKind::ALL {
            j.u64(kind.name(), self.errors.get(kind));
        }
        j.end();
        j.begin("error_examples");
        for kind in ErrorKind::ALL {
            if let Some(message) = self.errors.first(kind) {
                j.str(kind.name(), message);
            }
        }
        j.end();
        j.begin("cpu");
        j.f64("user_secs", self.cpu.user.as_secs_f64());
        j.f64("system_secs", self.cpu.system.as_secs_f64());
        j.f64("total_secs", self.cpu.total().as_secs_f64());
        j.f64("per_op_us", self.cpu_per_op_us());
        j.end();
        if let Some(open) = m.open {
            j.f64("open_secs", open.as_secs_f64());
        }
        if let Some(opened) = m.opened {
            j.u64("opened", opened);
        }
        if let Some(held) = m.held {
            j.f64("held_secs", held.as_secs_f64());
        }
        if let Some(survivors) = m.survivors {
            j.u64("survivors", survivors);
        }
        match self.unreachable {
            Some(reason) => j.str("unreachable", reason),
            None => j.null("unreachable"),
        }
        j.finish()
    }

    pub fn to_human(&self) -> String {
        let (s, m) = (self.settings, self.measured);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{NAME} {} against {}: {} connections, {}-byte messages, {}",
            self.scenario,
            s.target,
            s.connections,
            s.size,
            secs(s.duration)
        );
        if let Some(open) = m.open {
            let opened = m.opened.unwrap_or_default();
            let _ = write!(out, "  opened     {opened} connections in {}", secs(open));
            if let Some(rate) = m.throughput {
                let _ = write!(out, ": {rate:.1} connections/s");
            }
            out.push('\n');
        }
        if let Some(held) = m.held {
            let _ = writeln!(out, "  held       {}", secs(held));
        }
        if let Some(survivors) = m.survivors {
            let _ = writeln!(
                out,
                "  survivors  {survivors} of {} passed both echoes ({} in all)",
                s.connections,
                secs(m.elapsed)
            );
        }
        if m.throughput.is_none() {
            let _ = writeln!(
                out,
                "  completed  {} {} in {}: {:.1} {}/s",
                m.completed,
                m.unit.plural(),
                secs(m.elapsed),
                self.throughput(),
                m.unit.plural()
            );
        }
        let _ = writeln!(
            out,
            "  latency    {}",
            percentiles(&self.latency, self.latency_of)
        );
        let _ = writeln!(
            out,
            "  connect    {}",
            percentiles(&self.connect, "connect() to established")
        );
        let _ = if s.expect_close {
            writeln!(
                out,
                "  verified   every connection closed by the server with nothing sent back"
            )
        } else {
            writeln!(
                out,
                "  verified   {} bytes echoed, every one checked",
                self.bytes_verified
            )
        };
        match self.errors.total() {
            0 => {
                let _ = writeln!(out, "  errors     none");
            }
            total => {
                let counts: Vec<String> = ErrorKind::ALL
                    .iter()
                    .map(|&k| format!("{} {}", k.name(), self.errors.get(k)))
                    .collect();
                let _ = writeln!(out, "  errors     {total}: {}", counts.join(", "));
                for kind in ErrorKind::ALL {
                    if let Some(message) = self.errors.first(kind) {
                        let _ = writeln!(out, "             first {}: {message}", kind.name());
                    }
                }
            }
        }
        let _ = writeln!(
            out,
            "  own CPU    {} (user {}, system {}): {:.1} µs per {}",
            secs(self.cpu.total()),
            secs(self.cpu.user),
            secs(self.cpu.system),
            self.cpu_per_op_us(),
            m.unit.singular()
        );
        out
    }
}

/// `p50 … max` of a histogram, each in a readable unit, then how many
/// samples and what they time.
fn percentiles(s: &Summary, of: &str) -> String {
    if s.count == 0 {
        return format!("no samples ({of})");
    }
    format!(
        "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  ({} samples; {of})",
        nanos(s.p50),
        nanos(s.p90),
        nanos(s.p99),
        nanos(s.p999),
        nanos(s.max),
        s.count
    )
}

fn nanos(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns} ns"),
        1_000..1_000_000 => format!("{:.1} µs", ns as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.2} ms", ns as f64 / 1e6),
        _ => format!("{:.3} s", ns as f64 / 1e9),
    }
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

/// A JSON object written field by field: keys are fixed ASCII names,
/// strings are escaped, non-finite numbers become null.
pub struct Json {
    out: String,
    comma: bool,
}

impl Json {
    pub fn new() -> Json {
        Json {
            out: String::from("{"),
            comma: false,
        }
    }

    fn key(&mut self, key: &str) {
        if self.comma {
            self.out.push(',');
        }
        self.comma = true;
        self.out.push('"');
        self.out.push_str(key);
        self.out.push_str("\":");
    }

    pub fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        self.out.push('"');
        for c in value.chars() {
            match c {
                '"' => self.out.push_str("\\\""),
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(self.out, "\\u{:04x}", c as u32);
                }
                c => self.out.push(c),
            }
        }
        self.out.push('"');
    }

    pub fn u64(&mut self, key: &str, value: u64) {
        self.key(key);
        let _ = write!(self.out, "{value}");
    }

    pub fn f64(&mut self, key: &str, value: f64) {
        self.key(key);
        if value.is_finite() {
            let _ = write!(self.out, "{value:.3}");
        } else {
            self.out.push_str("null");
        }
    }

    pub fn bool(&mut self, key: &str, value: bool) {
        self.key(key);
        self.out.push_str(if value { "true" } else { "false" });
    }

    pub fn null(&mut self, key: &str) {
        self.key(key);
        self.out.push_str("null");
    }

    pub fn begin(&mut self, key: &str) {
        self.key(key);
        self.out.push('{');
        self.comma = false;
    }

    pub fn end(&mut self) {
        self.out.push('}');
        self.comma = true;
    }

    /// A histogram summary as an object of microseconds, with what it times.
    fn summary(&mut self, key: &str, what: &str, s: &Summary) {
        let us = |ns: u64| ns as f64 / 1e3;
        self.begin(key);
        self.str("of", what);
        self.u64("count", s.count);
        self.f64("mean", us(s.mean));
        self.f64("p50", us(s.p50));
        self.f64("p90", us(s.p90));
        self.f64("p99", us(s.p99));
        self.f64("p99_9", us(s.p999));
        self.f64("max", us(s.max));
        self.end();
    }

    /// The object, closed.
    pub fn finish(mut self) -> String {
        self.out.push('}');
        self.out
    }
}

impl Default for Json {
    fn default() -> Self {
        Json::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped_and_objects_nest() {
        let mut j = Json::new();
        j.str("a", "quote \" backslash \\ newline \n bell \u{7}");
        j.begin("b");
        j.u64("c", 1);
        j.f64("d", f64::NAN);
        j.end();
        j.null("e");
        assert_eq!(
            j.finish(),
            r#"{"a":"quote \" backslash \\ newline \n bell \u0007","b":{"c":1,"d":null},"e":null}"#
        );
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(nanos(999), "999 ns");
        assert_eq!(nanos(1_500), "1.5 µs");
        assert_eq!(nanos(2_340_000), "2.34 ms");
        assert_eq!(nanos(3_000_000_000), "3.000 s");
    }
}
