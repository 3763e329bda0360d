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
//!   [`StoreError::BadKey`] (strict mode's 1406, the reference's 500), for
//!   its own operations only ([`StoreError::Partial`]). Non-UTF-8 fails
//!   its operation before the database is touched. With the default
//!   collation case and trailing blanks do not distinguish digests.
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
//! * **Batches.** A batch is one statement per kind, whatever its size
//!   (`sql::BatchPlan`): the reports and whitelists of each distinct digest
//!   are added up and written by one multi-row `INSERT … VALUES (…),(…) ON
//!   DUPLICATE KEY UPDATE` (so a digest named twice counts twice), in
//!   digest order inside one transaction, and one read (`SELECT … JOIN` on
//!   the batch's digests, matched by the database's own collation) gives
//!   every operation's reply, assembled in the batch's order. A batch of
//!   writes only (all reports and whitelists, whose replies carry no
//!   record) reads nothing back: when one statement holds it (at most 256
//!   digests, each at most 40 ASCII characters) it is that statement
//!   alone, autocommitted, which InnoDB makes atomic and durable like a
//!   transaction. Any other batch with
//!   writes is `START TRANSACTION`, the upsert, the read, `COMMIT`: Ok
//!   means committed (as durable as the server's
//!   `innodb_flush_log_at_trx_commit` makes a commit). A batch that
//!   reads a row before it counts it in the same batch reads the rows
//!   first as well. Statements carry at most 256 rows, padded up to a size
//!   class that keeps four significant bits (at most an eighth of padding),
//!   so each connection prepares at most 48 texts per kind, kept by the
//!   driver's statement cache. Write transactions of different calls
//!   run at the same time (one per pooled connection): taking rows in
//!   digest order, they do not deadlock each other; a deadlock with another
//!   process is retried. Pool of `DBConnections` connections (default 8),
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
    retry_lock_conflicts, BatchPlan, Found, KeysetPages, Limits, Paged, Pool, ScanItem, Session,
    CHECK_AFTER_IDLE,
};
use crate::{batch_outcome, Engine, Op, RecordIter, Result, StoreError};

const DEFAULT_POOL: usize = 8;
/// The most rows one statement of a batch carries; a batch's distinct
/// digests go in chunks of at most this many, each padded up to a size
/// class ([`size_class`]), so that a connection prepares at most
/// [`CLASSES`] texts per kind.
const MAX_ROWS: usize = 256;
/// Significant bits a statement's row count keeps ([`size_class`]).
const CLASS_BITS: u32 = 4;
/// How many size classes there are up to [`MAX_ROWS`]: every count up to
/// 2^CLASS_BITS, then 2^(CLASS_BITS-1) classes per power of two.
const CLASSES: usize =
    (1 << CLASS_BITS) + (MAX_ROWS.trailing_zeros() - CLASS_BITS) as usize * (1 << (CLASS_BITS - 1));
/// The driver's per-connection cache of prepared statements: the four
/// kinds at every size class, and the others (bulk work), stay prepared.
const STMT_CACHE: usize = 4 * CLASSES + 8;
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
        .stmt_cache_size(Some(STMT_CACHE))
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
    op_key(d).map_err(|why| StoreError::BadKey(why.into()))
}

/// [`key`] for a batch's operations ([`BatchPlan`]).
fn op_key(d: &[u8]) -> std::result::Result<&str, &'static str> {
    std::str::from_utf8(d).map_err(|_| "MySQL digests must be UTF-8")
}

/// Whether every `char(40)` column holds `k` whatever its character set:
/// at most 40 ASCII characters. Only other keys can be refused by the
/// database, so only they are written one by one, each failing alone.
fn fits_any_column(k: &str) -> bool {
    k.len() <= 40 && k.is_ascii()
}

/// Which keys may be one row ([`BatchPlan::needs_before`]): two keys of
/// ASCII letters and digits are one row under MySQL's collations (`_ci`,
/// `_bin`, `_cs`; PAD SPACE or not) only if they are equal ignoring ASCII
/// case; anything else (blanks, punctuation, non-ASCII) may equal any key.
fn row_class(k: &str) -> Option<String> {
    plain_key(k).then(|| k.to_ascii_lowercase())
}

