//! What contrib/share/ holds, rendered from the clap definitions: one man
//! page per executable and per visible subcommand, and the bash, zsh and
//! fish completions of each executable.
//!
//! It only renders text; it never reads or writes contrib/ (`main.rs` does).
//! The paths are those of an installed `$PREFIX/share/`, so that a packager
//! copies the tree as it is.

use std::path::PathBuf;

use clap::{Command, CommandFactory};
use clap_complete::Shell;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};

/// The folders under contrib/share/ that hold only rendered files: a file in
/// them that is not rendered any more (a subcommand removed) is stale too.
pub const RENDERED_DIRS: [&str; 4] = [
    "man/man1",
    "bash-completion/completions",
    "zsh/site-functions",
    "fish/vendor_completions.d",
];

/// One rendered file: its path under contrib/share/ and its text.
pub struct Rendered {
    pub path: PathBuf,
    pub text: String,
}

/// The executables documented, each with the other pages its own page
/// points to.
pub fn executables() -> Vec<(Command, &'static [&'static str])> {
    vec![
        (mpecho::cli::Cli::command(), &["mpecho-bench(1)"]),
        (mpecho_bench::cli::Cli::command(), &["mpecho(1)"]),
    ]
}

/// Every file under contrib/share/, in a stable order.
pub fn all() -> Vec<Rendered> {
    let mut files = Vec::new();
    for (cmd, see_also) in executables() {
        files.extend(man_pages(&cmd, see_also));
        files.extend(completions(&cmd));
    }
    files
}

/// `NAME.1` for the executable and `NAME-SUB.1` for each subcommand that is
/// not hidden (the layout of git's pages). Nothing in a page depends on the
/// day it was rendered: see [`title`].
pub fn man_pages(root: &Command, see_also: &[&str]) -> Vec<Rendered> {
    let source = format!(
        "{} {}",
        root.get_name(),
        root.get_version().unwrap_or_default()
    );
    // `help` is clap's own subcommand, not a page (clap_mangen's
    // `generate_to` drops it too).
    let mut root = without_own_name_in_about(root.clone()).disable_help_subcommand(true);
    root.build();

    let mut pages = Vec::new();
    let mut pending = vec![(root, Vec::new())];
    while let Some((cmd, parents)) = pending.pop() {
        let page_name = cmd.get_display_name().unwrap_or(cmd.get_name()).to_owned();
        // A subcommand's page points to the pages above it; the
        // executable's own page to the other executable's.
        let refs: Vec<String> = if parents.is_empty() {
            see_also.iter().map(|page| page.to_string()).collect()
        } else {
            parents.clone()
        };
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            let mut chain = parents.clone();
            chain.push(format!("{page_name}(1)"));
            pending.push((sub.clone(), chain));
        }
        let man = title(Man::new(cmd), &page_name, &source);
        let mut text = Vec::new();
        man.render(&mut text)
            .expect("rendering into memory cannot fail");
        let mut text = String::from_utf8(text).expect("clap_mangen writes UTF-8");
        text.push_str(&see_also_section(&refs));
        pages.push(Rendered {
            path: PathBuf::from(format!("man/man1/{page_name}.1")),
            text,
        });
    }
    pages.sort_by(|a, b| a.path.cmp(&b.path));
    pages
}

/// The manual all the pages belong to (the centre of each page's header).
pub const MANUAL: &str = "mpecho Manual";

/// The `.TH` line: `.TH MPECHO-SERVE 1 "" "mpecho 0.1.0" "mpecho Manual"`.
/// The date is left empty on purpose: today's date would make every page
/// stale every day, and a fixed one would lie; the version says which
/// release a page documents. It must be written as `""`: clap_mangen writes
/// an empty date as nothing at all, so the version would slide into the
/// date's place and the source's would stay empty.
fn title(man: Man, page_name: &str, source: &str) -> Man {
    man.title(page_name.to_uppercase())
        .date("\"\"")
        .source(source)
        .manual(MANUAL)
}

/// The root's one-line description without a leading `NAME: `: `mpecho
/// --help` opens with "mpecho: a multi-process TCP echo server", and the
/// NAME section would read "mpecho - mpecho: a multi-process ...".
fn without_own_name_in_about(cmd: Command) -> Command {
    let about = cmd.get_about().map(ToString::to_string).unwrap_or_default();
    match about.strip_prefix(&format!("{}: ", cmd.get_name())) {
        Some(rest) => cmd.about(rest.to_owned()),
        None => cmd,
    }
}

/// `SEE ALSO` with the pages given (`mpecho(1)`), or nothing.
fn see_also_section(pages: &[String]) -> String {
    if pages.is_empty() {
        return String::new();
    }
    let mut inlines = Vec::new();
    for (i, page) in pages.iter().enumerate() {
        let (name, section) = page.split_once('(').expect("NAME(SECTION)");
        if i > 0 {
            inlines.push(roman(", "));
        }
        inlines.push(bold(name));
        inlines.push(roman(format!("({section}")));
    }
    Roff::new()
        .control("SH", ["SEE ALSO"])
        .text(inlines)
        .to_roff()
}

/// The completions for bash, zsh and fish, under the names their loaders
/// look for: bash-completion loads `completions/NAME` when NAME is first
/// completed, zsh autoloads `_NAME` from `$fpath`, fish loads `NAME.fish`.
pub fn completions(root: &Command) -> Vec<Rendered> {
    let name = root.get_name().to_owned();
    let mut cmd = without_hidden_subcommands(root);
    [
        (Shell::Bash, format!("bash-completion/completions/{name}")),
        (Shell::Zsh, format!("zsh/site-functions/_{name}")),
        (
            Shell::Fish,
            format!("fish/vendor_completions.d/{name}.fish"),
        ),
    ]
    .into_iter()
    .map(|(shell, path)| {
        let mut text = Vec::new();
        clap_complete::generate(shell, &mut cmd, &name, &mut text);
        Rendered {
            path: PathBuf::from(path),
            text: String::from_utf8(text).expect("clap_complete writes UTF-8"),
        }
    })
    .collect()
}

/// The command without its hidden subcommands (`mpecho worker`):
/// clap_complete offers hidden subcommands like any other (clap issue
/// #1335) and clap has no way to remove one, so the root is put together
/// again from its name, version, texts, arguments and visible subcommands.
/// Only what completions never show (help templates, usage) is left behind.
/// Hidden subcommands are only at the top (`mpecho worker`); nested ones
/// (`mpecho rules check`) come along with their parent.
pub fn without_hidden_subcommands(root: &Command) -> Command {
    // clap takes names and versions as `&'static str` unless its `string`
    // feature is on; leaking a few short strings in a test process is
    // simpler than turning a clap feature on for this alone.
    let leak = |s: &str| -> &'static str { s.to_owned().leak() };
    let mut cmd = Command::new(leak(root.get_name()))
        .subcommand_required(root.is_subcommand_required_set())
        .arg_required_else_help(root.is_arg_required_else_help_set())
        .args(root.get_arguments().cloned())
        .subcommands(root.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    if let Some(version) = root.get_version() {
        cmd = cmd.version(leak(version));
    }
    if let Some(about) = root.get_about() {
        cmd = cmd.about(about.clone());
    }
    if let Some(long_about) = root.get_long_about() {
        cmd = cmd.long_about(long_about.clone());
    }
    cmd
}
