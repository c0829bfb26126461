//! The command line: subcommands, options, defaults and their validation.
//!
//! This module only describes and parses arguments; it opens nothing and
//! starts nothing. `mpecho worker` hands its arguments to the worker
//! executable untouched, before clap is ever touched (`worker.rs`); it
//! appears here only so that `--help` can mention it.

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::handoff::{self, IdleTimeout};
use crate::log::{self, Level};

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
    // clap's version text is fixed when this file is compiled; a build id
    // stamped into the executable afterwards (`version.rs`) is read now.
    if args.len() == 2 && matches!(args[1].to_str(), Some("--version" | "-V")) {
        println!("mpecho {}", crate::version::version());
        return Err(ExitCode::SUCCESS);
    }
    let (args, program_args) = split_program_args(args);
    let mut cli: Cli = parse_as(args)?;
    if let Command::Serve(serve) = &mut cli.command {
        serve.exec_args = program_args;
    }
    if let Command::Serve(serve) = &cli.command
        && let Some(why) = serve.conflicts()
    {
        let mut command = Cli::command();
        command.build();
        let serve = command.find_subcommand_mut("serve");
        let error = match serve {
            Some(serve) => serve.error(ErrorKind::ArgumentConflict, why),
            None => clap::Error::raw(ErrorKind::ArgumentConflict, why),
        };
        return Err(report_usage_error(&error, command.find_subcommand("serve")));
    }
    Ok(cli)
}

/// Splits `mpecho serve … --exec PROG ARG…` into what clap parses (up to
/// `--exec PROG`) and PROG's own arguments: everything after `--exec PROG`
/// (or after `--exec -- PROG`) is the program's, options included, as
/// `tcpserver` and `env` read their command lines.
fn split_program_args(mut args: Vec<OsString>) -> (Vec<OsString>, Vec<OsString>) {
    if args.get(1).is_none_or(|a| a != "serve") {
        return (args, Vec::new());
    }
    let Some(at) = args
        .iter()
        .skip(2)
        .position(|a| a == "--exec" || a.as_encoded_bytes().starts_with(b"--exec="))
        .map(|i| i + 2)
    else {
        return (args, Vec::new());
    };
    // `--exec=PROG` carries the program itself; `--exec` takes the next
    // word, skipping one `--` that only separates it from the options.
    let program_at = if args[at] == "--exec" {
        if args.get(at + 1).is_some_and(|a| a == "--") {
            args.remove(at + 1);
        }
        at + 1
    } else {
        at
    };
    if program_at >= args.len() {
        // `--exec` with nothing after it: clap says a value is required.
        return (args, Vec::new());
    }
    let program_args = args.split_off(program_at + 1);
    (args, program_args)
}

/// `parse` for any command line with subcommands (`mpecho-bench` parses
/// its own with it), so every executable of the workspace treats help and
/// usage errors alike.
pub fn parse_as<C: Parser>(args: Vec<OsString>) -> Result<C, ExitCode> {
    let subcommand = args.get(1).and_then(|a| a.to_str()).map(str::to_string);
    C::try_parse_from(args).map_err(|e| {
        if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        let mut command = C::command();
        command.build();
        // The usage of the subcommand named (`mpecho serve`).
        let sub = subcommand.and_then(|name| command.find_subcommand(name));
        report_usage_error(&e, sub.or(Some(&command)))
    })
}

/// Writes `error` and the usage of `usage_of` to stderr; the usage status.
fn report_usage_error(error: &clap::Error, usage_of: Option<&clap::Command>) -> ExitCode {
    let rendered = error.render().to_string();
    if rendered.contains("Usage:") {
        eprint!("{rendered}");
    } else {
        let usage = usage_of
            .map(|c| c.clone().render_usage().to_string())
            .unwrap_or_default();
        eprint!("{rendered}\n{usage}\n");
    }
    ExitCode::from(EXIT_USAGE)
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the echo server: a master that accepts connections and starts one
    /// worker process per client.
    // Boxed: by far the largest set of options, parsed once.
    Serve(Box<ServeArgs>),
    /// Send standard input line by line to an echo server and print what
    /// comes back.
    Client(ClientArgs),
    /// Run the UDP chat relay: every datagram from a known client goes to
    /// every other known client, tagged with the sender's address.
    ChatServer(ChatServerArgs),
    /// Join a chat relay: lines typed are sent, messages received are
    /// printed (END or end of input leaves).
    Chat(ChatArgs),
    /// Work with access-rules files (`--rules`): `mpecho rules check FILE`.
    Rules(RulesArgs),
    /// Internal: run the built-in `mpecho-worker` to serve the client on
    /// descriptor 3, as systemd's `Accept=yes` units did.
    #[command(hide = true)]
    Worker,
    /// Internal: say which version this build is and which state formats
    /// it reads, for a master about to upgrade to it (SIGUSR2).
    #[command(hide = true)]
    UpgradeCheck,
}

