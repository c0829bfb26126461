//! The worker's whole contact with the machine: every `unsafe` block of
//! the worker library is in this module, each with a `// SAFETY:` comment,
//! and everything above it is safe Rust. One file per concern:
//! - `syscall.rs`: the `syscall` instruction and its error convention;
//! - `signal.rs`: `rt_sigaction` with our own `SA_RESTORER` trampoline;
//! - `socket.rs`: the client socket's calls (addresses, options, I/O);
//! - `process.rs`: descriptors, the process's name and id, the clocks,
//!   `exit_group`;
//! - `buffer.rs`: the echo and log line buffers, `static`s in .bss lent
//!   to one borrower at a time.
//!
//! Raw system calls, not libc's wrappers, so that the same code runs in
//! `mpecho-worker` (no libc at all) and in a child `mpecho` forked
//! (`--model fork`, glibc linked): nothing here depends on a C runtime,
//! and nothing caches what a fork changes (`pid` asks the kernel each
//! time). `_start` and the memory functions the compiler calls (`memcpy`…)
//! are the executable's (`src/start/`): linked into mpecho they would
//! clash with glibc's.
//!
//! What it must never do: allocate (there is no allocator), close a
//! descriptor except for the do-nothing ceiling, hold a descriptor of its own (the worker opens none: the master's tests count
//! them), keep state other than what a signal handler needs, or decide
//! anything: callers do.

mod buffer;
mod process;
mod signal;
mod socket;
mod syscall;

pub use buffer::{BUFFERS, ECHO_BUFFER_SIZE};
pub use process::{check_open, exit, monotonic_clock, pid, set_name, wall_clock, write_all};
pub use signal::{Signal, ignore, install_handler};
pub use socket::{
    Direction, Found, SOCK_STREAM, Shutdown, close, is_listening, local_address, peer_address,
    recv, send, set_timeout, shutdown, socket_type,
};
