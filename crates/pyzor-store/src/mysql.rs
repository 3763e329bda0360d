//! The reference's MySQL/MariaDB engine: its `digests` table, schema and
//! DSN `host,user,password,database,table`.
//!
//! Schema (created when the table is missing, as the reference documents
//! it): `digest char(40) PRIMARY KEY, r_count int, wl_count int,
//! r_entered/wl_entered/r_updated/wl_updated datetime`.
//!
//! * **Host.** As with Python's MySQLdb, `localhost` (or empty) means the
//!   server's unix socket (the first of `/run/mysqld/mysqld.sock`,
//!   `/var/run/mysqld/mysqld.sock`, `/tmp/mysql.sock` that exists); a host
//!   containing `/` is a socket path; `host:port` selects a TCP port (an
//!   extension; the reference always uses 3306).
//! * **Keys.** Any UTF-8 text goes to the database, which decides as it
//!   does for the reference (see `key`): reads of any length answer
//!   (trailing blanks ignored by the PAD SPACE collation, longer keys find
//!   nothing); a write the `char(40)` column cannot hold fails with
//!   [`StoreError::BadKey`] (strict mode's 1406, the reference's 500) and
//!   its batch is rolled back. Non-UTF-8 is `BadKey` before the database is
//!   touched. With the default collation case and trailing blanks do not
//!   distinguish digests.
//! * **Timestamps.** DATETIME is naive. Like Python pyzord, which writes
//!   `NOW()` in the session time zone and reads values back as *its* local
//!   time, we read naive values as the local time of this process, and we
//!   write our own clock's local time in whole seconds (instead of
//!   `NOW()`), so our reads and writes agree whatever the server's time
//!   zone is, and agree with Python pyzord's whenever the database session
//!   time zone is the operating system's (the usual set-up).
//! * **First insert.** The reference sets all four timestamps on the first
//!   report or whitelist. We set only the side that was counted and leave
//!   the other NULL ("never"), which Python reads as `None` too; an
//!   existing row's `*_entered` that is NULL is filled on the first count.
//! * **Writes.** One transaction per batch; each report/whitelist is
//!   `INSERT … ON DUPLICATE KEY UPDATE` (atomic in InnoDB) followed by a
//!   read of the row. Pool of `DBConnections` connections (default 8),
//!   checked with a ping after a second idle, re-made after an outage.
//! * **Timeouts** ([`Limits`], docs/engines.md): every session sets
//!   `innodb_lock_wait_timeout` and `lock_wait_timeout` (metadata locks,
//!   `LOCK TABLES`) to `EngineTimeout`, and on MariaDB also
//!   `max_statement_time` and `idle_transaction_timeout`; the client gives
//!   up on a server that says nothing for twice as long (socket read and
//!   write timeouts, TCP keepalive, `TCP_USER_TIMEOUT`). A session that
//!   failed is closed, never reused (the server rolls its transaction
//!   back); bulk work (expiry, migration, scans) has its own two sessions
//!   with the longer statement bound.

use std::path::Path;
use std::time::Duration;

use mysql::prelude::Queryable;
use mysql::{Conn, Opts, OptsBuilder, Value};
use pyzor_protocol::{Record, Timestamp};

use crate::pytime::{naive_local_to_ts, ts_to_naive_local};
use crate::sql::{
    retry_lock_conflicts, KeysetPages, Limits, Paged, Pool, ScanItem, Session, WriteTurn,
    CHECK_AFTER_IDLE,
};
use crate::{Engine, Op, RecordIter, Result, StoreError};

const DEFAULT_POOL: usize = 8;
/// Sessions for bulk work (expiry, migration, scans).
const BULK_POOL: usize = 2;
const PAGE: usize = 5000;
const SOCKETS: &[&str] = &[
    "/run/mysqld/mysqld.sock",
    "/var/run/mysqld/mysqld.sock",
    "/tmp/mysql.sock",
];

/// The parsed DSN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MysqlDsn {
    pub host: String,
    pub port: u16,
    /// A unix socket path, when the host asks for one.
    pub socket: Option<String>,
    pub user: String,
    pub password: String,
    pub database: String,
    pub table: String,
}

