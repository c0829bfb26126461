//! `--exec PROG [ARG...]`: the operator's program, run for every connection
//! in the built-in worker's place, the UCSPI way (`tcpserver`, inetd).
//!
//! PROG is found in PATH and checked once at boot, so that a typo or a
//! missing package is a startup error (exit status 1, one line saying
//! which), never a failure per connection. Each connection then runs it by
//! its path (`sys::Program::Path`), as `tcpserver` does: a script works,
//! and an upgraded program takes effect from the next connection.
//!
//! The hand-over (`spawn.rs`): the connection on descriptors 0 and 1;
//! standard error left inherited, mpecho's own (under systemd the journal,
//! which attributes each line to the program's pid; with `--log-file` the
//! program's lines do not go to the log file, whose format is mpecho's);
//! the allow-listed environment plus the UCSPI variables
//! (`handoff::ConnectionEnv`). This module only finds and describes the
//! program: it runs nothing and logs nothing.

use std::ffi::{CString, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::sys;

/// PATH when the environment has none, as `execvp` assumes.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The program and its arguments, as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramCommand {
    pub name: OsString,
    pub args: Vec<OsString>,
}

/// Why `--exec PROG` cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    #[error("--exec {name}: no such program in PATH ({path}); give its full path, or install it")]
    NotFound { name: String, path: String },
    #[error(
        "--exec {path}: {source}; it must be an executable file that the user the server runs as \
         may run"
    )]
    Unusable { path: String, source: io::Error },
    #[error("--exec: the program and its arguments cannot contain a NUL byte")]
    Nul,
}

impl ProgramCommand {
    /// Finds the program, checks that it can be run, and returns its path.
    pub fn resolve(&self) -> Result<PathBuf, ProgramError> {
        let name = Path::new(&self.name);
        if self.name.as_bytes().contains(&b'/') {
            return usable(name).map(|()| name.to_path_buf());
        }
        let path = std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into());
        let mut last_error = None;
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if !candidate.exists() {
                continue;
            }
            // As execvp: a found file that cannot be run is reported only
            // if nothing later in PATH can be.
            match usable(&candidate) {
                Ok(()) => return Ok(candidate),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| ProgramError::NotFound {
            name: name.display().to_string(),
            path: path.to_string_lossy().into_owned(),
        }))
    }

    /// The argument vector: the name as given (argv\[0\], as `execvp`
    /// passes it), then the arguments.
    pub fn argv(&self) -> Result<Vec<CString>, ProgramError> {
        std::iter::once(&self.name)
            .chain(&self.args)
            .map(|a| CString::new(a.as_bytes()).map_err(|_| ProgramError::Nul))
            .collect()
    }
}

/// Whether `path` is a regular file this process may execute.
fn usable(path: &Path) -> Result<(), ProgramError> {
    let unusable = |source| ProgramError::Unusable {
        path: path.display().to_string(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(unusable)?;
    if !meta.is_file() {
        return Err(unusable(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    sys::check_executable(path).map_err(unusable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(name: &str) -> ProgramCommand {
        ProgramCommand {
            name: name.into(),
            args: vec!["-u".into()],
        }
    }

    #[test]
    fn a_program_is_found_in_path_or_refused_saying_why() {
        let cat = command("cat").resolve().expect("cat is in PATH");
        assert!(cat.is_absolute() && cat.ends_with("cat"), "{cat:?}");
        let missing = command("no-such-program-mpecho").resolve().unwrap_err();
        assert!(
            matches!(missing, ProgramError::NotFound { .. }),
            "{missing}"
        );
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "#!/bin/sh\n").unwrap();
        let not_executable = command(plain.to_str().unwrap()).resolve().unwrap_err();
        assert!(
            matches!(not_executable, ProgramError::Unusable { .. }),
            "{not_executable}"
        );
        let directory = command("/tmp").resolve().unwrap_err();
        assert!(
            directory.to_string().contains("not a regular file"),
            "{directory}"
        );
        let argv = command("cat").argv().unwrap();
        assert_eq!(argv, [c"cat".to_owned(), c"-u".to_owned()]);
    }
}
