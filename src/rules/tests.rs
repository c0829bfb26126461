//! Whole files: the two syntaxes together, the default, duplicates, errors
//! naming their lines, and the promise that no input makes the parser
//! panic or return part of a file (random bytes and random lines).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;

/// The testkit's seeded generator, with the shapes these tests draw: a
/// failure replays with the same seed.
pub(crate) struct Random(mpecho_testkit::Random);

impl Random {
    pub(crate) fn new(seed: u64) -> Random {
        Random(mpecho_testkit::Random::new(seed))
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0.below(n)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// A random prefix, often inside a few shared networks so that random
    /// sets nest.
    pub(crate) fn prefix(&mut self, v6: bool) -> Prefix {
        let len = self.below(if v6 { 129 } else { 33 }) as u8;
        let ip = self.address(v6);
        let masked = match ip {
            IpAddr::V4(a) => IpAddr::from(Ipv4Addr::from(
                u32::from(a) & u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0),
            )),
            IpAddr::V6(a) => IpAddr::from(Ipv6Addr::from(
                u128::from(a) & u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0),
            )),
        };
        Prefix::new(masked, len).unwrap_or_else(|e| panic!("{masked}/{len}: {e}"))
    }

    /// A random address, often inside a few shared networks.
    pub(crate) fn address(&mut self, v6: bool) -> IpAddr {
        let noise = self.next();
        if v6 {
            let bases = [0u128, 0x2001_0db8 << 96, (0x2001_0db8 << 96) | (1 << 64)];
            let base = *self.pick(&bases);
            let noise = (u128::from(noise) << 64 | u128::from(self.next())) >> self.below(128);
            return IpAddr::from(Ipv6Addr::from(base ^ noise));
        }
        let bases = [0u32, 0x0A00_0000, 0x0A01_0000, 0xC000_0200];
        let base = *self.pick(&bases);
        IpAddr::from(Ipv4Addr::from(base ^ (noise as u32 >> self.below(32))))
    }
}

fn parse(text: &str) -> Result<Rules, Vec<RuleError>> {
    Rules::parse(text.as_bytes(), "rules.txt")
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn problems(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(_) => panic!("{text:?} parsed"),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

const MIXED: &str = r#"# office and friends
allow 10.0.0.0/8 max-per-ip=3 GREETING="hello there"
deny 10.9.0.0/16

  # tcpserver's rules, brought over unchanged
10.9.8.:allow,RELAYCLIENT=""
192.0.2.4-7:deny
::1:allow,WHO="loopback"
deny 2001:db8::/32
allow 2001:db8::1 max-rate-per-ip=5/60
default deny
"#;

#[test]
fn both_syntaxes_in_one_file() {
    let rules = parse(MIXED).unwrap();
    assert_eq!(rules.rules().len(), 7);
    assert_eq!(
        rules.default_rule().map(|r| (r.line, r.verdict)),
        Some((11, Verdict::Deny))
    );

    let office = rules.decide(ip("10.1.2.3"));
    assert_eq!(office.verdict, Verdict::Allow);
    assert_eq!(office.max_per_ip, Some(3));
    assert_eq!(
        office.env,
        [("GREETING".to_string(), "hello there".to_string())]
    );
    assert_eq!(
        office.matched,
        Some((2, Prefix::parse("10.0.0.0/8").unwrap()))
    );

    assert_eq!(rules.decide(ip("10.9.1.1")).verdict, Verdict::Deny);
    let relay = rules.decide(ip("::ffff:10.9.8.7"));
    assert_eq!(
        (relay.verdict, relay.matched.map(|m| m.0)),
        (Verdict::Allow, Some(6))
    );
    assert_eq!(rules.decide(ip("192.0.2.5")).matched.map(|m| m.0), Some(7));
    assert_eq!(rules.decide(ip("192.0.2.8")).verdict, Verdict::Deny);
    assert_eq!(rules.decide(ip("192.0.2.8")).matched, None);
    assert_eq!(rules.decide(ip("::1")).env[0].1, "loopback");
    assert_eq!(rules.decide(ip("2001:db8::2")).verdict, Verdict::Deny);
    let one = rules.decide(ip("2001:db8::1"));
    assert_eq!(one.rate, Some(RateLimit::Limited("5/60".parse().unwrap())));
}

#[test]
fn without_a_default_everything_else_is_allowed() {
    let rules = parse("deny 192.0.2.0/24\n").unwrap();
    let other = rules.decide(ip("198.51.100.1"));
    assert_eq!(
        (other.verdict, other.matched, other.env.len()),
        (Verdict::Allow, None, 0)
    );
    let empty = Rules::default();
    assert_eq!(empty.decide(ip("::2")).verdict, Verdict::Allow);
    assert_eq!(parse("").unwrap().rules().len(), 0);
    assert_eq!(parse("# nothing\n\n   \n").unwrap().prefix_count(), 0);
}

#[test]
fn the_tcprules_default_and_settings_on_the_default() {
    let rules = parse(":deny\n").unwrap();
    assert_eq!(rules.decide(ip("1.1.1.1")).verdict, Verdict::Deny);
    let rules = parse("default allow max-per-ip=2 X=1\n").unwrap();
    let any = rules.decide(ip("1.1.1.1"));
    assert_eq!((any.max_per_ip, any.env.len()), (Some(2), 1));
}

#[test]
fn every_problem_is_reported_with_its_line() {
    let text = "allow 10.0.0.0/8\nallow 10.0.0.0/8\nbogus\ndefault deny\n:allow\ndeny 10.1.2.3/8\n";
    assert_eq!(
        problems(text),
        [
            "rules.txt:2: 10.0.0.0/8 already has a rule on line 1; keep one",
            "rules.txt:3: \"bogus\" is not a rule: write `allow ADDRESS[/LEN] …`, `deny …`, \
             `default …`, or a tcprules line ADDRESS:allow or ADDRESS:deny",
            "rules.txt:5: a second default rule (the first is on line 4); keep one",
            "rules.txt:6: 10.1.2.3/8 has bits set past the prefix length: the network is 10.0.0.0/8",
        ]
    );
}

#[test]
fn the_same_network_in_both_syntaxes_is_a_duplicate() {
    let found = problems("127.:allow\ndeny 127.0.0.0/8\ndeny ::ffff:127.0.0.0/104\n");
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].starts_with("rules.txt:2: 127.0.0.0/8 already has a rule on line 1"));
}

