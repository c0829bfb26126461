//! This process: its id and name, its descriptors' state, writing whole
//! buffers, the clocks, and the way out (`exit_group`). Never opens or
//! closes a descriptor.

use core::ffi::CStr;
use core::time::Duration;

use mpecho_handoff::Errno;

use super::syscall::{self, result, syscall};

const F_GETFD: usize = 1;
const PR_SET_NAME: usize = 15;
const CLOCK_REALTIME: usize = 0;
const CLOCK_MONOTONIC: usize = 1;

/// Whether descriptor `fd` is open (`fcntl(F_GETFD)`: EBADF if not).
pub fn check_open(fd: i32) -> Result<(), Errno> {
    // SAFETY: F_GETFD reads the descriptor's flags and nothing else.
    result(unsafe { syscall(syscall::FCNTL, [fd as usize, F_GETFD, 0, 0, 0, 0]) }).map(drop)
}

/// Writes all of `buf` to `fd`, one `write(2)` at a time (a log line is
/// one, unless a full disk cuts it short), retrying on EINTR, giving up on
/// an error or a write of nothing.
pub fn write_all(fd: i32, mut buf: &[u8]) -> Result<(), Errno> {
    while !buf.is_empty() {
        // SAFETY: `buf` is valid for reads of its length.
        let ret = unsafe {
            syscall(
                syscall::WRITE,
                [fd as usize, buf.as_ptr() as usize, buf.len(), 0, 0, 0],
            )
        };
        match result(ret) {
            Ok(0) => return Err(Errno::EPIPE),
            Ok(n) => buf = &buf[n.min(buf.len())..],
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// This process's id.
pub fn pid() -> u32 {
    // SAFETY: getpid takes nothing and cannot fail.
    unsafe { syscall(syscall::GETPID, [0; 6]) as u32 }
}

/// Names the process `name` in `ps`, `top` and `pgrep` (the kernel's
/// `comm`, cut to 15 bytes).
pub fn set_name(name: &CStr) -> Result<(), Errno> {
    // SAFETY: `name` is NUL-terminated and outlives the call; the kernel
    // copies at most 16 bytes from it and changes only this thread's name.
    result(unsafe {
        syscall(
            syscall::PRCTL,
            [PR_SET_NAME, name.as_ptr() as usize, 0, 0, 0, 0],
        )
    })
    .map(drop)
}

/// The time since the Unix epoch (`CLOCK_REALTIME`), for log lines.
pub fn wall_clock() -> Duration {
    clock(CLOCK_REALTIME)
}

/// A clock that only goes forward (`CLOCK_MONOTONIC`), for durations.
pub fn monotonic_clock() -> Duration {
    clock(CLOCK_MONOTONIC)
}

fn clock(id: usize) -> Duration {
    let mut ts = [0i64; 2];
    // SAFETY: clock_gettime writes one `struct timespec` (two 64-bit
    // fields on x86_64) to the array, which is that size. With a valid
    // clock id and pointer it cannot fail; a failure would leave zeros.
    unsafe {
        syscall(
            syscall::CLOCK_GETTIME,
            [id, ts.as_mut_ptr() as usize, 0, 0, 0, 0],
        )
    };
    Duration::new(ts[0].max(0) as u64, ts[1].clamp(0, 999_999_999) as u32)
}

/// Ends the process (every thread: there is one) with `status`, at once:
/// nothing else runs (no destructor, no `atexit` handler of a program
/// this library is linked into).
pub fn exit(status: i32) -> ! {
    loop {
        // SAFETY: exit_group takes a number and does not return; the loop
        // only satisfies the type.
        unsafe { syscall(syscall::EXIT_GROUP, [status as usize, 0, 0, 0, 0, 0]) };
    }
}
