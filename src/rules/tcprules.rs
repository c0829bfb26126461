//! djb's `tcprules` source lines (ucspi-tcp 0.88, with the IPv6 and CIDR
//! forms of its IPv6 descendants), so that a `tcpserver` user's rules come
//! over unchanged:
//!
//! ```text
//! 1.2.3.:allow,VAR="x"     a prefix: 1.2.3.0/24
//! 1.2.3.4-7:deny           a range of the last number: 1.2.3.4/30
//! 10.2-3.:allow            10.2.0.0/16 and 10.3.0.0/16 (10.2.0.0/15)
//! 192.0.2.0/24:deny        CIDR (ucspi-tcp6); 127./8 too
//! ::1:allow                an IPv6 address; 2001:db8::/32:deny
//! :deny                    the default
//! ```
//!
//! Owns the address forms that map onto networks, the `allow`/`deny`
//! instruction and the `,VAR=QvalueQ` assignments, where `Q` is any
//! character repeated to close the value, as in tcprules. It refuses, naming
//! the part, what does not map onto an address: `=host` rules (names would
//! need DNS in the master), `info@address` rules (ident), ranges before the
//! last number, and anything after the instruction that is not an
//! assignment. It never guesses: tcprules' own `tcprules` silently skips or
//! truncates some of these; a rule the master would not follow is an error.

use super::prefix::{self, Prefix};
use super::{LineRule, Settings, Verdict};

/// Parses a line that is not native (`mod.rs` has ruled out `allow …`).
pub(super) fn line(text: &str) -> Result<LineRule, String> {
    let (address, instructions) = split(text)?;
    let (verdict, assignments) = instruction(instructions);
    Ok(LineRule {
        prefixes: prefixes(address)?,
        verdict,
        settings: assignments_of(assignments)?,
    })
}

/// The address and what follows its colon. An IPv6 address holds colons
/// too, but never one followed by `allow` or `deny` (`l`, `o`, `w`, `n`,
/// `y` are not hex digits), so the first such colon is the separator.
fn split(text: &str) -> Result<(&str, &str), String> {
    let found = text.match_indices(':').map(|(at, _)| at).find(|&at| {
        let rest = &text[at + 1..];
        rest.starts_with("allow") || rest.starts_with("deny")
    });
    match found {
        Some(at) => Ok((&text[..at], &text[at + 1..])),
        None if text.starts_with('=') => Err(refused_host(text)),
        None => Err(format!(
            "{text:?} is not a rule: write `allow ADDRESS[/LEN] …`, `deny …`, `default …`, or a \
             tcprules line ADDRESS:allow or ADDRESS:deny"
        )),
    }
}

/// `allow` or `deny`, and the rest (`split` made sure it starts with one).
fn instruction(text: &str) -> (Verdict, &str) {
    match text.strip_prefix("allow") {
        Some(rest) => (Verdict::Allow, rest),
        None => (Verdict::Deny, text.strip_prefix("deny").unwrap_or(text)),
    }
}

/// `,VAR=QvalueQ` repeated, as tcprules reads them: the character after
/// `=` is the quote, and the value runs to its next occurrence.
fn assignments_of(mut text: &str) -> Result<Settings, String> {
    let mut settings = Settings::default();
    while !text.is_empty() {
        let rest = text.strip_prefix(',').ok_or_else(|| {
            format!("{text:?} after the instruction: only ,VAR=\"value\" assignments are supported")
        })?;
        let (name, quoted) = rest
            .split_once('=')
            .ok_or_else(|| format!("{rest:?} is not an assignment VAR=\"value\""))?;
        let quote = quoted
            .chars()
            .next()
            .ok_or_else(|| format!("{name}= has no quoted value (write {name}=\"\")"))?;
        let inner = &quoted[quote.len_utf8()..];
        let end = inner
            .find(quote)
            .ok_or_else(|| format!("the value of {name} is not closed by another {quote}"))?;
        settings.add_env(name, &inner[..end])?;
        text = &inner[end + quote.len_utf8()..];
    }
    Ok(settings)
}

/// The networks an address stands for; `None` for the empty address (the
/// default).
fn prefixes(address: &str) -> Result<Option<Vec<Prefix>>, String> {
    if address.is_empty() {
        return Ok(None);
    }
    if address.starts_with('=') {
        return Err(refused_host(address));
    }
    if address.contains('@') {
        return Err(format!(
            "{address:?}: user@address rules need TCPREMOTEINFO (ident), which mpecho never \
             looks up; not supported"
        ));
    }
    if let Some((network, len)) = address.split_once('/') {
        return cidr(network, len).map(|p| Some(vec![p]));
    }
    if address.contains(':') {
        return Prefix::parse(address).map(|p| Some(vec![p]));
    }
    dotted(address).map(Some)
}