/// Whether `k` is of ASCII letters and digits only ([`row_class`]).
fn plain_key(k: &str) -> bool {
    !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// `a` against `b` ignoring ASCII case: the order in which
/// [`MysqlEngine::read_in`] finds a row's key.
fn cmp_ascii_ci(a: &str, b: &str) -> std::cmp::Ordering {
    let lower = |b: &u8| b.to_ascii_lowercase();
    a.as_bytes()
        .iter()
        .map(lower)
        .cmp(b.as_bytes().iter().map(lower))
}

/// Statement texts per size class: `[j]` carries [`class_rows`]`(j)` rows.
fn per_arity(text: impl Fn(usize) -> String) -> Vec<String> {
    (0..CLASSES).map(|j| text(class_rows(j))).collect()
}

/// The size class of a statement for `n` rows (1 to [`MAX_ROWS`]): its
/// slot in [`per_arity`] and the rows it holds, `n` rounded up to keep
/// [`CLASS_BITS`] significant bits (1..16 exactly, then 18, 20, …, 32,
/// 36, …, 64, …). The rows beyond `n` are padding: at most an eighth of
/// them. Padding costs the database a lookup per row (an upsert's pad
/// row updates the first key by nothing), so a batch of 17 in a 32-row
/// statement, as with powers of two, nearly doubled the database's work
/// per report (bench/RESULTS-sql.md, "size classes").
fn size_class(n: usize) -> (usize, usize) {
    debug_assert!((1..=MAX_ROWS).contains(&n));
    let small = 1usize << CLASS_BITS;
    if n <= small {
        return (n - 1, n);
    }
    // n in (2^p, 2^(p+1)] goes up to a multiple of 2^(p+1-CLASS_BITS)
    let p = usize::BITS - 1 - (n - 1).leading_zeros();
    let step = 1usize << (p + 1 - CLASS_BITS);
    let rows = n.div_ceil(step) * step;
    let per_octave = 1usize << (CLASS_BITS - 1);
    let slot = small - 1 + (p - CLASS_BITS) as usize * per_octave + (rows - (1 << p)) / step;
    (slot, rows)
}

/// The rows of size class `slot` ([`size_class`]).
fn class_rows(slot: usize) -> usize {
    let small = 1usize << CLASS_BITS;
    if slot < small {
        return slot + 1;
    }
    let per_octave = 1usize << (CLASS_BITS - 1);
    let (octave, k) = ((slot - small) / per_octave, (slot - small) % per_octave);
    let p = CLASS_BITS as usize + octave;
    let step = 1usize << (p + 1 - CLASS_BITS as usize);
    (1 << p) + (k + 1) * step
}

/// One multi-row upsert: each row adds its report and whitelist counts;
/// a side with nothing to add is left exactly as it is (NULL stays NULL),
/// a side counted for the first time gets its entered date, as the
/// single-row statement of the reference's `report`/`whitelist` does.
/// A new row gets 0 (not NULL) on the side not counted and NULL dates.
fn upsert_sql(t: &str, rows: usize) -> String {
    let values = vec!["(?, ?, ?, ?, ?, ?, ?)"; rows].join(", ");
    let side = |s: &str| {
        format!(
            "{s}_count = IF(VALUES({s}_count) > 0, COALESCE({s}_count, 0) + VALUES({s}_count), {s}_count), \
             {s}_entered = IF(VALUES({s}_count) > 0, COALESCE({s}_entered, VALUES({s}_entered)), {s}_entered), \
             {s}_updated = IF(VALUES({s}_count) > 0, VALUES({s}_updated), {s}_updated)"
        )
    };
    format!(
        "INSERT INTO {t} (digest, r_count, wl_count, r_entered, r_updated, wl_entered, wl_updated) \
         VALUES {values} ON DUPLICATE KEY UPDATE {}, {}",
        side("r"),
        side("wl")
    )
}

/// [`upsert_sql`] for rows that all add reports and no whitelists, the
/// common batch: a third of its parameters and none of its per-side
/// conditions, so the database spends less per row (bench/RESULTS-sql.md,
/// "Turns"). The same effect on every row: the report side as
/// [`upsert_sql`] counts it, the whitelist side of a new row 0 with NULL
/// dates, of an existing row untouched. A padding row (the first key
/// again, adding 0 with the same date) changes nothing, as the first key's
/// own row came before it.
fn report_upsert_sql(t: &str, rows: usize) -> String {
    let values = vec!["(?, ?, 0, ?, ?)"; rows].join(", ");
    format!(
        "INSERT INTO {t} (digest, r_count, wl_count, r_entered, r_updated) VALUES {values} \
         ON DUPLICATE KEY UPDATE r_count = COALESCE(r_count, 0) + VALUES(r_count), \
         r_entered = COALESCE(r_entered, VALUES(r_entered)), r_updated = VALUES(r_updated)"
    )
}

/// One multi-row read: `(i, key)` pairs joined to the table, so that the
/// database matches each key to its row by its own collation, exactly as
/// the reference's `SELECT … WHERE digest = %s` does (case, trailing
/// blanks, over-long keys), and says which key found which row. The join
/// uses the primary key (`eq_ref`).
fn read_sql(t: &str, rows: usize) -> String {
    let keys = vec!["SELECT ?, ?"; rows - 1].join(" UNION ALL ");
    let more = if keys.is_empty() {
        String::new()
    } else {
        format!(" UNION ALL {keys}")
    };
    format!(
        "SELECT k.i, x.digest, x.r_count, x.wl_count, x.r_entered, x.r_updated, x.wl_entered, x.wl_updated \
         FROM (SELECT ? AS i, ? AS d{more}) AS k JOIN {t} AS x ON x.digest = k.d"
    )
}

/// One multi-row read by key list, for keys of ASCII letters and digits
/// only ([`row_class`]): the rows come back without saying which key found
/// them, and [`MysqlEngine::read`] matches them by ASCII case, which is how
/// every MySQL collation compares such keys with a row that equals one of
/// them; a row it cannot match that way (a collation that equals some
/// other character with a letter) makes it read the keys again with
/// [`read_sql`]. Cheaper for the database than the join (measured,
/// bench/RESULTS-sql.md): the primary key's range lookup of `IN`.
fn read_in_sql(t: &str, rows: usize) -> String {
    let keys = vec!["?"; rows].join(", ");
    format!(
        "SELECT digest, r_count, wl_count, r_entered, r_updated, wl_entered, wl_updated \
         FROM {t} WHERE digest IN ({keys})"
    )
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
    /// [`upsert_sql`], [`report_upsert_sql`], [`read_sql`] and
    /// [`read_in_sql`] per size class ([`per_arity`]).
    sql_upsert: Vec<String>,
    sql_report: Vec<String>,
    sql_read: Vec<String>,
    sql_read_in: Vec<String>,
    sql_put: String,
}

/// What the database answered for a batch ([`BatchPlan::assemble`]).
#[derive(Default)]
struct Answers {
    before: Option<Vec<Option<Record>>>,
    after: Vec<Found>,
    refused: Vec<Option<String>>,
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
        let e = MysqlEngine {
            sql_upsert: per_arity(|n| upsert_sql(&t, n)),
            sql_report: per_arity(|n| report_upsert_sql(&t, n)),
            sql_read: per_arity(|n| read_sql(&t, n)),
            sql_read_in: per_arity(|n| read_in_sql(&t, n)),
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

    /// Run a batch on one session: a read alone, or a transaction of the
    /// writes and the reads (see the module's "Batches").
    fn run(
        &self,
        c: &mut Conn,
        ops: &[Op<'_>],
        plan: &BatchPlan<'_>,
        now: Timestamp,
        conflict: &std::cell::Cell<bool>,
    ) -> Result<Answers> {
        let mut refused = vec![None; plan.keys.len()];
        if plan.write_keys().next().is_none() {
            let after = self.read(c, plan)?;
            return Ok(Answers {
                before: None,
                after,
                refused,
            });
        }
        // Rows are taken in digest order, the same in every batch, so that
        // concurrent batches of this process do not deadlock.
        let (mut plain, mut odd): (Vec<usize>, Vec<usize>) = plan
            .write_keys()
            .partition(|&k| fits_any_column(plan.keys[k]));
        plain.sort_unstable_by_key(|&k| plan.keys[k]);
        odd.sort_unstable_by_key(|&k| plan.keys[k]);
        let reads = ops.iter().any(|op| !op.is_write());
        if !reads && odd.is_empty() && plain.len() <= MAX_ROWS {
            // Writes only: their replies carry no record (`Engine::execute`),
            // so nothing is read back, and one statement holds them all: it
            // runs alone, autocommitted, one round trip and one commit, the
            // database's own ceiling for a batch (bench/RESULTS-sql.md).
            self.upsert(c, plan, &plain, now, conflict)?;
            return Ok(Answers {
                before: None,
                after: vec![None; plan.keys.len()],
                refused,
            });
        }
        in_tx(c, Some(conflict), |c| {
            let before = match reads && plan.needs_before(ops, row_class) {
                true => Some(
                    self.read(c, plan)?
                        .into_iter()
                        .map(|f| f.map(|(_, r)| r))
                        .collect(),
                ),
                false => None,
            };
            for chunk in plain.chunks(MAX_ROWS) {
                self.upsert(c, plan, chunk, now, conflict)?;
            }
            // A key the column may not hold is its own statement: when the
            // database refuses it (1406, 1366), only that statement is
            // undone and only that key's counts fail.
            for &k in &odd {
                match self.upsert(c, plan, &[k], now, conflict) {
                    Err(StoreError::BadKey(why)) => refused[k] = Some(why),
                    r => r?,
                }
            }
            let after = match reads {
                true => self.read(c, plan)?,
                false => vec![None; plan.keys.len()],
            };
            Ok(Answers {
                before,
                after,
                refused,
            })
        })
    }

    /// Add the counts of `keys` (at most [`MAX_ROWS`], in the order given)
    /// with one statement, padded with rows that add nothing to its first
    /// key.
    fn upsert(
        &self,
        c: &mut Conn,
        plan: &BatchPlan<'_>,
        keys: &[usize],
        now: Timestamp,
        conflict: &std::cell::Cell<bool>,
    ) -> Result<()> {
        let (slot, n) = size_class(keys.len());
        let now = dt_value(Some(now));
        let reports_only = keys.iter().all(|&k| plan.adds[k].1 == 0);
        let (sql, per_row) = match reports_only {
            true => (&self.sql_report[slot], 4),
            false => (&self.sql_upsert[slot], 7),
        };
        let mut p: Vec<Value> = Vec::with_capacity(per_row * n);
        for i in 0..n {
            let (k, (r, w)) = match keys.get(i) {
                Some(&k) => (k, plan.adds[k]),
                None => (keys[0], (0, 0)),
            };
            p.extend([Value::from(plan.keys[k]), Value::Int(r)]);
            if reports_only {
                // [`report_upsert_sql`]: both dates `now`, padding rows too
                p.extend([now.clone(), now.clone()]);
                continue;
            }
            let date = |add: i64| if add > 0 { now.clone() } else { Value::NULL };
            p.extend([Value::Int(w), date(r), date(r), date(w), date(w)]);
        }
        c.exec_drop(sql, p).map_err(|e| {
            if is_conflict(&e) {
                conflict.set(true);
            }
            my_err("upsert", e)
        })
    }

    /// Every key's row, [`MAX_ROWS`] keys per statement.
    fn read(&self, c: &mut Conn, plan: &BatchPlan<'_>) -> Result<Vec<Found>> {
        let all = plan.keys.len();
        let mut found: Vec<Found> = vec![None; all];
        for lo in (0..all).step_by(MAX_ROWS) {
            let hi = (lo + MAX_ROWS).min(all);
            if self.read_in(c, &plan.keys[lo..hi], &mut found[lo..hi])? {
                continue;
            }
            let (slot, n) = size_class(hi - lo);
            let mut p: Vec<Value> = Vec::with_capacity(2 * n);
            for i in lo..lo + n {
                match plan.keys.get(i).filter(|_| i < hi) {
                    Some(k) => p.extend([Value::Int(i as i64), Value::from(*k)]),
                    // NULL equals no row
                    None => p.extend([Value::NULL, Value::NULL]),
                }
            }
            let rows: Vec<mysql::Row> = c
                .exec(&self.sql_read[slot], p)
                .map_err(|e| my_err("select", e))?;
            for row in rows {
                let v = row.unwrap();
                let i = match v.first() {
                    Some(&Value::Int(i)) => usize::try_from(i).ok(),
                    Some(&Value::UInt(i)) => usize::try_from(i).ok(),
                    _ => None,
                }
                .filter(|i| (lo..hi).contains(i));
                let (Some(i), Some(Value::Bytes(id))) = (i, v.get(1)) else {
                    return Err(StoreError::Other(format!(
                        "MySQL read: a row that answers no key of the batch: {v:?}"
                    )));
                };
                let rec = row_record(plan.keys[i].as_bytes(), &v[2..])?;
                found[i] = Some((id.clone(), rec));
            }
        }
        Ok(found)
    }

    /// [`read_in_sql`] for `keys` (at most [`MAX_ROWS`]) into `found`;
    /// `false` (and `found` untouched) when it cannot answer them: a key
    /// not of ASCII letters and digits, two keys equal but for case, or a
    /// row that matches no key by ASCII case.
    fn read_in(&self, c: &mut Conn, keys: &[&str], found: &mut [Found]) -> Result<bool> {
        if !keys.iter().all(|k| plain_key(k)) {
            return Ok(false);
        }
        // The keys' indices in ASCII-case order, to find a row's key by
        // binary search; two keys equal but for case are neighbours there.
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_unstable_by(|&a, &b| cmp_ascii_ci(keys[a], keys[b]));
        if order
            .windows(2)
            .any(|w| keys[w[0]].eq_ignore_ascii_case(keys[w[1]]))
        {
            return Ok(false);
        }
        let (slot, n) = size_class(keys.len());
        let p: Vec<Value> = (0..n)
            .map(|i| Value::from(keys.get(i).unwrap_or(&keys[0])))
            .collect();
        let rows: Vec<mysql::Row> = c
            .exec(&self.sql_read_in[slot], p)
            .map_err(|e| my_err("select", e))?;
        let mut got = Vec::with_capacity(rows.len());
        for row in rows {
            let v = row.unwrap();
            let Some(Value::Bytes(id)) = v.first() else {
                return Err(StoreError::Other(format!(
                    "MySQL read: a row without its digest: {v:?}"
                )));
            };
            let Some(i) = std::str::from_utf8(id).ok().and_then(|d| {
                order
                    .binary_search_by(|&j| cmp_ascii_ci(keys[j], d))
                    .ok()
                    .map(|at| order[at])
            }) else {
                return Ok(false);
            };
            got.push((i, id.clone(), v));
        }
        for (i, id, v) in got {
            found[i] = Some((id, row_record(keys[i].as_bytes(), &v[1..])?));
        }
        Ok(true)
    }
}

impl Engine for MysqlEngine {
    fn name(&self) -> &'static str {
        "mysql"
    }

    fn execute(&self, ops: &[Op<'_>], now: Timestamp, out: &mut Vec<Option<Record>>) -> Result<()> {
        let plan = BatchPlan::new(ops, op_key);
        let start = out.len();
        let answers = match plan.keys.is_empty() {
            // every operation failed before the database (not UTF-8)
            true => Answers::default(),
            false => retry_lock_conflicts("mysql", self.limits.wait, |conflict| {
                self.pool
                    .with(|c| self.run(&mut c.0, ops, &plan, now, conflict))
            })?,
        };
        let failed = plan.assemble(
            ops,
            answers.before.as_deref(),
            &answers.after,
            &answers.refused,
            out,
        );
        batch_outcome(failed, ops.len(), out, start)
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

    /// Every row count has a class that holds it with little padding, and
    /// each class's statement text is built for exactly its rows.
    #[test]
    fn size_classes_hold_every_count_with_little_padding() {
        let mut last = (0, 0);
        for n in 1..=MAX_ROWS {
            let (slot, rows) = size_class(n);
            assert!(slot < CLASSES, "{n}: slot {slot}");
            assert_eq!(class_rows(slot), rows, "{n}");
            assert!(rows >= n, "{n} -> {rows}");
            assert!((rows - n) * 8 <= n, "{n} -> {rows}: too much padding");
            assert!(slot >= last.0 && rows >= last.1, "{n}: not monotone");
            last = (slot, rows);
        }
        assert_eq!(last, (CLASSES - 1, MAX_ROWS));
        // every slot is some count's class
        let used: std::collections::BTreeSet<usize> =
            (1..=MAX_ROWS).map(|n| size_class(n).0).collect();
        assert_eq!(used.len(), CLASSES);
        assert_eq!(size_class(17), (16, 18));
        let texts = per_arity(|n| read_in_sql("t", n));
        for (slot, text) in texts.iter().enumerate() {
            assert_eq!(text.matches('?').count(), class_rows(slot));
        }
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
