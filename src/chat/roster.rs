//! The relay's list of known clients: bounded, ordered by arrival, each with
//! the time it last sent something.
//!
//! Known clients are never evicted for a newcomer; they leave by sending
//! `END` or by staying silent past the idle timeout. The roster only keeps
//! the list: announcing and sending belong to `server.rs`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub struct Roster {
    clients: Vec<Known>,
    capacity: usize,
}

struct Known {
    addr: SocketAddr,
    last_heard: Instant,
}

impl Roster {
    pub fn new(capacity: usize) -> Roster {
        debug_assert!(capacity >= 1, "a roster must hold at least one client");
        Roster {
            clients: Vec::with_capacity(capacity),
            capacity,
        }
    }

    pub fn len(&self) -> usize {
        self.clients.len()
    }

    pub fn is_full(&self) -> bool {
        self.clients.len() >= self.capacity
    }

    pub fn contains(&self, addr: SocketAddr) -> bool {
        self.position(addr).is_some()
    }

    /// Adds a newcomer; the caller has checked that there is room.
    pub fn add(&mut self, addr: SocketAddr, now: Instant) {
        debug_assert!(
            !self.is_full() && !self.contains(addr),
            "add needs room and a newcomer"
        );
        self.clients.push(Known {
            addr,
            last_heard: now,
        });
    }

    /// Records that `addr` sent something; false if it is not known.
    pub fn touch(&mut self, addr: SocketAddr, now: Instant) -> bool {
        match self.position(addr) {
            Some(i) => {
                self.clients[i].last_heard = now;
                true
            }
            None => false,
        }
    }

    /// Removes `addr`; false if it was not known.
    pub fn remove(&mut self, addr: SocketAddr) -> bool {
        match self.position(addr) {
            Some(i) => {
                self.clients.remove(i);
                true
            }
            None => false,
        }
    }

    /// Every known client except `sender`.
    pub fn others(&self, sender: SocketAddr) -> impl Iterator<Item = SocketAddr> + '_ {
        self.clients
            .iter()
            .map(|c| c.addr)
            .filter(move |&addr| addr != sender)
    }

    /// Removes and returns the clients silent for longer than `idle`.
    pub fn expire(&mut self, now: Instant, idle: Duration) -> Vec<SocketAddr> {
        let mut expired = Vec::new();
        self.clients.retain(|c| {
            let keep = now.duration_since(c.last_heard) <= idle;
            if !keep {
                expired.push(c.addr);
            }
            keep
        });
        expired
    }

    /// When the next client would expire, if any.
    pub fn next_expiry(&self, idle: Duration) -> Option<Instant> {
        self.clients.iter().map(|c| c.last_heard + idle).min()
    }

    fn position(&self, addr: SocketAddr) -> Option<usize> {
        self.clients.iter().position(|c| c.addr == addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn expiry_removes_only_the_silent() {
        let t0 = Instant::now();
        let mut roster = Roster::new(3);
        roster.add(addr(2000), t0);
        roster.add(addr(2001), t0);
        roster.touch(addr(2001), t0 + Duration::from_secs(5));
        let expired = roster.expire(t0 + Duration::from_secs(11), Duration::from_secs(10));
        assert_eq!(expired, vec![addr(2000)]);
        assert_eq!(roster.others(addr(9)).collect::<Vec<_>>(), vec![addr(2001)]);
        assert_eq!(
            roster.next_expiry(Duration::from_secs(10)),
            Some(t0 + Duration::from_secs(15))
        );
    }

    #[test]
    fn full_roster_reports_full_and_frees_on_remove() {
        let t0 = Instant::now();
        let mut roster = Roster::new(1);
        roster.add(addr(2000), t0);
        assert!(roster.is_full());
        assert!(roster.remove(addr(2000)));
        assert!(!roster.is_full());
        assert!(!roster.remove(addr(2000)));
    }
}
