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
//! * A bounded pool of `DBConnections` connections (default 8), checked
//!   after a second idle; a connection that failed is closed, never reused
//!   (the server rolls its transaction back), and a new one is made on the
//!   next request.
//! * **Timeouts** ([`Limits`], docs/engines.md): every session sets
//!   `lock_timeout` = `EngineTimeout`, `statement_timeout` = `EngineTimeout`
//!   (the longer bulk bound for expiry, migration and scans, which have
//!   their own two sessions) and `idle_in_transaction_session_timeout` =
//!   twice `EngineTimeout` (a client gone silent does not keep its locks).
//!   The client gives up on a server that says nothing for twice the
//!   statement bound (a deadline on every round trip, TCP keepalive,
//!   `TCP_USER_TIMEOUT`).

use std::cell::Cell;
use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pyzor_protocol::{Record, Timestamp};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, NoTls, Row};

use crate::sql::{
    retry_lock_conflicts, KeysetPages, Limits, Paged, Pool, ScanItem, Session, WriteTurn,
    CHECK_AFTER_IDLE,
};
use crate::{Engine, Op, RecordIter, Result, StoreError};

const DEFAULT_POOL: usize = 8;
/// Sessions for bulk work (expiry, migration, scans).
const BULK_POOL: usize = 2;
const PAGE: i64 = 5000;
const COLS: &str = "r_count, wl_count, r_entered, r_updated, wl_entered, wl_updated";

/// Server errors that mean the DSN or the user's grants are wrong.
const REFUSED: &[SqlState] = &[
    SqlState::INVALID_PASSWORD,
    SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
    SqlState::INVALID_CATALOG_NAME,
    SqlState::INVALID_SCHEMA_NAME,
    SqlState::INSUFFICIENT_PRIVILEGE,
];

fn pg_err(what: &str, e: tokio_postgres::Error) -> StoreError {
    // `Error`'s Display says only "db error" for server errors: the
    // server's own message says what is wrong.
    match e.as_db_error() {
        Some(db) if REFUSED.contains(db.code()) => StoreError::Config(format!(
            "PostgreSQL {what}: refused; check the user, password and database of the DSN and the user's grants: {} ({})",
            db.message(),
            db.code().code()
        )),
        Some(db) if row_refused(db.code()) => StoreError::BadKey(format!(
            "PostgreSQL {what}: {} ({})",
            db.message(),
            db.code().code()
        )),
        Some(db) => StoreError::Unavailable(format!(
            "PostgreSQL {what}: {} ({})",
            db.message(),
            db.code().code()
        )),
        // the server asked for a password the DSN does not give
        None if e.to_string().contains("password missing") => StoreError::Config(format!(
            "PostgreSQL {what}: the server wants a password; the DSN gives none"
        )),
        None => StoreError::Unavailable(format!("PostgreSQL {what}: {e}")),
    }
}

/// A statement refused for its row (SQLSTATE classes 22 "data exception"
/// and 23 "integrity constraint violation", e.g. a CHECK constraint an
/// administrator added): the record's own error. Its transaction is rolled
/// back, so nothing of the batch is written ([`StoreError::BadKey`]).
fn row_refused(code: &SqlState) -> bool {
    code.code().starts_with("22") || code.code().starts_with("23")
}

/// A transaction aborted by a lock conflict (deadlock, serialization
/// failure): nothing of it was committed, running it again is safe.
fn is_lock_conflict(e: &tokio_postgres::Error) -> bool {
    matches!(e.code(), Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE)
}

/// One session: a client and its own single-threaded runtime, which
/// drives the connection while a call waits on it.
struct PgConn {
    rt: tokio::runtime::Runtime,
    client: Client,
    /// How long a round trip may go unanswered.
    silence: Duration,
}

