//! How host names are resolved in mpecho's static build.
//!
//! Never loads an NSS module: a static glibc that does can crash.

use std::ffi::{c_char, c_int};
use std::io;

use super::check;

unsafe extern "C" {
    // glibc: replaces the nsswitch.conf services for one database.
    fn __nss_configure_lookup(db: *const c_char, service_line: *const c_char) -> c_int;
}

/// Resolves host names through glibc's built-in `files` and `dns` services
/// only, whatever nsswitch.conf lists.
///
/// mpecho is linked statically, and a static glibc that loads an external
/// NSS module (`libnss_resolve`, `libnss_mdns`, … built against the shared
/// libc) can crash; the two built-in services need no module at all.
pub fn resolve_hosts_with_files_and_dns() -> io::Result<()> {
    // SAFETY: both arguments are NUL-terminated literals; the call only
    // records the service line for later lookups, and the process is
    // single-threaded when it is made.
    check(unsafe { __nss_configure_lookup(c"hosts".as_ptr(), c"files dns".as_ptr()) }).map(drop)
}
