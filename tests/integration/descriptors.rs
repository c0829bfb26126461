//! Descriptors and process identity: each connection is served by its own
//! `mpecho-worker`, the executable the master opened at start, with the
//! client on fd 3 and no descriptor of the master's (listener, pipes, the
//! worker executable, inherited strays) besides 0-2 and the log.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use mpecho_testkit::{Server, ServerOptions, open_fds, text};

/// Where descriptor `fd` of process `pid` points (`socket:[INODE]` for a
/// socket).
fn fd_target(pid: i32, fd: i32) -> PathBuf {
    std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
        .unwrap_or_else(|e| panic!("read the target of fd {fd} of process {pid}: {e}"))
}

/// `(local, remote)` addresses of the IPv4 TCP socket with this inode, as
/// process `pid` sees them in its /proc/PID/net/tcp.
fn tcp_socket_addrs(pid: i32, inode: &str) -> Option<(SocketAddr, SocketAddr)> {
    // Lines: `sl local_address rem_address st tx:rx tr:when retrnsmt uid
    // timeout inode ...`, addresses as `AABBCCDD:PORT` in hex, the IPv4
    // address in host byte order.
    let parse = |field: &str| -> SocketAddr {
        let (ip, port) = field.split_once(':').expect("ADDR:PORT in /proc/net/tcp");
        let ip = u32::from_str_radix(ip, 16).expect("hex IPv4 address");
        let port = u16::from_str_radix(port, 16).expect("hex port");
        SocketAddr::from((Ipv4Addr::from(ip.to_ne_bytes()), port))
    };
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).ok()?;
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(9) == Some(&inode)).then(|| (parse(fields[1]), parse(fields[2])))
    })
}

/// Asserts that `worker` holds exactly 0, 1, 2, the client on 3 and the
/// server's log file on 4.
fn assert_holds_only_std_streams_client_and_log_file(server: &Server, worker: i32) {
    assert_eq!(open_fds(worker), vec![0, 1, 2, 3, 4]);
    assert_eq!(
        fd_target(worker, 4),
        server.log_path(),
        "fd 4 is not the log file"
    );
}

/// Workers go by the worker executable's name: `pgrep -x mpecho-worker`
/// (which matches the command name, as `ps -C` and `top` show it) finds
/// every worker, not a nameless descriptor number left by exec'ing
/// through a descriptor; `pgrep -x mpecho` finds the master alone.
#[test]
fn workers_are_named_mpecho_worker_for_ps_top_and_pgrep() {
    let server = Server::start(&[]);
    let (_a, first) = server.connect_served_worker();
    let (_b, second) = server.connect_served_worker();
    for worker in [first, second] {
        let comm = std::fs::read_to_string(format!("/proc/{worker}/comm"))
            .expect("read the worker's command name");
        assert_eq!(comm, "mpecho-worker\n", "worker {worker}'s command name");
    }
    let pgrep = |name: &str| -> Vec<i32> {
        let output = std::process::Command::new("pgrep")
            .args(["-x", "-P", &server.pid.to_string(), name])
            .output()
            .expect("run pgrep (procps)");
        let mut found: Vec<i32> = text(&output.stdout)
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        found.sort_unstable();
        found
    };
    let mut expected = vec![first, second];
    expected.sort_unstable();
    assert_eq!(
        pgrep("mpecho-worker"),
        expected,
        "pgrep -x -P MASTER mpecho-worker"
    );
    assert_eq!(
        pgrep("mpecho"),
        Vec::<i32>::new(),
        "pgrep -x -P MASTER mpecho"
    );
}

