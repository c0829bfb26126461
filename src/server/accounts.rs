//! Users and groups for `--user`/`--group`, read from `/etc/passwd` and
//! `/etc/group`.
//!
//! mpecho is linked statically (a cheaper exec for every worker), and a
//! static glibc must not load NSS modules: `getpwnam` for a name missing
//! from the files falls through to `libnss_systemd.so` and crashes the
//! process. So names are resolved from the two files directly, the way
//! static tools (busybox, s6) do; accounts that exist only in LDAP or SSSD
//! are not found. This module only reads and parses; it changes nothing.

use std::io;
use std::path::Path;

pub const PASSWD: &str = "/etc/passwd";
pub const GROUP: &str = "/etc/group";

/// A user's ids as found in the passwd file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// Finds `name` in a passwd file (`name:x:uid:gid:...`).
pub fn find_user(passwd: &Path, name: &str) -> io::Result<Option<User>> {
    let text = std::fs::read_to_string(passwd)?;
    Ok(records(&text).find_map(|fields| {
        let (user, uid, gid) = (fields.first()?, fields.get(2)?, fields.get(3)?);
        (*user == name).then_some(User {
            name: name.to_string(),
            uid: uid.parse().ok()?,
            gid: gid.parse().ok()?,
        })
    }))
}

/// Finds the gid of group `name` in a group file (`name:x:gid:members`).
pub fn find_group(group: &Path, name: &str) -> io::Result<Option<u32>> {
    let text = std::fs::read_to_string(group)?;
    Ok(records(&text)
        .find_map(|fields| (*fields.first()? == name).then(|| fields.get(2)?.parse().ok())?))
}

/// What `initgroups(user, gid)` would set: `gid` plus every group whose
/// member list names `user`, without duplicates.
pub fn supplementary_groups(group: &Path, user: &str, gid: u32) -> io::Result<Vec<u32>> {
    let text = std::fs::read_to_string(group)?;
    let mut groups = vec![gid];
    for fields in records(&text) {
        let (Some(id), Some(members)) = (fields.get(2), fields.get(3)) else {
            continue;
        };
        if members.split(',').any(|m| m == user)
            && let Ok(id) = id.parse()
            && !groups.contains(&id)
        {
            groups.push(id);
        }
    }
    Ok(groups)
}

/// The colon-separated records of a passwd or group file, skipping blank
/// lines, comments and NIS compat entries (`+`/`-`).
fn records(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty() && !l.starts_with(['#', '+', '-']))
        .map(|l| l.split(':').collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn users_groups_and_memberships_are_found() {
        let passwd = file(
            "# comment\nroot:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/usr/sbin/nologin\n+nis\n",
        );
        let group =
            file("root:x:0:\ndaemon:x:1:nobody,alice\nnogroup:x:65534:\nstaff:x:50:alice,nobody\n");
        assert_eq!(
            find_user(passwd.path(), "nobody").unwrap(),
            Some(User {
                name: "nobody".into(),
                uid: 65534,
                gid: 65534
            })
        );
        assert_eq!(find_user(passwd.path(), "nobod").unwrap(), None);
        assert_eq!(find_user(passwd.path(), "+nis").unwrap(), None);
        assert_eq!(find_group(group.path(), "daemon").unwrap(), Some(1));
        assert_eq!(find_group(group.path(), "nope").unwrap(), None);
        assert_eq!(
            supplementary_groups(group.path(), "nobody", 65534).unwrap(),
            vec![65534, 1, 50]
        );
        assert_eq!(
            supplementary_groups(group.path(), "nobody", 1).unwrap(),
            vec![1, 50]
        );
    }
}