/// The table name quoted for MySQL.
pub(crate) fn check_table(t: &str) -> Result<String> {
    Ok(crate::sql::check_table(t)?
        .iter()
        .map(|p| format!("`{p}`"))
        .collect::<Vec<_>>()
        .join("."))
}

/// Parse `host,user,password,database,table`.
pub(crate) fn parse_dsn(dsn: &str) -> Result<MysqlDsn> {
    let f = crate::sql::split_dsn(dsn, "MySQL")?;
    let (host, port, socket) = if f.host.contains('/') {
        ("localhost".to_string(), 3306, Some(f.host.clone()))
    } else if f.host.is_empty() || f.host == "localhost" {
        let sock = SOCKETS
            .iter()
            .find(|p| Path::new(p).exists())
            .map(|s| s.to_string());
        ("localhost".to_string(), 3306, sock)
    } else if let Some((h, p)) = f.host.rsplit_once(':') {
        let port = p
            .parse()
            .map_err(|_| StoreError::Config(format!("MySQL DSN: bad port {p:?}")))?;
        (h.to_string(), port, None)
    } else {
        (f.host.clone(), 3306, None)
    };
    Ok(MysqlDsn {
        host,
        port,
        socket,
        user: f.user,
        password: f.password,
        database: f.database,
        table: f.table,
    })
}

/// Server errors that mean the DSN or the user's grants are wrong:
/// access denied (1044, 1045, 1142, 1143, 1227, 1698), unknown database
/// (1049), host not allowed (1130), authentication method (1251).
const REFUSED: &[u16] = &[1044, 1045, 1049, 1130, 1142, 1143, 1227, 1251, 1698];

/// The I/O error under a driver error, if any.
fn io_error(e: &mysql::Error) -> Option<&std::io::Error> {
    use std::error::Error;
    match e {
        mysql::Error::IoError(io) => Some(io),
        mysql::Error::CodecError(c) => c.source()?.downcast_ref(),
        _ => None,
    }
}

fn my_err(what: &str, e: mysql::Error) -> StoreError {
    let timed_out = io_error(&e).is_some_and(|io| {
        matches!(
            io.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        )
    });
    if timed_out {
        return StoreError::Unavailable(format!(
            "MySQL {what}: the server did not answer in time ({e})"
        ));
    }
    match e {
        mysql::Error::MySqlError(ref m) if matches!(m.code, 1406 | 1366 | 1264) => {
            StoreError::BadKey(format!("MySQL {what}: {e}"))
        }
        mysql::Error::MySqlError(ref m) if REFUSED.contains(&m.code) => StoreError::Config(format!(
            "MySQL {what}: access refused; check the user, password and database of the DSN and the user's grants: {e}"
        )),
        _ => StoreError::Unavailable(format!("MySQL {what}: {e}")),
    }
}

/// A deadlock (1213): the transaction was rolled back and may run again.
fn is_conflict(e: &mysql::Error) -> bool {
    matches!(e, mysql::Error::MySqlError(m) if m.code == 1213)
}

/// One session.
struct MyConn(Conn);

impl Session for MyConn {
    fn alive(&mut self, idle: Duration) -> bool {
        idle < CHECK_AFTER_IDLE || self.0.ping().is_ok()
    }
}

/// The statement that bounds a new session's waits inside the server:
/// lock waits (row locks, and metadata locks such as `LOCK TABLES`) to
/// `wait`; on MariaDB (executable comments, ignored by MySQL) statements
/// to `statement` and a transaction left idle (a client gone silent) to
/// twice `wait`.
fn session_limits(wait: Duration, statement: Duration) -> String {
    let secs = |d: Duration| d.as_secs() + u64::from(d.subsec_nanos() > 0);
    format!(
        "SET SESSION innodb_lock_wait_timeout = {lock}, lock_wait_timeout = {lock} \
         /*M!100108 , max_statement_time = {stmt:.3} */ \
         /*M!100300 , idle_transaction_timeout = {idle} */",
        lock = secs(wait).max(1),
        stmt = statement.as_secs_f64(),
        idle = secs(Limits::silence(wait)).max(1),
    )
}