/// Where `mpecho serve` listens when neither `--listen` nor a socket
/// passed by systemd says otherwise.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 9190));

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on, as IP:PORT (IPv6 as [::1]:PORT); port 0 picks a
    /// free port, printed in the `listening on` line [default:
    /// 127.0.0.1:9190]. A socket passed by systemd (socket activation) wins
    /// over it, with a log line saying so.
    // An Option, not a default value, so that the server can tell an
    // address given on purpose (and say it is ignored) from the default.
    #[arg(short, long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Under socket activation, serve the passed socket of this name
    /// (LISTEN_FDNAMES: FileDescriptorName= in the .socket unit) instead of
    /// the first one.
    #[arg(long, value_name = "NAME")]
    pub listen_fd_name: Option<String>,

    /// How connections are served: `exec` starts the worker program for each
    /// (the production server); `fork` forks the master for each, the child
    /// serving it with the worker's code without exec (the textbook fork
    /// server); `prefork` keeps a pool of forked processes, each serving one
    /// connection at a time and then the next (Apache's prefork);
    /// `iterative` serves one client at a time in
    /// the master itself, the next waiting in the backlog (the first server
    /// of the original, for teaching and comparison).
    #[arg(long, value_name = "MODEL", value_enum, default_value_t = Model::Exec)]
    pub model: Model,

    /// Most workers (connections) served at once; a connection beyond it is
    /// accepted and closed at once, and counted as rejected [default: 10000;
    /// with --model iterative, 1]. With --model prefork, the most pool
    /// processes, idle or busy.
    // An Option, so that `--model iterative` can refuse a limit given on
    // purpose and still have a default of its own.
    #[arg(short = 'm', long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_workers: Option<u32>,

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
    #[arg(long, value_name = "LEVEL", value_parser = log::level_parser(), default_value_t = Level::Info)]
    pub log_level: Level,

    /// A worker executable to run for every connection instead of the
    /// mpecho-worker built into mpecho (opened once at start and checked;
    /// `--model exec` only).
    #[arg(long, value_name = "PATH")]
    pub worker: Option<PathBuf>,

    /// After binding and opening the log as root, become this user (its
    /// primary and supplementary groups too) before accepting anything.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,

    /// With --user: the group to become instead of the user's primary one.
    #[arg(long, value_name = "NAME", requires = "user")]
    pub group: Option<String>,

    /// Seconds a connection may stay idle (the client neither sends nor
    /// reads anything) before its worker closes it (for an --exec program,
    /// the master does, and sends the program SIGTERM); 0 turns it off.
    /// Quiet interactive clients are closed too.
    #[arg(long, value_name = "SECS", default_value_t = IdleTimeout::DEFAULT,
          value_parser = handoff::parse_idle_timeout)]
    pub idle_timeout: IdleTimeout,

    /// Measuring only: every worker closes its connection and exits at
    /// once, echoing nothing (`mpecho-worker --do-nothing`). The master's
    /// whole path with no echo work, the ceiling of its churn
    /// (docs/BENCHMARKS.md); hidden, since it serves no one.
    #[arg(long, hide = true)]
    pub do_nothing_workers: bool,

    /// At most N new connections per SECS seconds from one client address
    /// (`10/1`, `30/60s`; a burst of N at once is allowed): one over the
    /// rate is accepted and closed at once, and counted, while other
    /// addresses are served as usual. A rule's `max-rate-per-ip=` replaces
    /// it for its addresses.
    #[arg(long, value_name = "N/SECS")]
    pub max_rate_per_ip: Option<crate::rules::Rate>,

    /// A last word written to every client turned away (by a limit, a rule,
    /// a rate, or a worker that could not start) just before it is closed,
    /// without ever waiting for it, as sshd and `tcpserver -B` do. `\r`,
    /// `\n`, `\t` and `\\` are understood: 'busy, try later\r\n'. At
    /// most 1024 bytes.
    #[arg(long, value_name = "TEXT", value_parser = parse_message)]
    pub reject_message: Option<RejectMessage>,

    /// Access rules: which client addresses are served, with which
    /// environment and per-address limits (see `mpecho rules check`).
    /// Read at start (a file that does not parse is refused) and again on
    /// SIGHUP (a bad file then keeps the rules in force).
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,

    /// With --model prefork: the fewest idle processes kept waiting for the
    /// next connections [default: 5, or --max-workers if lower].
    #[arg(long, value_name = "N")]
    pub min_spare: Option<u32>,

    /// With --model prefork: the most idle processes kept; more are
    /// stopped [default: 10, and at least --min-spare].
    #[arg(long, value_name = "N")]
    pub max_spare: Option<u32>,

    /// With --model prefork: connections one process serves before it is
    /// replaced by a fresh one; 0 is never [default: 0].
    #[arg(long, value_name = "N")]
    pub max_requests: Option<u64>,

    /// Run PROG with its ARGs for every connection instead of the built-in
    /// echo, the UCSPI (tcpserver, inetd) way: the connection on standard
    /// input and output, standard error inherited from mpecho, and PROTO,
    /// TCPREMOTEIP, TCPREMOTEPORT, TCPLOCALIP, TCPLOCALPORT and TCPCONNNUM
    /// in its environment. Everything after `--exec PROG` is PROG's
    /// arguments, so give mpecho's options first. PROG is looked up in PATH
    /// (at start, where it must be found and executable, and at each
    /// connection). With --exec the model is always exec.
    #[arg(long, value_name = "PROG [ARG]...")]
    pub exec: Option<OsString>,

    /// PROG's arguments (see `split_program_args`).
    #[arg(skip)]
    pub exec_args: Vec<OsString>,

    /// Every connection must begin with a PROXY protocol header (v1 or
    /// v2), sent by a load balancer named by --trusted-proxy: admission,
    /// the log and the worker's TCPREMOTEIP then use the client's address
    /// it carries. Never guessed: without this option no header is read.
    #[arg(long)]
    pub proxy_protocol: bool,

    /// With --proxy-protocol (and required by it): a balancer allowed to
    /// send PROXY headers, as an address or CIDR prefix (10.0.0.0/8,
    /// 2001:db8::/32); repeatable. A connection from any other address is
    /// closed at once, unread.
    #[arg(long, value_name = "CIDR", value_parser = crate::rules::Prefix::parse)]
    pub trusted_proxy: Vec<crate::rules::Prefix>,

    /// With --proxy-protocol: seconds a connection has to send its whole
    /// PROXY header before it is closed [default: 3].
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub proxy_timeout: Option<u64>,

    /// Serve Prometheus metrics at http://ADDR/metrics (IP:PORT, e.g.
    /// 127.0.0.1:9464; port 0 picks one, logged as `metrics on ADDR`).
    /// Off by default.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
}

