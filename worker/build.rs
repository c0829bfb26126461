//! Links `mpecho-worker` as a program of its own: its own `_start`, no C
//! runtime, no libc, no dynamic loader. Only for the binary; nothing else
//! in the workspace is linked this way.

fn main() {
    // -nostartfiles: no crt1.o/crti.o, `_start` is src/start/entry.rs's.
    // -nostdlib: no libc or libgcc (src/start/mem.rs provides what the compiler
    // calls). -static: no interpreter; with the workspace's
    // relocation-model=static (.cargo/config.toml) the executable is
    // non-PIE too, so the kernel maps it and jumps to `_start` with no
    // relocation to apply.
    // -z norelro: with nothing to relocate there is nothing for RELRO to
    // protect, and its segment's zeroed padding would cost every worker a
    // private dirty page; .data.rel.ro and .got join .data instead.
    for arg in ["-nostartfiles", "-nostdlib", "-static", "-Wl,-z,norelro"] {
        println!("cargo::rustc-link-arg-bins={arg}");
    }
    println!("cargo::rerun-if-changed=build.rs");
}
