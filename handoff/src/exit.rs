//! How a worker ends, as its exit status: written by the worker, read back
//! by the master's reaper. Only statuses; nothing here exits.

/// How a worker ended, as its exit status. The master's reaper reads these
/// back; any other status (or a signal) is a failure it did not plan for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum WorkerExit {
    /// The client left, or the master asked the worker to finish.
    Done = 0,
    /// An I/O error on the connection (and a worker that panicked).
    IoError = 1,
    /// Started wrongly: by hand, without a socket on descriptor 3, or with
    /// options the master never writes.
    Usage = 2,
    /// The client neither sent nor consumed anything for the idle timeout.
    IdleTimeout = 3,
}

impl WorkerExit {
    pub const ALL: [WorkerExit; 4] = [
        WorkerExit::Done,
        WorkerExit::IoError,
        WorkerExit::Usage,
        WorkerExit::IdleTimeout,
    ];

    pub const fn code(self) -> i32 {
        self as i32
    }

    /// The status `code` stands for, if a worker ever exits with it.
    pub fn from_code(code: i32) -> Option<WorkerExit> {
        WorkerExit::ALL
            .into_iter()
            .find(|status| status.code() == code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_statuses_round_trip() {
        for status in WorkerExit::ALL {
            assert_eq!(WorkerExit::from_code(status.code()), Some(status));
        }
        assert_eq!(WorkerExit::from_code(42), None);
    }
}
