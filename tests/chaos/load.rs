//! What client threads are told to do: a `Plan` per connection (rounds,
//! chunk size, source address, whether to idle or keep echoing until a
//! `Gate` opens), and the `Load` they share (its counters, its deadline).
//!
//! Every wait here is bounded by the load's deadline or `TIMEOUT`: a
//! server that stops answering fails a scenario, never hangs it.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use mpecho_testkit::{TIMEOUT, wait_for};

/// Client threads stop starting new connections or rounds after this long,
/// so that a server that stops answering fails a scenario instead of
/// hanging it. Every scenario normally finishes in a few seconds.
pub(crate) const LOAD_DEADLINE: Duration = Duration::from_secs(30);

/// One connection a client thread makes.
#[derive(Clone)]
pub(crate) struct Plan {
    pub(crate) id: u64,
    /// The address to connect from (127.0.0.2, …): another client address.
    pub(crate) source: Option<IpAddr>,
    /// Rounds of `chunk` bytes sent and read back, at most.
    pub(crate) rounds: u64,
    pub(crate) chunk: usize,
    pub(crate) hold: Hold,
}

/// What a connection does after its first round.
#[derive(Clone)]
pub(crate) enum Hold {
    /// Goes on with its rounds.
    None,
    /// Waits, sending nothing, until the gate opens, then does the rest.
    Idle(Arc<Gate>),
    /// Echoes round after round until the gate opens, then ends.
    Busy(Arc<Gate>),
}

impl Plan {
    pub(crate) fn echo(id: u64, source: Option<IpAddr>, rounds: u64, chunk: usize) -> Plan {
        Plan {
            id,
            source,
            rounds,
            chunk,
            hold: Hold::None,
        }
    }

    pub(crate) fn idle_until(mut self, gate: &Arc<Gate>) -> Plan {
        self.hold = Hold::Idle(Arc::clone(gate));
        self
    }

    pub(crate) fn busy_until(mut self, gate: &Arc<Gate>) -> Plan {
        self.hold = Hold::Busy(Arc::clone(gate));
        self
    }
}

/// A one-way switch threads can wait on.
#[derive(Default)]
pub(crate) struct Gate {
    pub(crate) open: Mutex<bool>,
    pub(crate) changed: Condvar,
}

impl Gate {
    pub(crate) fn new() -> Arc<Gate> {
        Arc::new(Gate::default())
    }

    pub(crate) fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.changed.notify_all();
    }

    pub(crate) fn is_open(&self) -> bool {
        *self.open.lock().unwrap()
    }

    /// Waits until the gate opens or `deadline` passes.
    pub(crate) fn wait(&self, deadline: Instant) {
        let mut open = self.open.lock().unwrap();
        while !*open {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            open = self.changed.wait_timeout(open, left).unwrap().0;
        }
    }
}

/// A group of client threads and what they have done so far.
pub(crate) struct Load {
    pub(crate) addr: SocketAddr,
    pub(crate) deadline: Instant,
    /// Opened to make the threads start no further connections.
    pub(crate) stop: Arc<Gate>,
    /// Rounds echoed completely.
    pub(crate) rounds: AtomicU64,
    /// Connections that got their first round back.
    pub(crate) served: AtomicU64,
    /// Connections that ended before any echo.
    pub(crate) turned_away: AtomicU64,
}

impl Load {
    pub(crate) fn new(addr: SocketAddr) -> Arc<Load> {
        Arc::new(Load {
            addr,
            deadline: Instant::now() + LOAD_DEADLINE,
            stop: Gate::new(),
            rounds: AtomicU64::new(0),
            served: AtomicU64::new(0),
            turned_away: AtomicU64::new(0),
        })
    }

    pub(crate) fn past_deadline(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Waits until `n` connections of this load have been served.
    pub(crate) fn wait_served(&self, n: u64) {
        wait_for(&format!("{n} clients served"), TIMEOUT, || {
            (self.served.load(Ordering::SeqCst) >= n).then_some(())
        });
    }
}
