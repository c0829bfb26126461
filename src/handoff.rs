//! The hand-over from master to worker, as the master (std) uses it.
//!
//! Everything both sides of the exec must agree on is defined once, in the
//! `mpecho-handoff` crate that `mpecho-worker` links too, and re-exported
//! here: the descriptors ([`CLIENT_FD`], [`LOG_FD`], [`FIRST_FREE_FD`]),
//! the program name ([`WORKER_NAME`], [`WORKER_PROGRAM`]), the options
//! ([`WorkerArgs`]), the exit statuses ([`WorkerExit`]), the idle timeout
//! ([`IdleTimeout`]) and the version line the master checks
//! ([`VersionLine`]). What stays here is what only a std program does with
//! them:
//! - the worker's command line as C strings ([`worker_argv`],
//!   [`version_argv`]);
//! - the environment: what is inherited ([`INHERITED_ENV`]) and how the
//!   connection is described ([`ConnectionEnv`], the UCSPI variables);
//! - the worker program this executable carries ([`builtin_worker`]);
//! - the `mpecho worker` subcommand's name ([`SUBCOMMAND`]).
//!
//! This module only defines and converts: it opens, spawns and logs nothing.

use std::ffi::{CStr, CString};
use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::os::fd::OwnedFd;

pub use mpecho_handoff::{
    CLIENT_FD, DO_NOTHING_OPTION, FIRST_FREE_FD, HANDOFF_VERSION, IdleTimeout, LOG_FD, VERSION,
    VERSION_OPTION, VersionLine, WORKER_NAME, WORKER_PROGRAM, WorkerArgs, WorkerExit,
};

use crate::sys;

/// The subcommand of `mpecho` that runs the worker executable in its place
/// (`mpecho worker`, for people and unit files written for it); `main.rs`
/// dispatches on it before anything else runs.
pub const SUBCOMMAND: &str = "worker";

/// The only variables a worker inherits from the master's environment: no
/// secrets a service manager or shell may have set reach a connection's
/// process (the connection itself is described by [`ConnectionEnv`]).
pub const INHERITED_ENV: [&str; 4] = ["PATH", "LANG", "LC_ALL", "TZ"];

/// The complete argument vector the master execs a worker with:
/// `mpecho-worker --log-level=L --idle-timeout=SECS [--log-fd=4]`.
pub fn worker_argv(args: &WorkerArgs) -> io::Result<Vec<CString>> {
    let mut argv = vec![WORKER_PROGRAM.to_owned()];
    let mut options = Vec::new();
    args.write_options(|option| options.push(option.to_string()));
    for option in options {
        argv.push(sys::c_string(option)?);
    }
    Ok(argv)
}

/// The do-nothing worker's argument vector (measuring only; see
/// [`DO_NOTHING_OPTION`]): the option first, where the worker looks for
/// it before anything else, then the usual options, unread.
pub fn do_nothing_argv(args: &WorkerArgs) -> io::Result<Vec<CString>> {
    let mut argv = worker_argv(args)?;
    argv.insert(1, sys::c_string(DO_NOTHING_OPTION)?);
    Ok(argv)
}

/// The check's argument vector: `mpecho-worker --version`.
pub fn version_argv() -> io::Result<Vec<CString>> {
    Ok(vec![
        WORKER_PROGRAM.to_owned(),
        sys::c_string(VERSION_OPTION)?,
    ])
}

/// `--idle-timeout`'s parser for clap: whole seconds, 0 for off.
pub fn parse_idle_timeout(text: &str) -> Result<IdleTimeout, String> {
    IdleTimeout::parse(text).map_err(|e| e.to_string())
}

/// The `mpecho-worker` built with this `mpecho` (by build.rs), carried in
/// its own bytes so that no other build can ever be run in its place.
static BUILTIN_WORKER: &[u8] = include_bytes!(env!("MPECHO_WORKER_ELF"));

/// The built-in worker as a sealed memory file, ready to be exec'd through
/// its descriptor (at or above [`FIRST_FREE_FD`]); the kernel shares its
/// pages among every process that runs it, as it does a file's.
pub fn builtin_worker() -> io::Result<OwnedFd> {
    sys::memfd_executable(WORKER_PROGRAM, BUILTIN_WORKER, FIRST_FREE_FD)
}

/// The environment entries a worker inherits, read from the master's
/// environment once at boot.
pub fn inherited_env() -> Vec<CString> {
    INHERITED_ENV
        .iter()
        .filter_map(|name| {
            let value = std::env::var_os(name)?;
            let mut entry = name.as_bytes().to_vec();
            entry.push(b'=');
            entry.extend(value.into_encoded_bytes());
            sys::c_string(entry).ok()
        })
        .collect()
}

/// The names `ConnectionEnv` sets, which no access rule may replace: a
/// program must be able to trust what they say of the connection.
pub const CONNECTION_VAR_NAMES: [&str; 8] = [
    "PROTO",
    "TCPREMOTEIP",
    "TCPREMOTEPORT",
    "TCPLOCALIP",
    "TCPLOCALPORT",
    "TCPCONNNUM",
    "TCPPROXYIP",
    "TCPPROXYPORT",
];