#[test]
fn lines_that_are_not_text_are_refused() {
    let errors = Rules::parse(b"allow ::1\n\xff\xfe:allow\n", "f").unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].to_string(), "f:2: the line is not UTF-8 text");
}

#[test]
fn crlf_files_read_like_lf_files() {
    let rules = parse("deny 192.0.2.1\r\n1.2.3.:allow,X=\"y\"\r\n").unwrap();
    assert_eq!(rules.decide(ip("1.2.3.4")).env[0].1, "y");
}

#[test]
fn a_load_error_names_the_file_and_stays_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let error = Rules::load(&missing).unwrap_err().to_string();
    assert!(error.starts_with(&format!(
        "could not read the rules file {}",
        missing.display()
    )));
    let bad = dir.path().join("bad");
    std::fs::write(&bad, "x\ny\nz\nw\n").unwrap();
    let error = Rules::load(&bad).unwrap_err().to_string();
    assert!(!error.contains('\n'));
    assert!(error.ends_with("; and 1 more"), "{error}");
}

/// Bytes that make parsers stumble, weighted towards the syntax's own.
const ALPHABET: &[u8] = b"allowdenydefault0123456789abcdef.:/-,=\"'#\\ \t\r\n\0\xff\xc3\xa9xX_@;";

/// Random bytes: never a panic; a file that parses answers every lookup.
#[test]
fn random_bytes_never_panic() {
    let mut random = Random::new(7);
    for _ in 0..20_000 {
        let len = random.below(120) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| *random.pick(ALPHABET)).collect();
        if let Ok(rules) = Rules::parse(&bytes, "fuzz") {
            for _ in 0..4 {
                let v6 = random.below(2) == 0;
                let _ = rules.decide(random.address(v6));
            }
        }
    }
}

/// Pieces of real lines, glued at random.
const PIECES: &[&str] = &[
    "allow",
    "deny",
    "default",
    " ",
    " ",
    "\t",
    "10.0.0.0/8",
    "10.",
    "1.2.3.",
    "1.2.3.4",
    "4-7",
    "255",
    "256",
    "0",
    "/",
    "/8",
    "/33",
    "::",
    "::1",
    "2001:db8::",
    "::ffff:",
    ":",
    ":allow",
    ":deny",
    ",",
    "X=",
    "\"v\"",
    "\"",
    "/v/",
    "max-per-ip=",
    "max-rate-per-ip=",
    "10/1",
    "0",
    "#",
    "=host",
    "@",
    "-",
    ".",
    "\\",
    "\n",
    "\n",
    "9",
    "ÿ",
    "FOO=bar",
];

/// Random lines from real pieces: never a panic, and a file that parses
/// answers each of its own networks with that network's rule or a longer
/// one, as a linear scan would.
#[test]
fn random_lines_never_panic_and_parse_all_or_nothing() {
    let mut random = Random::new(11);
    let mut parsed = 0;
    for _ in 0..20_000 {
        let count = 1 + random.below(12);
        let text: String = (0..count).map(|_| *random.pick(PIECES)).collect();
        match parse(&text) {
            Ok(rules) => {
                parsed += 1;
                agrees_with_a_linear_scan(&rules, &mut random);
            }
            Err(errors) => {
                assert!(!errors.is_empty());
                let lines = text.split('\n').count();
                assert!(
                    errors.iter().all(|e| e.line >= 1 && e.line <= lines),
                    "{errors:?}"
                );
            }
        }
    }
    assert!(
        parsed > 100,
        "the generator should make some valid files, made {parsed}"
    );
}

fn agrees_with_a_linear_scan(rules: &Rules, random: &mut Random) {
    let all: Vec<(usize, Prefix)> = rules
        .rules()
        .iter()
        .flat_map(|r| r.prefixes.iter().map(move |p| (r.line, *p)))
        .collect();
    for _ in 0..8 {
        let v6 = random.below(2) == 0;
        let ip = random.address(v6);
        let expected = all
            .iter()
            .filter(|(_, p)| p.contains(ip))
            .max_by_key(|(_, p)| p.length());
        assert_eq!(rules.decide(ip).matched, expected.copied(), "{ip}");
    }
}

/// A valid file of many random rules, then one bad line anywhere: the
/// answer is that one error, never the rules before it.
#[test]
fn one_bad_line_rejects_the_whole_file() {
    let mut random = Random::new(3);
    let mut lines: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    while lines.len() < 500 {
        let v6 = random.below(2) == 0;
        let prefix = random.prefix(v6);
        if seen.insert(prefix) {
            lines.push(format!("allow {prefix} max-per-ip={}", random.below(5)));
        }
    }
    let good = lines.join("\n");
    assert_eq!(parse(&good).unwrap().rules().len(), 500);
    let at = random.below(500) as usize;
    lines.insert(at, "allow 10.0.0.0/8 max-per-ip=many".to_string());
    let errors = parse(&lines.join("\n")).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].line, at + 1);
}
