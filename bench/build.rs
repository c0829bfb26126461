//! Build script: compiles the tiny static C program that `mpecho-bench
//! spawn-probe` starts in a loop to measure the machine's own
//! process-creation ceiling (DESIGN §11's reference row), and hands its path
//! to the crate as `MPECHO_SPAWN_PROBE_PROGRAM` for `include_bytes!`.
//!
//! It must never fail the build: without a C compiler or a static libc
//! (or when cross-compiling, where the host's compiler would build for the
//! wrong machine) it leaves an empty file there instead, and spawn-probe
//! then says that it is unavailable.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The reference program: the least a process can do.
const SOURCE: &str = "int main(void) { return 0; }\n";

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=CC");
    let Some(out_dir) = env::var_os("OUT_DIR").map(PathBuf::from) else {
        // Cargo always sets OUT_DIR; without it there is nowhere to write.
        println!("cargo::warning=OUT_DIR is not set: spawn-probe is unavailable");
        return;
    };
    let program = out_dir.join("spawn-probe-child");
    if let Err(reason) = compile(&out_dir, &program) {
        println!("cargo::warning=spawn-probe is unavailable: {reason}");
        if let Err(e) = fs::write(&program, b"") {
            println!("cargo::warning=could not write {}: {e}", program.display());
        }
    }
    println!(
        "cargo::rustc-env=MPECHO_SPAWN_PROBE_PROGRAM={}",
        program.display()
    );
}

/// Compiles SOURCE with `cc -static -O2 -s` into `program`.
fn compile(out_dir: &Path, program: &Path) -> Result<(), String> {
    if env::var("TARGET").ok() != env::var("HOST").ok() {
        return Err("cross-compiling (the host's C compiler builds for the host)".to_string());
    }
    let source = out_dir.join("spawn-probe-child.c");
    fs::write(&source, SOURCE).map_err(|e| format!("could not write {}: {e}", source.display()))?;
    let cc = env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let output = Command::new(&cc)
        .args(["-static", "-O2", "-s", "-o"])
        .arg(program)
        .arg(&source)
        .output()
        .map_err(|e| format!("could not run the C compiler `{cc}`: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let first = stderr.lines().next().unwrap_or("no message");
        return Err(format!(
            "`{cc} -static` failed ({}): {first}",
            output.status
        ));
    }
    Ok(())
}
