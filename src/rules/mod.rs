//! Access rules (`--rules FILE`, issue 12 §2): which client addresses are
//! served, with what environment, under which per-address limits.
//!
//! Owns the rules file as a whole: reading it, telling the native lines
//! (`allow`/`deny`/`default`, `parse.rs`) from djb's `tcprules` lines
//! (`tcprules.rs`), putting the lines together (one default at most, no
//! prefix ruled twice), and answering for a client address with the
//! longest matching prefix (`table.rs`). `check.rs` is `mpecho rules check`.
//!
//! A file is taken whole or not at all: [`Rules::parse`] returns every
//! problem, each naming the file and the line, and never a partial rule
//! set, so the master can keep the rules in force when a reload fails. It
//! must never panic on any input. This module decides nothing about a
//! connection's fate beyond the answer of [`Rules::decide`]: it closes,
//! counts and logs nothing, and it keeps no per-address state (counts and
//! rate buckets are the master's).

pub mod check;
mod parse;
mod prefix;
mod rate;
mod table;
mod tcprules;

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;

pub use prefix::Prefix;
pub use rate::{Rate, RateLimit};

use table::Table;

/// Whether a connection is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
        }
    }
}

/// What a rule adds to the connections it allows: environment variables
/// for the program, and limits that replace the global ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// `NAME=value` pairs, in the order of the line; names are unique.
    pub env: Vec<(String, String)>,
    /// Replaces `--max-per-ip` for these addresses; `Some(0)` is no limit.
    pub max_per_ip: Option<u32>,
    /// Replaces `--max-rate-per-ip` for these addresses.
    pub rate: Option<RateLimit>,
}

impl Settings {
    fn is_empty(&self) -> bool {
        *self == Settings::default()
    }

    /// Adds `NAME=value`, refusing a name that is not a portable
    /// environment variable name, a second value for one name, and a value
    /// that no environment can carry.
    fn add_env(&mut self, name: &str, value: &str) -> Result<(), String> {
        if !is_env_name(name) {
            return Err(format!(
                "{name:?} is not an environment variable name (a letter or _, then letters, \
                 digits or _)"
            ));
        }
        if value.contains('\0') {
            return Err(format!(
                "the value of {name} holds a NUL byte, which no environment can"
            ));
        }
        if self.env.iter().any(|(known, _)| known == name) {
            return Err(format!("{name} is set twice on this line"));
        }
        self.env.push((name.to_string(), value.to_string()));
        Ok(())
    }
}

/// POSIX's portable names: what every shell and program can read back.
fn is_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// One rule of the file: a line that was not blank or a comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Its line in the file, from 1.
    pub line: usize,
    pub verdict: Verdict,
    /// The networks it covers: one for a native rule, several for a
    /// `tcprules` range (`1.2.3.37-53` is 37/32, 38/31, 40/29, 48/30, 52/31).
    pub prefixes: Vec<Prefix>,
    pub settings: Settings,
}

/// What one line says, before the lines are put together.
#[derive(Debug)]
struct LineRule {
    /// No prefixes: the default (`default …`, or tcprules' `:…`).
    prefixes: Option<Vec<Prefix>>,
    verdict: Verdict,
    settings: Settings,
}

/// The answer for one client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision<'a> {
    pub verdict: Verdict,
    /// Environment for the program the connection runs, in file order.
    pub env: &'a [(String, String)],
    /// Replaces `--max-per-ip` for this address; `Some(0)` is no limit.
    pub max_per_ip: Option<u32>,
    /// Replaces `--max-rate-per-ip` for this address.
    pub rate: Option<RateLimit>,
    /// The rule's line and the prefix that matched, for the log; `None`
    /// when the default answered.
    pub matched: Option<(usize, Prefix)>,
}

/// A rules file that parsed, ready for lookups. Immutable: a reload builds
/// a new one and swaps it in whole.
#[derive(Debug)]
pub struct Rules {
    /// Every rule but the default, in file order.
    rules: Vec<Rule>,
    /// The file's default rule, if it has one (else: allow, no settings).
    default: Option<Rule>,
    table: Table,
}

/// A problem on one line of a rules file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub file: String,
    pub line: usize,
    pub problem: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.problem)
    }
}

/// Why a rules file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("could not read the rules file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// Every problem found, in line order (at least one).
    #[error("{}", summary(.0))]
    Invalid(Vec<RuleError>),
}

/// How many problems a one-line summary of a bad file names.
const SUMMARY_PROBLEMS: usize = 3;

/// The first problems of a bad file, and how many more there are: one log
/// line must stay readable whatever the file holds.
fn summary(errors: &[RuleError]) -> String {
    let shown: Vec<String> = errors
        .iter()
        .take(SUMMARY_PROBLEMS)
        .map(|e| e.to_string())
        .collect();
    let mut text = shown.join("; ");
    if errors.len() > SUMMARY_PROBLEMS {
        text.push_str(&format!("; and {} more", errors.len() - SUMMARY_PROBLEMS));
    }
    text
}

impl Default for Rules {
    /// No rules: every address is allowed with no settings.
    fn default() -> Rules {
        Rules::assemble(Vec::new(), None)
    }
}

