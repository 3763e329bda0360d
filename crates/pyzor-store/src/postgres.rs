//! A PostgreSQL engine (new; the reference has none): the reference's
//! fields in a table of our own design, so that several pyzord instances
//! can share one database.
//!
//! * DSN `host,user,password,database,table`, like the mysql engine: a host
//!   starting with `/` is a unix socket directory, `host:port` selects a
//!   port (default 5432), an empty password means none.
//! * Table (created when missing): `digest bytea PRIMARY KEY` (digests are
//!   stored exactly, whatever their bytes), `r_count`/`wl_count bigint`,
//!   the four dates `timestamptz` (absolute instants to the microsecond:
//!   no time zone ambiguity).
//! * Each report/whitelist is one `INSERT … ON CONFLICT DO UPDATE …
//!   RETURNING` (atomic); a batch is one transaction. Counts saturate at
//!   sys.maxsize like the reference's.
//! * A bounded pool of `DBConnections` connections (default 8); a
//!   connection that failed is discarded and a new one is made on the next
//!   request.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use postgres::{Client, Config, NoTls, Row};
use pyzor_protocol::{Record, Timestamp};

use crate::sql::{retry_lock_conflicts, KeysetPages, Paged, ScanItem};
use crate::{Engine, Op, RecordIter, Result, StoreError};

const DEFAULT_POOL: usize = 8;
const PAGE: i64 = 5000;
const COLS: &str = "r_count, wl_count, r_entered, r_updated, wl_entered, wl_updated";

fn pg_err(what: &str, e: postgres::Error) -> StoreError {
    // `postgres::Error` displays only "db error" for server errors: the
    // server's own message says what is wrong.
    match e.as_db_error() {
        Some(db) => StoreError::Unavailable(format!(
            "PostgreSQL {what}: {} ({}: {})",
            e,
            db.code().code(),
            db.message()
        )),
        None => StoreError::Unavailable(format!("PostgreSQL {what}: {e}")),
    }
}

/// A statement refused for its row (SQLSTATE classes 22 "data exception"
/// and 23 "integrity constraint violation", e.g. a CHECK constraint an
/// administrator added): the record's own error. Its transaction is rolled
/// back, so nothing of the batch is written ([`StoreError::BadKey`]).
fn row_refused(e: &postgres::Error) -> bool {
    matches!(e.code(), Some(c) if c.code().starts_with("22") || c.code().starts_with("23"))
}

/// A transaction aborted by a lock conflict (deadlock, serialization
/// failure): nothing of it was committed, running it again is safe.
fn is_lock_conflict(e: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    matches!(e.code(), Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE)
}

fn to_sys(t: Option<Timestamp>) -> Option<SystemTime> {
    let t = t?;
    Some(if t.0 >= 0 {
        UNIX_EPOCH + Duration::from_micros(t.0 as u64)
    } else {
        UNIX_EPOCH - Duration::from_micros(t.0.unsigned_abs())
    })
}

fn from_sys(s: Option<SystemTime>) -> Option<Timestamp> {
    let s = s?;
    Some(match s.duration_since(UNIX_EPOCH) {
        Ok(d) => Timestamp(d.as_micros() as i64),
        Err(e) => Timestamp(-(e.duration().as_micros() as i64)),
    })
}

fn row_record(r: &Row, off: usize) -> Result<Record> {
    let get = |i: usize| -> Result<Option<SystemTime>> {
        r.try_get(off + i).map_err(|e| StoreError::Corrupt {
            digest: String::new(),
            reason: e.to_string(),
        })
    };
    let cnt = |i: usize| -> Result<i64> {
        r.try_get(off + i).map_err(|e| StoreError::Corrupt {
            digest: String::new(),
            reason: e.to_string(),
        })
    };
    Ok(Record {
        r_count: cnt(0)?,
        wl_count: cnt(1)?,
        r_entered: from_sys(get(2)?),
        r_updated: from_sys(get(3)?),
        wl_entered: from_sys(get(4)?),
        wl_updated: from_sys(get(5)?),
    })
}

struct PoolState {
    idle: Vec<Client>,
    live: usize,
}

/// The `postgres` engine.
pub struct PostgresEngine {
    config: Config,
    max: usize,
    state: Mutex<PoolState>,
    freed: Condvar,
    backoff: crate::backoff::Backoff,
    table: String,
    sql_report: String,
    sql_whitelist: String,
    sql_get: String,
    sql_put: String,
    /// Serialises this process's write transactions (see `execute`).
    write_serial: Mutex<()>,
}

/// Double-quote a checked table name (`schema.table` allowed).
fn quote_table(t: &str) -> Result<String> {
    Ok(crate::sql::check_table(t)?
        .iter()
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join("."))
}

