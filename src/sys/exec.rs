//! Replacing this process's image in place (`execve` keeps the pid, the
//! children and every descriptor not marked close-on-exec): what the
//! master's upgrade (`server/upgrade.rs`) needs from the kernel, and only
//! that: a sealed memory file holding the state, the close-on-exec flag of
//! the descriptors handed over, and the exec itself.
//!
//! This file decides nothing (which descriptors, which program, which
//! state are the caller's) and never leaves a descriptor without
//! close-on-exec unless its caller asked for it on purpose, for the one
//! exec that hands it over.

use std::ffi::{CStr, CString, c_char};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::check;

/// A memory file (close-on-exec) holding `bytes`, sealed so that nobody,
/// the reader included, can change or resize it: the next image reads
/// exactly what this one wrote.
pub fn sealed_memfd(name: &CStr, bytes: &[u8]) -> io::Result<OwnedFd> {
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // SAFETY: a NUL-terminated name; memfd_create returns a new descriptor
    // owned by no one else (or -1).
    let fd = check(unsafe { libc::memfd_create(name.as_ptr(), flags) })?;
    // SAFETY: just created by memfd_create, owned by no one else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    super::write_all_unbuffered(fd.as_fd(), bytes)?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: F_ADD_SEALS only changes the seals of a memfd we own.
    check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) })?;
    // Read from the start by the next image.
    // SAFETY: lseek on a descriptor we own moves its offset only.
    check(unsafe { libc::lseek(fd.as_raw_fd(), 0, libc::SEEK_SET) })?;
    Ok(fd)
}

/// Sets (`true`) or clears (`false`) the close-on-exec flag of `fd`.
pub fn set_cloexec(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFD/F_SETFD read and change the descriptor flags of a
    // descriptor the caller holds (borrowed, so open for the call).
    let flags = check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) })?;
    let flags = if on {
        flags | libc::FD_CLOEXEC
    } else {
        flags & !libc::FD_CLOEXEC
    };
    // SAFETY: as above.
    check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, flags) })?;
    Ok(())
}

/// Replaces this process's image with `path`, run with `argv` and `envp`.
/// Returns only when the exec failed, with why; the process then carries
/// on with its image untouched.
pub fn exec_in_place(path: &CStr, argv: &[CString], envp: &[CString]) -> io::Error {
    let argv_ptrs = null_terminated(argv);
    let envp_ptrs = null_terminated(envp);
    // SAFETY: three NUL-terminated strings and two NULL-terminated arrays
    // of pointers into `argv` and `envp`, which outlive the call. execve
    // returns only on failure, leaving the process as it was.
    unsafe { libc::execve(path.as_ptr(), argv_ptrs.as_ptr(), envp_ptrs.as_ptr()) };
    io::Error::last_os_error()
}

fn null_terminated(strings: &[CString]) -> Vec<*const c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain([std::ptr::null()])
        .collect()
}
