//! The native rule syntax, one line at a time:
//!
//! ```text
//! allow 10.0.0.0/8 max-per-ip=3 max-rate-per-ip=10/1 GREETING="hello there"
//! deny  192.0.2.7
//! default deny
//! ```
//!
//! Owns the words of a line (whitespace-separated; double quotes keep
//! spaces in a value, with `\"` and `\\` inside them; a word starting with
//! `#` starts a comment) and the settings: `max-per-ip=N`,
//! `max-rate-per-ip=N/SECS` (or `0`), and `NAME=value` for the
//! environment. The settings are named after the options they override and
//! hold a `-`, which no environment name can, so the two never collide.
//! It knows nothing of other lines: duplicates and the default's
//! uniqueness are `mod.rs`'s.

use super::{LineRule, Prefix, Settings, Verdict};

/// Parses a line whose first word is `allow`, `deny` or `default`.
pub(super) fn line(text: &str) -> Result<LineRule, String> {
    let words = words(text)?;
    let (verb, rest) = words
        .split_first()
        .ok_or_else(|| "an empty rule".to_string())?;
    let (prefixes, verdict, rest) = match verb.as_str() {
        "default" => {
            let (verdict, rest) = rest.split_first().ok_or_else(|| {
                "`default` needs a verdict: `default allow` or `default deny`".to_string()
            })?;
            (None, verdict_of(verdict)?, rest)
        }
        verb => {
            let (prefix, rest) = rest.split_first().ok_or_else(|| {
                format!("`{verb}` needs an address or prefix, e.g. `{verb} 192.0.2.0/24`")
            })?;
            (Some(vec![Prefix::parse(prefix)?]), verdict_of(verb)?, rest)
        }
    };
    let settings = settings(rest)?;
    if verdict == Verdict::Deny && !settings.is_empty() {
        return Err("a deny rule starts nothing, so it takes no environment or limits".to_string());
    }
    Ok(LineRule {
        prefixes,
        verdict,
        settings,
    })
}

fn verdict_of(word: &str) -> Result<Verdict, String> {
    match word {
        "allow" => Ok(Verdict::Allow),
        "deny" => Ok(Verdict::Deny),
        other => Err(format!("{other:?} is not a verdict: write allow or deny")),
    }
}

/// The settings after the prefix, each `KEY=value`.
fn settings(words: &[String]) -> Result<Settings, String> {
    let mut settings = Settings::default();
    for word in words {
        let (key, raw) = word.split_once('=').ok_or_else(|| {
            format!(
                "{word:?} is not a setting: expected max-per-ip=N, max-rate-per-ip=N/SECS or \
                 NAME=value"
            )
        })?;
        let value = unquote(raw)?;
        match key {
            "max-per-ip" => set_once(&mut settings.max_per_ip, key, parse_count(&value)?)?,
            "max-rate-per-ip" => set_once(&mut settings.rate, key, value.parse()?)?,
            name if name.contains('-') => {
                return Err(format!(
                    "unknown setting {name:?}: the settings are max-per-ip and max-rate-per-ip"
                ));
            }
            name => settings.add_env(name, &value)?,
        }
    }
    Ok(settings)
}

fn set_once<T>(slot: &mut Option<T>, key: &str, value: T) -> Result<(), String> {
    if slot.is_some() {
        return Err(format!("{key} is set twice on this line"));
    }
    *slot = Some(value);
    Ok(())
}

/// A connection count: digits only, 0 meaning no limit.
fn parse_count(text: &str) -> Result<u32, String> {
    let digits_only = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    match text.parse() {
        Ok(n) if digits_only => Ok(n),
        _ => Err(format!(
            "max-per-ip={text:?} is not a whole number (0 for no limit)"
        )),
    }
}

/// Splits a line into raw words (quotes kept, so that `KEY=` is found
/// before any unquoting), stopping at a word that starts with `#`.
fn words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        match chars.peek() {
            None | Some('#') => return Ok(words),
            Some(_) => words.push(word(&mut chars)?),
        }
    }
}

