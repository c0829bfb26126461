//! The echo buffer, a `static` in .bss handed out once as `&mut`.
//!
//! Why not the stack: the kernel maps a .bss page only when it is first
//! written, so a session that echoes 64 bytes at a time touches one page
//! of the 16 KiB; a 16 KiB array on the stack would have every page
//! touched up front by the compiler's stack probes.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

pub const ECHO_BUFFER_SIZE: usize = 16 * 1024;

struct Buffer(UnsafeCell<[u8; ECHO_BUFFER_SIZE]>);

// SAFETY: the only access is through the one `&mut` that `echo_buffer`
// hands out, guarded by TAKEN; the process has one thread, and the
// signal handler never touches the buffer.
unsafe impl Sync for Buffer {}

static BUFFER: Buffer = Buffer(UnsafeCell::new([0; ECHO_BUFFER_SIZE]));
static TAKEN: AtomicBool = AtomicBool::new(false);

/// The echo buffer, the first time; `None` after that, so there is never
/// a second reference to it.
pub fn echo_buffer() -> Option<&'static mut [u8; ECHO_BUFFER_SIZE]> {
    if TAKEN.swap(true, Ordering::Relaxed) {
        return None;
    }
    // SAFETY: TAKEN was false, so no reference to the buffer exists, and
    // none will be made again: this one is unique for the process's life.
    Some(unsafe { &mut *BUFFER.0.get() })
}
