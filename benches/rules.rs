//! Access-rules lookups: ns per `Rules::decide` with 0, 1,000 and 100,000
//! rules of random prefixes, the median of several rounds (issue 12 §2:
//! with 100,000 rules, admission must stay as fast as with none).
//!
//! Each rule set is written as a rules file's text and parsed, as the
//! master would load it (the parse time is printed too); half the rules
//! are IPv4 (/8 to /32), half IPv6 (/16 to /128), and the probes are random
//! addresses of both families, a quarter IPv4-mapped. Run with
//! `cargo bench --bench rules`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use mpecho::rules::Rules;
use mpecho_testkit::Random;

const SIZES: [usize; 3] = [0, 1_000, 100_000];
const LOOKUPS: usize = 1_000_000;
const ROUNDS: usize = 7;

fn main() {
    let mut random = Random::new(0x5EED_1234_ABCD_0001);
    let probes: Vec<IpAddr> = (0..LOOKUPS).map(|_| probe(&mut random)).collect();
    for size in SIZES {
        let text = rules_text(size, &mut random);
        let started = Instant::now();
        let rules = match Rules::parse(text.as_bytes(), "bench") {
            Ok(rules) => rules,
            Err(errors) => panic!("the generated rules do not parse: {}", errors[0]),
        };
        let parse_ms = started.elapsed().as_secs_f64() * 1e3;
        let mut rounds: Vec<f64> = (0..ROUNDS).map(|_| round(&rules, &probes)).collect();
        rounds.sort_by(f64::total_cmp);
        println!(
            "{size:>7} rules: {:6.1} ns per lookup (median of {ROUNDS} rounds of {LOOKUPS}; \
             min {:.1}, max {:.1}); parsed in {parse_ms:.1} ms",
            rounds[ROUNDS / 2],
            rounds[0],
            rounds[ROUNDS - 1],
        );
    }
}

/// One round: every probe looked up once; ns per lookup.
fn round(rules: &Rules, probes: &[IpAddr]) -> f64 {
    let started = Instant::now();
    let mut allowed = 0usize;
    for &ip in probes {
        let decision = rules.decide(black_box(ip));
        allowed += usize::from(decision.matched.is_some());
    }
    black_box(allowed);
    started.elapsed().as_nanos() as f64 / probes.len() as f64
}

/// `size` distinct random prefixes as a native rules file.
fn rules_text(size: usize, random: &mut Random) -> String {
    let mut seen = std::collections::HashSet::new();
    let mut text = String::new();
    while seen.len() < size {
        let line = if seen.len().is_multiple_of(2) {
            let len = random.between(8, 32) as u32;
            let bits = (random.next_u64() as u32) & u32::MAX.checked_shl(32 - len).unwrap_or(0);
            format!("{} {}/{len}", verdict(random), Ipv4Addr::from(bits))
        } else {
            let len = random.between(16, 128) as u32;
            let raw = u128::from(random.next_u64()) << 64 | u128::from(random.next_u64());
            // In 2000::/3, so that none falls into the IPv4-mapped range.
            let bits = (raw >> 3 | 1 << 125) & u128::MAX.checked_shl(128 - len).unwrap_or(0);
            format!("{} {}/{len}", verdict(random), Ipv6Addr::from(bits))
        };
        if seen.insert(line.split(' ').nth(1).unwrap_or_default().to_string()) {
            text.push_str(&line);
            text.push('\n');
        }
    }
    text
}

fn verdict(random: &mut Random) -> &'static str {
    if random.next_u64().is_multiple_of(2) {
        "allow"
    } else {
        "deny"
    }
}

/// A random client: IPv4, IPv4-mapped IPv6, or IPv6 in 2000::/3.
fn probe(random: &mut Random) -> IpAddr {
    match random.next_u64() % 4 {
        0 | 1 => IpAddr::from(Ipv4Addr::from(random.next_u64() as u32)),
        2 => IpAddr::from(Ipv4Addr::from(random.next_u64() as u32).to_ipv6_mapped()),
        _ => {
            let raw = u128::from(random.next_u64()) << 64 | u128::from(random.next_u64());
            IpAddr::from(Ipv6Addr::from(raw >> 3 | 1 << 125))
        }
    }
}
