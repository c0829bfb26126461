//! What makes `mpecho-worker` a program of its own, without a C runtime:
//! `_start` and the initial stack (`entry.rs`), the panic handler, and
//! the memory functions the compiler calls (`mem.rs`). The executable's
//! only `unsafe` blocks outside the library's `sys/`, each with a
//! `// SAFETY:` comment.
//!
//! Never part of the library: linked into `mpecho` (`--model fork`),
//! these symbols would clash with glibc's `_start`, `memcpy`… and with
//! std's panic handler.

mod entry;
mod mem;

pub use entry::Process;
