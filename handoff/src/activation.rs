//! The part of socket activation (sd_listen_fds(3)) that the master and a
//! worker started by systemd share: whether `LISTEN_PID` and `LISTEN_FDS`
//! pass sockets to this process, and how many. The master's parser
//! (`mpecho::systemd::activation`) adds `LISTEN_FDNAMES` on top of it.
//!
//! Reads the values it is given; never the environment itself.

use core::fmt;

/// Descriptors a service manager can pass at most: far more than anyone
/// does, and a bound on a garbled `LISTEN_FDS` before a loop over it.
pub const MAX_PASSED: usize = 4096;

/// A garbled variable, quoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarsError<'a> {
    BadPid(&'a str),
    BadCount(&'a str),
}

impl fmt::Display for VarsError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VarsError::BadPid(pid) => write!(
                f,
                "LISTEN_PID={pid:?} is not a process id: the socket-activation variables are \
                 garbled (start mpecho from a .socket unit, or with no LISTEN_* variable set)"
            ),
            VarsError::BadCount(count) => write!(
                f,
                "LISTEN_FDS={count:?} is not a number of descriptors (1 to {MAX_PASSED}): the \
                 socket-activation variables are garbled (start mpecho from a .socket unit, or \
                 with no LISTEN_* variable set)"
            ),
        }
    }
}

/// How many sockets `LISTEN_PID` and `LISTEN_FDS` (as found in the
/// environment) pass to process `own_pid`: `None` when nothing was passed
/// to it, as sd_listen_fds(3) returns 0 (no `LISTEN_PID`, another
/// process's pid, no `LISTEN_FDS`, or 0 sockets).
pub fn passed_count<'a>(
    pid: Option<&'a str>,
    count: Option<&'a str>,
    own_pid: u32,
) -> Result<Option<usize>, VarsError<'a>> {
    let Some(pid) = pid else { return Ok(None) };
    let pid: u32 = pid.parse().map_err(|_| VarsError::BadPid(pid))?;
    let Some(count_text) = count else {
        return Ok(None);
    };
    if pid != own_pid {
        return Ok(None);
    }
    let count: usize = count_text
        .parse()
        .ok()
        .filter(|&n| n <= MAX_PASSED)
        .ok_or(VarsError::BadCount(count_text))?;
    Ok((count > 0).then_some(count))
}

/// A worker given other than one socket: it serves exactly one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotOneConnection(pub usize);

impl fmt::Display for NotOneConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "LISTEN_FDS={}: mpecho worker serves exactly one connection, on descriptor {} (a \
             .socket unit for it needs Accept=yes, which passes one connection per instance)",
            self.0,
            crate::CLIENT_FD
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    const ME: u32 = 4242;

    #[test]
    fn sockets_are_ours_only_with_our_pid_and_a_count() {
        assert_eq!(passed_count(None, Some("1"), ME), Ok(None));
        assert_eq!(passed_count(Some("4242"), None, ME), Ok(None));
        assert_eq!(passed_count(Some("1"), Some("1"), ME), Ok(None));
        assert_eq!(passed_count(Some("4242"), Some("0"), ME), Ok(None));
        assert_eq!(passed_count(Some("4242"), Some("2"), ME), Ok(Some(2)));
    }

    #[test]
    fn garbled_variables_are_errors_that_name_them() {
        let err = passed_count(Some("me"), Some("1"), ME).unwrap_err();
        assert!(err.to_string().starts_with("LISTEN_PID=\"me\""), "{err}");
        for bad in ["-1", "two", "99999"] {
            assert_eq!(
                passed_count(Some("4242"), Some(bad), ME),
                Err(VarsError::BadCount(bad))
            );
        }
    }
}
