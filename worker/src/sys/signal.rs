//! Signal dispositions through `rt_sigaction` directly. Without libc
//! nobody provides the `SA_RESTORER` trampoline that x86_64 requires for
//! a handler to return: `mpecho_worker_restore_rt` below is it (what
//! glibc calls `__restore_rt`), a bare `rt_sigreturn`.
//!
//! Installs only handlers the caller vouches are async-signal-safe; never
//! blocks or unblocks signals (the master starts every worker with an
//! empty mask and default dispositions, DESIGN §3).

use mpecho_handoff::Errno;

use super::syscall::{self, result, syscall};

/// The signals the worker deals with.
#[derive(Clone, Copy)]
#[repr(i32)]
pub enum Signal {
    Pipe = 13,
    Term = 15,
}

const SA_RESTART: u64 = 0x1000_0000;
const SA_RESTORER: u64 = 0x0400_0000;
const SIG_IGN: usize = 1;

/// The kernel's `struct sigaction` on x86_64 (not libc's: the mask is
/// the kernel's 64 bits, and the restorer comes before it).
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

// Where a handler returns to: the kernel pushed this address as the
// handler's return address, with the saved context just above the stack
// pointer; rt_sigreturn (15) restores it. No prologue may touch rsp.
core::arch::global_asm!(
    ".globl mpecho_worker_restore_rt",
    ".hidden mpecho_worker_restore_rt",
    ".type mpecho_worker_restore_rt,@function",
    "mpecho_worker_restore_rt:",
    "mov eax, 15",
    "syscall",
    "ud2",
);

unsafe extern "C" {
    /// Never called from Rust: its address goes to the kernel.
    fn mpecho_worker_restore_rt();
}

/// Installs `handler` for `signal`, with `signal` itself masked while it
/// runs and interrupted slow calls restarted (`SA_RESTART`), as the
/// worker always had it.
pub fn install_handler(signal: Signal, handler: extern "C" fn(i32)) -> Result<(), Errno> {
    set_action(signal, handler as *const () as usize, SA_RESTART)
}

/// Makes `signal` ignored.
pub fn ignore(signal: Signal) -> Result<(), Errno> {
    set_action(signal, SIG_IGN, 0)
}

fn set_action(signal: Signal, handler: usize, flags: u64) -> Result<(), Errno> {
    let number = signal as i32;
    let action = KernelSigaction {
        handler,
        flags: flags | SA_RESTORER,
        restorer: mpecho_worker_restore_rt as *const () as usize,
        mask: 1 << (number - 1),
    };
    // SAFETY: `action` is a valid kernel sigaction for the call's
    // duration (the kernel copies it), the old action is not asked for
    // (NULL), and 8 is the size of the kernel's signal set. The handler
    // is the caller's promise: an `extern "C" fn(i32)` that is
    // async-signal-safe; the restorer is the trampoline above.
    result(unsafe {
        syscall(
            syscall::RT_SIGACTION,
            [number as usize, &raw const action as usize, 0, 8, 0, 0],
        )
    })
    .map(drop)
}
