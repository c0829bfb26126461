//! Dropping root: `--user NAME` and `--group NAME`.
//!
//! The master binds its port and opens the log while still root, then
//! becomes the given user (its primary group, or `--group`, plus its
//! supplementary groups) *before* it accepts anything, so no worker ever
//! runs as root. Names are resolved before anything is bound, so a typo
//! fails fast and changes nothing.

use std::io;

use crate::log::{info, warning};
use crate::sys::{self, UserEntry};

/// Whom to become, resolved and checked.
#[derive(Debug, Clone)]
pub struct Identity {
    user: UserEntry,
    user_name: String,
    gid: u32,
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
    #[error("could not look up {what}: {source}")]
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
    let user = sys::lookup_user(user_name)
        .map_err(|source| PrivilegeError::Lookup {
            what: format!("user {user_name}"),
            source,
        })?
        .ok_or_else(|| PrivilegeError::NoSuchUser(user_name.to_string()))?;
    let gid = match group {
        Some(group_name) => sys::lookup_group(group_name)
            .map_err(|source| PrivilegeError::Lookup {
                what: format!("group {group_name}"),
                source,
            })?
            .ok_or_else(|| PrivilegeError::NoSuchGroup(group_name.to_string()))?,
        None => user.gid,
    };
    Ok(Some(Identity {
        user,
        user_name: user_name.to_string(),
        gid,
        group_name: group.map(str::to_string),
    }))
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
    sys::become_user(&id.user, id.gid).map_err(|source| PrivilegeError::Switch {
        user: id.user_name.clone(),
        source,
    })?;
    info!(
        "running as user {} (uid {}), group {} (gid {})",
        id.user_name,
        id.user.uid,
        id.group_name.as_deref().unwrap_or("primary"),
        id.gid
    );
    Ok(())
}
