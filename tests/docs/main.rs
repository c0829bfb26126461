//! The manual pages and shell completions checked in under contrib/share/
//! are exactly what the clap definitions render today (`render.rs`), so
//! they cannot drift from the command line. When an option changes, the
//! staleness test fails and names the command that rewrites them:
//!
//! ```sh
//! MPECHO_REGENERATE_DOCS=1 cargo test --test docs
//! ```
//!
//! The staleness test needs nothing but cargo. `tools.rs` also runs the
//! files through groff, mandoc, bash, zsh and fish where those are
//! installed, and says so when one is not.

mod render;
mod tools;

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use render::Rendered;

/// The one command that rewrites contrib/share/ from the clap definitions.
const REGENERATE: &str = "MPECHO_REGENERATE_DOCS=1 cargo test --test docs";

/// The environment variable that turns the staleness test into the
/// regeneration.
const REGENERATE_VAR: &str = "MPECHO_REGENERATE_DOCS";

/// contrib/share/ in this checkout: it mirrors an installed `$PREFIX/share/`.
fn contrib_share() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/share")
}

/// Every checked-in page and completion is exactly what the clap
/// definitions render, and no other file sits in their folders; with
/// MPECHO_REGENERATE_DOCS=1 they are rewritten instead.
#[test]
fn checked_in_pages_and_completions_are_current() {
    let share = contrib_share();
    let rendered = render::all();
    if std::env::var(REGENERATE_VAR).as_deref() == Ok("1") {
        regenerate(&share, &rendered);
        return;
    }
    let problems = stale(&share, &rendered);
    assert!(
        problems.is_empty(),
        "the manual pages or shell completions under contrib/share/ do not match the \
         command line any more:\n{}\n\nRegenerate them at the root of the repository with\n\n    \
         {REGENERATE}\n\nthen review and commit contrib/share/.",
        problems.join("\n")
    );
}

/// What differs between contrib/share/ and the rendered files, one line
/// each.
fn stale(share: &Path, rendered: &[Rendered]) -> Vec<String> {
    let mut problems = Vec::new();
    for file in rendered {
        let shown = file.path.display();
        match fs::read_to_string(share.join(&file.path)) {
            Err(_) => problems.push(format!("  missing:   {shown}")),
            Ok(text) if text != file.text => problems.push(format!(
                "  outdated:  {shown} ({})",
                first_difference(&text, &file.text)
            )),
            Ok(_) => {}
        }
    }
    for path in leftovers(share, rendered) {
        problems.push(format!(
            "  leftover:  {} (rendered from nothing any more)",
            path.display()
        ));
    }
    problems
}

/// Where two texts first differ, for the failure message.
fn first_difference(checked_in: &str, rendered: &str) -> String {
    let mut old = checked_in.lines();
    let mut new = rendered.lines();
    for number in 1.. {
        match (old.next(), new.next()) {
            (Some(a), Some(b)) if a == b => continue,
            (a, b) => {
                return format!(
                    "line {number}: checked in {:?}, rendered {:?}",
                    a.unwrap_or("<end of file>"),
                    b.unwrap_or("<end of file>")
                );
            }
        }
    }
    unreachable!("`1..` never ends")
}

