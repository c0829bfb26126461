//! Reading mpecho's log: lines, `key=value` fields and numbers, the
//! figures lines, the line shape, timestamps, peers, the throttle's
//! `suppressed N more` summaries, rejections, and the worker pids a log
//! names.
//!
//! Everything here reads a log given as text and never waits: a caller
//! that needs a line to appear polls with `Server::wait_for_log_line` or
//! `wait_for`. A function that must find something panics naming what it
//! looked for and where.

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;

use crate::server::Server;

/// What marks the master's figures lines (not the final one).
pub(crate) const FIGURES: &str = "]: figures ";

/// How many lines of `log` contain `needle`.
pub fn count_lines(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

/// The first line of `text` that contains every one of `needles`.
pub(crate) fn line_with(text: &str, needles: &[&str]) -> Option<String> {
    text.lines()
        .find(|line| needles.iter().all(|n| line.contains(n)))
        .map(str::to_string)
}

/// `log` up to its last newline: without a line still being written.
pub(crate) fn whole_lines(log: &str) -> &str {
    &log[..log.rfind('\n').map_or(0, |i| i + 1)]
}

/// Asserts that the server's log has `expected` lines containing `needle`
/// (showing the log when it has not).
pub fn assert_log_lines(server: &Server, needle: &str, expected: usize) {
    let log = server.log();
    assert_eq!(
        count_lines(&log, needle),
        expected,
        "lines with {needle:?}; log:\n{log}"
    );
}

/// The value of `key=` in a log line, up to the next space; fails if the
/// line has no such field.
pub fn log_field<'a>(line: &'a str, key: &str) -> &'a str {
    let start = line
        .find(&format!(" {key}="))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
        + key.len()
        + 2;
    line[start..].split(' ').next().unwrap_or("")
}

/// The number `key=N` of a log line; fails if there is none or it is not a
/// number.
pub fn field_number(line: &str, key: &str) -> u64 {
    let value = log_field(line, key);
    value
        .parse()
        .unwrap_or_else(|_| panic!("{key}={value} is not a number in {line:?}"))
}

/// The log line without its timestamp: `LEVEL component[pid]: message`.
pub fn without_stamp(line: &str) -> &str {
    line.split_once(' ').map_or(line, |(_, rest)| rest)
}

/// A figures line of the master's, as `Server::figures` returns it:
/// `… figures active=1 peak=1 accepted=1 …`, every field `name=value`.
pub struct Figures {
    line: String,
}

impl Figures {
    pub(crate) fn new(line: String) -> Figures {
        let (_, fields) = line
            .split_once(FIGURES)
            .unwrap_or_else(|| panic!("not a figures line: {line:?}"));
        for field in fields.split(' ') {
            assert!(field.contains('='), "bad field {field:?} in {line:?}");
        }
        Figures { line }
    }

    /// The whole log line.
    pub fn line(&self) -> &str {
        &self.line
    }

    /// The numeric field `name`; fails if there is none or it is not a
    /// number.
    pub fn get(&self, name: &str) -> u64 {
        field_number(&self.line, name)
    }
}

/// Shows the line, so that `{figures:?}` in a failure message says it all.
impl fmt::Debug for Figures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.line, f)
    }
}

/// Master `master`'s closing figures line.
pub fn final_figures(log: &str, master: i32) -> String {
    let marker = format!("master[{master}]: final figures ");
    log.lines()
        .find(|l| l.contains(&marker))
        .unwrap_or_else(|| panic!("no final figures line in the log:\n{log}"))
        .to_string()
}

