//! Per-source rate limits (`--max-rate-per-ip N/SECS`, and a rule's
//! `max-rate-per-ip=`): at most N new connections per SECS seconds from
//! one address, a burst of N allowed. A connection over the rate is turned
//! away like one over any other limit; other addresses are never affected
//! and the service never stops accepting, unlike systemd's trigger limit
//! or xinetd's `cps`, which disable the whole service.
//!
//! Each address has one bucket, kept as the generic cell rate algorithm
//! keeps it: one instant, the theoretical arrival time (`tat`) of the next
//! connection if they came at exactly the rate. A connection is admitted
//! while `tat - now` stays within the burst (N intervals), and pushes `tat`
//! one interval (SECS / N) further. A bucket whose `tat` has passed is
//! full again, the same as no bucket at all, so it can be forgotten.
//!
//! Memory is bounded: at most [`MAX_BUCKETS`] addresses are tracked. When
//! the table is full, buckets that are full again are swept out first; if
//! every tracked address is still within its window, a new address is let
//! through untracked (counted in `untracked`) rather than turned away, so
//! that a flood from many addresses costs at most the table and never
//! locks out clients it has nothing to do with. This module only decides
//! and keeps the buckets: it closes, counts and logs nothing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::rules::Rate;

/// Addresses tracked at most: about 3 MB of table (an address, an
/// instant and the map's overhead each).
pub const MAX_BUCKETS: usize = 65_536;

/// The buckets of every address seen within its window.
#[derive(Debug, Default)]
pub struct Rates {
    tat: HashMap<IpAddr, Instant>,
    /// Connections let through because the table was full of addresses
    /// still within their windows.
    pub untracked: u64,
    /// The table's bound (`MAX_BUCKETS`; smaller in tests).
    limit: usize,
}

/// The client at `ip` is over its rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverRate {
    pub rate: Rate,
}

impl Rates {
    pub fn new() -> Rates {
        Rates::with_limit(MAX_BUCKETS)
    }

    fn with_limit(limit: usize) -> Rates {
        Rates {
            tat: HashMap::new(),
            untracked: 0,
            limit,
        }
    }

    /// Takes one connection from `ip`'s bucket under `rate` at `now`, or
    /// says it is over the rate (the bucket is then left as it was).
    pub fn take(&mut self, ip: IpAddr, rate: Rate, now: Instant) -> Result<(), OverRate> {
        let ip = ip.to_canonical();
        let interval = interval(rate);
        let burst = interval * rate.connections.get();
        let tat = self.tat.get(&ip).copied().unwrap_or(now).max(now);
        if tat + interval - now > burst {
            return Err(OverRate { rate });
        }
        if !self.tat.contains_key(&ip) && !self.room(now) {
            self.untracked += 1;
            return Ok(());
        }
        self.tat.insert(ip, tat + interval);
        Ok(())
    }

    /// Whether a new address can be tracked, sweeping out the full buckets
    /// when the table is at its bound (at most once per `limit` new
    /// addresses, so the sweep's cost is spread over them).
    fn room(&mut self, now: Instant) -> bool {
        if self.tat.len() < self.limit {
            return true;
        }
        self.tat.retain(|_, tat| *tat > now);
        self.tat.len() < self.limit
    }

    /// Addresses tracked now.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.tat.len()
    }
}

/// The time one connection's token takes to come back: SECS / N.
fn interval(rate: Rate) -> Duration {
    Duration::from_secs(u64::from(rate.secs.get())) / rate.connections.get()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(text: &str) -> Rate {
        text.parse().unwrap()
    }

    #[test]
    fn a_burst_of_n_then_one_per_interval() {
        let mut rates = Rates::new();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        let five_a_second = rate("5/1");
        for _ in 0..5 {
            assert_eq!(rates.take(ip, five_a_second, t0), Ok(()));
        }
        assert!(rates.take(ip, five_a_second, t0).is_err());
        assert_eq!(
            rates.take(other, five_a_second, t0),
            Ok(()),
            "others unaffected"
        );
        let later = t0 + Duration::from_millis(200);
        assert_eq!(rates.take(ip, five_a_second, later), Ok(()));
        assert!(rates.take(ip, five_a_second, later).is_err());
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert!(
            rates.take(mapped, five_a_second, later).is_err(),
            "an IPv4-mapped address is its IPv4 address"
        );
        assert_eq!(
            rates.take(ip, five_a_second, t0 + Duration::from_secs(2)),
            Ok(())
        );
    }

    #[test]
    fn the_table_stays_bounded_and_lets_unknown_addresses_through_when_full() {
        let mut rates = Rates::with_limit(100);
        let t0 = Instant::now();
        let one_a_minute = rate("1/60");
        for i in 0..250u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            assert_eq!(rates.take(ip, one_a_minute, t0), Ok(()));
        }
        assert_eq!(rates.tracked(), 100);
        assert_eq!(rates.untracked, 150);
        let first: IpAddr = "10.0.0.0".parse().unwrap();
        assert!(
            rates.take(first, one_a_minute, t0).is_err(),
            "tracked ones stay limited"
        );
        let later = t0 + Duration::from_secs(61);
        let new: IpAddr = "10.1.0.0".parse().unwrap();
        assert_eq!(rates.take(new, one_a_minute, later), Ok(()));
        assert_eq!(rates.tracked(), 1, "the sweep forgot the full buckets");
    }
}
