//! The idle timeout for `--exec` programs. The built-in worker keeps its
//! own (its socket's timeouts); a program does not, and the master does
//! not carry the connection's bytes, so it asks the kernel instead: it
//! keeps a copy of each program's socket and, when the timeout could have
//! passed, reads `TCP_INFO`'s time since data was last received and last
//! sent. When neither moved for `--idle-timeout` (a silent client, or one
//! that stopped reading while the program has data for it: idle in the
//! worker's sense too), the master shuts the connection down (the client
//! sees the close, the program the end of its input and a broken pipe)
//! and sends the program SIGTERM; its end is then counted as an idle
//! timeout.
//!
//! One check per connection per timeout period at most, from a heap of
//! deadlines: nothing is polled. This module never reads or writes the
//! connection's data and never blocks; it decides nothing but "idle".

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use crate::log::warning;
use crate::sys::{self, pid_t};

use super::event_loop::Master;

/// The sockets of `--exec` programs and when to look at each next.
pub struct IdleWatch {
    timeout: Duration,
    sockets: HashMap<pid_t, TcpStream>,
    due: BinaryHeap<Reverse<(Instant, pid_t)>>,
    /// Programs whose connection the master closed for idleness.
    idled: HashSet<pid_t>,
}

impl IdleWatch {
    pub fn new(timeout: Duration) -> IdleWatch {
        IdleWatch {
            timeout,
            sockets: HashMap::new(),
            due: BinaryHeap::new(),
            idled: HashSet::new(),
        }
    }

    /// Starts watching program `pid`'s connection (a copy of `client`,
    /// kept at or above `min_fd`, with the pidfds, so that spawns copy none
    /// of them). Without a copy (out of descriptors) the connection simply
    /// goes unwatched.
    pub fn watch(&mut self, pid: pid_t, client: &TcpStream, min_fd: i32, now: Instant) {
        let Ok(copy) = sys::dup_at_least(client.as_fd(), min_fd) else {
            return;
        };
        self.sockets.insert(pid, TcpStream::from(copy));
        self.due.push(Reverse((now + self.timeout, pid)));
    }

    /// Forgets program `pid`, reaped; whether the master had closed its
    /// connection for idleness.
    pub fn forget(&mut self, pid: pid_t) -> bool {
        self.sockets.remove(&pid);
        self.idled.remove(&pid)
    }

    /// When the next connection may have been idle long enough.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.due.peek().map(|Reverse((at, _))| *at)
    }

    /// Looks at every connection whose deadline has come, and returns the
    /// programs whose connection was idle for the whole timeout, after
    /// shutting that connection down. The others are looked at again when
    /// the timeout could next have passed.
    pub fn expired(&mut self, now: Instant) -> Vec<pid_t> {
        let mut idle = Vec::new();
        while let Some(&Reverse((at, pid))) = self.due.peek() {
            if at > now {
                break;
            }
            self.due.pop();
            let Some(socket) = self.sockets.get(&pid) else {
                continue;
            };
            // A socket whose state cannot be read any more is left to the
            // program's own end.
            let Ok(quiet) = sys::tcp_quiet_for(socket.as_fd()) else {
                continue;
            };
            if quiet >= self.timeout {
                let _ = socket.shutdown(Shutdown::Both);
                self.idled.insert(pid);
                idle.push(pid);
            } else {
                self.due.push(Reverse((now + (self.timeout - quiet), pid)));
            }
        }
        idle
    }
}

impl Master {
    /// Closes the connections of `--exec` programs idle for the whole
    /// timeout and asks those programs to finish (SIGTERM); their end is
    /// counted as an idle timeout when they are reaped.
    pub(super) fn close_idle_programs(&mut self, now: Instant) {
        let Some(watch) = &mut self.idle_watch else {
            return;
        };
        for pid in watch.expired(now) {
            let Some(worker) = self.workers.get(pid) else {
                continue;
            };
            if let Err(e) = worker.signal(pid, libc::SIGTERM) {
                warning!("could not send SIGTERM to idle program {pid}: {e}");
            }
        }
    }
}