impl PostgresEngine {
    pub fn open(dsn: &str, connections: usize) -> Result<Self> {
        let f = crate::sql::split_dsn(dsn, "PostgreSQL")?;
        let mut config = Config::new();
        if f.host.starts_with('/') {
            config.host_path(&f.host);
        } else if let Some((h, p)) = f.host.rsplit_once(':') {
            config.host(h).port(
                p.parse()
                    .map_err(|_| StoreError::Config(format!("PostgreSQL DSN: bad port {p:?}")))?,
            );
        } else {
            config.host(if f.host.is_empty() {
                "localhost"
            } else {
                &f.host
            });
        }
        config
            .user(&f.user)
            .dbname(&f.database)
            .connect_timeout(Duration::from_secs(2));
        if !f.password.is_empty() {
            config.password(&f.password);
        }
        let t = quote_table(&f.table)?;
        let upsert = |side: &str| {
            format!(
                "INSERT INTO {t} AS d (digest, {side}_count, {side}_entered, {side}_updated) VALUES ($1, 1, $2, $2) \
                 ON CONFLICT (digest) DO UPDATE SET \
                 {side}_count = CASE WHEN d.{side}_count >= 9223372036854775807 THEN d.{side}_count ELSE d.{side}_count + 1 END, \
                 {side}_entered = COALESCE(d.{side}_entered, EXCLUDED.{side}_entered), \
                 {side}_updated = EXCLUDED.{side}_updated RETURNING {COLS}"
            )
        };
        let e = PostgresEngine {
            write_serial: Mutex::new(()),
            config,
            max: if connections == 0 { DEFAULT_POOL } else { connections },
            state: Mutex::new(PoolState { idle: Vec::new(), live: 0 }),
            freed: Condvar::new(),
            backoff: crate::backoff::Backoff::new("PostgreSQL"),
            sql_report: upsert("r"),
            sql_whitelist: upsert("wl"),
            sql_get: format!("SELECT {COLS} FROM {t} WHERE digest = $1"),
            sql_put: format!(
                "INSERT INTO {t} (digest, {COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (digest) DO UPDATE SET \
                 r_count = EXCLUDED.r_count, wl_count = EXCLUDED.wl_count, r_entered = EXCLUDED.r_entered, \
                 r_updated = EXCLUDED.r_updated, wl_entered = EXCLUDED.wl_entered, wl_updated = EXCLUDED.wl_updated"
            ),
            table: t,
        };
        e.with(|c| {
            c.batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {} (digest bytea PRIMARY KEY, r_count bigint NOT NULL DEFAULT 0, \
                 wl_count bigint NOT NULL DEFAULT 0, r_entered timestamptz, r_updated timestamptz, \
                 wl_entered timestamptz, wl_updated timestamptz)",
                e.table
            ))
            .map_err(|x| pg_err("create table", x))
        })?;
        Ok(e)
    }

    /// Run `f` on a pooled connection (waiting up to 3 s for one when all
    /// `max` are busy); a connection that failed is discarded.
    fn with<T>(&self, f: impl FnOnce(&mut Client) -> Result<T>) -> Result<T> {
        let mut c = {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let deadline = std::time::Instant::now() + Duration::from_secs(3);
            loop {
                if let Some(c) = st.idle.pop() {
                    if c.is_closed() {
                        st.live -= 1;
                        continue;
                    }
                    break Some(c);
                }
                if st.live < self.max {
                    st.live += 1;
                    break None;
                }
                let now = std::time::Instant::now();
                if now >= deadline {
                    return Err(StoreError::Unavailable(
                        "all PostgreSQL connections are busy".into(),
                    ));
                }
                st = self
                    .freed
                    .wait_timeout(st, deadline - now)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        };
        let mut client = match c.take() {
            Some(c) => c,
            None => match self
                .backoff
                .attempt(|| self.config.connect(NoTls).map_err(|e| pg_err("connect", e)))
            {
                Ok(c) => c,
                Err(e) => {
                    self.release(None);
                    return Err(e);
                }
            },
        };
        let r = f(&mut client);
        let keep = !matches!(r, Err(StoreError::Unavailable(_))) && !client.is_closed();
        self.release(keep.then_some(client));
        r
    }

    fn release(&self, c: Option<Client>) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match c {
            Some(c) => st.idle.push(c),
            None => st.live -= 1,
        }
        self.freed.notify_one();
    }
}

