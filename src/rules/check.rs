//! `mpecho rules check FILE`: whether a rules file is valid, and what each
//! of its rules means, one line per network.
//!
//! Owns the command's output and exit status: 0 and the rules on standard
//! output for a valid file; 1 and every problem on standard error, each as
//! `FILE:LINE: problem`, for an invalid or unreadable one. It only reads
//! the file: it starts, binds and changes nothing, so it is safe to run
//! before every reload.

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use super::{LoadError, Rule, Rules, Settings, parse};

/// Runs `mpecho rules check FILE`.
pub fn main(file: &Path) -> ExitCode {
    match Rules::load(file) {
        Ok(rules) => {
            // A closed stdout (`| head`) is the reader's choice, not a
            // problem with the file: the status still says it is valid.
            let _ = print(&rules, &mut io::stdout().lock());
            ExitCode::SUCCESS
        }
        Err(LoadError::Invalid(errors)) => {
            let mut stderr = io::stderr().lock();
            for error in &errors {
                let _ = writeln!(stderr, "{error}");
            }
            let _ = writeln!(
                stderr,
                "{}: invalid: {} problem{}; no rule of it would be used",
                file.display(),
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            );
            ExitCode::FAILURE
        }
        Err(error @ LoadError::Read { .. }) => {
            eprintln!("mpecho rules check: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The meaning of a valid file: each network of each rule in file order,
/// then the default.
pub fn print(rules: &Rules, out: &mut impl Write) -> io::Result<()> {
    for rule in rules.rules() {
        for prefix in &rule.prefixes {
            writeln!(
                out,
                "line {}: {prefix} {}{}",
                rule.line,
                rule.verdict.name(),
                settings(&rule.settings)
            )?;
        }
    }
    writeln!(out, "{}", default_line(rules.default_rule()))?;
    writeln!(
        out,
        "{} rule{}, {} network{}; the longest matching prefix wins",
        rules.rules().len(),
        if rules.rules().len() == 1 { "" } else { "s" },
        rules.prefix_count(),
        if rules.prefix_count() == 1 { "" } else { "s" },
    )
}

fn default_line(rule: Option<&Rule>) -> String {
    match rule {
        Some(rule) => format!(
            "line {}: default {}{}",
            rule.line,
            rule.verdict.name(),
            settings(&rule.settings)
        ),
        None => "default allow (no default rule in the file)".to_string(),
    }
}

/// The settings as they would be written in the native syntax, each
/// preceded by a space.
fn settings(settings: &Settings) -> String {
    let mut text = String::new();
    if let Some(n) = settings.max_per_ip {
        text.push_str(&format!(" max-per-ip={n}"));
    }
    if let Some(rate) = settings.rate {
        text.push_str(&format!(" max-rate-per-ip={rate}"));
    }
    for (name, value) in &settings.env {
        text.push_str(&format!(" {name}={}", parse::quote(value)));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_printed_as_it_means() {
        let text = "deny 192.0.2.0/24\n1.2.3.37-53:allow,X=\"two words\"\n\
                    allow ::ffff:10.0.0.0/104 max-per-ip=0 max-rate-per-ip=10/1s\ndefault deny\n";
        let rules = Rules::parse(text.as_bytes(), "f").unwrap();
        let mut out = Vec::new();
        print(&rules, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "line 1: 192.0.2.0/24 deny\n\
             line 2: 1.2.3.37/32 allow X=\"two words\"\n\
             line 2: 1.2.3.38/31 allow X=\"two words\"\n\
             line 2: 1.2.3.40/29 allow X=\"two words\"\n\
             line 2: 1.2.3.48/30 allow X=\"two words\"\n\
             line 2: 1.2.3.52/31 allow X=\"two words\"\n\
             line 3: 10.0.0.0/8 allow max-per-ip=0 max-rate-per-ip=10/1\n\
             line 4: default deny\n\
             3 rules, 7 networks; the longest matching prefix wins\n"
        );
    }

    #[test]
    fn without_a_default_the_implicit_one_is_shown() {
        let rules = Rules::parse(b"", "f").unwrap();
        let mut out = Vec::new();
        print(&rules, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "default allow (no default rule in the file)\n\
             0 rules, 0 networks; the longest matching prefix wins\n"
        );
    }
}
