//! The echo tier past one machine (issue 14 §1): three hosts, each a
//! network namespace running `mpecho serve --proxy-protocol`, behind a
//! real HAProxy (Debian's package, the checked-in
//! `deploy/haproxy/haproxy.cfg`) on the test's loopback. The network is
//! `scripts/tier.sh`'s, the one an operator runs; the test starts the
//! hosts and HAProxy through it as its own children, and removes the
//! network on drop, also when it fails.
//!
//! Needs root (network namespaces, veth pairs, a bridge): without it each
//! test says so on stderr and returns.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;
use std::{fs, io::Write};

use mpecho_testkit::{
    ChildGuard, TIMEOUT, bench_report, connect_from, count_lines, echo, free_port, has_ended,
    is_root, mpecho_bin, proc_state, start_bench, text, wait_for,
};

const HOSTS: [usize; 3] = [1, 2, 3];

/// What every host runs with, besides its address and the PROXY options
/// `tier.sh` gives it, and what a test adds.
const SERVE_ARGS: [&str; 4] = ["--monitor-interval", "0", "--user", "nobody"];

/// The per-address limit of the limit test: small, so that filling it on
/// every host takes a dozen connections. Not under load: the benches'
/// clients all come from 127.0.0.1, and a worker whose client has left
/// still counts until it is reaped.
const PER_IP: usize = 4;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/tier.sh")
}

/// The tier: its network, three hosts' masters and HAProxy, all children
/// of the test. On drop the children are killed and `tier.sh down`
/// removes the namespaces (with any orphaned worker in them) and the
/// bridge.
struct Tier {
    dir: tempfile::TempDir,
    front: SocketAddr,
    serve_args: Vec<String>,
    hosts: Vec<Option<ChildGuard>>,
    haproxy: Option<ChildGuard>,
}

