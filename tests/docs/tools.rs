//! The rendered files as the programs that read them see them: groff (the
//! formatter behind man-db's `man`) and mandoc format every page, bash and
//! fish load their completions and complete with them, zsh parses its own.
//!
//! Each test needs its tool and passes with a "skipped" line on stderr when
//! the tool is not installed (`apt-get install groff-base mandoc zsh fish`);
//! the staleness test in `main.rs` needs none of them. The files checked
//! are the rendered ones, which that test holds equal to contrib/share/.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

use crate::render::{self, Rendered};

/// Whether `tool` is an executable on PATH; if not, says on stderr which
/// check is skipped and what installs it.
fn installed(tool: &str, package: &str, check: &str) -> bool {
    let found = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            use std::os::unix::fs::PermissionsExt;
            dir.join(tool)
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    });
    if !found {
        eprintln!("skipped: {check}: {tool} is not installed (apt-get install {package})");
    }
    found
}

/// The rendered files written into a fresh temporary folder, laid out as
/// under contrib/share/.
fn written(files: &[Rendered]) -> (TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let paths = files
        .iter()
        .map(|file| {
            let path = dir.path().join(&file.path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &file.text).unwrap();
            path
        })
        .collect();
    (dir, paths)
}

/// Runs a program to its end; a program that cannot be started is a
/// failure, since `installed` said it was there.
fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every man page rendered, with its path on disk.
fn pages() -> (TempDir, Vec<PathBuf>) {
    let pages: Vec<Rendered> = render::executables()
        .iter()
        .flat_map(|(root, see_also)| render::man_pages(root, see_also))
        .collect();
    written(&pages)
}

/// groff, with every warning on, formats every page without a word on
/// stderr: what `man` shows is what the page says.
#[test]
fn groff_formats_every_page_without_warnings() {
    if !installed("groff", "groff-base", "formatting the man pages with groff") {
        return;
    }
    let (_dir, pages) = pages();
    for page in &pages {
        let page = page.to_str().unwrap();
        let out = run("groff", &["-man", "-ww", "-z", "-Tutf8", page]);
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "groff -man -ww on {page}: {}",
            text(&out.stderr)
        );
    }
}

/// mandoc's linter finds nothing at warning level or above in any page,
/// but for two things it is told of: the date left empty on purpose (see
/// `render::title`), and clap_mangen's blank line between an option's help
/// and its possible values (which every formatter renders as intended).
#[test]
fn mandoc_lints_every_page_clean() {
    if !installed("mandoc", "mandoc", "linting the man pages with mandoc") {
        return;
    }
    const KNOWN: [&str; 2] = [
        "WARNING: missing date, using \"\": TH",
        "WARNING: skipping paragraph macro: br",
    ];
    let (_dir, pages) = pages();
    for page in &pages {
        let page = page.to_str().unwrap();
        let out = run("mandoc", &["-T", "lint", "-W", "warning", page]);
        let report = text(&out.stdout) + &text(&out.stderr);
        let unexpected: Vec<&str> = report
            .lines()
            .filter(|line| !KNOWN.iter().any(|known| line.contains(known)))
            .collect();
        assert!(
            unexpected.is_empty(),
            "mandoc -T lint on {page}:\n{}",
            unexpected.join("\n")
        );
    }
}

/// The words a completion script offers for `words`, the last one being
/// the word under the cursor.
type Completer = fn(script: &Path, name: &str, words: &[&str]) -> Vec<String>;

/// bash sources the script, registers it for the executable's name, and
/// its function completes `words` as bash itself would call it.
fn bash_completes(script: &Path, name: &str, words: &[&str]) -> Vec<String> {
    const DRIVER: &str = r#"
source "$1" || exit 1
spec=$(complete -p "$2") || exit 1
fn=${spec##*-F }; fn=${fn%% *}
shift 2
COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMPREPLY=()
"$fn" "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
"#;
    let mut args = vec!["--norc", "--noprofile", "-c", DRIVER, "bash"];
    args.extend([script.to_str().unwrap(), name]);
    args.extend(words);
    let out = run("bash", &args);
    assert!(
        out.status.success(),
        "bash could not load {}: {}",
        script.display(),
        text(&out.stderr)
    );
    text(&out.stdout).lines().map(str::to_owned).collect()
}

/// fish sources the script and completes the command line `words` with
/// `complete -C`, as it would at a prompt.
fn fish_completes(script: &Path, _name: &str, words: &[&str]) -> Vec<String> {
    let line = words.join(" ");
    let out = run(
        "fish",
        &[
            "--no-config",
            "-c",
            "source $argv[1]; and complete -C $argv[2]",
            script.to_str().unwrap(),
            &line,
        ],
    );
    assert!(
        out.status.success(),
        "fish could not load {}: {}",
        script.display(),
        text(&out.stderr)
    );
    // Each line is a candidate, then a tab and its description.
    text(&out.stdout)
        .lines()
        .map(|line| line.split('\t').next().unwrap_or_default().to_owned())
        .collect()
}

/// For every executable: the first word offers every visible subcommand
/// and no hidden one; `mpecho serve --on-full` offers exactly the policies.
fn check_completions(shell_folder: &str, complete: Completer) {
    for (root, _) in render::executables() {
        let name = root.get_name().to_owned();
        let files: Vec<Rendered> = render::completions(&root)
            .into_iter()
            .filter(|file| file.path.starts_with(shell_folder))
            .collect();
        let (_dir, paths) = written(&files);
        let script = &paths[0];
        let offered = complete(script, &name, &[&name, ""]);
        for sub in root.get_subcommands() {
            let sub_name = sub.get_name().to_owned();
            assert_eq!(
                offered.contains(&sub_name),
                !sub.is_hide_set(),
                "{shell_folder}: `{name} <TAB>` offers {offered:?}"
            );
        }
        if name == "mpecho" {
            let mut policies = complete(script, &name, &[&name, "serve", "--on-full", ""]);
            policies.sort();
            assert_eq!(
                policies,
                ["defer", "reject"],
                "{shell_folder}: `mpecho serve --on-full <TAB>`"
            );
        }
    }
}

/// bash loads both executables' completions and completes subcommands
/// (never the hidden `worker`) and option values with them.
#[test]
fn bash_completes_subcommands_and_values() {
    if installed("bash", "bash", "loading the bash completions") {
        check_completions("bash-completion", bash_completes);
    }
}

/// fish loads both executables' completions and completes subcommands
/// (never the hidden `worker`) and option values with them.
#[test]
fn fish_completes_subcommands_and_values() {
    if installed("fish", "fish", "loading the fish completions") {
        check_completions("fish", fish_completes);
    }
}

/// zsh parses both executables' completion functions (running them needs
/// an interactive zsh with compinit, which a test cannot have cheaply).
#[test]
fn zsh_parses_the_completions() {
    if !installed("zsh", "zsh", "parsing the zsh completions") {
        return;
    }
    let files: Vec<Rendered> = render::executables()
        .iter()
        .flat_map(|(root, _)| render::completions(root))
        .filter(|file| file.path.starts_with("zsh"))
        .collect();
    let (_dir, paths) = written(&files);
    for path in &paths {
        let out = run("zsh", &["-n", path.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "zsh -n {}: {}",
            path.display(),
            text(&out.stderr)
        );
    }
}
