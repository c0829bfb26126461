//! The lookup structure: for each address family, the address space cut
//! into disjoint ranges, each answered by one rule's prefix (or by none),
//! searched by bisection.
//!
//! Why ranges and not a trie or per-length hash maps: prefixes are nested
//! or disjoint, so flattening them gives at most 2n+1 ranges whose answer
//! is already the longest prefix. A lookup is then one binary search over
//! a flat sorted array: ⌈log2(2n+1)⌉ comparisons (18 for 100,000 rules,
//! never more than the 33 or 129 steps of a bit trie), no pointer chasing,
//! no hashing, 8 bytes (IPv4) or 20 bytes (IPv6) per range. A bit trie
//! would walk up to 32/128 nodes scattered in memory; per-length hash maps
//! would hash up to 33/129 times on a miss. Building costs a sort, paid once
//! per load, never on admission.
//!
//! Owns only the mapping from an address to (rule index, prefix). It knows
//! nothing of verdicts, settings or lines, and never refuses anything:
//! duplicate prefixes are refused before it is built (`mod.rs`).

use std::net::IpAddr;

use super::{Prefix, Rule};

/// The answer "no prefix contains this address" in [`Ranges::entries`].
const NONE: u32 = u32::MAX;

/// One family's address space as sorted, disjoint ranges.
#[derive(Debug)]
struct Ranges<K> {
    /// Where each range starts; the first is always 0, so every address is
    /// in exactly one range.
    starts: Vec<K>,
    /// For each range, the index in [`Table::entries`] that answers it, or
    /// [`NONE`].
    entries: Vec<u32>,
}

/// Both families' ranges, and what their entries stand for.
#[derive(Debug)]
pub(super) struct Table {
    v4: Ranges<u32>,
    v6: Ranges<u128>,
    /// (index of the rule, the prefix of it that matched).
    entries: Vec<(usize, Prefix)>,
}

/// A network as the first and last address it holds, and its entry.
type Span<K> = (K, K, u32);

impl Table {
    /// The table for `rules`, whose prefixes are all distinct.
    pub(super) fn build(rules: &[Rule]) -> Table {
        let mut entries = Vec::new();
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (index, rule) in rules.iter().enumerate() {
            for prefix in &rule.prefixes {
                // More than u32::MAX - 1 prefixes would not fit in memory
                // long before this could wrap.
                let id = entries.len() as u32;
                entries.push((index, *prefix));
                match *prefix {
                    Prefix::V4 { bits, len } => v4.push(span(Prefix::v4_span(bits, len), id)),
                    Prefix::V6 { bits, len } => v6.push(span(Prefix::v6_span(bits, len), id)),
                }
            }
        }
        Table {
            v4: Ranges::build(v4),
            v6: Ranges::build(v6),
            entries,
        }
    }

    /// The rule index and prefix answering `ip` (IPv4-mapped as IPv4).
    pub(super) fn find(&self, ip: IpAddr) -> Option<(usize, Prefix)> {
        let id = match ip.to_canonical() {
            IpAddr::V4(a) => self.v4.find(u32::from(a)),
            IpAddr::V6(a) => self.v6.find(u128::from(a)),
        }?;
        self.entries.get(id as usize).copied()
    }
}

fn span<K>((first, last): (K, K), id: u32) -> Span<K> {
    (first, last, id)
}

/// What the flattening needs of an address type.
trait Address: Copy + Ord + Default {
    const MAX: Self;
    /// The next address; never called on `MAX`.
    fn next(self) -> Self;
}

impl Address for u32 {
    const MAX: u32 = u32::MAX;
    fn next(self) -> u32 {
        self + 1
    }
}

impl Address for u128 {
    const MAX: u128 = u128::MAX;
    fn next(self) -> u128 {
        self + 1
    }
}

impl<K: Address> Ranges<K> {
    /// Flattens nested-or-disjoint networks: sorted by first address, the
    /// wider first, a stack holds the networks open at the sweep's point;
    /// a range begins wherever the innermost open network changes.
    fn build(mut spans: Vec<Span<K>>) -> Ranges<K> {
        spans.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        let mut ranges = Ranges {
            starts: vec![K::default()],
            entries: vec![NONE],
        };
        let mut open: Vec<(K, u32)> = Vec::new();
        for (first, last, id) in spans {
            ranges.close_before(&mut open, first);
            debug_assert!(
                open.last().is_none_or(|&(end, _)| end >= last),
                "an open network must contain the next one: prefixes nest or are disjoint"
            );
            open.push((last, id));
            ranges.begin(first, id);
        }
        // What stays open after this ends at the last address: nothing
        // follows it.
        ranges.close_before(&mut open, K::MAX);
        ranges
    }

    /// Closes the open networks that end before `at`; after each, the one
    /// around it (or none) answers again.
    fn close_before(&mut self, open: &mut Vec<(K, u32)>, at: K) {
        while let Some(&(end, _)) = open.last() {
            if end >= at {
                return;
            }
            open.pop();
            self.begin(end.next(), open.last().map_or(NONE, |&(_, id)| id));
        }
    }