/// Connection options for sessions whose statements may run for
/// `statement`.
fn conn_opts(d: &MysqlDsn, limits: Limits, statement: Duration) -> Opts {
    let ms = |x: Duration| u32::try_from(x.as_millis()).unwrap_or(u32::MAX).max(1);
    let silence = Limits::silence(statement);
    OptsBuilder::new()
        .ip_or_hostname(Some(d.host.clone()))
        .tcp_port(d.port)
        .socket(d.socket.clone())
        .user(Some(d.user.clone()))
        .pass(Some(d.password.clone()))
        .db_name(Some(d.database.clone()))
        .prefer_socket(false)
        .tcp_connect_timeout(Some(limits.wait))
        .read_timeout(Some(silence))
        .write_timeout(Some(silence))
        .tcp_keepalive_time_ms(Some(ms(limits.wait)))
        .tcp_keepalive_probe_interval_secs(Some(Limits::KEEPALIVE_INTERVAL.as_secs() as u32))
        .tcp_keepalive_probe_count(Some(Limits::KEEPALIVE_RETRIES))
        .tcp_user_timeout_ms(Some(ms(Limits::silence(limits.wait))))
        .init(vec![session_limits(limits.wait, statement)])
        .into()
}

fn session_pool(d: &MysqlDsn, max: usize, limits: Limits, statement: Duration) -> Pool<MyConn> {
    let opts = conn_opts(d, limits, statement);
    Pool::new("MySQL", max, limits.wait, move || {
        Conn::new(opts.clone())
            .map(MyConn)
            .map_err(|e| my_err("connect", e))
    })
}

/// Run `f` in a transaction and commit. When `f` fails the session is
/// rolled back only if it is to be kept (a refused digest, an undecodable
/// row); any other failure closes it (see [`Pool`]), which rolls back too
/// without waiting on a session in an unknown state. `conflict` is set
/// when the commit failed on a deadlock.
fn in_tx<T>(
    c: &mut Conn,
    conflict: Option<&std::cell::Cell<bool>>,
    f: impl FnOnce(&mut Conn) -> Result<T>,
) -> Result<T> {
    c.query_drop("START TRANSACTION")
        .map_err(|e| my_err("begin", e))?;
    match f(c) {
        Ok(v) => {
            c.query_drop("COMMIT").map_err(|e| {
                if let Some(flag) = conflict.filter(|_| is_conflict(&e)) {
                    flag.set(true);
                }
                my_err("commit", e)
            })?;
            Ok(v)
        }
        Err(e @ (StoreError::BadKey(_) | StoreError::Corrupt { .. })) => {
            c.query_drop("ROLLBACK")
                .map_err(|x| my_err("rollback", x))?;
            Err(e)
        }
        Err(e) => Err(e),
    }
}

/// The key of an operation (read or write): any UTF-8 text, of any length.
///
/// Reproduces the reference's `char(40)` column (docs/field-notes.md §5.12, mysql
/// row; docs/engines.md, mysql) by letting the database decide, instead of
/// emulating its rules, which depend on the server's `sql_mode` and
/// collation:
/// * reads (`SELECT … WHERE digest = ?`) never fail on length; with the
///   default PAD SPACE collation a digest plus trailing blanks finds its
///   row, any other key over 40 characters finds nothing;
/// * writes in strict mode fail with error 1406 "Data too long" (mapped to
///   [`StoreError::BadKey`], the reference's 500) unless the excess is only
///   trailing white space, which MariaDB truncates with a note (the
///   reference then counts the truncated digest, and so do we). A failed
///   write rolls its whole batch back, so nothing of it is written.
///
/// Only non-UTF-8 is refused here: the reference fails those too (MySQLdb
/// cannot encode the surrogate escapes Python's `email` parser makes).
fn key(d: &[u8]) -> Result<&str> {
    std::str::from_utf8(d).map_err(|_| StoreError::BadKey("MySQL digests must be UTF-8".into()))
}

fn dt_value(t: Option<Timestamp>) -> Value {
    use chrono::{Datelike, Timelike};
    match t.and_then(ts_to_naive_local) {
        None => Value::NULL,
        Some(n) => Value::Date(
            n.year().clamp(0, 9999) as u16,
            n.month() as u8,
            n.day() as u8,
            n.hour() as u8,
            n.minute() as u8,
            n.second() as u8,
            0,
        ),
    }
}

