//! Builds the worker executable (`worker/`, `mpecho-worker`) so that
//! `mpecho` can carry it inside itself (`include_bytes!` of the path this
//! script hands over as `MPECHO_WORKER_ELF`).
//!
//! Why inside: the master must run the worker of its own build, and only
//! that one (DESIGN §2, §11). A worker file installed beside `mpecho` can go
//! missing, be left over from another build of the same version, or not be
//! installed at all (`cargo run` and `cargo install` build only the package
//! they are asked for). A worker carried in the master's own bytes cannot.
//!
//! The worker is a `no_std`, no-libc program linked its own way, so it is
//! built by a cargo of its own, into a target directory of its own under
//! `OUT_DIR` (the outer cargo holds the lock on the usual one), always
//! optimised: it is what every connection runs, in tests too. This script
//! never writes outside `OUT_DIR` and fails the build, saying why, when the
//! worker does not build.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let target = env::var("TARGET").expect("cargo sets TARGET");
    for input in ["worker", "handoff", "Cargo.lock", ".cargo/config.toml"] {
        println!(
            "cargo::rerun-if-changed={}",
            manifest_dir.join(input).display()
        );
    }
    println!("cargo::rerun-if-changed=build.rs");

    let target_dir = out_dir.join("worker-target");
    let elf = build_worker(&manifest_dir, &target_dir, &target);
    println!("cargo::rustc-env=MPECHO_WORKER_ELF={}", elf.display());
}

/// Runs `cargo build --release -p mpecho-worker` for `target` into
/// `target_dir` and returns the executable's path.
fn build_worker(manifest_dir: &Path, target_dir: &Path, target: &str) -> PathBuf {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(manifest_dir)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "mpecho-worker",
            "--target",
            target,
        ])
        .arg("--target-dir")
        .arg(target_dir);
    // The outer cargo's wrappers (clippy-driver under `cargo clippy`) and
    // its private settings for this build script are not for the worker's
    // build; the flags of .cargo/config.toml apply to it as to any build.
    for var in [
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET_DIR",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        command.env_remove(var);
    }
    let status = command
        .status()
        .unwrap_or_else(|e| panic!("could not run cargo to build mpecho-worker: {e}"));
    assert!(
        status.success(),
        "building mpecho-worker (worker/) failed ({status}): see the errors above"
    );
    let elf = target_dir
        .join(target)
        .join("release")
        .join("mpecho-worker");
    assert!(
        elf.is_file(),
        "cargo built mpecho-worker but {} is not there",
        elf.display()
    );
    elf
}
