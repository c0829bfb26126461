//! The command line: subcommands, options, defaults and their validation.
//!
//! This module only describes and parses arguments; it opens nothing and
//! starts nothing. `mpecho worker` is parsed by hand (`handoff.rs`) before
//! clap is ever touched, because every connection pays for that start-up
//! (DESIGN §11); it appears here only so that `--help` can mention it.

use std::ffi::OsString;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::handoff::IdleTimeout;
use crate::log::Level;

/// mpecho: a multi-process TCP echo server (one process per connection),
/// its client, and the tools that come with them.
#[derive(Debug, Parser)]
#[command(name = "mpecho", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Exit status for a bad command line, as clap and BSD `sysexits` usage.
const EXIT_USAGE: u8 = 2;

/// Parses the command line. On `--help`/`--version` the text is printed and
/// the status is 0; on any usage error the error *and the usage* of the
/// subcommand concerned go to stderr with status 2 (clap alone shows the
/// usage only for some kinds of error, not for an invalid value).
pub fn parse(args: Vec<OsString>) -> Result<Cli, ExitCode> {
    let subcommand = args.get(1).and_then(|a| a.to_str()).map(str::to_string);
    let nested = args.get(2).and_then(|a| a.to_str()).map(str::to_string);
    Cli::try_parse_from(args).map_err(|e| {
        if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        let mut command = Cli::command();
        command.build();
        // The usage of the innermost subcommand named (`mpecho bench churn`).
        let mut usage_of = match subcommand.and_then(|name| command.find_subcommand(name)) {
            Some(sub) => sub.clone(),
            None => command.clone(),
        };
        if let Some(nested) = nested
            .and_then(|name| usage_of.find_subcommand(&name))
            .cloned()
        {
            usage_of = nested;
        }
        let usage = usage_of.render_usage();
        let rendered = e.render().to_string();
        if rendered.contains("Usage:") {
            eprint!("{rendered}");
        } else {
            eprint!("{rendered}\n{usage}\n");
        }
        ExitCode::from(EXIT_USAGE)
    })
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the echo server: a master that accepts connections and starts one
    /// worker process per client.
    Serve(ServeArgs),
    /// Send standard input line by line to an echo server and print what
    /// comes back.
    Client(ClientArgs),
    /// Run the UDP chat relay: every datagram from a known client goes to
    /// every other known client, tagged with the sender's address.
    ChatServer(ChatServerArgs),
    /// Join a chat relay: lines typed are sent, messages received are
    /// printed (END or end of input leaves).
    Chat(ChatArgs),
    /// Load generator: measure an echo server's connection churn, steady
    /// round trips or held connections, verifying every byte; or measure
    /// this machine's process-creation ceiling.
    Bench(BenchArgs),
    /// Internal: serve the client on descriptor 3 (started by `mpecho serve`,
    /// never by hand).
    #[command(hide = true)]
    Worker,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on, as IP:PORT (IPv6 as [::1]:PORT); port 0 picks a
    /// free port, printed in the `listening on` line.
    #[arg(short, long, value_name = "ADDR", default_value = "127.0.0.1:9190")]
    pub listen: SocketAddr,

    /// Most workers (connections) served at once; a connection beyond it is
    /// accepted and closed at once, and counted as rejected.
    #[arg(short = 'm', long, value_name = "N", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_workers: u32,

    /// What to do with a new connection at the worker limit: `reject`
    /// accepts and closes it at once; `defer` leaves it waiting in the
    /// kernel's backlog until a worker exits.
    #[arg(long, value_name = "POLICY", value_enum, default_value_t = OnFull::Reject)]
    pub on_full: OnFull,

    /// Most connections served at once for one client address (IPv4-mapped
    /// IPv6 counts as its IPv4 address); 0 is no limit.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub max_per_ip: u32,

    /// Append the log to this file instead of standard error (opened once,
    /// shared by the master and all workers).
    #[arg(long, value_name = "PATH")]
    pub log_file: Option<PathBuf>,

    /// Seconds between figures lines in the log; 0 turns them off (SIGUSR1
    /// still writes one at once).
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub monitor_interval: u64,

    /// Seconds workers get to finish at shutdown before they are killed.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    pub grace: u64,

    /// Length of the kernel's queue of connections not yet accepted.
    #[arg(long, value_name = "N", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..=65535))]
    pub backlog: u32,

    /// Least severe level written to the log.
    #[arg(long, value_name = "LEVEL", value_enum, default_value_t = Level::Info)]
    pub log_level: Level,

    /// After binding and opening the log as root, become this user (its
    /// primary and supplementary groups too) before accepting anything.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,

    /// With --user: the group to become instead of the user's primary one.
    #[arg(long, value_name = "NAME", requires = "user")]
    pub group: Option<String>,

    /// Seconds a connection may stay idle (the client neither sends nor
    /// reads anything) before its worker closes it; 0 turns it off. Quiet
    /// interactive clients are closed too.
    #[arg(long, value_name = "SECS", default_value = "300")]
    pub idle_timeout: IdleTimeout,
}

/// The overload policy at the worker limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnFull {
    Reject,
    Defer,
}

impl OnFull {
    pub fn name(self) -> &'static str {
        match self {
            OnFull::Reject => "reject",
            OnFull::Defer => "defer",
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// Server host name or IP address.
    #[arg(default_value = "127.0.0.1")]
    pub host: String,

    /// Server port.
    #[arg(default_value_t = 9190)]
    pub port: u16,
}

#[derive(Debug, Clone, Args)]
pub struct ChatServerArgs {
    /// Address to listen on, as IP:PORT (IPv6 as [::1]:PORT); port 0 picks a
    /// free port, printed in the `listening on` line.
    #[arg(short, long, value_name = "ADDR", default_value = "127.0.0.1:9191")]
    pub listen: SocketAddr,

    /// Most clients known at once; a newcomer beyond it gets `server full`
    /// and known clients are never evicted for it.
    #[arg(long, value_name = "N", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_clients: u32,

    /// Seconds a client may stay silent before it is forgotten (announced as
    /// `left`); 0 keeps clients until they send END.
    #[arg(long, value_name = "SECS", default_value = "300")]
    pub idle_timeout: IdleTimeout,

    /// Append the log to this file instead of standard error.
    #[arg(long, value_name = "PATH")]
    pub log_file: Option<PathBuf>,

    /// Least severe level written to the log.
    #[arg(long, value_name = "LEVEL", value_enum, default_value_t = Level::Info)]
    pub log_level: Level,
}

#[derive(Debug, Clone, Args)]
pub struct ChatArgs {
    /// Relay host name or IP address.
    #[arg(default_value = "127.0.0.1")]
    pub host: String,

    /// Relay port.
    #[arg(default_value_t = 9191)]
    pub port: u16,
}

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub scenario: BenchScenario,
}

#[derive(Debug, Clone, Subcommand)]
pub enum BenchScenario {
    /// N concurrent loops of connect, send SIZE bytes, read them back,
    /// close: connections per second, latency per connection.
    Churn(LoadArgs),
    /// N persistent connections doing request/response echo of SIZE
    /// bytes, one request outstanding each: round trips per second.
    Steady(LoadArgs),
    /// Open N connections, verify an echo on each, hold them for the
    /// duration, verify again: survivors, connect times, time to open.
    Hold(LoadArgs),
    /// Measure this machine's process-creation ceiling: posix_spawn and
    /// wait of a tiny static program, with 1 and then 2 in flight.
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