/// An access rule's `NAME=value` pairs (`--rules`) as environment entries
/// for a worker or program, without those naming a connection variable
/// (see [`CONNECTION_VAR_NAMES`]). Empty, and allocation-free, for the
/// usual rule that sets none.
pub fn rule_env(pairs: &[(String, String)]) -> Vec<CString> {
    pairs
        .iter()
        .filter(|(name, _)| !CONNECTION_VAR_NAMES.contains(&name.as_str()))
        .filter_map(|(name, value)| CString::new(format!("{name}={value}")).ok())
        .collect()
}

/// The variables that describe a connection, in order: six, and two more
/// for a connection relayed by a load balancer.
const CONNECTION_VARS: usize = 8;

/// Room for the eight variables with their NULs: at most 254 bytes (three
/// addresses of 39 bytes behind their 11- or 12-byte names, three ports of
/// 5 digits, a 20-digit count, `PROTO=TCP`), so 320 bytes hold them all.
const CONNECTION_ENV_BYTES: usize = 320;

/// How a connection relayed by a load balancer came (a PROXY header,
/// `--proxy-protocol`): the balancer's address, which the worker sees as
/// `TCPPROXYIP`/`TCPPROXYPORT`, and the address the client connected to,
/// when the header gave one (its `TCPLOCALIP`/`TCPLOCALPORT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relay {
    pub proxy: SocketAddr,
    pub destination: Option<SocketAddr>,
}

/// A connection's variables, as [`ConnectionEnv::describe`] wrote them.
pub struct ConnectionVars<'a> {
    vars: [&'a CStr; CONNECTION_VARS],
    len: usize,
}

impl<'a> ConnectionVars<'a> {
    pub fn as_slice(&self) -> &[&'a CStr] {
        &self.vars[..self.len]
    }
}

/// The connection described the way UCSPI servers (`tcpserver`,
/// `s6-tcpserver`) do, so tools written for that interface find what they
/// expect: `PROTO=TCP`, `TCPREMOTEIP`, `TCPREMOTEPORT`, `TCPLOCALIP`,
/// `TCPLOCALPORT`, and s6's `TCPCONNNUM` (the connections open from that
/// address, this one included); behind a load balancer, the client its
/// PROXY header named, the address the client connected to, and the
/// balancer's own as `TCPPROXYIP` and `TCPPROXYPORT`.
///
/// Written for every spawn into one buffer owned by the spawner, so that a
/// connection costs no allocation and no formatting into `String`s
/// (measured, see the commit that introduced it). The local address is
/// the listener's when that is one address; only a listener on a wildcard
/// address (`0.0.0.0`, `::`) needs the connection's own (`getsockname`).
pub struct ConnectionEnv {
    buf: [u8; CONNECTION_ENV_BYTES],
    /// Where each variable ends in `buf`, just past its NUL.
    ends: [usize; CONNECTION_VARS],
    /// The local address of every connection, when the listener's says it.
    fixed_local: Option<SocketAddr>,
}

impl ConnectionEnv {
    /// For the connections of a listener bound to `listener` (as shown:
    /// `net::display_addr`).
    pub fn new(listener: SocketAddr) -> ConnectionEnv {
        ConnectionEnv {
            buf: [0; CONNECTION_ENV_BYTES],
            ends: [0; CONNECTION_VARS],
            fixed_local: (!listener.ip().is_unspecified()).then_some(listener),
        }
    }

    /// Describes a connection from `remote`, which has `connections` open
    /// (this one included), relayed by a balancer as `relay` says (if it
    /// was); `local` is asked for the connection's local address only when
    /// neither the header nor the listener's says it. The strings borrow
    /// this value until the next call.
    pub fn describe(
        &mut self,
        remote: SocketAddr,
        connections: usize,
        relay: Option<Relay>,
        local: impl FnOnce() -> io::Result<SocketAddr>,
    ) -> io::Result<ConnectionVars<'_>> {
        let local = match (relay.and_then(|r| r.destination), self.fixed_local) {
            (Some(addr), _) | (None, Some(addr)) => addr,
            (None, None) => local()?,
        };
        // The balancer's address only when there is one: a placeholder
        // would tell a program the connection was relayed.
        let proxy = relay.map(|r| r.proxy);
        let proxy_ip = proxy.map(|p| p.ip());
        let proxy_port = proxy.map(|p| p.port());
        let len = if relay.is_some() { 8 } else { 6 };
        let mut out = &mut self.buf[..];
        let room = out.len();
        // `write!` into a slice fails (WriteZero) if the buffer were too
        // small, which the bound above rules out.
        for (end, entry) in self.ends.iter_mut().zip([
            format_args!("PROTO=TCP\0"),
            format_args!("TCPREMOTEIP={}\0", remote.ip()),
            format_args!("TCPREMOTEPORT={}\0", remote.port()),
            format_args!("TCPLOCALIP={}\0", local.ip()),
            format_args!("TCPLOCALPORT={}\0", local.port()),
            format_args!("TCPCONNNUM={connections}\0"),
            format_args!("TCPPROXYIP={}\0", Shown(proxy_ip)),
            format_args!("TCPPROXYPORT={}\0", Shown(proxy_port)),
        ]) {
            out.write_fmt(entry)?;
            *end = room - out.len();
        }
        let mut start = 0;
        let mut vars: [&CStr; CONNECTION_VARS] = [c""; CONNECTION_VARS];
        for (var, &end) in vars.iter_mut().zip(&self.ends) {
            *var = CStr::from_bytes_with_nul(&self.buf[start..end])
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            start = end;
        }
        Ok(ConnectionVars { vars, len })
    }
}

