//! The worker executable (issue 10): `mpecho serve` opens `mpecho-worker`
//! (beside itself, or `--worker PATH`) once at start and checks it, so a
//! missing, unrunnable or foreign worker is a startup error (status 1, one
//! line saying what to do), never a failure per connection; and every
//! worker runs the file opened then, even after the path is renamed over
//! or deleted. `mpecho worker` still explains itself when its worker is
//! missing.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use mpecho_testkit::{Server, ServerOptions, echo, mpecho_bin, worker_bin};

use crate::errors::{assert_worker_refuses, run_in_own_group, serve_refused_with_binary};

/// A copy of `mpecho`, and of `mpecho-worker` beside it when `with_worker`,
/// in a directory of its own (as a package installs them).
struct Installed {
    dir: tempfile::TempDir,
    mpecho: PathBuf,
    worker: PathBuf,
}

impl Installed {
    fn new(with_worker: bool) -> Installed {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let mpecho = dir.path().join("mpecho");
        let worker = dir.path().join("mpecho-worker");
        fs::copy(mpecho_bin(), &mpecho).expect("copy mpecho");
        if with_worker {
            fs::copy(worker_bin(), &worker).expect("copy mpecho-worker");
        }
        Installed {
            dir,
            mpecho,
            worker,
        }
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

/// No `mpecho-worker` beside `mpecho` (nor `--worker`): the master says
/// where it looked and what to do, and exits 1 before serving anyone.
#[test]
fn a_master_without_its_worker_executable_refuses_to_start() {
    let installed = Installed::new(false);
    let line = installed.serve_refused(&[]);
    assert_says(
        &line,
        &[
            &format!(
                "mpecho serve: could not open the worker executable {}: No such file or directory",
                installed.worker.display()
            ),
            "install mpecho-worker beside mpecho",
            "--worker PATH",
        ],
    );
    let line = installed.serve_refused(&["--worker", "/nonexistent/mpecho-worker"]);
    assert_says(
        &line,
        &["could not open the worker executable /nonexistent/mpecho-worker: "],
    );
}

/// A worker file without permission to execute it is refused at start,
/// saying so, rather than failing every connection.
#[test]
fn a_worker_executable_that_cannot_be_run_is_refused() {
    let installed = Installed::new(true);
    fs::set_permissions(&installed.worker, fs::Permissions::from_mode(0o644))
        .expect("make the worker not executable");
    let line = installed.serve_refused(&[]);
    assert_says(
        &line,
        &[
            &format!(
                "could not run the worker executable {}: Permission denied",
                installed.worker.display()
            ),
            "must be an executable file",
        ],
    );
}

/// Another program where the worker should be (a copy of /bin/true, both
/// beside mpecho and named with `--worker`) does not answer `--version`
/// as this build's mpecho-worker: refused, naming what was expected.
#[test]
fn another_program_as_the_worker_is_refused() {
    let installed = Installed::new(true);
    installed.replace(&installed.worker, Path::new("/bin/true"));
    let expected = format!(
        "where mpecho-worker prints `mpecho-worker {} (hand-over {})`",
        mpecho::handoff::VERSION,
        mpecho::handoff::HANDOFF_VERSION
    );
    let beside = installed.serve_refused(&[]);
    assert_says(
        &beside,
        &[
            &format!(
                "the worker executable {} is not this server's mpecho-worker",
                installed.worker.display()
            ),
            &expected,
        ],
    );
    let other = installed.dir.path().join("true");
    fs::copy("/bin/true", &other).expect("copy /bin/true");
    let named = installed.serve_refused(&["--worker", other.to_str().unwrap()]);
    assert_says(
        &named,
        &[
            &format!(
                "the worker executable {} is not this server's mpecho-worker",
                other.display()
            ),
            &expected,
        ],
    );
}

/// The master runs the worker it opened at start: after an upgrade renames
/// another file over `mpecho-worker`, and after the file is deleted, new
/// connections are still echoed, by processes whose executable is the
/// very file opened at start.
#[test]
fn workers_run_the_file_opened_at_start_after_it_is_replaced_or_deleted() {
    let installed = Installed::new(true);
    let opened = identity(&installed.worker);
    let server = Server::start_with(ServerOptions {
        binary: Some(installed.mpecho.clone()),
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

/// `mpecho worker` (which execs mpecho-worker from beside itself) with no
/// worker there: it says what it could not run, and exits 2.
#[test]
fn mpecho_worker_without_its_worker_executable_explains_and_exits_2() {
    let installed = Installed::new(false);
    let mut command = Command::new(&installed.mpecho);
    command.arg("worker");
    let (output, _) = run_in_own_group(command);
    assert_worker_refuses(&output, "no mpecho-worker beside mpecho");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "mpecho worker: could not run {}: No such file or directory",
            installed.worker.display()
        )),
        "{stderr}"
    );
}
