//! The command line of `mpecho-bench`: its scenarios, their options,
//! defaults and validation, and what a bad command line prints.
//!
//! It only describes and parses arguments: it opens nothing, measures
//! nothing, and never exits the process (`parse` hands the status back to
//! `main`).

use std::ffi::OsString;
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::scenario::Settings;

/// Load generator: measure an echo server's connection churn, steady
/// round trips or held connections, verifying every byte; or measure
/// what starting a static glibc program costs on this machine.
#[derive(Debug, Parser)]
#[command(name = "mpecho-bench", version, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Parses the command line. On `--help`/`--version` the text is printed and
/// the status is 0; on any usage error the error *and the usage* of the
/// scenario concerned go to stderr with status 2, exactly as `mpecho`
/// treats its own command line.
pub fn parse(args: Vec<OsString>) -> Result<Cli, ExitCode> {
    mpecho::cli::parse_as(args)
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// N concurrent loops of connect, send SIZE bytes, read them back,
    /// close: connections per second, latency per connection.
    Churn(ChurnArgs),
    /// N persistent connections doing request/response echo of SIZE
    /// bytes, one request outstanding each: round trips per second.
    Steady(LoadArgs),
    /// Open N connections, verify an echo on each, hold them for the
    /// duration, verify again: survivors, connect times, time to open.
    Hold(LoadArgs),
    /// Measure what starting a static glibc program costs here: mpecho's
    /// own spawn (clone + exec, as for its workers) and wait of a `return
    /// 0` program, with 1 and then 2 in flight. A reference, not a
    /// ceiling: see churn --expect-close for that.
    SpawnProbe(ProbeArgs),
}

#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// The echo server to load, as HOST:PORT (IPv6 as [::1]:PORT).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9190",
          value_parser = parse_target)]
    pub target: SocketAddr,

    /// Connections (concurrent loops for churn, persistent connections for
    /// steady, connections held for hold).
    #[arg(short = 'c', long, value_name = "N", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub connections: u32,

    /// Bytes per request; each request's payload is unique to its
    /// connection and sequence number, and its echo is checked byte for
    /// byte.
    #[arg(long, value_name = "BYTES", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=16 * 1024 * 1024))]
    pub size: u32,

    /// Seconds to run (for hold: to hold the connections); fractions allowed.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_seconds)]
    pub duration: Duration,

    /// Seconds a connect or an echo may take before it counts as a
    /// timeout error.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_seconds)]
    pub timeout: Duration,

    /// Print the report as one JSON object on standard output.
    #[arg(long)]
    pub json: bool,
}

impl LoadArgs {
    /// What the load run needs of these options.
    pub fn settings(&self) -> Settings {
        Settings {
            target: self.target,
            connections: self.connections as usize,
            size: self.size as usize,
            duration: self.duration,
            timeout: self.timeout,
            expect_close: false,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct ChurnArgs {
    #[command(flatten)]
    pub load: LoadArgs,

    /// Send nothing: each connection is complete when the server closes
    /// it with nothing sent (an orderly close, EOF); any byte that comes
    /// back is an error. For measuring a server's ceiling against
    /// workers that do nothing (`mpecho serve --do-nothing-workers`);
    /// --size is then unused.
    #[arg(long)]
    pub expect_close: bool,
}

impl ChurnArgs {
    /// What the churn run needs of these options.
    pub fn settings(&self) -> Settings {
        Settings {
            expect_close: self.expect_close,
            ..self.load.settings()
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct ProbeArgs {
    /// Seconds each round (1 in flight, then 2) runs; fractions allowed.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_seconds)]
    pub duration: Duration,

    /// Print the report as one JSON object on standard output.
    #[arg(long)]
    pub json: bool,
}

/// The longest `--duration` or `--timeout` accepted: a day.
const MAX_SECONDS: f64 = 86_400.0;

/// A positive number of seconds, fractions allowed, at most a day.
fn parse_seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(secs > 0.0 && secs <= MAX_SECONDS) {
        return Err(format!(
            "{text} is out of range (more than 0, at most {MAX_SECONDS} seconds)"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `IP:PORT` as is; `HOST:PORT` resolved, first address.
fn parse_target(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    if !text.contains(':') {
        return Err(format!("{text:?} has no port: expected HOST:PORT"));
    }
    text.to_socket_addrs()
        .map_err(|e| format!("could not resolve {text:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("{text:?} has no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_accept_fractions_and_refuse_nonsense() {
        assert_eq!(parse_seconds("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_seconds("5"), Ok(Duration::from_secs(5)));
        for bad in ["0", "-1", "nan", "inf", "1e9", "soon", ""] {
            assert!(parse_seconds(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn targets_are_ip_and_port() {
        assert_eq!(
            parse_target("127.0.0.1:9190"),
            Ok("127.0.0.1:9190".parse().unwrap())
        );
        assert_eq!(parse_target("[::1]:80"), Ok("[::1]:80".parse().unwrap()));
        assert!(parse_target("127.0.0.1").is_err());
    }
}
