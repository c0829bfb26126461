//! Dropping root: `--user NAME` and `--group NAME`.
//!
//! The master binds its port and opens the log while still root, then
//! becomes the given user (its primary group, or `--group`, plus its
//! supplementary groups) *before* it accepts anything, so no worker ever
//! runs as root. Names are resolved (from the files, see `accounts.rs`)
//! before anything is bound, so a typo fails fast and changes nothing.

use std::io;
use std::path::Path;

use crate::log::{info, warning};
use crate::sys;

use super::accounts::{self, GROUP, PASSWD, User};

/// Whom to become, resolved and checked.
#[derive(Debug, Clone)]
pub struct Identity {
    user: User,
    gid: u32,
    groups: Vec<u32>,
    group_name: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error("--user {0}: no such user")]
    NoSuchUser(String),
    #[error("--group {0}: no such group")]
    NoSuchGroup(String),
    #[error(
        "--user needs the server to start as root (it is running as uid {0}); start it as root, or leave --user out"
    )]
    NotRoot(u32),
    #[error("could not read {what}: {source}")]
    Lookup { what: String, source: io::Error },
    #[error("could not become user {user}: {source}")]
    Switch { user: String, source: io::Error },
}

/// Resolves `--user`/`--group`; `Ok(None)` when no user was asked for.
pub fn resolve(
    user: Option<&str>,
    group: Option<&str>,
) -> Result<Option<Identity>, PrivilegeError> {
    let Some(user_name) = user else {
        return Ok(None);
    };
    let euid = sys::effective_uid();
    if euid != 0 {
        return Err(PrivilegeError::NotRoot(euid));
    }
    let user = accounts::find_user(Path::new(PASSWD), user_name)
        .map_err(lookup_failed(PASSWD))?
        .ok_or_else(|| PrivilegeError::NoSuchUser(user_name.to_string()))?;
    let gid = match group {
        Some(group_name) => accounts::find_group(Path::new(GROUP), group_name)
            .map_err(lookup_failed(GROUP))?
            .ok_or_else(|| PrivilegeError::NoSuchGroup(group_name.to_string()))?,
        None => user.gid,
    };
    let groups = accounts::supplementary_groups(Path::new(GROUP), user_name, gid)
        .map_err(lookup_failed(GROUP))?;
    Ok(Some(Identity {
        user,
        gid,
        groups,
        group_name: group.map(str::to_string),
    }))
}

fn lookup_failed(file: &'static str) -> impl Fn(io::Error) -> PrivilegeError {
    move |source| PrivilegeError::Lookup {
        what: file.to_string(),
        source,
    }
}

/// Becomes `identity`, or warns once that the server keeps running as root.
pub fn drop_privileges(identity: Option<&Identity>) -> Result<(), PrivilegeError> {
    let Some(id) = identity else {
        if sys::effective_uid() == 0 {
            warning!(
                "serving as root: every worker runs as root too; use --user to drop privileges"
            );
        }
        return Ok(());
    };
    sys::become_user(id.user.uid, id.gid, &id.groups).map_err(|source| PrivilegeError::Switch {
        user: id.user.name.clone(),
        source,
    })?;
    info!(
        "running as user {} (uid {}), group {} (gid {})",
        id.user.name,
        id.user.uid,
        id.group_name.as_deref().unwrap_or("primary"),
        id.gid
    );
    Ok(())
}