/// Files in the rendered folders that nothing renders (a subcommand that
/// was removed or renamed), relative to contrib/share/.
fn leftovers(share: &Path, rendered: &[Rendered]) -> Vec<PathBuf> {
    let expected: BTreeSet<&Path> = rendered.iter().map(|f| f.path.as_path()).collect();
    let mut found = Vec::new();
    for dir in render::RENDERED_DIRS {
        let Ok(entries) = fs::read_dir(share.join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = Path::new(dir).join(entry.file_name());
            if !expected.contains(path.as_path()) {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Writes every rendered file whose text changed (through a temporary file
/// and a rename, so a reader never sees half a file) and removes the
/// leftovers; says on stderr what it did.
fn regenerate(share: &Path, rendered: &[Rendered]) {
    // Straight to standard error: the test harness captures `eprintln!`
    // of a passing test, and whoever regenerates wants to see what changed.
    let say = |line: String| {
        let _ = writeln!(std::io::stderr(), "{line}");
    };
    let mut changed = 0;
    for file in rendered {
        let path = share.join(&file.path);
        if fs::read_to_string(&path).is_ok_and(|text| text == file.text) {
            continue;
        }
        let dir = path.parent().expect("a rendered file is in a folder");
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let temporary = path.with_extension("tmp-regenerate");
        fs::write(&temporary, &file.text)
            .and_then(|()| fs::rename(&temporary, &path))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        say(format!("wrote   contrib/share/{}", file.path.display()));
        changed += 1;
    }
    for leftover in leftovers(share, rendered) {
        let path = share.join(&leftover);
        fs::remove_file(&path).unwrap_or_else(|e| panic!("cannot remove {}: {e}", path.display()));
        say(format!("removed contrib/share/{}", leftover.display()));
        changed += 1;
    }
    say(format!(
        "{changed} file(s) changed under contrib/share/ ({} rendered)",
        rendered.len()
    ));
}

/// Exactly the executables and their visible subcommands, nested ones
/// too, get a page (`mpecho-serve.1`, `mpecho-rules-check.1`); the hidden
/// `mpecho worker` and clap's `help` get none.
#[test]
fn pages_are_the_executables_and_their_visible_subcommands() {
    for (root, see_also) in render::executables() {
        let name = root.get_name().to_owned();
        let mut expected = Vec::new();
        visible_pages(&root, &name, &mut expected);
        expected.sort();
        let pages: Vec<PathBuf> = render::man_pages(&root, see_also)
            .into_iter()
            .map(|page| page.path)
            .collect();
        assert_eq!(pages, expected, "the pages of {name}");
    }
}

/// The page of `cmd` (named `page`) and of each visible subcommand below
/// it, as `man/man1/PAGE.1` paths.
fn visible_pages(cmd: &clap::Command, page: &str, pages: &mut Vec<PathBuf>) {
    pages.push(PathBuf::from(format!("man/man1/{page}.1")));
    for sub in cmd.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        visible_pages(sub, &format!("{page}-{}", sub.get_name()), pages);
    }
}

/// No completion offers a hidden subcommand (clap_complete would offer
/// `mpecho worker` like any other); the same marks find the visible `help`
/// subcommand, so they would find a hidden one.
#[test]
fn completions_never_offer_a_hidden_subcommand() {
    let mut checked = 0;
    for (root, _) in render::executables() {
        let hidden: Vec<String> = root
            .get_subcommands()
            .filter(|sub| sub.is_hide_set())
            .map(|sub| sub.get_name().to_owned())
            .collect();
        for file in render::completions(&root) {
            // How each script names a subcommand it offers: bash's case
            // label (`mpecho,serve)`), zsh's `_describe` entry, fish's `-a`
            // argument.
            let shell = file.path.iter().next().unwrap().to_str().unwrap();
            let offers = |sub: &str| match shell {
                "bash-completion" => file.text.contains(&format!(",{sub})")),
                "zsh" => file.text.contains(&format!("'{sub}:")),
                "fish" => file.text.contains(&format!("-a \"{sub}\"")),
                _ => panic!("a completion for no shell known: {}", file.path.display()),
            };
            let shown = file.path.display();
            assert!(offers("help"), "{shown}: the mark does not find `help`");
            for sub in &hidden {
                assert!(!offers(sub), "{shown} offers the hidden subcommand {sub}");
                checked += 1;
            }
        }
    }
    assert!(
        checked > 0,
        "no hidden subcommand was checked (mpecho worker is one)"
    );
}

/// Every page's `.TH` line carries the upper-case title, the version and an
/// empty date, so that a page changes only when the command line or the
/// version does, never with the calendar.
#[test]
fn title_lines_carry_the_version_and_no_date() {
    for (root, see_also) in render::executables() {
        let source = format!("{} {}", root.get_name(), root.get_version().unwrap());
        for page in render::man_pages(&root, see_also) {
            let stem = page.path.file_stem().unwrap().to_str().unwrap();
            let expected = format!(
                ".TH {} 1 \"\" \"{source}\" \"{}\"",
                stem.to_uppercase(),
                render::MANUAL
            );
            let title = page.text.lines().find(|line| line.starts_with(".TH "));
            assert_eq!(title, Some(expected.as_str()), "{}", page.path.display());
        }
    }
}
