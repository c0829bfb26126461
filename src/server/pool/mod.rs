//! `--model prefork`: a pool of forked processes, each serving one
//! connection at a time and then the next, in the spirit of Apache's
//! prefork MPM; this file is the master's side, `member.rs` the process's.
//!
//! The master still accepts every connection and takes every admission
//! decision (`admission.rs`), exactly as in `exec`; only the start differs:
//! instead of a new process, an idle pool process gets the client, passed
//! over its own control socket (a `SOCK_SEQPACKET` pair, `SCM_RIGHTS`).
//! Why the master accepts rather than the pool processes: every limit and
//! every later admission rule stays in one place and holds exactly, no
//! process wakes for a connection another gets (one `sendmsg` wakes the
//! one process chosen: no thundering herd), and the pool never needs the
//! listener. The cost is one `sendmsg`/`recvmsg` pair per connection and
//! one byte back, against a fork or an exec.
//!
//! Accounting: a busy process's connection is in the workers table under
//! its pid, as an exec'd worker is, so per-address counts, `--max-workers`,
//! shutdown's SIGTERM and the figures work unchanged. The connection ends
//! when the process reports its session's exit code (a `finished` line),
//! or, if the process dies or leaves instead, when it is reaped (the
//! `exited` or `killed` line of `exec`). Idle processes are not
//! connections; processes on their way out (`leaving`) still count against
//! `--max-workers` until reaped, so the pool never has more.
//!
//! The pool is kept between `--min-spare` and `--max-spare` idle processes
//! (`maintain`, once per loop turn), never above `--max-workers` processes
//! in all. A process is retired by closing the master's end of its socket,
//! after `--max-requests` connections it leaves by itself, and a reload
//! renews them all (their log descriptor is the old file's). A process
//! that crashes or is killed is reaped, logged and replaced.
//!
//! This module never reads or writes client data and never blocks: the
//! master's ends of the control sockets are non-blocking.

mod member;

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::cli::PoolSizes;
use crate::handoff::WorkerExit;
use crate::log::{Level, debug, info, warning};
use crate::sys::{self, ExitKind, Received, pid_t};

use super::accept::BACKOFF;
use super::event_loop::Master;
use super::fork::Forker;
use super::monitor::PoolCounts;
use super::reap::{Ending, ExitCodes, record_end};
use super::throttle::Kind;

/// Surplus idle processes are retired at most once per this long, half of
/// the surplus each time (at least one): under churn, clients arrive
/// before the processes that served the last ones have reported, so the
/// idle count swings widely within a second, and retiring at each swing's
/// top only to fork at its bottom would turn the pool over all the time
/// (measured: 791 forks for 1,599 connections of `churn -c 4` when every
/// surplus was retired at once). Halving lets ten thousand idle processes
/// left by a burst go within some fourteen seconds; Apache retires one a
/// second, for pools of hundreds.
const RETIRE_INTERVAL: Duration = Duration::from_secs(1);

/// Control sockets' tokens in epoll: this bit and the process's pid (at
/// most 2^22 on Linux), above the iterative session's and below the
/// metrics endpoint's.
const CONTROL: u64 = 1 << 41;

/// Whether an epoll token is a pool process's control socket, and whose.
pub fn control_owner(token: u64) -> Option<pid_t> {
    (token & !((1 << 32) - 1) == CONTROL).then_some((token & 0xffff_ffff) as pid_t)
}

/// One pool process, as the master knows it.
struct Member {
    /// The master's end of its socket; `None` once it is leaving.
    control: Option<OwnedFd>,
    /// Serving a client (whose connection is in the workers table).
    busy: bool,
    /// To be retired when its current client leaves (a reload came).
    renew: bool,
    served: u64,
    started: Instant,
}

pub struct Pool {
    forker: Forker,
    sizes: PoolSizes,
    members: HashMap<pid_t, Member>,
    /// Idle processes, the most recently idle last: the next client goes
    /// to the one whose pages are warmest, and the surplus is taken from
    /// the other end.
    idle: Vec<pid_t>,
    /// No new process before this, after a fork failed.
    retry_at: Option<Instant>,
    /// No surplus process retired before this (`RETIRE_INTERVAL`).
    next_retire: Instant,
    /// Members on their way out (no control socket), which still count
    /// against `--max-workers` until reaped.
    leaving: usize,
    /// Shutdown has begun: nothing is forked, idle processes leave.
    draining: bool,
}

