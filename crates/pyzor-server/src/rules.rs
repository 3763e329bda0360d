//! Accounts and ACL currently in force, shared by all workers and replaced
//! as a whole on SIGUSR1.
//!
//! A reload fails closed: when a file cannot be read or decoded, or a file
//! the rules in force were loaded from is now missing, the previous rules
//! stay in force and the caller logs why ([`ReloadError`]). Only at start
//! does a missing file mean "no accounts" or the default ACL; on a reload
//! that would let `mv pyzord.access elsewhere; kill -USR1` turn a deny into
//! the default allow (docs/security.md).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use pyzor_config::{load_access, load_passwd, AuthFileError};
use pyzor_protocol::auth::{Accounts, Acl};

/// One consistent snapshot of accounts and ACL.
#[derive(Debug, Default)]
pub struct Rules {
    pub accounts: Accounts,
    pub acl: Acl,
}

/// Why a reload kept the previous rules.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// A file exists but cannot be read or decoded.
    #[error(transparent)]
    File(#[from] AuthFileError),
    /// The rules in force came from this file and it no longer exists.
    #[error("{} was loaded before and is now missing; put it back (an empty access file denies everything), or restart pyzord to run without it", .0.display())]
    Missing(PathBuf),
}

/// Which of the two files existed when the rules were read.
#[derive(Clone, Copy, Debug, Default)]
struct Existed {
    passwd: bool,
    access: bool,
}

/// Where the rules come from and the snapshot in force.
#[derive(Debug)]
pub struct RuleSet {
    passwd: Option<PathBuf>,
    access: Option<PathBuf>,
    current: RwLock<Arc<Rules>>,
    /// The files the rules in force were read from (reloads are serialised
    /// by this lock).
    loaded_from: Mutex<Existed>,
    generation: std::sync::atomic::AtomicU64,
}

/// Both files as read, before anything is logged.
struct Loaded {
    rules: Rules,
    existed: Existed,
    warnings: Vec<String>,
}

