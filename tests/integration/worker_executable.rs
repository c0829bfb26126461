//! The worker program (issue 10): `mpecho serve` runs the `mpecho-worker`
//! built into it (a sealed memory file), or the file `--worker PATH` names,
//! opened once at start and checked, so a missing, unrunnable or foreign
//! worker is a startup error (status 1, one line saying what to do), never
//! a failure per connection; and every worker runs what was opened then,
//! even after the files on disk are renamed over or deleted.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use mpecho_testkit::{Server, ServerOptions, echo, mpecho_bin, worker_bin};

use crate::errors::{assert_worker_refuses, run_in_own_group, serve_refused_with_binary};

/// A copy of `mpecho` alone in a directory of its own (as a package
/// installs it), and a copy of `mpecho-worker` in the same directory, for
/// `--worker`.
struct Installed {
    dir: tempfile::TempDir,
    mpecho: PathBuf,
    worker: PathBuf,
}

impl Installed {
    fn new() -> Installed {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let mpecho = dir.path().join("mpecho");
        let worker = dir.path().join("mpecho-worker");
        fs::copy(mpecho_bin(), &mpecho).expect("copy mpecho");
        fs::copy(worker_bin(), &worker).expect("copy mpecho-worker");
        Installed {
            dir,
            mpecho,
            worker,
        }
    }

    fn worker_arg(&self) -> &str {
        self.worker.to_str().expect("a UTF-8 temporary path")
    }

    /// `mpecho serve ARGS` from this copy must refuse to start; its line.
    fn serve_refused(&self, args: &[&str]) -> String {
        let log = self.dir.path().join("mpecho.log");
        let mut all = vec!["-l", "127.0.0.1:0", "--log-file", log.to_str().unwrap()];
        all.extend(args);
        serve_refused_with_binary(&self.mpecho, &all)
    }

    /// Puts a copy of `source` at `path` the way an upgrade does: written
    /// beside it, then renamed over it (a new file; the old one lives on
    /// for whoever holds it).
    fn replace(&self, path: &Path, source: &Path) {
        let new = self.dir.path().join(".new");
        fs::copy(source, &new).expect("write the new file");
        fs::rename(&new, path).expect("rename the new file over the old");
    }
}

/// The (device, inode) of a file, or of what a /proc `exe` link names.
fn identity(path: impl AsRef<Path>) -> (u64, u64) {
    let meta = fs::metadata(path.as_ref())
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.as_ref().display()));
    (meta.dev(), meta.ino())
}

fn assert_says(line: &str, needles: &[&str]) {
    for needle in needles {
        assert!(line.contains(needle), "{needle:?} is not in {line:?}");
    }
}

/// By default every worker runs the `mpecho-worker` built into `mpecho`:
/// a copy of `mpecho` with no worker file anywhere serves, its workers'
/// executable is the sealed memory file, and that holds after the `mpecho`
/// file itself is replaced and deleted.
#[test]
fn the_built_in_worker_needs_no_file_and_survives_an_upgrade() {
    let installed = Installed::new();
    fs::remove_file(&installed.worker).expect("leave mpecho alone in its directory");
    let server = Server::start_with(ServerOptions {
        binary: Some(installed.mpecho.clone()),
        ..ServerOptions::default()
    });
    let assert_served_by_the_builtin = |when: &str| {
        let (mut client, worker) = server.connect_served_worker();
        assert_eq!(echo(&mut client, when.as_bytes()), when.as_bytes());
        let exe = fs::read_link(format!("/proc/{worker}/exe")).expect("read the worker's exe");
        assert_eq!(
            exe.to_string_lossy(),
            "/memfd:mpecho-worker (deleted)",
            "{when}: worker {worker} runs {}",
            exe.display()
        );
    };
    assert_served_by_the_builtin("as installed\n");
    installed.replace(&installed.mpecho, Path::new("/bin/true"));
    assert_served_by_the_builtin("after an upgrade renamed a new file over mpecho\n");
    fs::remove_file(&installed.mpecho).expect("delete mpecho");
    assert_served_by_the_builtin("after mpecho was deleted\n");
}

