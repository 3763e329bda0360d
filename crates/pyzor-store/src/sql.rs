//! DSN handling shared by the SQL engines (mysql, postgres).

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
