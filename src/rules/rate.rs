//! Connection rates, `N/SECS`: the syntax a rule's `max-rate-per-ip=`
//! shares with the global `--max-rate-per-ip` (issue 12, section 4).
//!
//! Owns parsing and showing a rate, and its token-bucket meaning: a bucket
//! of `connections` tokens, refilled at `connections` per `secs` seconds,
//! one token per new connection. It keeps no buckets and no clock: the
//! master's admission does.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;

/// At most `connections` new connections per `secs` seconds from one
/// address (a burst of `connections` at once is allowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub connections: NonZeroU32,
    pub secs: NonZeroU32,
}

/// What a rule says about the rate: a limit of its own, or none at all
/// (`max-rate-per-ip=0`, which lifts a global `--max-rate-per-ip` for the
/// addresses it covers, as `--max-per-ip 0` means no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimit {
    Unlimited,
    Limited(Rate),
}

impl FromStr for Rate {
    type Err = String;

    /// `N/SECS`, both whole numbers of at least 1; `SECS` may end in `s`
    /// (`10/1s`).
    fn from_str(text: &str) -> Result<Rate, String> {
        let bad = || {
            format!(
                "rate {text:?} is not N/SECS (N connections per SECS seconds, both at least 1, \
                 e.g. 10/1 or 30/60s)"
            )
        };
        let (count, secs) = text.split_once('/').ok_or_else(bad)?;
        let secs = secs.strip_suffix('s').unwrap_or(secs);
        Ok(Rate {
            connections: positive(count).ok_or_else(bad)?,
            secs: positive(secs).ok_or_else(bad)?,
        })
    }
}

impl FromStr for RateLimit {
    type Err = String;

    /// `0` for no limit, or a [`Rate`].
    fn from_str(text: &str) -> Result<RateLimit, String> {
        if text == "0" {
            return Ok(RateLimit::Unlimited);
        }
        text.parse().map(RateLimit::Limited)
    }
}

/// A whole number of at least 1, digits only (`+1` and ` 1` are typos).
fn positive(text: &str) -> Option<NonZeroU32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.connections, self.secs)
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RateLimit::Unlimited => f.write_str("0"),
            RateLimit::Limited(rate) => rate.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_and_print_back() {
        assert_eq!("10/1".parse::<Rate>().unwrap().to_string(), "10/1");
        assert_eq!("30/60s".parse::<Rate>().unwrap().to_string(), "30/60");
        assert_eq!("0".parse::<RateLimit>().unwrap(), RateLimit::Unlimited);
        assert_eq!("5/2".parse::<RateLimit>().unwrap().to_string(), "5/2");
    }

    #[test]
    fn bad_rates_are_refused() {
        for bad in [
            "",
            "10",
            "0/1",
            "1/0",
            "/1",
            "1/",
            "+1/1",
            "1/1ss",
            "a/b",
            "1/-1",
            "99999999999/1",
        ] {
            assert!(bad.parse::<Rate>().is_err(), "{bad:?} parsed");
        }
    }
}
