//! Home-directory rules of the reference scripts (docs/field-notes.md §5.1).
//!
//! * default: `$HOME/.pyzor` when `HOME` is set and not empty, else
//!   `/etc/pyzor`; `--homedir` overrides (`default_homedir`);
//! * created with a plain, non-recursive `mkdir` when missing
//!   ([`ensure_homedir`]);
//! * file-valued settings: empty means unset, `~` is expanded, relative
//!   names are joined to the home directory (`expand_path`).

use std::path::{Path, PathBuf};

/// The home directory when `--homedir` is not given, from the value of
/// `$HOME` (`None` when unset).
pub(crate) fn default_homedir(home_env: Option<&std::ffi::OsStr>) -> PathBuf {
    match home_env {
        Some(h) if !h.is_empty() => Path::new(h).join(".pyzor"),
        _ => PathBuf::from("/etc/pyzor"),
    }
}

/// The default home directory of this process (reads `$HOME`).
pub fn process_default_homedir() -> PathBuf {
    default_homedir(std::env::var_os("HOME").as_deref())
}

/// Create the home directory if it does not exist (one level, like Python's
/// `os.mkdir`; the process umask applies).
pub fn ensure_homedir(dir: &Path) -> std::io::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    std::fs::create_dir(dir)
}

/// `pyzor.config.expand_homefiles` for one value: `None` for an empty
/// value; `~`/`~user` expanded as `os.path.expanduser` does; a relative
/// result joined to `homedir`.
pub(crate) fn expand_path(value: &str, homedir: &Path) -> Option<PathBuf> {
    if value.is_empty() {
        return None;
    }
    let expanded = expand_user(value);
    if expanded.is_absolute() {
        Some(expanded)
    } else {
        Some(homedir.join(expanded))
    }
}

/// `os.path.expanduser`: `~` → `$HOME` (or the passwd entry when `HOME` is
/// unset), `~name` → that user's home directory; unchanged when unknown.
fn expand_user(value: &str) -> PathBuf {
    let Some(rest) = value.strip_prefix('~') else {
        return PathBuf::from(value);
    };
    let (name, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let home = if name.is_empty() {
        match std::env::var_os("HOME") {
            Some(h) => Some(PathBuf::from(h)),
            None => passwd_home(None),
        }
    } else {
        passwd_home(Some(name))
    };
    match home {
        Some(h) => {
            // Python: userhome.rstrip('/') + path[i:] (and "/" if empty)
            let h = h.to_string_lossy().trim_end_matches('/').to_owned();
            let joined = format!("{h}{tail}");
            PathBuf::from(if joined.is_empty() {
                "/".to_owned()
            } else {
                joined
            })
        }
        None => PathBuf::from(value),
    }
}

/// Home directory of a user from `/etc/passwd` (current uid when `None`).
fn passwd_home(name: Option<&str>) -> Option<PathBuf> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    // SAFETY-free way to know our uid: /proc/self/status "Uid:" line.
    let uid = if name.is_none() {
        let st = std::fs::read_to_string("/proc/self/status").ok()?;
        st.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|r| r.split_whitespace().next().map(str::to_owned))
    } else {
        None
    };
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 7 {
            return None;
        }
        let hit = match (name, &uid) {
            (Some(n), _) => f[0] == n,
            (None, Some(u)) => f[2] == u,
            _ => false,
        };
        hit.then(|| PathBuf::from(f[5]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn homedir_rules() {
        assert_eq!(
            default_homedir(Some(OsStr::new("/users/u"))),
            PathBuf::from("/users/u/.pyzor")
        );
        assert_eq!(
            default_homedir(Some(OsStr::new(""))),
            PathBuf::from("/etc/pyzor")
        );
        assert_eq!(default_homedir(None), PathBuf::from("/etc/pyzor"));
    }

    #[test]
    fn expansion() {
        let h = Path::new("/srv/pyzor");
        assert_eq!(expand_path("", h), None);
        assert_eq!(
            expand_path("pyzord.passwd", h),
            Some(PathBuf::from("/srv/pyzor/pyzord.passwd"))
        );
        assert_eq!(
            expand_path("sub/x", h),
            Some(PathBuf::from("/srv/pyzor/sub/x"))
        );
        assert_eq!(expand_path("/abs/x", h), Some(PathBuf::from("/abs/x")));
        // `~root` is root's home directory as the passwd database says.
        let root_home = std::fs::read_to_string("/etc/passwd")
            .unwrap()
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() >= 7 && f[0] == "root").then(|| f[5].to_owned())
            })
            .expect("root in /etc/passwd");
        let root = expand_path("~root/x", h).unwrap();
        assert_eq!(root, Path::new(&root_home).join("x"));
        assert_eq!(
            expand_path("~nosuchuser_zz/x", h),
            Some(PathBuf::from("/srv/pyzor/~nosuchuser_zz/x"))
        );
    }

    #[test]
    fn ensure_creates_one_level() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("home");
        ensure_homedir(&d).unwrap();
        assert!(d.is_dir());
        ensure_homedir(&d).unwrap();
        assert!(ensure_homedir(&t.path().join("a/b")).is_err());
    }
}