impl Tier {
    /// The whole tier, every host up in HAProxy's eyes, the hosts run with
    /// `extra` arguments too; `None` (said on stderr) when not root.
    fn start(extra: &[&str]) -> Option<Tier> {
        if !is_root() {
            eprintln!(
                "skipped: the tier tests need root to create network namespaces \
                 (CI runs as root)"
            );
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let front = free_port(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let mut tier = Tier {
            dir,
            front,
            serve_args: SERVE_ARGS
                .iter()
                .chain(extra)
                .map(|a| a.to_string())
                .collect(),
            hosts: HOSTS.iter().map(|_| None).collect(),
            haproxy: None,
        };
        let net = tier.run_script(&["net"]);
        assert!(net.status.success(), "tier.sh net: {}", text(&net.stderr));
        for n in HOSTS {
            tier.start_host(n);
        }
        tier.start_haproxy();
        for n in HOSTS {
            tier.wait_status(n, "UP");
        }
        Some(tier)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("bash");
        command
            .arg(script())
            .arg(args[0])
            .arg(self.dir.path())
            .args(&args[1..])
            .env("MPECHO", mpecho_bin())
            .env("TIER_FRONT", self.front.to_string())
            .stdin(Stdio::null());
        command
    }

    fn run_script(&self, args: &[&str]) -> std::process::Output {
        self.command(args).output().expect("run scripts/tier.sh")
    }

    /// Starts host `n`'s master (`tier.sh host` execs it, so the child
    /// is the master) and waits for its `listening on` line.
    fn start_host(&mut self, n: usize) {
        let out = self.dir.path().join(format!("h{n}.out"));
        let child = self
            .command(&["host", &n.to_string()])
            .args(&self.serve_args)
            .stdout(fs::File::create(&out).expect("create the host's stdout file"))
            .stderr(fs::File::create(self.dir.path().join(format!("h{n}.err"))).expect("stderr"))
            .spawn()
            .expect("start a host");
        self.hosts[n - 1] = Some(ChildGuard(child));
        wait_for(&format!("host {n} to listen"), TIMEOUT, || {
            self.assert_running(n);
            fs::read_to_string(&out)
                .ok()
                .filter(|s| s.starts_with("listening on "))
        });
    }

    fn assert_running(&mut self, n: usize) {
        let host = self.hosts[n - 1].as_mut().expect("a host started");
        if let Ok(Some(status)) = host.0.try_wait() {
            let err = fs::read_to_string(self.dir.path().join(format!("h{n}.err")));
            panic!("host {n} exited ({status}): {}", err.unwrap_or_default());
        }
    }

    fn start_haproxy(&mut self) {
        let stderr = self.dir.path().join("haproxy.err");
        let child = self
            .command(&["haproxy"])
            .stdout(Stdio::null())
            .stderr(fs::File::create(&stderr).expect("create haproxy's stderr file"))
            .spawn()
            .expect("start haproxy through tier.sh");
        let mut haproxy = ChildGuard(child);
        wait_for("haproxy to answer on its front end", TIMEOUT, || {
            if let Ok(Some(status)) = haproxy.0.try_wait() {
                let said = fs::read_to_string(&stderr).unwrap_or_default();
                panic!("haproxy exited ({status}): {said}");
            }
            TcpStream::connect(self.front).ok()
        });
        self.haproxy = Some(haproxy);
    }

    /// SIGKILLs host `n`'s master and reaps it; its workers live on.
    fn kill_host(&mut self, n: usize) {
        let mut host = self.hosts[n - 1].take().expect("host is running");
        host.0.kill().expect("SIGKILL the host's master");
        host.wait_exit();
    }

    fn master_pid(&self, n: usize) -> i32 {
        let host = self.hosts[n - 1].as_ref().expect("host is running");
        host.0.id() as i32
    }

    fn log(&self, n: usize) -> String {
        fs::read_to_string(self.dir.path().join(format!("h{n}.log"))).unwrap_or_default()
    }

    /// Every host's warnings and errors, and HAProxy's stderr: what a
    /// failed assertion shows.
    fn complaints(&self) -> String {
        let mut said = String::new();
        for n in HOSTS {
            for line in self.log(n).lines().filter(|l| !l.contains(" INFO ")) {
                said.push_str(&format!("h{n}: {line}\n"));
            }
        }
        let haproxy = fs::read_to_string(self.dir.path().join("haproxy.err"));
        said + "haproxy: " + &haproxy.unwrap_or_default()
    }

    /// A churn and a steady run through the front end at once, for
    /// `secs`: both with no error of any kind and work done. Returns the
    /// connections churned.
    fn bench(&self, secs: &str) -> u64 {
        let mut churn = start_bench(self.front, "churn", "8", secs);
        let mut steady = start_bench(self.front, "steady", "12", secs);
        let churn = bench_report(&mut churn);
        let steady = bench_report(&mut steady);
        for report in [&churn, &steady] {
            assert_eq!(
                report["errors"]["total"],
                0,
                "bench errors: {report}\n{}",
                self.complaints()
            );
        }
        let done = |r: &serde_json::Value| r["completed"].as_u64().unwrap_or(0);
        assert!(done(&churn) > 0 && done(&steady) > 0, "{churn}\n{steady}");
        done(&churn)
    }

    /// Host `n`'s status in HAProxy (`UP`, `DOWN`, `UP 1/2`, ...), from
    /// `show stat` on the admin socket.
    fn status(&self, n: usize) -> String {
        let mut socket = UnixStream::connect(self.dir.path().join("haproxy.sock"))
            .expect("connect to haproxy's admin socket");
        socket.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        socket.write_all(b"show stat\n").expect("ask for the stats");
        let mut csv = String::new();
        socket.read_to_string(&mut csv).expect("read the stats");
        server_status(&csv, &format!("h{n}"))
            .unwrap_or_else(|| panic!("no h{n} in haproxy's stats:\n{csv}"))
    }

    fn wait_status(&self, n: usize, want: &str) {
        wait_for(&format!("haproxy to see host {n} {want}"), TIMEOUT, || {
            (self.status(n) == want).then_some(())
        });
    }
}

impl Drop for Tier {
    fn drop(&mut self) {
        self.haproxy.take();
        self.hosts.clear();
        let down = self.run_script(&["down"]);
        if !down.status.success() && !std::thread::panicking() {
            panic!("tier.sh down: {}", text(&down.stderr));
        }
    }
}

/// The `status` column of server `name`'s row in `show stat`'s CSV.
fn server_status(csv: &str, name: &str) -> Option<String> {
    let header = csv.lines().next()?.strip_prefix("# ")?;
    let column = header.split(',').position(|c| c == "status")?;
    csv.lines()
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|row| row.get(1) == Some(&name))
        .and_then(|row| row.get(column).map(|s| s.to_string()))
}

fn accepts_from(log: &str, ip: &str) -> usize {
    count_lines(log, &format!(" accept peer={ip}:"))
}

/// The bench through HAProxy to three hosts: no error; every host served
/// part of it and logged the real client, 127.0.0.1, never HAProxy's
/// address for it.
#[test]
fn load_through_haproxy_reaches_every_host_as_the_real_client() {
    let Some(tier) = Tier::start(&[]) else { return };
    let churned = tier.bench("2");
    let accepted: usize = HOSTS
        .iter()
        .map(|&n| {
            let from_client = accepts_from(&tier.log(n), "127.0.0.1");
            assert!(
                from_client > 0,
                "host {n} logged no client:\n{}",
                tier.log(n)
            );
            from_client
        })
        .sum();
    // Churn's connections plus steady's 12 (and a connection a bench had
    // opened when its time ran out).
    assert!(
        accepted as u64 >= churned + 12,
        "{accepted} accepts, {churned} churned"
    );
}

/// The per-address limit, set on the hosts, holds per real client: one
/// client address fills its 4 on every host and no more, while a second
/// address is still served on every host. Were the hosts counting the
/// balancer, which all of them see, the second would be refused too.
#[test]
fn the_per_address_limit_holds_per_real_client() {
    let Some(tier) = Tier::start(&["--max-per-ip", &PER_IP.to_string()]) else {
        return;
    };
    let greedy = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let every_host_refused = || {
        let refusal = format!("per-IP limit reached ({PER_IP} active from 127.0.0.2,");
        HOSTS.iter().all(|&n| tier.log(n).contains(&refusal))
    };
    let mut held = Vec::new();
    let mut refused = 0;
    // Bounded: a host that never refuses makes the loop end, and the test
    // fail, after a few rounds more than the limits allow.
    for _ in 0..HOSTS.len() * (PER_IP + 8) {
        let mut client = connect_from(greedy, tier.front);
        if try_echo(&mut client) {
            held.push(client);
        } else {
            refused += 1;
            if refused >= HOSTS.len() && every_host_refused() {
                break;
            }
        }
    }
    let summary = format!("{} served, {refused} refused", held.len());
    assert!(every_host_refused(), "{summary}\n{}", tier.complaints());
    assert_eq!(held.len(), HOSTS.len() * PER_IP, "{summary}");
    let other = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
    let mut others = Vec::new();
    wait_for("every host to serve 127.0.0.3 too", TIMEOUT, || {
        let mut client = connect_from(other, tier.front);
        assert!(try_echo(&mut client), "127.0.0.3 was refused");
        others.push(client);
        HOSTS
            .iter()
            .all(|&n| accepts_from(&tier.log(n), "127.0.0.3") > 0)
            .then_some(())
    });
    for client in &mut held {
        assert_eq!(echo(client, b"still\n"), b"still\n");
    }
}

/// One echo: true if it came back, false if the connection was closed
/// (a host refused it: HAProxy passes its close on).
fn try_echo(client: &mut TcpStream) -> bool {
    if client.write_all(b"ping\n").is_err() {
        return false;
    }
    let mut back = [0u8; 5];
    match client.read_exact(&mut back) {
        Ok(()) => {
            assert_eq!(&back, b"ping\n", "a wrong echo");
            true
        }
        Err(_) => false,
    }
}

/// Host 1's master is SIGKILLed while clients are connected to every
/// host: HAProxy's check marks it DOWN (the time it took is printed);
/// bench load started after that has no error; host 1's workers go on
/// echoing for their clients and end when they leave. Host 1 started
/// again is marked UP and serves new load.
#[test]
fn a_dead_host_is_taken_out_and_used_again_when_back() {
    let Some(mut tier) = Tier::start(&[]) else {
        return;
    };
    let mut clients: Vec<TcpStream> = (0..6)
        .map(|_| {
            let mut client = TcpStream::connect(tier.front).expect("connect to the front");
            client.set_read_timeout(Some(TIMEOUT)).expect("timeout");
            assert_eq!(echo(&mut client, b"held\n"), b"held\n");
            client
        })
        .collect();
    let on_host_1 = workers_of_clients(&tier.log(1), &clients);
    assert!(
        !on_host_1.is_empty(),
        "no client reached host 1:\n{}",
        tier.log(1)
    );
    assert!(on_host_1.iter().all(|&pid| proc_state(pid).is_some()));

    let master = tier.master_pid(1);
    let killed = Instant::now();
    tier.kill_host(1);
    tier.wait_status(1, "DOWN");
    eprintln!(
        "host 1's master (pid {master}) SIGKILLed: DOWN in haproxy after {:.0} ms",
        killed.elapsed().as_secs_f64() * 1000.0
    );

    let accepted_before = accepts_from(&tier.log(1), "127.0.0.1");
    tier.bench("1.5");
    assert_eq!(accepts_from(&tier.log(1), "127.0.0.1"), accepted_before);
    for client in &mut clients {
        assert_eq!(echo(client, b"after\n"), b"after\n");
    }
    drop(clients);
    wait_for("host 1's orphaned workers to end", TIMEOUT, || {
        on_host_1.iter().all(|&pid| has_ended(pid)).then_some(())
    });

    tier.start_host(1);
    tier.wait_status(1, "UP");
    let restarted = tier
        .log(1)
        .rfind(" started: ")
        .expect("the new master's start");
    tier.bench("1.5");
    let since = &tier.log(1)[restarted..];
    assert!(
        accepts_from(since, "127.0.0.1") > 0,
        "host 1 unused:\n{since}"
    );
}

/// The workers host `n`'s log says serve `clients` (matched by the
/// client's own port, which the PROXY header carried to the host).
fn workers_of_clients(log: &str, clients: &[TcpStream]) -> Vec<i32> {
    clients
        .iter()
        .filter_map(|c| {
            let port = c.local_addr().expect("client address").port();
            let needle = format!(" accept peer=127.0.0.1:{port} worker=");
            let line = log.lines().find(|l| l.contains(&needle))?;
            line.split(" worker=")
                .nth(1)?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .collect()
}
