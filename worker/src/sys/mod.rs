//! The worker's whole contact with the machine: every `unsafe` block of
//! `mpecho-worker` is in this module, each with a `// SAFETY:` comment, and
//! everything above it is safe Rust. One file per concern:
//! - `start.rs`: `_start`, the initial stack (arguments, environment), the
//!   panic handler and `exit_group`;
//! - `syscall.rs`: the `syscall` instruction and its error convention;
//! - `mem.rs`: `memcpy`, `memmove`, `memset`, `memcmp`, `bcmp`, `strlen`,
//!   which the compiler calls and no libc provides here;
//! - `signal.rs`: `rt_sigaction` with our own `SA_RESTORER` trampoline;
//! - `socket.rs`: the client socket's calls (addresses, options, I/O);
//! - `process.rs`: descriptors, the process's name and id, the clocks;
//! - `buffer.rs`: the echo and log line buffers, `static`s in .bss lent
//!   to one borrower at a time.
//!
//! What it must never do: allocate (there is no allocator), close a
//! descriptor except for the do-nothing ceiling, hold a descriptor of its own (the worker opens none: the master's tests count
//! them), keep state other than what a signal handler needs, or decide
//! anything: callers do.

mod buffer;
mod mem;
mod process;
mod signal;
mod socket;
mod start;
mod syscall;

pub use buffer::{BUFFERS, ECHO_BUFFER_SIZE};
pub use process::{check_open, monotonic_clock, pid, set_name, wall_clock, write_all};
pub use signal::{Signal, ignore, install_handler};
pub use socket::{
    Direction, Found, SOCK_STREAM, Shutdown, close, is_listening, local_address, peer_address,
    recv, send, set_timeout, shutdown, socket_type,
};
pub use start::Process;