/// `--reject-message`'s bytes (a type of its own: clap would read a bare
/// `Vec<u8>` as many values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectMessage(pub Vec<u8>);

/// `--reject-message`'s text, escapes understood: what a client reads.
fn parse_message(text: &str) -> Result<RejectMessage, String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut utf8 = [0u8; 4];
            bytes.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            continue;
        }
        bytes.push(match chars.next() {
            Some('r') => b'\r',
            Some('n') => b'\n',
            Some('t') => b'\t',
            Some('\\') => b'\\',
            other => {
                let what = other.map_or("nothing".to_string(), |c| format!("{c:?}"));
                return Err(format!(
                    "a backslash followed by {what}: write \\r, \\n, \\t or \\\\"
                ));
            }
        });
    }
    if bytes.len() > MAX_REJECT_MESSAGE {
        return Err(format!(
            "{} bytes: at most {MAX_REJECT_MESSAGE}, which a socket always takes at once",
            bytes.len()
        ));
    }
    Ok(RejectMessage(bytes))
}

/// The longest `--reject-message`: far below any socket's send buffer, so
/// it is written whole without waiting.
const MAX_REJECT_MESSAGE: usize = 1024;

/// The default `--max-workers` of `--model exec`.
pub const DEFAULT_MAX_WORKERS: u32 = 10_000;