fn refused_host(text: &str) -> String {
    format!(
        "{text:?}: host-name rules (=host) need a DNS lookup per connection in the master; \
         not supported, use addresses"
    )
}

/// `ADDR/LEN`, where ADDR may be a dotted prefix (`127./8`, as ucspi-tcp6
/// reads it: the missing numbers are 0, and they must not be needed).
fn cidr(network: &str, len: &str) -> Result<Prefix, String> {
    if network.contains(':') || (network.split('.').count() == 4 && !network.ends_with('.')) {
        return Prefix::parse(&format!("{network}/{len}"));
    }
    let numbers = dotted_numbers(network)?;
    if numbers.is_empty() || numbers.len() > 3 || !network.ends_with('.') {
        return Err(format!(
            "{network:?} is neither an address nor a prefix ending in a dot"
        ));
    }
    let len = prefix::parse_len(len, 32)?;
    if usize::from(len) > 8 * numbers.len() {
        return Err(format!(
            "{network}/{len}: /{len} needs more numbers than {network} gives"
        ));
    }
    Prefix::parse(&format!("{}/{len}", padded(&numbers)))
}

/// The numbers of a dotted prefix such as `1.2.` (the final dot is
/// required for a prefix and ends no number).
fn dotted_numbers(text: &str) -> Result<Vec<u8>, String> {
    let body = text.strip_suffix('.').unwrap_or(text);
    body.split('.').map(number).collect()
}

/// A decimal number from 0 to 255, as tcpserver writes it (no leading
/// zero, which `TCPREMOTEIP` never has and so would never match).
fn number(text: &str) -> Result<u8, String> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    match text.parse() {
        Ok(n) if canonical => Ok(n),
        _ => Err(format!(
            "{text:?} is not a number from 0 to 255 (without leading zeros)"
        )),
    }
}

/// `a.b.c.` padded to four numbers with zeros, as text.
fn padded(numbers: &[u8]) -> String {
    let mut all = numbers.to_vec();
    all.resize(4, 0);
    all.iter().map(u8::to_string).collect::<Vec<_>>().join(".")
}

/// A dotted address (`1.2.3.4`), prefix (`1.2.`), or either with a range
/// in its last number (`1.2.3.4-7`, `10.2-3.`).
fn dotted(address: &str) -> Result<Vec<Prefix>, String> {
    let is_prefix = address.ends_with('.');
    let body = address.strip_suffix('.').unwrap_or(address);
    let parts: Vec<&str> = body.split('.').collect();
    let count = parts.len();
    if is_prefix && count > 3 || !is_prefix && count != 4 {
        return Err(format!(
            "{address:?} is neither an address (four numbers) nor a prefix of one to three \
             numbers ending in a dot (1.2.3.), so tcpserver would never match it"
        ));
    }
    let (last, leading) = parts.split_last().ok_or("an empty address")?;
    if leading.iter().any(|n| n.contains('-')) {
        return Err(format!("{address:?}: only the last number may be a range"));
    }
    let leading: Vec<u8> = leading
        .iter()
        .map(|n| number(n))
        .collect::<Result<_, _>>()?;
    let (low, high) = range(last, address)?;
    let len = 8 * count as u8;
    Ok(blocks(low, high)
        .into_iter()
        .map(|(start, size_bits)| {
            let mut numbers = leading.clone();
            numbers.push(start);
            let bits = u32::from_be_bytes(four(&numbers));
            Prefix::V4 {
                bits,
                len: len - size_bits,
            }
        })
        .collect())
}

/// `n` or `low-high` (low ≤ high), the last number of a dotted address.
fn range(text: &str, address: &str) -> Result<(u8, u8), String> {
    let Some((low, high)) = text.split_once('-') else {
        let n = number(text)?;
        return Ok((n, n));
    };
    if high.contains('-') {
        return Err(format!("{address:?}: a range is LOW-HIGH, with one dash"));
    }
    let (low, high) = (number(low)?, number(high)?);
    if low > high {
        return Err(format!("{address:?}: the range {low}-{high} is empty"));
    }
    Ok((low, high))
}

/// The fewest aligned blocks covering `low..=high`, each as its first
/// number and its size as a power of two (tcprules lists every number;
/// the blocks match exactly the same addresses).
fn blocks(low: u8, high: u8) -> Vec<(u8, u8)> {
    let (mut start, high) = (u16::from(low), u16::from(high));
    let mut blocks = Vec::new();
    while start <= high {
        let mut size_bits = start.trailing_zeros().min(8);
        while start + (1 << size_bits) - 1 > high {
            size_bits -= 1;
        }
        blocks.push((start as u8, size_bits as u8));
        start += 1 << size_bits;
    }
    blocks
}

