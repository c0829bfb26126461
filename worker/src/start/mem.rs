//! The memory functions the compiler emits calls to (copies, fills and
//! comparisons of slices and structs) and `CStr::from_ptr`'s `strlen`: a
//! program without libc must define them itself.
//!
//! Copies and fills are one `rep movsb`/`rep stosb` each (fast on every
//! x86_64 since Ivy Bridge, and small); comparisons and `strlen` read with
//! `read_volatile`, so that the optimiser cannot recognise the loop and
//! turn it back into a call to the very function being defined. Never
//! call anything from here.

use core::arch::asm;
use core::ptr;

/// # Safety
/// `dest` and `src` are valid for `n` bytes and do not overlap (the
/// compiler's contract for `memcpy`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: copies exactly `n` bytes forward from `src` to `dest`, both
    // valid (the caller's contract); the ABI guarantees the direction flag
    // is clear at a call.
    unsafe {
        asm!(
            "rep movsb",
            inout("rcx") n => _,
            inout("rdi") dest => _,
            inout("rsi") src => _,
            options(nostack, preserves_flags),
        );
    }
    dest
}

/// # Safety
/// `dest` and `src` are valid for `n` bytes; they may overlap.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dest as usize).wrapping_sub(src as usize) >= n {
        // `dest` is below `src`, or past the end of it: a forward copy
        // reads every byte before overwriting it.
        // SAFETY: as for memcpy; forward is correct for this overlap.
        return unsafe { memcpy(dest, src, n) };
    }
    // SAFETY: `dest` lies inside `src..src + n` (so n > 0): copy backwards
    // from the last byte, with the direction flag set only for this
    // instruction and cleared again before anything else runs.
    unsafe {
        asm!(
            "std",
            "rep movsb",
            "cld",
            inout("rcx") n => _,
            inout("rdi") dest.add(n - 1) => _,
            inout("rsi") src.add(n - 1) => _,
            options(nostack),
        );
    }
    dest
}

/// # Safety
/// `dest` is valid for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memset(dest: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: writes exactly `n` bytes at `dest`, valid (the caller's
    // contract); the direction flag is clear at a call.
    unsafe {
        asm!(
            "rep stosb",
            inout("rcx") n => _,
            inout("rdi") dest => _,
            in("al") c as u8,
            options(nostack, preserves_flags),
        );
    }
    dest
}

/// # Safety
/// `a` and `b` are valid for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        // SAFETY: `i < n`, and both are valid for `n` bytes.
        let (x, y) = unsafe { (ptr::read_volatile(a.add(i)), ptr::read_volatile(b.add(i))) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
    }
    0
}

/// # Safety
/// `a` and `b` are valid for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: the same contract as memcmp, whose answer is as good.
    unsafe { memcmp(a, b, n) }
}

/// # Safety
/// `s` points to a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn strlen(s: *const u8) -> usize {
    let mut n = 0;
    // SAFETY: every byte up to and including the NUL is part of the
    // string (the caller's contract), and reading stops at the NUL.
    while unsafe { ptr::read_volatile(s.add(n)) } != 0 {
        n += 1;
    }
    n
}
