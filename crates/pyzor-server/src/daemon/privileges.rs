//! `--user USER` / `--group GROUP` (`User` / `Group` in `[server]`): give
//! up root once the sockets are bound and the files opened, before the
//! workers serve a single request — for setups without systemd (the
//! packaged unit starts pyzord as its own user instead).
//!
//! The order is the usual one (OpenSSH, unbound, nsd): `setgroups` to the
//! target group alone, `setgid`, `setuid`; then pyzord checks that it took
//! (real and effective ids) and that root cannot be regained. Any failure
//! stops the start: a server that meant to drop root never runs as root by
//! accident. glibc applies each call to every thread of the process.

use std::path::Path;

use nix::unistd::{Gid, Group, Uid, User};

/// The identity to run as, resolved from the names before anything starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) uid: Uid,
    pub(crate) gid: Gid,
    /// `user:group` as asked, for messages.
    pub(crate) label: String,
}

/// Why pyzord cannot run as the identity asked.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PrivilegeError {
    #[error("--user/User {0:?}: no such user; create it (adduser --system {0}) or name another")]
    NoUser(String),
    #[error("--group/Group {0:?}: no such group; create it or name another")]
    NoGroup(String),
    #[error("cannot look up {what} {name:?}: {source}")]
    Lookup {
        what: &'static str,
        name: String,
        #[source]
        source: nix::Error,
    },
    #[error("running as uid {uid}, so pyzord cannot become {target}: start it as root to drop privileges, or leave out --user/--group (User/Group)")]
    NotRoot { uid: u32, target: String },
    #[error("cannot drop privileges to {target}: {step} failed: {source}; pyzord does not run as root by mistake")]
    Drop {
        target: String,
        step: &'static str,
        #[source]
        source: nix::Error,
    },
    #[error("dropped to {target} but {what}; pyzord stops rather than run with privileges it meant to give up")]
    Verify { target: String, what: String },
}

/// A name or a number (`#1000` is not needed: a name that does not exist
/// but is all digits is taken as the id, as `chown` does).
fn numeric<T: From<u32>>(s: &str) -> Option<T> {
    s.parse::<u32>().ok().map(T::from)
}

/// Resolve `user` and `group` (either may be absent; a user without a
/// group runs with the user's primary group). `None` when nothing is asked
/// or the process already runs as exactly that identity.
pub(crate) fn resolve(
    user: Option<&str>,
    group: Option<&str>,
) -> Result<Option<Identity>, PrivilegeError> {
    if user.is_none() && group.is_none() {
        return Ok(None);
    }
    let (uid, primary) = match user {
        None => (Uid::current(), Gid::current()),
        Some(name) => match User::from_name(name) {
            Ok(Some(u)) => (u.uid, u.gid),
            Ok(None) => {
                let uid: Uid = numeric(name).ok_or_else(|| PrivilegeError::NoUser(cut(name)))?;
                let gid = User::from_uid(uid)
                    .ok()
                    .flatten()
                    .map_or(Gid::from_raw(uid.as_raw()), |u| u.gid);
                (uid, gid)
            }
            Err(source) => {
                return Err(PrivilegeError::Lookup {
                    what: "user",
                    name: cut(name),
                    source,
                })
            }
        },
    };
    let gid = match group {
        None => primary,
        Some(name) => match Group::from_name(name) {
            Ok(Some(g)) => g.gid,
            Ok(None) => numeric(name).ok_or_else(|| PrivilegeError::NoGroup(cut(name)))?,
            Err(source) => {
                return Err(PrivilegeError::Lookup {
                    what: "group",
                    name: cut(name),
                    source,
                })
            }
        },
    };
    let label = format!(
        "{}:{}",
        user.map_or_else(|| uid.to_string(), cut),
        group.map_or_else(|| gid.to_string(), cut)
    );
    let me = Identity {
        uid: Uid::current(),
        gid: Gid::current(),
        label: String::new(),
    };
    if me.uid == uid && me.gid == gid && Uid::effective() == uid {
        return Ok(None);
    }
    if !Uid::effective().is_root() {
        return Err(PrivilegeError::NotRoot {
            uid: Uid::effective().as_raw(),
            target: label,
        });
    }
    Ok(Some(Identity { uid, gid, label }))
}

/// A name as shown in a message: at most 64 characters.
fn cut(s: &str) -> String {
    s.chars().take(64).collect()
}

impl Identity {
    /// Hand `files` (the log files, the pid file: opened as root with
    /// umask 077) to the new identity, so that it can reopen them after
    /// SIGHUP. Missing files are skipped.
    pub(crate) fn chown(&self, files: &[&Path]) -> Result<(), PrivilegeError> {
        for f in files {
            match nix::unistd::chown(*f, Some(self.uid), Some(self.gid)) {
                Ok(()) | Err(nix::Error::ENOENT) => {}
                Err(source) => {
                    return Err(PrivilegeError::Drop {
                        target: self.label.clone(),
                        step: "chown of a log or pid file",
                        source,
                    })
                }
            }
        }
        Ok(())
    }

    /// setgroups, setgid, setuid, in that order, then check.
    pub(crate) fn drop_root(&self) -> Result<(), PrivilegeError> {
        let step = |step: &'static str| {
            move |source| PrivilegeError::Drop {
                target: self.label.clone(),
                step,
                source,
            }
        };
        nix::unistd::setgroups(&[self.gid]).map_err(step("setgroups"))?;
        nix::unistd::setgid(self.gid).map_err(step("setgid"))?;
        nix::unistd::setuid(self.uid).map_err(step("setuid"))?;
        let verify = |what: String| PrivilegeError::Verify {
            target: self.label.clone(),
            what,
        };
        let (uid, euid, gid, egid) = (
            Uid::current(),
            Uid::effective(),
            Gid::current(),
            Gid::effective(),
        );
        if (uid, euid, gid, egid) != (self.uid, self.uid, self.gid, self.gid) {
            return Err(verify(format!(
                "the process runs as uid {uid}/{euid}, gid {gid}/{egid}"
            )));
        }
        if !self.uid.is_root() && nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
            return Err(verify("it could become root again".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_asked_or_already_that_identity_is_nothing_to_do() {
        assert_eq!(resolve(None, None).unwrap(), None);
        let me = Uid::current().to_string();
        let my_group = Gid::current().to_string();
        assert_eq!(resolve(Some(&me), Some(&my_group)).unwrap(), None);
    }

    /// Unknown names are named in the error, cut to 64 characters.
    #[test]
    fn unknown_names_are_refused() {
        let long = "no-such-user-".repeat(20);
        match resolve(Some(&long), None) {
            Err(PrivilegeError::NoUser(n)) => assert_eq!(n.chars().count(), 64),
            other => panic!("{other:?}"),
        }
        match resolve(None, Some("no-such-group-xyz")) {
            Err(PrivilegeError::NoGroup(n)) => assert_eq!(n, "no-such-group-xyz"),
            other => panic!("{other:?}"),
        }
    }
}
