//! Accounts and ACL currently in force, shared by all workers and replaced
//! as a whole on SIGUSR1.
//!
//! A reload that fails (a file exists but cannot be read or decoded) keeps
//! the previous rules and logs why.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use pyzor_config::{load_access, load_passwd, AuthFileError};
use pyzor_protocol::auth::{Accounts, Acl};

/// One consistent snapshot of accounts and ACL.
#[derive(Debug, Default)]
pub struct Rules {
    pub accounts: Accounts,
    pub acl: Acl,
}

/// Where the rules come from and the snapshot in force.
#[derive(Debug)]
pub struct RuleSet {
    passwd: Option<PathBuf>,
    access: Option<PathBuf>,
    current: RwLock<Arc<Rules>>,
    generation: std::sync::atomic::AtomicU64,
}

impl RuleSet {
    /// Load both files now.
    pub fn load(passwd: Option<PathBuf>, access: Option<PathBuf>) -> Result<Self, AuthFileError> {
        let rules = Self::read(passwd.as_deref(), access.as_deref())?;
        Ok(RuleSet {
            passwd,
            access,
            current: RwLock::new(Arc::new(rules)),
            generation: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// A ruleset with fixed rules (tests).
    pub fn fixed(rules: Rules) -> Self {
        RuleSet {
            passwd: None,
            access: None,
            current: RwLock::new(Arc::new(rules)),
            generation: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn read(passwd: Option<&Path>, access: Option<&Path>) -> Result<Rules, AuthFileError> {
        let (accounts, p_exists, pw) = load_passwd(passwd)?;
        for w in pw {
            log::warn!("{w}");
        }
        if p_exists {
            let names: Vec<&str> = accounts.users().collect();
            log::info!("Accounts: {}", names.join(","));
        } else {
            log::info!("Accounts file does not exist - only the anonymous user will be available.");
        }
        let (acl, a_exists, aw) = load_access(access, &accounts)?;
        for w in aw {
            log::warn!("{w}");
        }
        if a_exists {
            let summary = acl.summary();
            if summary.iter().all(|(_, ops)| ops.is_empty()) {
                log::warn!(
                    "The access file {} grants nothing to anybody: every request will be refused with 403",
                    access.as_ref().map(|p| p.display().to_string()).unwrap_or_default()
                );
            }
            log::info!("ACL: {summary:?}");
        } else {
            log::info!(
                "Using default ACL: the anonymous user may use the check, report, ping, pong and info commands."
            );
        }
        Ok(Rules { accounts, acl })
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

    /// Re-read both files; on error keep the old rules and return the error.
    pub fn reload(&self) -> Result<(), AuthFileError> {
        let rules = Self::read(self.passwd.as_deref(), self.access.as_deref())?;
        match self.current.write() {
            Ok(mut g) => *g = Arc::new(rules),
            Err(e) => *e.into_inner() = Arc::new(rules),
        }
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Ok(())
    }
}