/// One raw word: up to whitespace outside double quotes.
fn word(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<String, String> {
    let mut word = String::new();
    let mut quoted = false;
    while let Some(c) = chars.next_if(|c| quoted || !c.is_whitespace()) {
        word.push(c);
        match c {
            '"' => quoted = !quoted,
            '\\' if quoted => word.extend(chars.next()),
            _ => {}
        }
    }
    if quoted {
        return Err(format!("a double quote is not closed in {word}"));
    }
    Ok(word)
}

/// A value as the shell would read it: double quotes removed, `\"` and
/// `\\` inside them unescaped; outside quotes, a backslash is itself.
fn unquote(raw: &str) -> Result<String, String> {
    let mut value = String::new();
    let mut quoted = false;
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            '\\' if quoted => match chars.next() {
                Some(escaped @ ('"' | '\\')) => value.push(escaped),
                Some(other) => {
                    value.push('\\');
                    value.push(other);
                }
                None => return Err(format!("a value ends in a backslash: {raw}")),
            },
            c => value.push(c),
        }
    }
    Ok(value)
}

/// A value written so that [`line`] reads it back as it is: bare when it
/// can be, double-quoted otherwise.
pub(super) fn quote(value: &str) -> String {
    let bare = !value.is_empty()
        && !value.starts_with('#')
        && !value
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '\\');
    if bare {
        return value.to_string();
    }
    let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
    format!("\"{escaped}\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::RateLimit;

    fn ok(text: &str) -> LineRule {
        line(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    fn err(text: &str) -> String {
        match line(text) {
            Ok(rule) => panic!("{text:?} parsed as {rule:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn a_rule_with_every_setting() {
        let rule = ok(
            r#"allow 10.0.0.0/8 max-per-ip=3 max-rate-per-ip=10/1 GREETING="hello there" # office"#,
        );
        assert_eq!(rule.verdict, Verdict::Allow);
        assert_eq!(
            rule.prefixes,
            Some(vec![Prefix::parse("10.0.0.0/8").unwrap()])
        );
        assert_eq!(rule.settings.max_per_ip, Some(3));
        assert_eq!(rule.settings.rate, Some("10/1".parse().unwrap()));
        assert_eq!(
            rule.settings.env,
            vec![("GREETING".into(), "hello there".into())]
        );
    }

    #[test]
    fn the_default_and_zero_overrides() {
        let rule = ok("default allow max-per-ip=0 max-rate-per-ip=0 lower_case=x#y");
        assert_eq!(rule.prefixes, None);
        assert_eq!(rule.settings.max_per_ip, Some(0));
        assert_eq!(rule.settings.rate, Some(RateLimit::Unlimited));
        assert_eq!(rule.settings.env, vec![("lower_case".into(), "x#y".into())]);
        assert_eq!(ok("default deny").verdict, Verdict::Deny);
    }

    #[test]
    fn quotes_and_escapes() {
        let rule = ok(r#"allow ::1 A="" B="say \"hi\"" C=a"b c"d D="back\\slash""#);
        let env: Vec<_> = rule.settings.env.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(env, ["", "say \"hi\"", "ab cd", "back\\slash"]);
        for value in ["", "x y", "say \"hi\"", "a\\b", "#x", "plain"] {
            let rule = ok(&format!("allow ::1 V={}", quote(value)));
            assert_eq!(rule.settings.env[0].1, value);
        }
    }

    #[test]
    fn mistakes_are_named() {
        assert!(err("allow").contains("needs an address"));
        assert!(err("default").contains("needs a verdict"));
        assert!(err("default maybe").contains("not a verdict"));
        assert!(err("allow 10.0.0.0/8 junk").contains("not a setting"));
        assert!(err("allow 10.0.0.0/8 max-per-ipp=3").contains("unknown setting"));
        assert!(err("allow 10.0.0.0/8 max-per-ip=-1").contains("not a whole number"));
        assert!(err("allow 10.0.0.0/8 max-rate-per-ip=10").contains("N/SECS"));
        assert!(err("allow 10.0.0.0/8 X=1 X=2").contains("set twice"));
        assert!(err("allow 10.0.0.0/8 max-per-ip=1 max-per-ip=2").contains("set twice"));
        assert!(err("allow 10.0.0.0/8 1X=2").contains("not an environment variable name"));
        assert!(err(r#"allow 10.0.0.0/8 X="open"#).contains("not closed"));
        assert!(err("deny 10.0.0.0/8 X=1").contains("deny rule"));
        assert!(err("allow example.org").contains("not an IPv4 or IPv6 address"));
    }
}
