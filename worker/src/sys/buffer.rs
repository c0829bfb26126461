//! The worker's two big buffers, `static`s in .bss lent out one borrower
//! at a time (never two references to one buffer, never one to a signal
//! handler): the 16 KiB echo buffer, and 4000 bytes for a log line too
//! long for the small one on the stack (none the worker writes today).
//!
//! Why not the stack: the kernel maps a .bss page only when it is first
//! written, so a session that echoes 64 bytes at a time touches one page
//! of the echo buffer, the one it shares with the worker's few other
//! statics (measured: 4 kB of .data and .bss in all per idle worker). On
//! the stack, the compiler's probes would touch all 16 KiB up front, and a
//! 4000-byte frame pushes the frames below it onto a page of their own
//! (measured: the idle worker's stack at 12 kB instead of 8 kB).

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

use mpecho_handoff::MAX_LINE;

pub const ECHO_BUFFER_SIZE: usize = 16 * 1024;

/// A buffer lent to one borrower at a time. The flag comes first
/// (`repr(C)`): written at every loan, it shares its page with the
/// buffer's first bytes instead of dirtying one past the buffer's end.
#[repr(C)]
pub struct Lent<const N: usize> {
    lent: AtomicBool,
    bytes: UnsafeCell<[u8; N]>,
}

// SAFETY: the bytes are only reached through `with`, which lends them to
// one closure at a time (`lent`); the process has one thread, and signal
// handlers never borrow a buffer.
unsafe impl<const N: usize> Sync for Lent<N> {}

impl<const N: usize> Lent<N> {
    const fn new() -> Self {
        Lent {
            lent: AtomicBool::new(false),
            bytes: UnsafeCell::new([0; N]),
        }
    }

    /// Runs `f` with the buffer, or returns `None` if it is lent already
    /// (a borrower calling back into itself).
    pub fn with<R>(&'static self, f: impl FnOnce(&mut [u8; N]) -> R) -> Option<R> {
        if self.lent.swap(true, Ordering::Acquire) {
            return None;
        }
        // SAFETY: `lent` was false, so no reference to the bytes exists;
        // this one lives only as long as `f` runs, and `lent` keeps any
        // other from being made meanwhile.
        let result = f(unsafe { &mut *self.bytes.get() });
        self.lent.store(false, Ordering::Release);
        Some(result)
    }
}

/// Both buffers, in this order (`repr(C)`): the echo buffer's first bytes
/// come right after the .bss statics, in the page the kernel dirties anyway
/// when it zeroes the end of .data's last page, and the line buffer, used
/// only for a long line, comes after it.
#[repr(C)]
pub struct Buffers {
    /// The echo buffer (DESIGN §11: large enough for bulk transfers in
    /// few calls, small enough for ten thousand idle workers).
    pub echo: Lent<ECHO_BUFFER_SIZE>,
    /// Where a log line too long for the stack's buffer is formatted.
    pub line: Lent<MAX_LINE>,
}

pub static BUFFERS: Buffers = Buffers {
    echo: Lent::new(),
    line: Lent::new(),
};