    /// From `at` on, `id` answers. A later call at the same address
    /// replaces an earlier one (the inner network wins over the closing
    /// outer one); a range answered like the one before it is not stored.
    fn begin(&mut self, at: K, id: u32) {
        let last = self.starts.len() - 1;
        if self.starts[last] == at {
            self.entries[last] = id;
        } else if self.entries[last] != id {
            self.starts.push(at);
            self.entries.push(id);
        }
    }

    /// The entry of the range holding `address`, if a network does.
    fn find(&self, address: K) -> Option<u32> {
        // starts[0] is 0, so at least one range starts at or before it.
        let range = self
            .starts
            .partition_point(|&s| s <= address)
            .saturating_sub(1);
        let id = *self.entries.get(range)?;
        (id != NONE).then_some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::tests::Random;
    use crate::rules::{Settings, Verdict};

    fn rules_of(prefixes: &[Prefix]) -> Vec<Rule> {
        prefixes
            .iter()
            .enumerate()
            .map(|(i, p)| Rule {
                line: i + 1,
                verdict: Verdict::Allow,
                prefixes: vec![*p],
                settings: Settings::default(),
            })
            .collect()
    }

    /// The longest prefix containing `ip`, by looking at every one.
    fn naive(prefixes: &[Prefix], ip: IpAddr) -> Option<(usize, Prefix)> {
        prefixes
            .iter()
            .enumerate()
            .filter(|(_, p)| p.contains(ip))
            .max_by_key(|(_, p)| p.length())
            .map(|(i, p)| (i, *p))
    }

    fn p(text: &str) -> Prefix {
        Prefix::parse(text).unwrap()
    }

    #[test]
    fn nothing_matches_an_empty_table() {
        let table = Table::build(&[]);
        assert_eq!(table.find("10.0.0.1".parse().unwrap()), None);
        assert_eq!(table.find("::1".parse().unwrap()), None);
        assert_eq!(table.v4.starts.len(), 1);
    }

    #[test]
    fn the_longest_prefix_answers_at_every_edge() {
        let prefixes = [
            p("0.0.0.0/0"),
            p("10.0.0.0/8"),
            p("10.1.0.0/16"),
            p("10.1.2.3"),
            p("10.255.255.255"),
            p("255.255.255.255"),
            p("0.0.0.0/32"),
            p("::/0"),
            p("2001:db8::/32"),
            p("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
        ];
        let table = Table::build(&rules_of(&prefixes));
        for ip in [
            "0.0.0.0",
            "0.0.0.1",
            "9.255.255.255",
            "10.0.0.0",
            "10.0.255.255",
            "10.1.0.0",
            "10.1.2.2",
            "10.1.2.3",
            "10.1.2.4",
            "10.1.255.255",
            "10.2.0.0",
            "10.255.255.254",
            "10.255.255.255",
            "11.0.0.0",
            "255.255.255.254",
            "255.255.255.255",
            "::ffff:10.1.2.3",
            "::",
            "2001:db8::",
            "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
            "2001:db9::",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(table.find(ip), naive(&prefixes, ip), "{ip}");
        }
    }

    /// Random prefix sets, biased towards nesting, answer every random and
    /// every edge address as a linear scan would.
    #[test]
    fn random_tables_agree_with_a_linear_scan() {
        let mut random = Random::new(12);
        for round in 0..300 {
            let mut prefixes: Vec<Prefix> = Vec::new();
            let count = random.below(40) as usize;
            for _ in 0..count {
                let prefix = random.prefix(round % 3 == 0);
                if !prefixes.contains(&prefix) {
                    prefixes.push(prefix);
                }
            }
            let table = Table::build(&rules_of(&prefixes));
            let mut probes: Vec<IpAddr> =
                (0..200).map(|_| random.address(round % 3 == 0)).collect();
            for prefix in &prefixes {
                probes.extend(edges(*prefix));
            }
            for ip in probes {
                let found = table.find(ip).map(|(_, p)| p);
                let expected = naive(&prefixes, ip).map(|(_, p)| p);
                assert_eq!(found, expected, "{ip} in {prefixes:?}");
            }
        }
    }

    /// The addresses just around a network's ends.
    fn edges(prefix: Prefix) -> Vec<IpAddr> {
        match prefix {
            Prefix::V4 { bits, len } => {
                let (first, last) = Prefix::v4_span(bits, len);
                [first.wrapping_sub(1), first, last, last.wrapping_add(1)]
                    .map(|a| IpAddr::from(std::net::Ipv4Addr::from(a)))
                    .to_vec()
            }
            Prefix::V6 { bits, len } => {
                let (first, last) = Prefix::v6_span(bits, len);
                [first.wrapping_sub(1), first, last, last.wrapping_add(1)]
                    .map(|a| IpAddr::from(std::net::Ipv6Addr::from(a)))
                    .to_vec()
            }
        }
    }
}
