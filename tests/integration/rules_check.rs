//! `mpecho rules check FILE`, as an operator runs it before a reload: a
//! valid file prints what each rule means and exits 0; an invalid or
//! missing one exits 1 with every problem on stderr as FILE:LINE.

use std::path::Path;
use std::process::Output;

use mpecho_testkit::{run_mpecho, text};

/// Writes `contents` to a file named `name` in `dir` and runs
/// `mpecho rules check` on it.
fn check(dir: &Path, name: &str, contents: &str) -> (String, Output) {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write the rules file");
    let path = path.display().to_string();
    let output = run_mpecho(&["rules", "check", &path], b"");
    (path, output)
}

/// A file mixing native and tcprules lines: each network on one line, in
/// canonical form, the default last, nothing on stderr, status 0.
#[test]
fn a_valid_file_is_explained_rule_by_rule() {
    let dir = tempfile::tempdir().unwrap();
    let (_, output) = check(
        dir.path(),
        "rules",
        "# the office\n\
         allow 10.0.0.0/8 max-per-ip=3 max-rate-per-ip=10/1 GREETING=\"hello there\"\n\
         deny 10.9.0.0/16\n\
         192.0.2.4-7:deny\n\
         ::ffff:198.51.100.0/120:allow,RELAYCLIENT=\"\"\n\
         deny 2001:db8::/32\n\
         default deny\n",
    );
    assert_eq!(text(&output.stderr), "");
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        text(&output.stdout),
        "line 2: 10.0.0.0/8 allow max-per-ip=3 max-rate-per-ip=10/1 GREETING=\"hello there\"\n\
         line 3: 10.9.0.0/16 deny\n\
         line 4: 192.0.2.4/30 deny\n\
         line 5: 198.51.100.0/24 allow RELAYCLIENT=\"\"\n\
         line 6: 2001:db8::/32 deny\n\
         line 7: default deny\n\
         5 rules, 5 networks; the longest matching prefix wins\n"
    );
}

/// A file with several bad lines: every one named with its file and line,
/// then a summary; nothing on stdout, status 1.
#[test]
fn an_invalid_file_names_every_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let (path, output) = check(
        dir.path(),
        "bad-rules",
        "allow 10.0.0.0/8\n\
         =host.example.com:deny\n\
         allow 10.0.0.0/8\n\
         deny 192.0.2.0/24 X=1\n",
    );
    assert_eq!(text(&output.stdout), "");
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 4, "{stderr}");
    assert!(lines[0].starts_with(&format!("{path}:2: ")), "{stderr}");
    assert!(lines[0].contains("host-name rules (=host)"), "{stderr}");
    assert_eq!(
        lines[1],
        format!("{path}:3: 10.0.0.0/8 already has a rule on line 1; keep one")
    );
    assert!(
        lines[2].starts_with(&format!("{path}:4: a deny rule")),
        "{stderr}"
    );
    assert_eq!(
        lines[3],
        format!("{path}: invalid: 3 problems; no rule of it would be used")
    );
}

/// A file that cannot be read: one line saying which and why, status 1.
#[test]
fn a_missing_file_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nowhere").display().to_string();
    let output = run_mpecho(&["rules", "check", &path], b"");
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(text(&output.stdout), "");
    assert_eq!(
        text(&output.stderr),
        format!(
            "mpecho rules check: could not read the rules file {path}: No such file or \
             directory (os error 2)\n"
        )
    );
}

/// `rules` without `check`, or `check` without a file, is a usage error.
#[test]
fn a_bad_command_line_is_a_usage_error() {
    for args in [&["rules"][..], &["rules", "check"]] {
        let output = run_mpecho(args, b"");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(text(&output.stderr).contains("Usage:"), "{args:?}");
    }
}