impl PgConn {
    /// Connect and log in within `login`, then run `setup`.
    fn connect(config: &Config, login: Duration, silence: Duration, setup: &str) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Other(format!("PostgreSQL: cannot start a runtime: {e}")))?;
        let made =
            rt.block_on(async { tokio::time::timeout(silence, config.connect(NoTls)).await });
        let (client, connection) = match made {
            Ok(r) => r.map_err(|e| pg_err("connect", e))?,
            Err(_) => {
                return Err(StoreError::Unavailable(format!(
                    "PostgreSQL connect: the server did not answer within {login:?}"
                )))
            }
        };
        rt.spawn(async move {
            if let Err(e) = connection.await {
                log::debug!("PostgreSQL connection ended: {e}");
            }
        });
        let c = PgConn {
            rt,
            client,
            silence,
        };
        c.run("session setup", None, c.client.batch_execute(setup))?;
        Ok(c)
    }

    /// One round trip, given up after `silence`. `conflict` is set when it
    /// failed on a lock conflict.
    fn run<T>(
        &self,
        what: &str,
        conflict: Option<&Cell<bool>>,
        fut: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T> {
        match self
            .rt
            .block_on(async { tokio::time::timeout(self.silence, fut).await })
        {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                if let Some(flag) = conflict.filter(|_| is_lock_conflict(&e)) {
                    flag.set(true);
                }
                Err(pg_err(what, e))
            }
            Err(_) => Err(StoreError::Unavailable(format!(
                "PostgreSQL {what}: the server did not answer within {:?}",
                self.silence
            ))),
        }
    }

    /// Run `f` in a transaction and commit. When `f` fails the session is
    /// rolled back only if it is to be kept (an undecodable row); any
    /// other failure closes it (see [`Pool`]), which rolls back too.
    fn in_tx<T>(
        &self,
        conflict: Option<&Cell<bool>>,
        f: impl FnOnce(&Self) -> Result<T>,
    ) -> Result<T> {
        self.run("begin", None, self.client.batch_execute("BEGIN"))?;
        match f(self) {
            Ok(v) => {
                self.run("commit", conflict, self.client.batch_execute("COMMIT"))?;
                Ok(v)
            }
            Err(e @ (StoreError::BadKey(_) | StoreError::Corrupt { .. })) => {
                self.run("rollback", None, self.client.batch_execute("ROLLBACK"))?;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }
}

impl Session for PgConn {
    fn alive(&mut self, idle: Duration) -> bool {
        !self.client.is_closed()
            && (idle < CHECK_AFTER_IDLE
                || self
                    .run("check", None, self.client.simple_query(""))
                    .is_ok())
    }
}

/// Sessions whose statements may run for `statement`.
fn session_pool(base: &Config, max: usize, limits: Limits, statement: Duration) -> Pool<PgConn> {
    let ms = |d: Duration| d.as_millis().max(1);
    // SET rather than the startup packet's `options`, which connection
    // poolers such as PgBouncer refuse
    let setup = format!(
        "SET lock_timeout = {}; SET statement_timeout = {}; SET idle_in_transaction_session_timeout = {}",
        ms(limits.wait),
        ms(statement),
        ms(Limits::silence(limits.wait))
    );
    let mut config = base.clone();
    config
        .connect_timeout(limits.wait)
        .keepalives(true)
        .keepalives_idle(limits.wait.max(Duration::from_secs(1)))
        .keepalives_interval(Limits::KEEPALIVE_INTERVAL)
        .keepalives_retries(Limits::KEEPALIVE_RETRIES)
        .tcp_user_timeout(Limits::silence(limits.wait));
    let login = Limits::silence(limits.wait);
    let silence = Limits::silence(statement);
    Pool::new("PostgreSQL", max, limits.wait, move || {
        PgConn::connect(&config, login, silence, &setup)
    })
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

/// The `postgres` engine.
pub struct PostgresEngine {
    limits: Limits,
    pool: Pool<PgConn>,
    bulk: Pool<PgConn>,
    table: String,
    sql_report: String,
    sql_whitelist: String,
    sql_get: String,
    sql_put: String,
    /// This process's write transactions, one at a time (see [`WriteTurn`]).
    write_turn: WriteTurn,
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
    pub fn open(dsn: &str, connections: usize, limits: Limits) -> Result<Self> {
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
        config.user(&f.user).dbname(&f.database);
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
        let max = if connections == 0 {
            DEFAULT_POOL
        } else {
            connections
        };
        let e = PostgresEngine {
            write_turn: WriteTurn::new(),
            pool: session_pool(&config, max, limits, limits.wait),
            bulk: session_pool(&config, BULK_POOL, limits, limits.bulk),
            limits,
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
        // A wrong password, database or grant fails here, as a configuration
        // error.
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {} (digest bytea PRIMARY KEY, r_count bigint NOT NULL DEFAULT 0, \
             wl_count bigint NOT NULL DEFAULT 0, r_entered timestamptz, r_updated timestamptz, \
             wl_entered timestamptz, wl_updated timestamptz)",
            e.table
        );
        e.pool
            .first(|c| c.run("create table", None, c.client.batch_execute(&create)))?;
        Ok(e)
    }
}

impl Engine for PostgresEngine {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn execute(&self, ops: &[Op<'_>], now: Timestamp, out: &mut Vec<Option<Record>>) -> Result<()> {
        let start = out.len();
        let now = to_sys(Some(now));
        let writes = ops.iter().any(Op::is_write);
        // One write transaction at a time in this process: batches of
        // different workers touching the same rows in different orders
        // would otherwise deadlock (and PostgreSQL only notices after
        // deadlock_timeout, a second). Conflicts with other processes are
        // retried: an aborted transaction committed nothing.
        let _turn = match writes {
            true => Some(self.write_turn.take(self.limits.wait, "PostgreSQL")?),
            false => None,
        };
        retry_lock_conflicts("postgres", self.limits.wait, |conflict| {
            let mut run_ops = |c: &PgConn| {
                for op in ops {
                    let d = op.digest();
                    let row = match op {
                        Op::Get(_) => {
                            c.run("query", None, c.client.query_opt(&self.sql_get, &[&d]))
                        }
                        Op::Report(_) => c.run(
                            "query",
                            Some(conflict),
                            c.client.query_opt(&self.sql_report, &[&d, &now]),
                        ),
                        Op::Whitelist(_) => c.run(
                            "query",
                            Some(conflict),
                            c.client.query_opt(&self.sql_whitelist, &[&d, &now]),
                        ),
                    }?;
                    out.push(row.map(|r| row_record(&r, 0)).transpose()?);
                }
                Ok(())
            };
            let r = self.pool.with(|c| match writes {
                true => c.in_tx(Some(conflict), run_ops),
                false => run_ops(c),
            });
            if r.is_err() {
                out.truncate(start);
            }
            r
        })
    }

    fn put_many(&self, records: &[(Vec<u8>, Record)]) -> Result<()> {
        self.bulk.with(|c| {
            c.in_tx(None, |c| {
                let st = c.run("prepare", None, c.client.prepare(&self.sql_put))?;
                for (d, r) in records {
                    c.run(
                        "insert",
                        None,
                        c.client.execute(
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
                        ),
                    )?;
                }
                Ok(())
            })
        })
    }

    fn delete_many(&self, digests: &[Vec<u8>]) -> Result<()> {
        let sql = format!("DELETE FROM {} WHERE digest = ANY($1)", self.table);
        self.bulk.with(|c| {
            c.run("delete", None, c.client.execute(&sql, &[&digests]))
                .map(|_| ())
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
        let cutoff = to_sys(Some(cutoff));
        self.bulk
            .with(|c| c.run("expire", None, c.client.execute(&sql, &[&cutoff])))
    }

    /// The planner's estimate (`pg_class.reltuples`; unknown before the
    /// table was first analysed).
    fn approx_len(&self) -> Option<u64> {
        let t = self.table.replace('"', "");
        self.pool
            .with(|c| {
                let row = c.run(
                    "estimate",
                    None,
                    c.client.query_opt(
                        "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass($1)",
                        &[&t],
                    ),
                )?;
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
        let rows = self.e.bulk.with(|c| match &self.last {
            None => c.run(
                "scan",
                None,
                c.client.query(
                    &format!("SELECT digest, {COLS} FROM {t} ORDER BY digest LIMIT {PAGE}"),
                    &[],
                ),
            ),
            Some(l) => c.run(
                "scan",
                None,
                c.client.query(
                    &format!("SELECT digest, {COLS} FROM {t} WHERE digest > $1 ORDER BY digest LIMIT {PAGE}"),
                    &[l],
                ),
            ),
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
