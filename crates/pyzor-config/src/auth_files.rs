//! Loading `pyzord.passwd` and `pyzord.access` from disk. The rules of
//! their text live in `pyzor_protocol::auth`; this module only reads files.

use std::path::{Path, PathBuf};

use pyzor_protocol::auth::{parse_access, parse_passwd, Accounts, Acl};

/// A passwd or access file that exists but cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthFileError {
    #[error("cannot read {path}: {source}; fix the file's permissions or path")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid UTF-8 text; save it as UTF-8")]
    NotUtf8 { path: PathBuf },
}

fn read_text(path: &Path) -> Result<Option<String>, AuthFileError> {
    match std::fs::read(path) {
        Ok(b) => String::from_utf8(b)
            .map(Some)
            .map_err(|_| AuthFileError::NotUtf8 {
                path: path.to_owned(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(AuthFileError::Io {
            path: path.to_owned(),
            source: e,
        }),
    }
}

/// Load `pyzord.passwd`; a missing file (or `None`) means no accounts.
/// Returns the accounts, whether the file existed, and warnings.
///
/// An account whose key is empty is refused with a warning (the reference
/// accepts it): the signing key is `hash_key("", user)`, which anyone who
/// knows the user name can compute, so such an account would lend its
/// rights to the whole internet (docs/compatibility.md S5).
pub fn load_passwd(path: Option<&Path>) -> Result<(Accounts, bool, Vec<String>), AuthFileError> {
    let Some(p) = path else {
        return Ok((Accounts::default(), false, Vec::new()));
    };
    match read_text(p)? {
        Some(t) => {
            let (parsed, mut w) = parse_passwd(&t);
            let mut accounts = Accounts::default();
            let mut refused = Vec::new();
            for user in parsed.users() {
                match parsed.key(user) {
                    Some(key) if !key.is_empty() => accounts.insert(user, key),
                    _ => refused.push(user),
                }
            }
            refused.sort_unstable();
            w.extend(refused.into_iter().map(|user| {
                format!(
                    "Account {user:?} in {} has an empty key and is refused: anyone can compute its signatures; give it a key",
                    p.display()
                )
            }));
            Ok((accounts, true, w))
        }
        None => Ok((Accounts::default(), false, Vec::new())),
    }
}

/// Load `pyzord.access`; a missing file (or `None`) gives
/// [`Acl::reference_default`]. Returns the ACL, whether the file existed,
/// and warnings.
pub fn load_access(
    path: Option<&Path>,
    accounts: &Accounts,
) -> Result<(Acl, bool, Vec<String>), AuthFileError> {
    let Some(p) = path else {
        return Ok((Acl::reference_default(), false, Vec::new()));
    };
    match read_text(p)? {
        Some(t) => {
            let (a, w) = parse_access(&t, accounts);
            Ok((a, true, w))
        }
        None => Ok((Acl::reference_default(), false, Vec::new())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_access_file_gives_the_default_acl() {
        let (acl, existed, _) = load_access(
            Some(Path::new("/nonexistent/pyzord.access")),
            &Accounts::default(),
        )
        .unwrap();
        assert!(!existed);
        assert_eq!(acl, Acl::reference_default());
    }

    #[test]
    fn an_empty_key_is_refused_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pyzord.passwd");
        std::fs::write(
            &p,
            "alice :\nbob : k\ncarol : x\ncarol :  \t\nerin : \nerin : y\n",
        )
        .unwrap();
        let (acc, existed, w) = load_passwd(Some(&p)).unwrap();
        assert!(existed);
        assert_eq!(acc.key("bob"), Some("k"));
        assert_eq!(acc.key("erin"), Some("y"), "a later line with a key wins");
        assert!(!acc.contains("alice"));
        assert!(
            !acc.contains("carol"),
            "a later empty key refuses the account"
        );
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].contains("\"alice\"") && w[0].contains("empty key"),
            "{w:?}"
        );
        assert!(w[1].contains("\"carol\""), "{w:?}");
    }
}