impl Engine for PostgresEngine {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn execute(&self, ops: &[Op<'_>], now: Timestamp, out: &mut Vec<Option<Record>>) -> Result<()> {
        let start = out.len();
        let now = to_sys(Some(now));
        // One write transaction at a time in this process: batches of
        // different workers touching the same rows in different orders
        // would otherwise deadlock (and PostgreSQL only notices after
        // deadlock_timeout, a second). Conflicts with other processes are
        // retried: an aborted transaction committed nothing.
        let _serial = ops.iter().any(Op::is_write).then(|| {
            self.write_serial
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        });
        retry_lock_conflicts("postgres", |conflict| {
            let q_err = |what: &str, e: postgres::Error| {
                if is_lock_conflict(&e) {
                    conflict.set(true);
                }
                if row_refused(&e) {
                    let msg = e
                        .as_db_error()
                        .map_or_else(|| e.to_string(), |d| d.message().to_string());
                    return StoreError::BadKey(format!("PostgreSQL {what}: {msg}"));
                }
                pg_err(what, e)
            };
            let r = self.with(|c| {
                let mut tx = c.transaction().map_err(|e| pg_err("begin", e))?;
                for op in ops {
                    let d = op.digest();
                    let row = match op {
                        Op::Get(_) => tx.query_opt(&self.sql_get, &[&d]),
                        Op::Report(_) => tx.query_opt(&self.sql_report, &[&d, &now]),
                        Op::Whitelist(_) => tx.query_opt(&self.sql_whitelist, &[&d, &now]),
                    }
                    .map_err(|e| q_err("query", e))?;
                    out.push(row.map(|r| row_record(&r, 0)).transpose()?);
                }
                if ops.iter().any(Op::is_write) {
                    tx.commit().map_err(|e| q_err("commit", e))?;
                }
                Ok(())
            });
            if r.is_err() {
                out.truncate(start);
            }
            r
        })
    }

    fn put_many(&self, records: &[(Vec<u8>, Record)]) -> Result<()> {
        self.with(|c| {
            let mut tx = c.transaction().map_err(|e| pg_err("begin", e))?;
            let st = tx
                .prepare(&self.sql_put)
                .map_err(|e| pg_err("prepare", e))?;
            for (d, r) in records {
                tx.execute(
                    &st,
                    &[
                        d,
                        &r.r_count,
                        &r.wl_count,
                        &to_sys(r.r_entered),
                        &to_sys(r.r_updated),
                        &to_sys(r.wl_entered),
                        &to_sys(r.wl_updated),
                    ],
                )
                .map_err(|e| pg_err("insert", e))?;
            }
            tx.commit().map_err(|e| pg_err("commit", e))
        })
    }

    fn delete_many(&self, digests: &[Vec<u8>]) -> Result<()> {
        let sql = format!("DELETE FROM {} WHERE digest = ANY($1)", self.table);
        self.with(|c| {
            c.execute(&sql, &[&digests])
                .map(|_| ())
                .map_err(|e| pg_err("delete", e))
        })
    }

    fn scan(&self) -> Result<RecordIter<'_>> {
        Ok(Box::new(Paged::new(PgScan {
            e: self,
            last: None,
        })))
    }

    fn expire(&self, cutoff: Timestamp) -> Result<u64> {
        let sql = format!(
            "DELETE FROM {} WHERE GREATEST(r_updated, wl_updated) < $1",
            self.table
        );
        let c = to_sys(Some(cutoff));
        self.with(|cl| cl.execute(&sql, &[&c]).map_err(|e| pg_err("expire", e)))
    }

    /// The planner's estimate (`pg_class.reltuples`; unknown before the
    /// table was first analysed).
    fn approx_len(&self) -> Option<u64> {
        let t = self.table.replace('"', "");
        self.with(|c| {
            let row = c
                .query_opt(
                    "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass($1)",
                    &[&t],
                )
                .map_err(|e| pg_err("estimate", e))?;
            Ok(row.and_then(|r| r.try_get::<_, i64>(0).ok()))
        })
        .ok()
        .flatten()
        .and_then(|n| u64::try_from(n).ok())
    }

    /// Commits are durable by PostgreSQL's own settings (`synchronous_commit`).
    fn flush(&self) -> Result<()> {
        Ok(())
    }
}

/// Keyset pagination in digest (byte) order; constant memory.
struct PgScan<'a> {
    e: &'a PostgresEngine,
    last: Option<Vec<u8>>,
}

impl KeysetPages for PgScan<'_> {
    fn next_page(&mut self) -> Result<(Vec<ScanItem>, bool)> {
        let t = &self.e.table;
        let rows = self.e.with(|c| {
            match &self.last {
                None => c.query(&format!("SELECT digest, {COLS} FROM {t} ORDER BY digest LIMIT {PAGE}"), &[]),
                Some(l) => {
                    c.query(&format!("SELECT digest, {COLS} FROM {t} WHERE digest > $1 ORDER BY digest LIMIT {PAGE}"), &[l])
                }
            }
            .map_err(|e| pg_err("scan", e))
        })?;
        let more = rows.len() as i64 >= PAGE;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let d: Vec<u8> = r.try_get(0).map_err(|e| StoreError::Corrupt {
                digest: String::new(),
                reason: e.to_string(),
            })?;
            self.last = Some(d.clone());
            out.push(row_record(&r, 1).map(|rec| (d, rec)));
        }
        Ok((out, more))
    }
}