/// An optional value written as itself, or as nothing: the two relay
/// variables are written (and then left out) for every connection, so one
/// formatting sequence serves both kinds without allocating.
struct Shown<T>(Option<T>);

impl<T: std::fmt::Display> std::fmt::Display for Shown<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(value) => value.fmt(f),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;
    use crate::log::Level;

    #[test]
    fn the_argv_names_the_worker_program_then_its_options() {
        let argv = worker_argv(&WorkerArgs {
            log_level: Level::Trace,
            log_fd: Some(LOG_FD),
            idle_timeout: IdleTimeout::from_secs(300),
        })
        .unwrap();
        let argv: Vec<&str> = argv.iter().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(
            argv,
            [
                "mpecho-worker",
                "--log-level=trace",
                "--idle-timeout=300",
                "--log-fd=4"
            ]
        );
        let parsed = WorkerArgs::parse(argv[1..].iter().map(|a| a.as_bytes()));
        assert_eq!(parsed.map(|a| a.log_fd), Ok(Some(LOG_FD)));
    }

    /// The five variables read as UCSPI defines them, for a listener on one
    /// address (its own used) and on a wildcard (the connection's asked).
    #[test]
    fn a_connection_is_described_as_ucspi_does() {
        let remote: SocketAddr = "[2001:db8::1]:40000".parse().unwrap();
        let vars = |env: &mut ConnectionEnv| -> Vec<String> {
            env.describe(remote, 2, None, || Ok("10.0.0.1:9190".parse().unwrap()))
                .unwrap()
                .as_slice()
                .iter()
                .map(|v| v.to_str().unwrap().to_string())
                .collect()
        };
        let mut fixed = ConnectionEnv::new("127.0.0.1:9190".parse().unwrap());
        assert_eq!(
            vars(&mut fixed),
            [
                "PROTO=TCP",
                "TCPREMOTEIP=2001:db8::1",
                "TCPREMOTEPORT=40000",
                "TCPLOCALIP=127.0.0.1",
                "TCPLOCALPORT=9190",
                "TCPCONNNUM=2"
            ]
        );
        let mut wildcard = ConnectionEnv::new("0.0.0.0:9190".parse().unwrap());
        assert_eq!(vars(&mut wildcard)[3], "TCPLOCALIP=10.0.0.1");
        // The longest addresses fit.
        let long: SocketAddr = "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"
            .parse()
            .unwrap();
        let mut env = ConnectionEnv::new(long);
        let relay = Relay {
            proxy: long,
            destination: Some(long),
        };
        let all = env
            .describe(long, usize::MAX, Some(relay), || unreachable!())
            .unwrap();
        assert_eq!(all.as_slice()[3].to_bytes().len(), "TCPLOCALIP=".len() + 39);
        assert_eq!(all.as_slice()[6].to_bytes().len(), "TCPPROXYIP=".len() + 39);
    }

    /// A relayed connection: the header's client and destination, the
    /// balancer as TCPPROXYIP/PORT.
    #[test]
    fn a_relayed_connection_names_the_client_its_destination_and_the_balancer() {
        let mut env = ConnectionEnv::new("127.0.0.1:9190".parse().unwrap());
        let relay = Relay {
            proxy: "127.0.0.5:41000".parse().unwrap(),
            destination: Some("192.0.2.1:443".parse().unwrap()),
        };
        let client = "203.0.113.9:5555".parse().unwrap();
        let vars: Vec<String> = env
            .describe(client, 1, Some(relay), || unreachable!())
            .unwrap()
            .as_slice()
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        assert_eq!(
            vars,
            [
                "PROTO=TCP",
                "TCPREMOTEIP=203.0.113.9",
                "TCPREMOTEPORT=5555",
                "TCPLOCALIP=192.0.2.1",
                "TCPLOCALPORT=443",
                "TCPCONNNUM=1",
                "TCPPROXYIP=127.0.0.5",
                "TCPPROXYPORT=41000"
            ]
        );
    }

    #[test]
    fn the_builtin_worker_is_a_sealed_executable_elf_file() {
        let fd = builtin_worker().unwrap();
        assert!(fd.as_raw_fd() >= FIRST_FREE_FD);
        let mut file = std::fs::File::from(fd);
        let mut head = [0u8; 4];
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut head, 0).unwrap();
        assert_eq!(&head, b"\x7fELF");
        assert!(
            std::io::Write::write_all(&mut file, b"x").is_err(),
            "the memory file is sealed against writing"
        );
    }
}