fn value_ts(v: &Value) -> Option<Timestamp> {
    match *v {
        Value::Date(y, mo, d, h, mi, s, us) => {
            let n = chrono::NaiveDate::from_ymd_opt(i32::from(y), u32::from(mo), u32::from(d))?
                .and_hms_micro_opt(u32::from(h), u32::from(mi), u32::from(s), us)?;
            Some(naive_local_to_ts(n))
        }
        Value::Bytes(ref b) => {
            let s = std::str::from_utf8(b).ok()?;
            crate::pytime::py_parse_datetime(s).map(naive_local_to_ts)
        }
        _ => None,
    }
}

fn value_int(v: &Value) -> Option<i64> {
    match *v {
        Value::NULL => Some(0),
        Value::Int(i) => Some(i),
        Value::UInt(u) => i64::try_from(u).ok(),
        Value::Bytes(ref b) => std::str::from_utf8(b).ok()?.trim().parse().ok(),
        _ => None,
    }
}

/// A row `r_count, wl_count, r_entered, r_updated, wl_entered, wl_updated`.
fn row_record(d: &[u8], v: &[Value]) -> Result<Record> {
    let bad = || StoreError::Corrupt {
        digest: String::from_utf8_lossy(d).into_owned(),
        reason: format!("row {v:?}"),
    };
    if v.len() < 6 {
        return Err(bad());
    }
    Ok(Record {
        r_count: value_int(&v[0]).ok_or_else(bad)?,
        wl_count: value_int(&v[1]).ok_or_else(bad)?,
        r_entered: value_ts(&v[2]),
        r_updated: value_ts(&v[3]),
        wl_entered: value_ts(&v[4]),
        wl_updated: value_ts(&v[5]),
    })
}

/// The `mysql` engine.
pub struct MysqlEngine {
    /// `(schema, table)` for the row estimate.
    schema_table: (String, String),
    limits: Limits,
    pool: Pool<MyConn>,
    bulk: Pool<MyConn>,
    table: String,
    sql_report: String,
    sql_whitelist: String,
    sql_get: String,
    sql_put: String,
    /// This process's write transactions, one at a time (see [`WriteTurn`]).
    write_turn: WriteTurn,
}

impl MysqlEngine {
    pub fn open(dsn: &str, connections: usize, limits: Limits) -> Result<Self> {
        let d = parse_dsn(dsn)?;
        let max = if connections == 0 {
            DEFAULT_POOL
        } else {
            connections
        };
        let t = check_table(&d.table)?;
        let upsert = |side: &str, other: &str| {
            format!(
                "INSERT INTO {t} (digest, {side}_count, {other}_count, {side}_entered, {side}_updated) \
                 VALUES (?, 1, 0, ?, ?) ON DUPLICATE KEY UPDATE \
                 {side}_count = COALESCE({side}_count, 0) + 1, \
                 {side}_entered = COALESCE({side}_entered, VALUES({side}_entered)), \
                 {side}_updated = VALUES({side}_updated)"
            )
        };
        let e = MysqlEngine {
            write_turn: WriteTurn::new(),
            sql_report: upsert("r", "wl"),
            sql_whitelist: upsert("wl", "r"),
            sql_get: format!(
                "SELECT r_count, wl_count, r_entered, r_updated, wl_entered, wl_updated FROM {t} WHERE digest = ?"
            ),
            sql_put: format!(
                "INSERT INTO {t} (digest, r_count, wl_count, r_entered, r_updated, wl_entered, wl_updated) \
                 VALUES (?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE r_count = VALUES(r_count), \
                 wl_count = VALUES(wl_count), r_entered = VALUES(r_entered), r_updated = VALUES(r_updated), \
                 wl_entered = VALUES(wl_entered), wl_updated = VALUES(wl_updated)"
            ),
            table: t,
            schema_table: match d.table.split_once('.') {
                Some((a, b)) => (a.to_string(), b.to_string()),
                None => (d.database.clone(), d.table.clone()),
            },
            pool: session_pool(&d, max, limits, limits.wait),
            bulk: session_pool(&d, BULK_POOL, limits, limits.bulk),
            limits,
        };
        // A wrong password, database or grant fails here, as a configuration
        // error.
        e.pool.first(|c| {
            c.0.query_drop(format!(
                "CREATE TABLE IF NOT EXISTS {} (digest char(40) NOT NULL, r_count int(11) DEFAULT NULL, \
                 wl_count int(11) DEFAULT NULL, r_entered datetime DEFAULT NULL, wl_entered datetime DEFAULT NULL, \
                 r_updated datetime DEFAULT NULL, wl_updated datetime DEFAULT NULL, PRIMARY KEY (digest))",
                e.table
            ))
            .map_err(|e| my_err("create table", e))
        })?;
        Ok(e)
    }

