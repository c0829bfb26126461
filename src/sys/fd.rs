//! Descriptors: taking ownership of inherited ones, making 0-2 valid,
//! keeping stray ones from reaching an exec'd program, duplicating, flags.
//!
//! Every descriptor created here comes back as an `OwnedFd` (one owner,
//! closed once) and close-on-exec, except the `/dev/null` that fills a
//! closed standard descriptor, which is the process's own for life. This
//! file never closes or reuses a number it does not own, and never decides
//! which descriptors a process needs: callers do.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::check;

/// Takes ownership of descriptor `fd` that this process inherited, after
/// checking that it is open.
///
/// Fails with `EBADF` when nothing is open there, so a caller can explain
/// how the program is meant to be started instead of touching a closed
/// descriptor (or, worse, one that is opened later for something else).
pub fn adopt_inherited_fd(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_GETFD only reads the descriptor flags; it has no effect on
    // the descriptor and fails with EBADF if nothing is open at `fd`.
    check(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    // SAFETY: the descriptor is open (checked above) and was inherited for
    // this purpose; nothing else in the process refers to it, so making it
    // owned here gives it exactly one owner that closes it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens `/dev/null` on any of descriptors 0, 1 and 2 that is closed.
///
/// A process started with a standard descriptor closed would otherwise hand
/// that number to its next socket, and a write meant for stdout (the
/// `listening on` line) would go to a client. Rust's runtime does this before
/// `main`; mpecho skips that runtime (see main.rs) and does it here.
pub fn ensure_standard_fds() -> io::Result<()> {
    for fd in 0..=2 {
        // SAFETY: F_GETFD only reads the descriptor flags.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            // SAFETY: a NUL-terminated literal path; open returns the lowest
            // free descriptor, which is `fd` because all below it are open.
            let opened = check(unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) })?;
            debug_assert_eq!(
                opened, fd,
                "/dev/null must land on the closed standard descriptor"
            );
        }
    }
    Ok(())
}

/// Marks every descriptor above standard error close-on-exec.
///
/// A shell or service manager may start the master with stray descriptors
/// open; without this they would leak into every worker (DESIGN §2). Our own
/// descriptors are already close-on-exec (Rust opens everything that way),
/// so this only changes inherited ones.
pub fn close_inherited_fds_on_exec() -> io::Result<()> {
    let mut fds = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let name = entry?.file_name();
        if let Some(fd) = name.to_str().and_then(|s| s.parse::<RawFd>().ok())
            && fd > 2
        {
            fds.push(fd);
        }
    }
    for fd in fds {
        // SAFETY: F_GETFD/F_SETFD only change the close-on-exec flag. A
        // descriptor listed above may already be closed (the directory
        // stream's own one is); EBADF is then the expected answer.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        if flags >= 0 && flags & libc::FD_CLOEXEC == 0 {
            // SAFETY: as above.
            check(unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) })?;
        }
    }
    Ok(())
}

/// Duplicates `fd` onto the lowest free descriptor at or above `min`,
/// close-on-exec.
pub fn dup_at_least(fd: BorrowedFd<'_>, min: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC creates a new descriptor that nothing else
    // refers to; ownership passes to the returned OwnedFd.
    let new = check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) })?;
    // SAFETY: `new` was just created by fcntl and is owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Duplicates `fd` onto the number `target`, close-on-exec, and returns
/// the new descriptor's owner. For a number the caller's protocol reserves
/// and no one owns (a pool process's client on 3): whatever was open there
/// is closed first, by `dup3` itself.
pub fn dup_to(fd: BorrowedFd<'_>, target: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: dup3 makes `target` a new descriptor for `fd`'s open file;
    // the caller vouches that no one else owns the number `target`, so the
    // OwnedFd below is its only owner.
    let new = check(unsafe { libc::dup3(fd.as_raw_fd(), target, libc::O_CLOEXEC) })?;
    // SAFETY: as above.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Makes descriptor `target` refer to `source`'s open file, atomically and
/// close-on-exec (`dup3`): anyone holding the number `target` writes to the
/// new file from the next call on, and no moment exists at which the number
/// is closed. `target` stays owned by whoever owned it.
pub fn replace_fd(source: BorrowedFd<'_>, target: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: both descriptors are open (borrowed for the call); dup3
    // replaces what `target` refers to without closing the number, so its
    // owner still owns exactly one descriptor there.
    check(unsafe { libc::dup3(source.as_raw_fd(), target.as_raw_fd(), libc::O_CLOEXEC) })?;
    Ok(())
}

/// Whether this process (its effective ids) may execute the file at `path`.
pub fn check_executable(path: &Path) -> io::Result<()> {
    let path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `path` is a valid NUL-terminated string for the call;
    // faccessat only looks at the file.
    check(unsafe { libc::faccessat(libc::AT_FDCWD, path.as_ptr(), libc::X_OK, libc::AT_EACCESS) })?;
    Ok(())
}

/// Switches a descriptor to non-blocking mode.
pub fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    // SAFETY: F_GETFL/F_SETFL only change the open file's status flags.
    let flags = check(unsafe { libc::fcntl(raw, libc::F_GETFL) })?;
    // SAFETY: as above.
    check(unsafe { libc::fcntl(raw, libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
    Ok(())
}

/// A sealed, close-on-exec memory file holding `bytes`, meant to be
/// executed with `execveat(fd, "", AT_EMPTY_PATH)`, at a descriptor at or
/// above `min`. Sealed against writing, growing and shrinking, so the
/// program it holds is fixed for the life of the process.
pub fn memfd_executable(name: &CStr, bytes: &[u8], min: RawFd) -> io::Result<OwnedFd> {
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // Since Linux 6.3 a memfd must ask for MFD_EXEC to stay executable
    // where vm.memfd_noexec says otherwise; older kernels refuse the flag.
    // SAFETY: a NUL-terminated name; memfd_create returns a new descriptor
    // owned by no one else (or -1).
    let fd = check(unsafe { libc::memfd_create(name.as_ptr(), flags | libc::MFD_EXEC) }).or_else(
        |e| match e.raw_os_error() {
            // SAFETY: as above.
            Some(libc::EINVAL) => check(unsafe { libc::memfd_create(name.as_ptr(), flags) }),
            _ => Err(e),
        },
    )?;
    // SAFETY: just created by memfd_create, owned by no one else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    super::write_all_unbuffered(fd.as_fd(), bytes)?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: F_ADD_SEALS only changes the seals of a memfd we own.
    check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) })?;
    if fd.as_raw_fd() >= min {
        return Ok(fd);
    }
    dup_at_least(fd.as_fd(), min)
}

/// Opens `path` as a program to execute later through the descriptor
/// (`O_PATH|O_CLOEXEC`: no read or write access is asked for, so this
/// works on a file that is only executable), moved to `min` or above.
///
/// The descriptor names the file, not the path: what `spawn` later runs
/// is this very file, even after the path is renamed over or deleted.
pub fn open_executable(path: &Path, min: RawFd) -> io::Result<OwnedFd> {
    let path = super::c_string(path.as_os_str().as_bytes())?;
    // SAFETY: a NUL-terminated path; open returns a new descriptor owned
    // by no one else (or -1).
    let fd = check(unsafe { libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) })?;
    // SAFETY: just created by open, owned by no one else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    if fd.as_raw_fd() >= min {
        return Ok(fd);
    }
    dup_at_least(fd.as_fd(), min)
}
