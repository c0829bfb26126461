//! The version this build of mpecho reports where two builds must be told
//! apart: the upgrade check's answer (`mpecho upgrade-check`) and the
//! master's `upgraded from … to …` line.
//!
//! It is the package version, plus a build id when one is set. The id is a
//! fixed-length marker in the executable's data ([`BUILD_ID`]), not a
//! build-time variable: a release process (or a test that needs a second,
//! different build) stamps a copy of the executable by rewriting the eight
//! bytes after `MPECHO_BUILD_ID=` in place, without a second compilation
//! (a full release build takes minutes on the 2-core machine). Unstamped,
//! the id is eight dashes and the version is the package's alone.
//!
//! This module only reads the marker; it never writes the executable.

/// The marker: a 16-byte prefix, then the 8-byte id. Kept in the binary
/// (`#[used]`) and read through an opaque reference (`black_box`), so the
/// compiler cannot fold the unstamped value into the code that reads it.
#[used]
static BUILD_ID: [u8; 24] = *b"MPECHO_BUILD_ID=--------";

/// The length of the prefix before the id.
const PREFIX_LEN: usize = 16;

/// The id stamped into this executable, if any.
pub fn build_id() -> Option<String> {
    // The reference is opaque to the optimiser: the bytes are loaded from
    // the file's data at run time, as a stamped copy has them.
    let bytes: &[u8; 24] = std::hint::black_box(&BUILD_ID);
    let id = &bytes[PREFIX_LEN..];
    if id.iter().all(|&b| b == b'-') {
        return None;
    }
    Some(String::from_utf8_lossy(id).into_owned())
}

/// `0.1.0`, or `0.1.0+ID` for a stamped build.
pub fn version() -> String {
    let package = env!("CARGO_PKG_VERSION");
    match build_id() {
        Some(id) => format!("{package}+{id}"),
        None => package.to_string(),
    }
}