    fn get_in(&self, q: &mut impl Queryable, d: &[u8], key: &str) -> Result<Option<Record>> {
        let row: Option<mysql::Row> = q
            .exec_first(&self.sql_get, (key,))
            .map_err(|e| my_err("select", e))?;
        row.map(|r| row_record(d, &r.unwrap())).transpose()
    }
}

impl Engine for MysqlEngine {
    fn name(&self) -> &'static str {
        "mysql"
    }

    fn execute(&self, ops: &[Op<'_>], now: Timestamp, out: &mut Vec<Option<Record>>) -> Result<()> {
        // A non-UTF-8 digest fails the batch before the database is touched;
        // one the column cannot hold fails it at its INSERT (1406, BadKey)
        // and the transaction is rolled back: either way nothing of the
        // batch is written, so the server can re-run it request by request.
        let keys: Vec<&str> = ops.iter().map(|o| key(o.digest())).collect::<Result<_>>()?;
        let start = out.len();
        let writes = ops.iter().any(Op::is_write);
        // One write transaction at a time in this process: batches of
        // different workers touching the same rows in different orders
        // would otherwise deadlock each other in InnoDB (1213). Conflicts
        // with other processes (a second pyzord, a migration) are retried.
        let _turn = match writes {
            true => Some(self.write_turn.take(self.limits.wait, "MySQL")?),
            false => None,
        };
        retry_lock_conflicts("mysql", self.limits.wait, |conflict| {
            let r = self.pool.with(|c| {
                let c = &mut c.0;
                if !writes {
                    for (op, k) in ops.iter().zip(&keys) {
                        out.push(self.get_in(c, op.digest(), k)?);
                    }
                    return Ok(());
                }
                let now_v = dt_value(Some(now));
                in_tx(c, Some(conflict), |c| {
                    for (op, k) in ops.iter().zip(&keys) {
                        let sql = match op {
                            Op::Get(_) => None,
                            Op::Report(_) => Some(&self.sql_report),
                            Op::Whitelist(_) => Some(&self.sql_whitelist),
                        };
                        if let Some(sql) = sql {
                            c.exec_drop(sql, (*k, now_v.clone(), now_v.clone()))
                                .map_err(|e| {
                                    if is_conflict(&e) {
                                        conflict.set(true);
                                    }
                                    my_err("upsert", e)
                                })?;
                        }
                        out.push(self.get_in(c, op.digest(), k)?);
                    }
                    Ok(())
                })
            });
            if r.is_err() {
                out.truncate(start);
            }
            r
        })
    }

    fn put_many(&self, records: &[(Vec<u8>, Record)]) -> Result<()> {
        self.bulk.with(|c| {
            in_tx(&mut c.0, None, |tx| {
                for (d, r) in records {
                    let k = key(d)?;
                    tx.exec_drop(
                        &self.sql_put,
                        (
                            k,
                            r.r_count,
                            r.wl_count,
                            dt_value(r.r_entered),
                            dt_value(r.r_updated),
                            dt_value(r.wl_entered),
                            dt_value(r.wl_updated),
                        ),
                    )
                    .map_err(|e| my_err("insert", e))?;
                }
                Ok(())
            })
        })
    }

    fn delete_many(&self, digests: &[Vec<u8>]) -> Result<()> {
        let sql = format!("DELETE FROM {} WHERE digest = ?", self.table);
        self.bulk.with(|c| {
            in_tx(&mut c.0, None, |tx| {
                for d in digests {
                    // Like reads, the database compares (trailing blanks do
                    // not count); a non-UTF-8 digest is not in the table.
                    if let Ok(k) = key(d) {
                        tx.exec_drop(&sql, (k,)).map_err(|e| my_err("delete", e))?;
                    }
                }
                Ok(())
            })
        })
    }
    /// Keyset pagination in primary-key order, 5000 rows per query:
    /// constant memory, and no connection is held between pages.
    fn scan(&self) -> Result<RecordIter<'_>> {
        Ok(Box::new(Paged::new(KeysetScan {
            e: self,
            last: None,
        })))
    }

    fn expire(&self, cutoff: Timestamp) -> Result<u64> {
        // Stored whole seconds s expire when s*1e6 < cutoff, i.e. s < ceil(cutoff).
        let c = Timestamp::from_secs(
            cutoff.0.div_euclid(1_000_000) + i64::from(cutoff.0.rem_euclid(1_000_000) != 0),
        );
        let sql = format!(
            "DELETE FROM {} WHERE GREATEST(COALESCE(r_updated, wl_updated), COALESCE(wl_updated, r_updated)) < ? LIMIT 10000",
            self.table
        );
        self.bulk.with(|conn| {
            let mut total = 0;
            loop {
                conn.0
                    .exec_drop(&sql, (dt_value(Some(c)),))
                    .map_err(|e| my_err("expire", e))?;
                let n = conn.0.affected_rows();
                total += n;
                if n < 10000 {
                    return Ok(total);
                }
            }
        })
    }

    /// InnoDB's row estimate from `information_schema`.
    fn approx_len(&self) -> Option<u64> {
        let n: Option<Option<u64>> = self
            .pool
            .with(|c| {
                c.0.exec_first(
                    "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                    &self.schema_table,
                )
                .map_err(|e| my_err("estimate", e))
            })
            .ok()?;
        n.flatten()
    }

    /// Commits are durable by InnoDB's own settings.
    fn flush(&self) -> Result<()> {
        Ok(())
    }
}