/// Up to four numbers as the bytes of an IPv4 address, the rest 0.
fn four(numbers: &[u8]) -> [u8; 4] {
    let mut bytes = [0; 4];
    for (byte, n) in bytes.iter_mut().zip(numbers) {
        *byte = *n;
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(text: &str) -> Vec<String> {
        let rule = line(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        rule.prefixes
            .map(|ps| ps.iter().map(|p| p.to_string()).collect())
            .unwrap_or_default()
    }

    fn err(text: &str) -> String {
        match line(text) {
            Ok(rule) => panic!("{text:?} parsed as {rule:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn djb_address_forms() {
        assert_eq!(nets("18.23.0.32:deny"), ["18.23.0.32/32"]);
        assert_eq!(nets("127.:allow"), ["127.0.0.0/8"]);
        assert_eq!(nets("10.0.:allow"), ["10.0.0.0/16"]);
        assert_eq!(nets("1.2.3.:allow"), ["1.2.3.0/24"]);
        assert_eq!(nets("1.2.3.4-7:deny"), ["1.2.3.4/30"]);
        assert_eq!(
            nets("1.2.3.37-53:deny"),
            [
                "1.2.3.37/32",
                "1.2.3.38/31",
                "1.2.3.40/29",
                "1.2.3.48/30",
                "1.2.3.52/31"
            ]
        );
        assert_eq!(nets("10.2-3.:allow"), ["10.2.0.0/15"]);
        assert_eq!(nets("0-255.:allow"), ["0.0.0.0/0"]);
        assert_eq!(nets(":deny"), Vec::<String>::new());
        assert!(line(":deny").unwrap().prefixes.is_none());
    }

    #[test]
    fn ipv6_and_cidr_forms() {
        assert_eq!(nets("::1:allow"), ["::1/128"]);
        assert_eq!(
            nets("2001:de01:2:3:4:a:b:c:deny"),
            ["2001:de01:2:3:4:a:b:c/128"]
        );
        assert_eq!(nets("2002::/48:deny"), ["2002::/48"]);
        assert_eq!(nets("192.0.2.0/24:deny"), ["192.0.2.0/24"]);
        assert_eq!(nets("127./8:allow"), ["127.0.0.0/8"]);
        assert_eq!(nets("::ffff:1.2.3.4:deny"), ["1.2.3.4/32"]);
    }

    #[test]
    fn assignments_with_any_quote() {
        let rule =
            line(r#"10.0.:allow,RELAYCLIENT="@fix.me",TCPLOCALHOST=/movie.edu/,E="""#).unwrap();
        assert_eq!(rule.verdict, Verdict::Allow);
        assert_eq!(
            rule.settings.env,
            [
                ("RELAYCLIENT".to_string(), "@fix.me".to_string()),
                ("TCPLOCALHOST".to_string(), "movie.edu".to_string()),
                ("E".to_string(), String::new()),
            ]
        );
        let rule = line(r#"1.2.3.4:allow,X="a:deny,b""#).unwrap();
        assert_eq!(rule.settings.env[0].1, "a:deny,b");
        assert_eq!(line("1.2.3.4:deny").unwrap().verdict, Verdict::Deny);
    }

    #[test]
    fn unsupported_parts_are_refused_by_name() {
        assert!(err("=host.example.com:deny").contains("host-name rules"));
        assert!(err("=:allow").contains("host-name rules"));
        assert!(err("joe@127.0.0.1:allow").contains("user@address"));
        assert!(err("1.2.3.4:allow;x").contains("only ,VAR"));
        assert!(err("1.2.3.4:allowed").contains("only ,VAR"));
        assert!(err("1.2.3.4:allow,X=\"open").contains("not closed"));
        assert!(err("1.2.3.4:allow,X").contains("not an assignment"));
        assert!(err("1.2.3.4:allow,X=").contains("no quoted value"));
        assert!(err("1.2.3.4:allow,1X=\"y\"").contains("environment variable name"));
        assert!(err("1.2.3:allow").contains("never match"));
        assert!(err("1.2.3.4.:allow").contains("never match"));
        assert!(err("1.2-3.4.5:allow").contains("only the last number"));
        assert!(err("1.2.3.9-4:deny").contains("empty"));
        assert!(err("1.2.3.300:deny").contains("0 to 255"));
        assert!(err("01.2.3.4:deny").contains("leading zeros"));
        assert!(err("127./16:deny").contains("needs more numbers"));
        assert!(err("1.2.3.4 allow").contains("not a rule"));
        assert!(err("1.2.3.4:permit").contains("not a rule"));
    }
}