/// `--worker PATH` naming nothing: the master says what it could not open
/// and what to do, and exits 1 before serving anyone.
#[test]
fn a_missing_worker_file_refuses_to_start() {
    let installed = Installed::new();
    let line = installed.serve_refused(&["--worker", "/nonexistent/mpecho-worker"]);
    assert_says(
        &line,
        &[
            "mpecho serve: could not open the worker executable /nonexistent/mpecho-worker: \
             No such file or directory",
            "--worker PATH",
            "leave --worker out to use the built-in one",
        ],
    );
}

/// A worker file without permission to execute it is refused at start,
/// saying so, rather than failing every connection.
#[test]
fn a_worker_executable_that_cannot_be_run_is_refused() {
    let installed = Installed::new();
    fs::set_permissions(&installed.worker, fs::Permissions::from_mode(0o644))
        .expect("make the worker not executable");
    let line = installed.serve_refused(&["--worker", installed.worker_arg()]);
    assert_says(
        &line,
        &[
            &format!(
                "could not run {}: Permission denied",
                installed.worker.display()
            ),
            "must be an executable file",
        ],
    );
}

/// Another program named with `--worker` (a copy of /bin/true) does not
/// answer `--version` as this build's mpecho-worker: refused, naming what
/// was expected.
#[test]
fn another_program_as_the_worker_is_refused() {
    let installed = Installed::new();
    installed.replace(&installed.worker, Path::new("/bin/true"));
    let line = installed.serve_refused(&["--worker", installed.worker_arg()]);
    assert_says(
        &line,
        &[
            &format!(
                "{} is not this server's mpecho-worker",
                installed.worker.display()
            ),
            &format!(
                "where mpecho-worker prints `mpecho-worker {} (hand-over {})`",
                mpecho::handoff::VERSION,
                mpecho::handoff::HANDOFF_VERSION
            ),
        ],
    );
}

/// With `--worker`, the master runs the file it opened at start: after an
/// upgrade renames another file over it, and after the file is deleted,
/// new connections are still echoed, by processes whose executable is the
/// very file opened at start.
#[test]
fn workers_run_the_file_opened_at_start_after_it_is_replaced_or_deleted() {
    let installed = Installed::new();
    let opened = identity(&installed.worker);
    let server = Server::start_with(ServerOptions {
        binary: Some(installed.mpecho.clone()),
        args: vec!["--worker".into(), installed.worker_arg().into()],
        ..ServerOptions::default()
    });
    let assert_served_by_the_opened_file = |when: &str| {
        let (mut client, worker) = server.connect_served_worker();
        assert_eq!(echo(&mut client, when.as_bytes()), when.as_bytes());
        assert_eq!(
            identity(format!("/proc/{worker}/exe")),
            opened,
            "{when}: worker {worker} runs another file than the one opened at start"
        );
    };
    assert_served_by_the_opened_file("as installed\n");

    installed.replace(&installed.worker, Path::new("/bin/true"));
    assert_ne!(
        identity(&installed.worker),
        opened,
        "the path names a new file"
    );
    assert_served_by_the_opened_file("after an upgrade renamed a new file over it\n");

    fs::remove_file(&installed.worker).expect("delete the worker executable");
    assert_served_by_the_opened_file("after it was deleted\n");
}

/// `mpecho worker` by hand runs the built-in worker (no worker file
/// anywhere), which explains itself without a socket on descriptor 3 and
/// exits 2.
#[test]
fn mpecho_worker_runs_the_built_in_worker() {
    let installed = Installed::new();
    fs::remove_file(&installed.worker).expect("leave mpecho alone in its directory");
    let mut command = Command::new(&installed.mpecho);
    command.arg("worker");
    let (output, _) = run_in_own_group(command);
    assert_worker_refuses(&output, "no socket on descriptor 3");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("descriptor 3") && !stderr.contains("could not run"),
        "{stderr}"
    );
}