struct KeysetScan<'a> {
    e: &'a MysqlEngine,
    last: Option<String>,
}

impl KeysetPages for KeysetScan<'_> {
    fn next_page(&mut self) -> Result<(Vec<ScanItem>, bool)> {
        let t = &self.e.table;
        let cols = "digest, r_count, wl_count, r_entered, r_updated, wl_entered, wl_updated";
        let rows: Vec<mysql::Row> = self.e.bulk.with(|c| {
            match &self.last {
                None => c.0.query(format!(
                    "SELECT {cols} FROM {t} ORDER BY digest LIMIT {PAGE}"
                )),
                Some(l) => c.0.exec(
                    format!("SELECT {cols} FROM {t} WHERE digest > ? ORDER BY digest LIMIT {PAGE}"),
                    (l,),
                ),
            }
            .map_err(|e| my_err("scan", e))
        })?;
        let more = rows.len() >= PAGE;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let v = row.unwrap();
            let d = match v.first() {
                Some(Value::Bytes(b)) => b.clone(),
                _ => {
                    out.push(Err(StoreError::Corrupt {
                        digest: String::new(),
                        reason: format!("row {v:?}"),
                    }));
                    continue;
                }
            };
            self.last = Some(String::from_utf8_lossy(&d).into_owned());
            out.push(row_record(&d, &v[1..]).map(|r| (d, r)));
        }
        Ok((out, more))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dsn_and_table_names() {
        let d = parse_dsn("db.example:3307,u,p,pyzor,digests").unwrap();
        assert_eq!(
            (d.host.as_str(), d.port, d.socket.as_deref()),
            ("db.example", 3307, None)
        );
        let d = parse_dsn("/tmp/my.sock,u,,pyzor,digests").unwrap();
        assert_eq!(d.socket.as_deref(), Some("/tmp/my.sock"));
        assert!(parse_dsn("a,b,c,d").is_err());
        assert!(parse_dsn("a,b,c,d,x; DROP TABLE y").is_err());
        assert_eq!(check_table("db.t_1").unwrap(), "`db`.`t_1`");
        assert!(check_table("a.b.c").is_err());
    }

    #[test]
    fn keys_are_any_utf8_text() {
        // length is the database's business (see `key`)
        assert!(key(&[b'a'; 400]).is_ok());
        assert!(key("é".repeat(41).as_bytes()).is_ok());
        assert!(key(b"a\0b").is_ok());
        assert!(key(b"\xff").is_err());
    }
}