impl Pool {
    pub fn new(forker: Forker, sizes: PoolSizes) -> Pool {
        info!(
            "pool: min_spare={} max_spare={} max_requests={}",
            sizes.min_spare, sizes.max_spare, sizes.max_requests
        );
        Pool {
            forker,
            sizes,
            members: HashMap::new(),
            idle: Vec::new(),
            retry_at: None,
            next_retire: Instant::now(),
            leaving: 0,
            draining: false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Whether a process of the pool may have ended unreaped: pool
    /// processes have no pidfd (see `fork_member`), so the SIGCHLD scan
    /// reaps them.
    pub fn reaps_by_scan(&self) -> bool {
        !self.members.is_empty()
    }

    /// How many processes are idle, busy and leaving.
    pub fn counts(&self) -> PoolCounts {
        let idle = self.idle.len();
        PoolCounts {
            idle,
            busy: self.members.len() - idle - self.leaving,
            leaving: self.leaving,
        }
    }

    /// When the loop must wake: to try forking again, or to retire a
    /// surplus idle process.
    pub fn next_deadline(&self) -> Option<Instant> {
        let surplus = self.idle.len() > self.sizes.max_spare as usize && !self.draining;
        match (self.retry_at, surplus.then_some(self.next_retire)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Sends `sig` to every process of the pool (shutdown: SIGTERM makes an
    /// idle one leave at once; SIGCONT wakes a stopped one; SIGKILL at the
    /// end of the grace period).
    pub fn signal_all(&self, sig: libc::c_int) {
        for &pid in self.members.keys() {
            // Ours until reaped, so the pid cannot be someone else's.
            if let Err(e) = sys::send_signal(pid, sig) {
                warning!(
                    "could not send {} to pool process {pid}: {e}",
                    sys::signal_name(sig)
                );
            }
        }
    }
}

impl Master {
    /// Hands an admitted client to an idle pool process, forking one if
    /// none is idle. A failure closes the connection and is counted, as a
    /// failed spawn is.
    pub(super) fn hand_to_pool(&mut self, client: &TcpStream, peer: SocketAddr, now: Instant) {
        // An idle process may have died unseen (not reaped yet): its socket
        // refuses, it is retired, and the next one is tried; a new process
        // is the last try.
        let attempts = self.pool.as_ref().map_or(0, |p| p.idle.len()) + 1;
        let mut last_error = io::Error::from_raw_os_error(libc::EPIPE);
        for _ in 0..attempts {
            let pid = match self.idle_or_new_member(now) {
                Ok(pid) => pid,
                Err(e) => {
                    self.say_refused(client);
                    return self.start_failed(peer, &e, now);
                }
            };
            match self.pass_client(pid, client, peer) {
                Ok(()) => return self.enter_connection(pid, peer, now),
                Err(e) => {
                    debug!("pool process {pid} could not take a client ({e}); retiring it");
                    self.retire(pid);
                    last_error = e;
                }
            }
        }
        self.say_refused(client);
        self.start_failed(peer, &last_error, now);
    }

    /// Sends `client`, the client at `peer`, to pool process `pid`.
    fn pass_client(&mut self, pid: pid_t, client: &TcpStream, peer: SocketAddr) -> io::Result<()> {
        let control = self
            .pool
            .as_ref()
            .and_then(|pool| pool.members.get(&pid))
            .and_then(|member| member.control.as_ref())
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EPIPE))?;
        let (message, len) = member::client_message(peer);
        sys::send_fd_with(control.as_fd(), &message[..len], client.as_fd())
    }

    /// Pool process `pid` serves the client at `peer` from now on.
    fn enter_connection(&mut self, pid: pid_t, peer: SocketAddr, now: Instant) {
        if let Some(member) = self
            .pool
            .as_mut()
            .and_then(|pool| pool.members.get_mut(&pid))
        {
            member.busy = true;
            member.served += 1;
        }
        // No pidfd: pool processes are reaped by the SIGCHLD scan,
        // and signalling by pid is safe while it is unreaped.
        self.enter_worker(pid, peer, None, now);
    }

    /// The pid of an idle process, taken off the idle list, or of a new
    /// one. Fails when the pool is at `--max-workers` (only processes on
    /// their way out can make it so: admission counted them) or the fork
    /// failed.
    fn idle_or_new_member(&mut self, now: Instant) -> io::Result<pid_t> {
        let Some(pool) = self.pool.as_mut() else {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        };
        if let Some(pid) = pool.idle.pop() {
            return Ok(pid);
        }
        self.fork_member(now)
    }

    /// Forks a new pool process; it is not idle yet (the caller decides).
    fn fork_member(&mut self, now: Instant) -> io::Result<pid_t> {
        let max_workers = self.config.admission.max_workers;
        let pidfd_base = self.pidfd_base;
        let Some(pool) = self.pool.as_mut() else {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        };
        if pool.members.len() >= max_workers {
            return Err(io::Error::from_raw_os_error(libc::EAGAIN));
        }
        let (low, theirs) = sys::seqpacket_pair()?;
        // Ours high, with the pidfds, before the fork; theirs stays low: a
        // child that spares the table copies only what lies below it.
        let ours = sys::dup_at_least(low.as_fd(), pidfd_base)?;
        drop(low);
        sys::set_nonblocking(ours.as_fd())?;
        let pid = member::fork_member(&pool.forker, theirs.as_fd(), pool.sizes.max_requests)?;
        drop(theirs);
        // No pidfd: one descriptor per process instead of two, so that ten
        // thousand busy ones fit a limit of 20,000 (measured: the pool
        // stopped at 9,488 with both). A pool process rarely exits, so the
        // SIGCHLD scan (`waitpid(-1)`) that reaps it instead is rare too,
        // and never on a connection's path.
        let control = match self.epoll.add(ours.as_fd(), CONTROL | pid as u64) {
            Ok(()) => Some(ours),
            Err(e) => {
                // Without its reports the master could not use it: it
                // leaves at once (end of file) and is reaped.
                warning!("could not watch pool process {pid}'s socket ({e}); it leaves");
                None
            }
        };
        let Some(pool) = self.pool.as_mut() else {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        };
        let usable = control.is_some();
        if !usable {
            pool.leaving += 1;
            self.workers.reserve(pool.leaving);
        }
        let Some(pool) = self.pool.as_mut() else {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        };
        pool.members.insert(
            pid,
            Member {
                control,
                busy: false,
                renew: false,
                served: 0,
                started: now,
            },
        );
        debug!("pool process {pid} started");
        if usable {
            Ok(pid)
        } else {
            Err(io::Error::from_raw_os_error(libc::EPIPE))
        }
    }

    /// Keeps the pool between `--min-spare` and `--max-spare` idle
    /// processes; called once per loop turn.
    pub(super) fn maintain_pool(&mut self, now: Instant) {
        let max_workers = self.config.admission.max_workers;
        let Some(pool) = self.pool.as_mut() else {
            return;
        };
        if pool.draining {
            return;
        }
        if pool.retry_at.is_some_and(|at| now < at) {
            return;
        }
        pool.retry_at = None;
        let (min_spare, max_spare) = (pool.sizes.min_spare as usize, pool.sizes.max_spare as usize);
        while let Some(pool) = self.pool.as_ref()
            && pool.idle.len() < min_spare
            && pool.members.len() < max_workers
        {
            match self.fork_member(now) {
                Ok(pid) => {
                    if let Some(pool) = self.pool.as_mut() {
                        pool.idle.insert(0, pid);
                    }
                }
                Err(e) => {
                    self.counters.spawn_failures += 1;
                    self.throttle.log(
                        Kind::SpawnFailure,
                        Level::Error,
                        now,
                        format_args!(
                            "could not start a pool process: {e}; retrying in {}ms",
                            BACKOFF.as_millis()
                        ),
                    );
                    if let Some(pool) = self.pool.as_mut() {
                        pool.retry_at = Some(now + BACKOFF);
                    }
                    return;
                }
            }
        }
        if let Some(pool) = self.pool.as_mut()
            && pool.idle.len() > max_spare
            && now >= pool.next_retire
        {
            pool.next_retire = now + RETIRE_INTERVAL;
            let surplus = pool.idle.len() - max_spare;
            let oldest: Vec<pid_t> = pool.idle.drain(..surplus.div_ceil(2)).collect();
            for pid in oldest {
                self.close_control(pid);
            }
        }
    }

    /// Takes `pid` off the idle list, if it is there, and retires it.
    fn retire(&mut self, pid: pid_t) {
        if let Some(pool) = self.pool.as_mut() {
            pool.idle.retain(|&p| p != pid);
        }
        self.close_control(pid);
    }

    /// Closes the master's end of `pid`'s socket: the process sees the end
    /// of file when idle (or after its client), and exits. It still holds
    /// a slot of `--max-workers` until reaped. The caller has taken it off
    /// the idle list.
    fn close_control(&mut self, pid: pid_t) {
        let Some(pool) = self.pool.as_mut() else {
            return;
        };
        if let Some(control) = pool.members.get_mut(&pid).and_then(|m| m.control.take()) {
            // Explicitly: a child forked a moment ago may still hold a copy,
            // which would keep the registration alive past our close.
            let _ = self.epoll.delete(control.as_fd());
            pool.leaving += 1;
            self.workers.reserve(pool.leaving);
        }
    }

    /// Reads what pool process `pid` reported: a byte is the end of its
    /// session (its exit code); the end of file means it is gone or going.
    /// One read: a process reports once per client, then waits for the next.
    pub(super) fn on_pool_report(&mut self, pid: pid_t) {
        let Some(pool) = self.pool.as_mut() else {
            return;
        };
        let Some(control) = pool.members.get(&pid).and_then(|m| m.control.as_ref()) else {
            return;
        };
        match sys::recv_fd(control.as_fd()) {
            Ok(Received::Message(code, None)) => self.session_finished(pid, code),
            Ok(Received::Message(_, Some(_))) => {
                warning!("pool process {pid} sent a descriptor; retiring it");
                self.retire(pid);
            }
            // It exited, or is exiting: the reap says how.
            Ok(Received::Closed) => self.retire(pid),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => {
                warning!("could not read pool process {pid}'s report ({e}); retiring it");
                self.retire(pid);
            }
        }
    }

    /// Pool process `pid`'s client left, its session ending with `code`.
    fn session_finished(&mut self, pid: pid_t, code: u8) {
        let Some(pool) = self.pool.as_mut() else {
            return;
        };
        let Some(member) = pool.members.get_mut(&pid) else {
            return;
        };
        if !member.busy {
            warning!("pool process {pid} reported a session it was not given; retiring it");
            return self.retire(pid);
        }
        member.busy = false;
        let renew = member.renew || pool.draining;
        record_end(
            pid,
            ExitKind::Code(i32::from(code)),
            Ending::Finished,
            ExitCodes::Worker,
            &mut self.workers,
            &mut self.counters,
        );
        if renew {
            self.retire(pid);
        } else if let Some(pool) = self.pool.as_mut() {
            pool.idle.push(pid);
        }
    }

    /// Forgets pool process `pid`, reaped: if it was serving, its
    /// connection ends as an exec'd worker's does; the pool is topped up
    /// at the end of the loop turn.
    pub(super) fn member_exited(&mut self, pid: pid_t, how: ExitKind) {
        let Some(pool) = self.pool.as_mut() else {
            return;
        };
        pool.idle.retain(|&p| p != pid);
        let Some(member) = pool.members.remove(&pid) else {
            debug_assert!(false, "a reaped pid ({pid}) must be in the pool");
            return;
        };
        match &member.control {
            Some(control) => {
                let _ = self.epoll.delete(control.as_fd());
            }
            None => {
                pool.leaving -= 1;
                self.workers.reserve(pool.leaving);
            }
        }
        if member.busy {
            return record_end(
                pid,
                how,
                Ending::Exited,
                ExitCodes::Worker,
                &mut self.workers,
                &mut self.counters,
            );
        }
        let lived = member.started.elapsed().as_secs_f64();
        let served = member.served;
        match how {
            ExitKind::Code(code) if code == WorkerExit::Done.code() => {
                debug!("pool process {pid} exited status={code} served={served} lived={lived:.3}s");
            }
            ExitKind::Code(code) => warning!(
                "pool process {pid} exited status={code} while idle served={served} lived={lived:.3}s"
            ),
            ExitKind::Signal(sig) => warning!(
                "pool process {pid} killed by {} while idle served={served} lived={lived:.3}s",
                sys::signal_name(sig)
            ),
        }
    }

    /// Shutdown: nothing more is forked, idle processes leave at once, and
    /// busy ones after their client (whom `begin_shutdown` asked to go).
    pub(super) fn drain_pool(&mut self) {
        let Some(pool) = self.pool.as_mut() else {
            return;
        };
        pool.draining = true;
        let idle = std::mem::take(&mut pool.idle);
        for pid in idle {
            self.close_control(pid);
        }
        if let Some(pool) = self.pool.as_ref() {
            // SIGCONT: a stopped process would never see its end of file.
            pool.signal_all(libc::SIGCONT);
        }
    }

    /// A reload: every process is replaced, the idle ones now and the busy
    /// ones when their client leaves, so that the new ones log to the
    /// reopened file.
    pub(super) fn renew_pool(&mut self) {
        let Some(pool) = self.pool.as_mut() else {
            return;
        };
        let idle = std::mem::take(&mut pool.idle);
        for member in pool.members.values_mut() {
            member.renew = true;
        }
        let renewed = idle.len();
        for pid in idle {
            self.close_control(pid);
        }
        info!(
            "reload: {renewed} idle pool processes replaced, busy ones will be when their client leaves"
        );
    }
}
