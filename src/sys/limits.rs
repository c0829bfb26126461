//! Resource limits (`getrlimit`/`setrlimit`) and the CPU time a process
//! and its reaped children have used (`getrusage`).
//!
//! Never decides what a limit should be: callers raise, read and report.

use std::io;
use std::mem::MaybeUninit;
use std::time::Duration;

use super::check;

/// A resource limit's soft and hard values (`RLIM_INFINITY` as `u64::MAX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub soft: u64,
    pub hard: u64,
}

/// Which resource limit.
#[derive(Debug, Clone, Copy)]
pub enum Resource {
    OpenFiles,
    Processes,
}

impl Resource {
    fn raw(self) -> libc::__rlimit_resource_t {
        match self {
            Resource::OpenFiles => libc::RLIMIT_NOFILE,
            Resource::Processes => libc::RLIMIT_NPROC,
        }
    }
}

pub fn get_limit(resource: Resource) -> io::Result<Limit> {
    let mut raw = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only to `raw`, a valid local.
    check(unsafe { libc::getrlimit(resource.raw(), &mut raw) })?;
    Ok(Limit {
        soft: raw.rlim_cur,
        hard: raw.rlim_max,
    })
}

pub fn set_soft_limit(resource: Resource, soft: u64) -> io::Result<()> {
    let hard = get_limit(resource)?.hard;
    let raw = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit only reads `raw`, a valid local.
    check(unsafe { libc::setrlimit(resource.raw(), &raw) }).map(drop)
}

/// Raises the soft limit of `resource` to its hard limit. Returns the
/// limits as they were when the soft one was raised, `None` when it already
/// was at the hard limit.
pub fn raise_soft_limit_to_hard(resource: Resource) -> io::Result<Option<Limit>> {
    let limit = get_limit(resource)?;
    if limit.soft >= limit.hard {
        return Ok(None);
    }
    set_soft_limit(resource, limit.hard)?;
    Ok(Some(limit))
}

/// CPU time as the kernel accounts it: in user mode and in the kernel on
/// the process's behalf.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTime {
    pub user: Duration,
    pub system: Duration,
}

impl CpuTime {
    pub fn total(&self) -> Duration {
        self.user + self.system
    }

    /// The time spent between an earlier reading and this one.
    pub fn since(&self, earlier: &CpuTime) -> CpuTime {
        CpuTime {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

/// Whose CPU time `cpu_time` reads.
#[derive(Debug, Clone, Copy)]
pub enum Usage {
    /// This process (`RUSAGE_SELF`, all its threads).
    OwnProcess,
    /// Its children that have ended and been reaped (`RUSAGE_CHILDREN`).
    ReapedChildren,
}

/// The CPU time used so far (`getrusage`).
pub fn cpu_time(who: Usage) -> io::Result<CpuTime> {
    let raw_who = match who {
        Usage::OwnProcess => libc::RUSAGE_SELF,
        Usage::ReapedChildren => libc::RUSAGE_CHILDREN,
    };
    let mut usage = MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes only to `usage`, a valid local.
    check(unsafe { libc::getrusage(raw_who, usage.as_mut_ptr()) })?;
    // SAFETY: getrusage succeeded, so it filled the structure (and it was
    // zeroed before, a valid value for every field in any case).
    let usage = unsafe { usage.assume_init() };
    let duration = |tv: libc::timeval| {
        Duration::from_secs(tv.tv_sec.max(0) as u64)
            + Duration::from_micros(tv.tv_usec.max(0) as u64)
    };
    Ok(CpuTime {
        user: duration(usage.ru_utime),
        system: duration(usage.ru_stime),
    })
}
