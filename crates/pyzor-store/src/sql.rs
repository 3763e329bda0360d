//! What the SQL engines (mysql, postgres) share: DSN handling and the
//! keyset-paginated scan.

use pyzor_protocol::Record;

use crate::{Result, StoreError};

/// The five fields `host,user,password,database,table`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqlDsn {
    pub host: String,
    pub user: String,
    pub password: String,
    pub database: String,
    pub table: String,
}

/// Split `host,user,password,database,table` (the reference's MySQL form).
pub fn split_dsn(dsn: &str, engine: &str) -> Result<SqlDsn> {
    let f: Vec<&str> = dsn.split(',').collect();
    if f.len() != 5 {
        return Err(StoreError::Config(format!(
            "{engine} DSN {dsn:?} must have five comma-separated fields: host,user,password,database,table"
        )));
    }
    check_table(f[4])?;
    Ok(SqlDsn {
        host: f[0].to_string(),
        user: f[1].to_string(),
        password: f[2].to_string(),
        database: f[3].to_string(),
        table: f[4].to_string(),
    })
}

/// Check a table name (optionally `database.table`) and return its parts:
/// it goes into SQL text, so only letters, digits, `_` and `$` pass.
pub fn check_table(t: &str) -> Result<Vec<&str>> {
    let parts: Vec<&str> = t.split('.').collect();
    let ok = parts.len() <= 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
        });
    if !ok {
        return Err(StoreError::Config(format!(
            "table name {t:?} must be letters, digits, _ or $ (optionally database.table)"
        )));
    }
    Ok(parts)
}

/// One item of a scan.
pub type ScanItem = Result<(Vec<u8>, Record)>;

/// A source of keyset pages (rows after the last key seen, in key order).
pub trait KeysetPages {
    /// The next page, and whether another may follow (a short page is the
    /// last).
    fn next_page(&mut self) -> Result<(Vec<ScanItem>, bool)>;
}

/// Turns pages into a record stream: constant memory, and an error ends the
/// stream after it is handed out.
pub struct Paged<S> {
    source: S,
    buf: std::vec::IntoIter<ScanItem>,
    done: bool,
}

impl<S> Paged<S> {
    pub fn new(source: S) -> Self {
        Paged {
            source,
            buf: Vec::new().into_iter(),
            done: false,
        }
    }
}

impl<S: KeysetPages> Iterator for Paged<S> {
    type Item = ScanItem;
    fn next(&mut self) -> Option<ScanItem> {
        loop {
            if let Some(x) = self.buf.next() {
                return Some(x);
            }
            if self.done {
                return None;
            }
            match self.source.next_page() {
                Ok((page, more)) => {
                    self.buf = page.into_iter();
                    self.done = !more;
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Run `attempt` (one transaction) again, a few times, when it failed on a
/// lock conflict with another process (deadlock, lock wait timeout,
/// serialization failure): an aborted transaction committed nothing, so
/// running it again is safe. `attempt` sets the flag it is given when its
/// error was such a conflict.
pub fn retry_lock_conflicts<T>(
    engine: &str,
    mut attempt: impl FnMut(&std::cell::Cell<bool>) -> Result<T>,
) -> Result<T> {
    const ATTEMPTS: u32 = 8;
    let mut n = 1;
    loop {
        let conflict = std::cell::Cell::new(false);
        let r = attempt(&conflict);
        if r.is_err() && conflict.get() && n < ATTEMPTS {
            log::debug!("{engine}: transaction aborted by a lock conflict; retrying ({n})");
            n += 1;
            continue;
        }
        return r;
    }
}