impl Rules {
    /// Reads and parses the rules file at `path`.
    pub fn load(path: &Path) -> Result<Rules, LoadError> {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: name.clone(),
            source,
        })?;
        Rules::parse(&bytes, &name).map_err(LoadError::Invalid)
    }

    /// Parses a whole file's bytes; `file` names it in errors. All or
    /// nothing: any problem and no rules at all.
    pub fn parse(source: &[u8], file: &str) -> Result<Rules, Vec<RuleError>> {
        let mut builder = Builder::default();
        for (index, bytes) in source.split(|&b| b == b'\n').enumerate() {
            let line = index + 1;
            if let Err(problem) = builder.add_line(line, bytes) {
                builder.errors.push(RuleError {
                    file: file.to_string(),
                    line,
                    problem,
                });
            }
        }
        if builder.errors.is_empty() {
            Ok(Rules::assemble(builder.rules, builder.default))
        } else {
            Err(builder.errors)
        }
    }

    fn assemble(rules: Vec<Rule>, default: Option<Rule>) -> Rules {
        let table = Table::build(&rules);
        Rules {
            rules,
            default,
            table,
        }
    }

    /// The answer for a client at `ip` (IPv4-mapped IPv6 counts as IPv4):
    /// the rule with the longest prefix containing it, or the default.
    pub fn decide(&self, ip: IpAddr) -> Decision<'_> {
        match self.table.find(ip) {
            Some((rule, prefix)) => {
                decision(&self.rules[rule], Some((self.rules[rule].line, prefix)))
            }
            None => match &self.default {
                Some(rule) => decision(rule, None),
                None => Decision {
                    verdict: Verdict::Allow,
                    env: &[],
                    max_per_ip: None,
                    rate: None,
                    matched: None,
                },
            },
        }
    }

    /// Every rule but the default, in file order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The file's default rule; `None` means the implicit `default allow`.
    pub fn default_rule(&self) -> Option<&Rule> {
        self.default.as_ref()
    }

    /// How many prefixes are looked up (a range counts its blocks).
    pub fn prefix_count(&self) -> usize {
        self.rules.iter().map(|r| r.prefixes.len()).sum()
    }
}

/// `mpecho rules …`: the one entry point `main.rs` dispatches to.
pub fn main(args: crate::cli::RulesArgs) -> std::process::ExitCode {
    match args.command {
        crate::cli::RulesCommand::Check { file } => check::main(&file),
    }
}

fn decision(rule: &Rule, matched: Option<(usize, Prefix)>) -> Decision<'_> {
    Decision {
        verdict: rule.verdict,
        env: &rule.settings.env,
        max_per_ip: rule.settings.max_per_ip,
        rate: rule.settings.rate,
        matched,
    }
}

/// The file being put together, line by line.
#[derive(Default)]
struct Builder {
    rules: Vec<Rule>,
    default: Option<Rule>,
    /// Which line rules each prefix, to refuse a second rule for it:
    /// "longest prefix wins" has no answer between two equal ones.
    owners: HashMap<Prefix, usize>,
    errors: Vec<RuleError>,
}

/// How a line reads, from its first word.
enum LineKind<'a> {
    Nothing,
    Native(&'a str),
    Tcprules(&'a str),
}

/// Native lines start with a word no `tcprules` line can start with: a
/// tcprules line's first word always holds its `:`.
fn classify(text: &str) -> LineKind<'_> {
    let text = text.trim();
    if text.is_empty() || text.starts_with('#') {
        return LineKind::Nothing;
    }
    match text.split_whitespace().next() {
        Some("allow" | "deny" | "default") => LineKind::Native(text),
        _ => LineKind::Tcprules(text),
    }
}

impl Builder {
    fn add_line(&mut self, line: usize, bytes: &[u8]) -> Result<(), String> {
        let text =
            std::str::from_utf8(bytes).map_err(|_| "the line is not UTF-8 text".to_string())?;
        let parsed = match classify(text) {
            LineKind::Nothing => return Ok(()),
            LineKind::Native(text) => parse::line(text)?,
            LineKind::Tcprules(text) => tcprules::line(text)?,
        };
        match parsed.prefixes {
            None => self.set_default(line, parsed.verdict, parsed.settings),
            Some(prefixes) => self.add_rule(line, parsed.verdict, prefixes, parsed.settings),
        }
    }

    fn set_default(
        &mut self,
        line: usize,
        verdict: Verdict,
        settings: Settings,
    ) -> Result<(), String> {
        if let Some(first) = &self.default {
            return Err(format!(
                "a second default rule (the first is on line {}); keep one",
                first.line
            ));
        }
        self.default = Some(Rule {
            line,
            verdict,
            prefixes: Vec::new(),
            settings,
        });
        Ok(())
    }

    fn add_rule(
        &mut self,
        line: usize,
        verdict: Verdict,
        prefixes: Vec<Prefix>,
        settings: Settings,
    ) -> Result<(), String> {
        for prefix in &prefixes {
            if let Some(first) = self.owners.get(prefix) {
                return Err(format!(
                    "{prefix} already has a rule on line {first}; keep one"
                ));
            }
        }
        for prefix in &prefixes {
            self.owners.insert(*prefix, line);
        }
        self.rules.push(Rule {
            line,
            verdict,
            prefixes,
            settings,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests;