/// A log line's shape: `YYYY-MM-DDTHH:MM:SS.mmmZ LEVEL component[pid]: message`.
pub fn is_well_formed_log_line(line: &str) -> bool {
    // `9` stands for any digit; every other byte must be there as it is.
    const STAMP: &[u8; 25] = b"9999-99-99T99:99:99.999Z ";
    let b = line.as_bytes();
    let stamp_ok = b.len() > STAMP.len()
        && STAMP.iter().zip(b).all(|(&want, &got)| {
            if want == b'9' {
                got.is_ascii_digit()
            } else {
                got == want
            }
        });
    if !stamp_ok {
        return false;
    }
    let rest = &line[25..];
    let Some((level, rest)) = rest.split_once(' ') else {
        return false;
    };
    if !["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&level) {
        return false;
    }
    let Some((label, _message)) = rest.split_once("]: ") else {
        return false;
    };
    let Some((component, pid)) = label.split_once('[') else {
        return false;
    };
    !component.is_empty()
        && component
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c == b'-')
        && !pid.is_empty()
        && pid.bytes().all(|c| c.is_ascii_digit())
}

/// Milliseconds since the Unix epoch of a log line's timestamp
/// (`YYYY-MM-DDTHH:MM:SS.mmmZ …`), to compare when two lines were written.
pub fn log_time_ms(line: &str) -> i64 {
    let field = |range: std::ops::Range<usize>| -> i64 {
        line.get(range)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no timestamp at the start of {line:?}"))
    };
    let (year, month, day) = (field(0..4), field(5..7), field(8..10));
    // Days from 1970-01-01 to the date (Howard Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let seconds = days * 86_400 + field(11..13) * 3_600 + field(14..16) * 60 + field(17..19);
    seconds * 1_000 + field(20..23)
}

/// Whether a log line names `peer` as `peer=ADDR` (not merely a longer
/// port that starts with the same digits: `peer=127.0.0.1:600` must not
/// match `peer=127.0.0.1:60091`).
pub fn names_peer(line: &str, peer: SocketAddr) -> bool {
    let needle = format!("peer={peer}");
    line.match_indices(&needle).any(|(at, _)| {
        !line[at + needle.len()..]
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_digit())
    })
}

/// How many lines of `log` name `peer` (see [`names_peer`]).
pub fn count_peer_lines(log: &str, peer: SocketAddr) -> usize {
    log.lines().filter(|l| names_peer(l, peer)).count()
}

/// The total of N over the throttle's summary lines `suppressed N more
/// WHAT in the last 1s` in `log`: the warnings of that kind held back.
pub fn suppressed_total(log: &str, what: &str) -> u64 {
    let tail = format!(" more {what} in the last 1s");
    log.lines()
        .filter_map(|l| l.strip_suffix(&tail))
        .map(|l| {
            let (_, n) = l
                .rsplit_once("]: suppressed ")
                .unwrap_or_else(|| panic!("a summary line without its count: {l:?}"));
            n.parse::<u64>()
                .unwrap_or_else(|_| panic!("a summary line with a bad count: {l:?}"))
        })
        .sum()
}

/// Master `master`'s rejection lines and the counts its throttle
/// summarised, `(lines, suppressed)`, for the worker limit and for the
/// per-address limit.
pub fn rejections_in_log(log: &str, master: i32) -> [(u64, u64); 2] {
    let lines = |reason: &str| {
        log.lines()
            .filter(|l| l.contains(&format!("master[{master}]: rejected peer=")))
            .filter(|l| l.contains(reason))
            .count() as u64
    };
    [
        (
            lines(": worker limit reached"),
            suppressed_total(log, "rejected connections (worker limit)"),
        ),
        (
            lines(": per-IP limit reached"),
            suppressed_total(log, "rejected connections (per-IP limit)"),
        ),
    ]
}

/// Every worker pid a log names (`worker[PID]:` lines, `worker=PID`).
pub fn worker_pids_in(log: &str) -> BTreeSet<i32> {
    let mut pids = BTreeSet::new();
    for line in log.lines() {
        for marker in [" worker[", " worker="] {
            if let Some((_, rest)) = line.split_once(marker) {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                if let Ok(pid) = digits.parse() {
                    pids.insert(pid);
                }
            }
        }
    }
    pids
}