/// How `mpecho serve` serves a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Model {
    /// A worker process per connection, the worker program exec'd.
    Exec,
    /// A worker process per connection, forked without exec.
    Fork,
    /// A pool of forked processes, each serving one connection at a time.
    Prefork,
    /// One client at a time, served by the master itself.
    Iterative,
}

impl Model {
    pub const ALL: [Model; 4] = [Model::Exec, Model::Fork, Model::Prefork, Model::Iterative];

    pub fn name(self) -> &'static str {
        match self {
            Model::Exec => "exec",
            Model::Fork => "fork",
            Model::Prefork => "prefork",
            Model::Iterative => "iterative",
        }
    }
}

impl ServeArgs {
    /// `--max-workers`, or its default for the model.
    pub fn max_workers(&self) -> u32 {
        match (self.model, self.max_workers) {
            (_, Some(n)) => n,
            (Model::Exec | Model::Fork | Model::Prefork, None) => DEFAULT_MAX_WORKERS,
            (Model::Iterative, None) => 1,
        }
    }

    /// The pool's settings (`--model prefork`), defaults filled in.
    pub fn pool(&self) -> PoolSizes {
        // A small --max-workers lowers the default, never a number given.
        let min_spare = self
            .min_spare
            .unwrap_or_else(|| DEFAULT_MIN_SPARE.min(self.max_workers()));
        PoolSizes {
            min_spare,
            max_spare: self
                .max_spare
                .unwrap_or_else(|| DEFAULT_MAX_SPARE.max(min_spare)),
            max_requests: self.max_requests.unwrap_or(0),
        }
    }

    /// Options that make no sense together, as a sentence saying why.
    fn conflicts(&self) -> Option<String> {
        if let Some(why) = self.program_conflicts() {
            return Some(why);
        }
        if matches!(self.model, Model::Fork | Model::Prefork) && self.worker.is_some() {
            return Some(format!(
                "--worker cannot be used with --model {}: its workers are forked copies of \
                 this executable and run no worker program",
                self.model.name()
            ));
        }
        if let Some(why) = self.pool_conflicts() {
            return Some(why);
        }
        if let Some(why) = self.proxy_conflicts() {
            return Some(why);
        }
        if self.model != Model::Iterative {
            return None;
        }
        let why = "--model iterative serves one client at a time in the master";
        if self.max_workers.is_some_and(|n| n > 1) {
            return Some(format!("--max-workers above 1 cannot be used: {why}"));
        }
        if self.max_per_ip > 0 {
            return Some(format!(
                "--max-per-ip cannot be used: {why}, so no address can have two"
            ));
        }
        if self.on_full == OnFull::Defer {
            return Some(format!(
                "--on-full defer cannot be used: {why}, and the next one always waits in the backlog"
            ));
        }
        if self.worker.is_some() {
            return Some(format!(
                "--worker cannot be used: {why}, which runs no worker"
            ));
        }
        None
    }
}

/// The default `--min-spare` and `--max-spare`, Apache prefork's.
pub const DEFAULT_MIN_SPARE: u32 = 5;
pub const DEFAULT_MAX_SPARE: u32 = 10;

/// `--proxy-timeout`'s default: the PROXY protocol spec's minimum, enough
/// for one TCP retransmission.
pub const DEFAULT_PROXY_TIMEOUT: u64 = 3;

/// How `--model prefork` sizes its pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSizes {
    /// Fewest idle processes kept ready.
    pub min_spare: u32,
    /// Most idle processes kept; the surplus is stopped.
    pub max_spare: u32,
    /// Connections a process serves before it is replaced; 0 is never.
    pub max_requests: u64,
}

