//! Where the binaries under test are: the one place that decides which
//! `mpecho` every test and bench runs.
//!
//! `env!("CARGO_BIN_EXE_mpecho")` exists only in the mpecho package's own
//! integration tests, not in a library they share, so the binaries are
//! found the way assert_cmd finds them: the running test (or bench)
//! executable is in `target/<triple>/<profile>/deps/`, the package's
//! binaries one directory up, built by cargo before it runs the tests.
//! `MPECHO_BIN` overrides that (to run the benches against another build,
//! for a before/after comparison).
//!
//! The `mpecho-worker` file the workspace builds is beside whichever mpecho
//! that is ([`worker_bin`]): `mpecho serve` runs the copy built into it, so
//! tests need the file only for `--worker` and for `Accept=yes` units. The
//! root package's examples are in `examples/` of that same directory
//! ([`example`]).
//!
//! Never fall back to `PATH`: a test must not silently run some other
//! installed mpecho.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The environment variable naming the mpecho executable to run instead of
/// the one cargo built next to the tests.
pub const MPECHO_BIN: &str = "MPECHO_BIN";

/// The directory of the package's binaries (`target/<triple>/<profile>/`):
/// the one holding the running test executable, or its parent when that is
/// `deps/`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("find the path of the running test executable");
    let mut dir = exe
        .parent()
        .expect("the test executable is in a directory")
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// The binary `name` of the package under test, next to the running test
/// executable; panics saying how to build it when it is missing.
pub fn binary(name: &str) -> PathBuf {
    let path = profile_dir().join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "there is no `{name}` binary at {}: cargo builds it before the tests of the package \
         that defines it; from elsewhere, build it first with `cargo build --bin {name}` \
         (`--release` for benches), or set {MPECHO_BIN} to an mpecho executable",
        path.display()
    );
    path
}

/// The example program `name` of the package under test
/// (`examples/NAME.rs`, built into `examples/` beside its binaries); panics
/// saying how to build it when it is missing.
///
/// Cargo builds the examples for a plain `cargo test`, but not for `cargo
/// test --test NAME`: after changing an example, `cargo build --examples`
/// before running one test target alone, or the test runs the example as
/// it was last built.
pub fn example(name: &str) -> PathBuf {
    let path = profile_dir()
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "there is no example `{name}` at {}: a plain `cargo test` builds the examples \
         before it runs the tests; before `cargo test --test NAME`, build them with \
         `cargo build --examples`",
        path.display()
    );
    path
}

/// The mpecho executable every test and bench runs: `MPECHO_BIN` if set,
/// else `binary("mpecho")`. Decided once per process.
pub fn mpecho_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| match std::env::var_os(MPECHO_BIN) {
        Some(path) => std::fs::canonicalize(&path).unwrap_or_else(|e| {
            panic!(
                "{MPECHO_BIN}={} is not an mpecho executable: {e}",
                Path::new(&path).display()
            )
        }),
        None => binary("mpecho"),
    })
}

/// The `mpecho-worker` file built beside [`mpecho_bin`] (for `--worker` and
/// `Accept=yes` units; `mpecho serve` runs the copy built into it).
pub fn worker_bin() -> PathBuf {
    let path = mpecho_bin().with_file_name("mpecho-worker");
    assert!(
        path.is_file(),
        "there is no mpecho-worker beside {}: `cargo build --workspace` (or a plain `cargo \
         build` at the root) builds both",
        mpecho_bin().display()
    );
    path
}
