//! The `syscall` instruction, and the kernel's error convention turned
//! into a `Result`. The numbers are x86_64's (asm/unistd_64.h).
//!
//! Only the mechanism: which call, with what, is the other files' to
//! decide and to vouch for; nothing here is callable without `unsafe`.

use core::arch::asm;

use mpecho_handoff::Errno;

pub const WRITE: usize = 1;
pub const CLOSE: usize = 3;
pub const RT_SIGACTION: usize = 13;
pub const GETPID: usize = 39;
pub const SENDTO: usize = 44;
pub const RECVFROM: usize = 45;
pub const SHUTDOWN: usize = 48;
pub const GETSOCKNAME: usize = 51;
pub const GETPEERNAME: usize = 52;
pub const SETSOCKOPT: usize = 54;
pub const GETSOCKOPT: usize = 55;
pub const FCNTL: usize = 72;
pub const PRCTL: usize = 157;
pub const CLOCK_GETTIME: usize = 228;
pub const EXIT_GROUP: usize = 231;

/// System call `nr` with up to six arguments (unused ones 0).
///
/// # Safety
/// The arguments must be what the kernel expects for `nr`: every pointer
/// valid for what the call reads or writes through it, for its length.
#[inline(always)]
pub unsafe fn syscall(nr: usize, args: [usize; 6]) -> isize {
    let ret: isize;
    // SAFETY: the x86_64 Linux convention: number in rax, arguments in
    // rdi, rsi, rdx, r10, r8, r9; the kernel returns in rax and clobbers
    // rcx and r11 only. The memory the call touches is the caller's
    // promise (above); the stack is not used.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr as isize => ret,
            in("rdi") args[0],
            in("rsi") args[1],
            in("rdx") args[2],
            in("r10") args[3],
            in("r8") args[4],
            in("r9") args[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// The kernel returns -errno (from -4095 to -1) on failure.
#[inline]
pub fn result(ret: isize) -> Result<usize, Errno> {
    if (-4095..0).contains(&ret) {
        Err(Errno(-ret as i32))
    } else {
        Ok(ret as usize)
    }
}