impl ServeArgs {
    /// What `--exec` rules out: other models, another worker, a worker
    /// that does nothing.
    fn program_conflicts(&self) -> Option<String> {
        self.exec.as_ref()?;
        if self.model != Model::Exec {
            return Some(format!(
                "--model {} cannot be used with --exec: a program is always exec'd, one process \
                 per connection",
                self.model.name()
            ));
        }
        if self.worker.is_some() {
            return Some(
                "--worker cannot be used with --exec: the program runs in the worker's place"
                    .to_owned(),
            );
        }
        if self.do_nothing_workers {
            return Some("--do-nothing-workers cannot be used with --exec".to_owned());
        }
        None
    }

    /// The PROXY protocol's options without each other: a header accepted
    /// from anyone would let any client claim any address, and a trusted
    /// list or a timeout without the protocol would silently do nothing.
    fn proxy_conflicts(&self) -> Option<String> {
        match (self.proxy_protocol, self.trusted_proxy.is_empty()) {
            (true, true) => Some(
                "--proxy-protocol needs at least one --trusted-proxy CIDR: a header accepted \
                 from any address would let every client claim any address"
                    .to_owned(),
            ),
            (false, false) => Some(
                "--trusted-proxy cannot be used without --proxy-protocol: no header is read \
                 without it"
                    .to_owned(),
            ),
            (false, true) if self.proxy_timeout.is_some() => Some(
                "--proxy-timeout cannot be used without --proxy-protocol: no header is read \
                 without it"
                    .to_owned(),
            ),
            _ => None,
        }
    }

    /// The pool options' conflicts: given without the pool, or sizes that
    /// contradict each other or the worker limit.
    fn pool_conflicts(&self) -> Option<String> {
        if self.model != Model::Prefork {
            let given = [
                ("--min-spare", self.min_spare.is_some()),
                ("--max-spare", self.max_spare.is_some()),
                ("--max-requests", self.max_requests.is_some()),
            ];
            return given.iter().find(|(_, given)| *given).map(|(option, _)| {
                format!(
                    "{option} cannot be used with --model {}: it sizes the pool of --model prefork",
                    self.model.name()
                )
            });
        }
        let sizes = self.pool();
        if sizes.max_spare < sizes.min_spare {
            return Some(format!(
                "--max-spare {} is below --min-spare {}: the pool could never settle",
                sizes.max_spare, sizes.min_spare
            ));
        }
        let max_workers = self.max_workers();
        if sizes.min_spare > max_workers {
            return Some(format!(
                "--min-spare {} is above --max-workers {max_workers}: the pool never has more \
                 processes than --max-workers",
                sizes.min_spare
            ));
        }
        None
    }
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
    #[arg(long, value_name = "SECS", default_value = "300",
          value_parser = handoff::parse_idle_timeout)]
    pub idle_timeout: IdleTimeout,

    /// Share one room with other relays through Redis pub/sub, as
    /// redis://HOST:PORT[/DB]. Without Redis (down at start or later) the
    /// relay keeps relaying among its own clients and reconnects.
    #[arg(long, value_name = "URL", value_parser = parse_redis)]
    pub redis: Option<RedisUrl>,

    /// The room shared through --redis: relays in the same room hear each
    /// other's clients.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "mpecho",
        requires = "redis"
    )]
    pub room: String,

    /// Append the log to this file instead of standard error.
    #[arg(long, value_name = "PATH")]
    pub log_file: Option<PathBuf>,

    /// Least severe level written to the log.
    #[arg(long, value_name = "LEVEL", value_parser = log::level_parser(), default_value_t = Level::Info)]
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
pub struct RulesArgs {
    #[command(subcommand)]
    pub command: RulesCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum RulesCommand {
    /// Validate an access-rules file and print what each rule means: one
    /// line per network (line number, prefix, verdict, settings), then the
    /// default. Exit status 0 for a valid file, 1 for an invalid one (each
    /// problem on standard error as FILE:LINE: problem).
    Check {
        /// The rules file: native lines (`allow 10.0.0.0/8`, `deny ::1`,
        /// `default deny`) and tcprules lines (`1.2.3.:allow,VAR="x"`).
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

/// `--redis`: where the room's Redis is.
#[derive(Debug, Clone)]
pub struct RedisUrl {
    pub addr: SocketAddr,
    pub db: u32,
}

fn parse_redis(url: &str) -> Result<RedisUrl, String> {
    crate::chat::cluster::parse_redis_url(url).map(|(addr, db)| RedisUrl { addr, db })
}