/// A worker is `mpecho-worker`, the one built into mpecho (run from a
/// sealed memory file), started as `mpecho-worker --log-level=…
/// --idle-timeout=… --log-fd=4`, and its fd 3 is the very TCP connection of
/// the client it serves.
#[test]
fn worker_is_the_worker_executable_with_the_client_on_fd_3() {
    let server = Server::start(&[]);
    let (client, worker) = server.connect_served_worker();
    assert_eq!(
        server.worker_pids(),
        vec![worker],
        "the worker is the master's only child"
    );

    let cmdline = std::fs::read(format!("/proc/{worker}/cmdline")).expect("read the cmdline");
    assert_eq!(
        cmdline,
        b"mpecho-worker\0--log-level=info\0--idle-timeout=300\0--log-fd=4\0",
        "worker command line is {:?}",
        String::from_utf8_lossy(&cmdline)
    );

    let exe = std::fs::read_link(format!("/proc/{worker}/exe")).expect("read the worker's exe");
    assert_eq!(
        exe.to_string_lossy(),
        "/memfd:mpecho-worker (deleted)",
        "the worker runs {} instead of the built-in mpecho-worker",
        exe.display()
    );

    let target = fd_target(worker, 3);
    let target = target.to_string_lossy();
    let inode = target
        .strip_prefix("socket:[")
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or_else(|| panic!("fd 3 of the worker is not a socket but {target}"));
    let (local, remote) = tcp_socket_addrs(worker, inode)
        .unwrap_or_else(|| panic!("fd 3 of the worker (socket inode {inode}) is no TCP socket"));
    assert_eq!(
        local, server.addr,
        "fd 3's local end is not the server's address"
    );
    assert_eq!(
        remote,
        client.local_addr().unwrap(),
        "fd 3 is not connected to this client"
    );
}

/// A worker logging to the shared file holds exactly 0, 1, 2, the client on
/// 3 and the log file on 4: not the listener or anything else of the master.
#[test]
fn worker_holds_only_std_streams_client_and_log_file() {
    let server = Server::start(&[]);
    let (_client, worker) = server.connect_served_worker();
    assert_holds_only_std_streams_client_and_log_file(&server, worker);
}

/// With the log on standard error the worker holds exactly 0, 1, 2 and 3.
#[test]
fn worker_logging_to_stderr_holds_exactly_fds_0_to_3() {
    let server = Server::start_with(ServerOptions {
        log_to_file: false,
        ..ServerOptions::default()
    });
    let (_client, worker) = server.connect_served_worker();
    assert_eq!(open_fds(worker), vec![0, 1, 2, 3]);
}

/// Descriptors the master inherited from whoever started it (here 7, 8 and
/// 9, left open by a shell) stay in the master but never reach a worker.
#[test]
fn descriptors_inherited_by_the_master_do_not_reach_workers() {
    let stray_dir = tempfile::tempdir().expect("create a temporary directory");
    let stray_file = stray_dir.path().join("inherited");
    let server = Server::start_with(ServerOptions {
        shell_prefix: Some(format!(
            "exec 7</dev/null 8>>'{}' 9<>/dev/null;",
            stray_file.display()
        )),
        ..ServerOptions::default()
    });

    // The master really was started with them (close-on-exec, not closed).
    assert_eq!(fd_target(server.pid, 7), Path::new("/dev/null"));
    assert_eq!(fd_target(server.pid, 8), stray_file);
    assert_eq!(fd_target(server.pid, 9), Path::new("/dev/null"));

    let (_client, worker) = server.connect_served_worker();
    assert_holds_only_std_streams_client_and_log_file(&server, worker);
}

/// Two clients connected at once are served by two distinct worker
/// processes, each a child of the master.
#[test]
fn each_connection_gets_its_own_worker() {
    let server = Server::start(&[]);
    let (_first, first_worker) = server.connect_served_worker();
    let (_second, second_worker) = server.connect_served_worker();
    assert_ne!(
        first_worker, second_worker,
        "both clients are served by one process"
    );
    let mut expected = vec![first_worker, second_worker];
    expected.sort_unstable();
    assert_eq!(
        server.wait_for_workers(2),
        expected,
        "the workers are not the master's children"
    );
}