impl RuleSet {
    /// Load both files now (a missing file: no accounts, the default ACL).
    pub fn load(passwd: Option<PathBuf>, access: Option<PathBuf>) -> Result<Self, AuthFileError> {
        let loaded = Self::read(passwd.as_deref(), access.as_deref())?;
        let existed = loaded.existed;
        let rules = Self::announce(loaded, access.as_deref());
        Ok(RuleSet {
            passwd,
            access,
            current: RwLock::new(Arc::new(rules)),
            loaded_from: Mutex::new(existed),
            generation: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// A ruleset with fixed rules (tests).
    pub fn fixed(rules: Rules) -> Self {
        RuleSet {
            passwd: None,
            access: None,
            current: RwLock::new(Arc::new(rules)),
            loaded_from: Mutex::new(Existed::default()),
            generation: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn read(passwd: Option<&Path>, access: Option<&Path>) -> Result<Loaded, AuthFileError> {
        let (accounts, p_exists, mut warnings) = load_passwd(passwd)?;
        let (acl, a_exists, aw) = load_access(access, &accounts)?;
        warnings.extend(aw);
        Ok(Loaded {
            rules: Rules { accounts, acl },
            existed: Existed {
                passwd: p_exists,
                access: a_exists,
            },
            warnings,
        })
    }

    /// Log what is about to be in force.
    fn announce(loaded: Loaded, access: Option<&Path>) -> Rules {
        for w in &loaded.warnings {
            log::warn!("{w}");
        }
        let Rules { accounts, acl } = &loaded.rules;
        if loaded.existed.passwd {
            let names: Vec<&str> = accounts.users().collect();
            log::info!("Accounts: {}", names.join(","));
        } else {
            log::info!("Accounts file does not exist - only the anonymous user will be available.");
        }
        if loaded.existed.access {
            let summary = acl.summary();
            if summary.iter().all(|(_, ops)| ops.is_empty()) {
                log::warn!(
                    "The access file {} grants nothing to anybody: every request will be refused with 403",
                    access.map(|p| p.display().to_string()).unwrap_or_default()
                );
            }
            log::info!("ACL: {summary:?}");
        } else {
            log::info!(
                "Using default ACL: the anonymous user may use the check, report, ping, pong and info commands."
            );
        }
        loaded.rules
    }

    /// The rules in force.
    pub fn current(&self) -> Arc<Rules> {
        self.current
            .read()
            .map(|g| Arc::clone(&g))
            .unwrap_or_else(|e| Arc::clone(&e.into_inner()))
    }

    /// Increases on every successful reload (workers use it to refresh
    /// their cached snapshot cheaply).
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Re-read both files; on error keep the old rules and return the
    /// error. A file that the rules in force were read from and that is
    /// now missing is an error ([`ReloadError::Missing`]); a file that was
    /// missing then may still be missing.
    pub fn reload(&self) -> Result<(), ReloadError> {
        let mut loaded_from = self
            .loaded_from
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let loaded = Self::read(self.passwd.as_deref(), self.access.as_deref())?;
        for (path, was, is) in [
            (&self.passwd, loaded_from.passwd, loaded.existed.passwd),
            (&self.access, loaded_from.access, loaded.existed.access),
        ] {
            if let Some(p) = path.as_ref().filter(|_| was && !is) {
                return Err(ReloadError::Missing(p.clone()));
            }
        }
        *loaded_from = loaded.existed;
        let rules = Self::announce(loaded, self.access.as_deref());
        match self.current.write() {
            Ok(mut g) => *g = Arc::new(rules),
            Err(e) => *e.into_inner() = Arc::new(rules),
        }
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) -> (PathBuf, PathBuf) {
        (dir.join("pyzord.passwd"), dir.join("pyzord.access"))
    }

    #[test]
    fn a_reload_fails_closed_when_a_loaded_file_goes_missing() {
        let dir = tempfile::tempdir().unwrap();
        let (passwd, access) = files(dir.path());
        std::fs::write(&passwd, "alice : k\n").unwrap();
        std::fs::write(&access, "ping : anonymous : allow\n").unwrap();
        let set = RuleSet::load(Some(passwd.clone()), Some(access.clone())).unwrap();
        std::fs::remove_file(&access).unwrap();
        let e = set.reload().unwrap_err();
        assert!(matches!(&e, ReloadError::Missing(p) if *p == access), "{e}");
        let r = set.current();
        assert!(!r.acl.allows(b"anonymous", b"check"), "deny became allow");
        assert!(r.acl.allows(b"anonymous", b"ping"));
        assert_eq!(set.generation(), 0);

        std::fs::write(&access, "ping : alice : allow\n").unwrap();
        std::fs::remove_file(&passwd).unwrap();
        let e = set.reload().unwrap_err();
        assert!(matches!(&e, ReloadError::Missing(p) if *p == passwd), "{e}");
        assert!(set.current().accounts.contains("alice"));

        std::fs::write(&passwd, "alice : k\n").unwrap();
        set.reload().unwrap();
        assert!(set.current().acl.allows(b"alice", b"ping"));
        assert!(!set.current().acl.allows(b"anonymous", b"ping"));
        assert_eq!(set.generation(), 1);
    }

    #[test]
    fn files_missing_at_start_may_stay_missing_or_appear() {
        let dir = tempfile::tempdir().unwrap();
        let (passwd, access) = files(dir.path());
        let set = RuleSet::load(Some(passwd), Some(access.clone())).unwrap();
        assert_eq!(set.current().acl, Acl::reference_default());
        set.reload().unwrap();
        assert_eq!(set.current().acl, Acl::reference_default());
        std::fs::write(&access, "ping : anonymous : allow\n").unwrap();
        set.reload().unwrap();
        assert!(!set.current().acl.allows(b"anonymous", b"check"));
        // Loaded once: from now on it must stay.
        std::fs::remove_file(&access).unwrap();
        assert!(set.reload().is_err());
        assert!(!set.current().acl.allows(b"anonymous", b"check"));
    }
}
