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
//! * **A batch is a few statements whatever its size**, prepared once per
//!   connection and sent together (tokio-postgres pipelines requests
//!   polled concurrently): a batch of checks/infos is one `SELECT … WHERE
//!   digest = ANY($1)`, one round trip, sent while no batch with writes
//!   runs on one read connection that all callers share, pipelined
//!   (module `pipeline`); a batch of writes only (reports,
//!   whitelists: their replies carry no record) is the `INSERT` below
//!   alone, autocommitted (atomic, and durable like any commit), one
//!   round trip; any other batch with writes is `BEGIN`,
//!   that `SELECT … ORDER BY digest FOR UPDATE` (the state before the
//!   batch, its rows locked) and one `INSERT … SELECT … FROM unnest($1, $2,
//!   $3) ON CONFLICT (digest) DO UPDATE … RETURNING` for all its reports
//!   and whitelists in one round trip, then `COMMIT` in a second.
//!   Duplicates are aggregated per digest before the statement (a row
//!   cannot be touched twice by one `ON CONFLICT`), digests in byte order
//!   (the locks of concurrent batches are taken in one order). Each
//!   operation's record is then assembled in request order from the state
//!   before the batch (`assemble`), as the memory engine would have it.
//!   Counts saturate at sys.maxsize like the reference's.
//! * A 200 means committed: `execute` returns only after PostgreSQL
//!   answered the `COMMIT`, which with the server's defaults
//!   (`synchronous_commit = on`, `fsync = on`) means the WAL was flushed.
//! * A bounded pool of `DBConnections` connections (default 8), checked
//!   after a second idle; a connection that failed is closed, never reused
//!   (the server rolls its transaction back), and a new one is made on the
//!   next request. Several batches (one per server worker) are in flight
//!   at once; a lock conflict with another one (a deadlock, possible only
//!   when rows appear between two statements) is retried.
//! * **Timeouts** ([`Limits`], docs/engines.md): every session sets
//!   `lock_timeout` = `EngineTimeout`, `statement_timeout` = `EngineTimeout`
//!   (the longer bulk bound for expiry, migration and scans, which have
//!   their own two sessions) and `idle_in_transaction_session_timeout` =
//!   twice `EngineTimeout` (a client gone silent does not keep its locks).
//!   The client gives up on a server that says nothing for twice the
//!   statement bound (a deadline on every round trip, TCP keepalive,
//!   `TCP_USER_TIMEOUT`).

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::join3;
use pyzor_protocol::{Record, Timestamp};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, NoTls, Row, Statement};

use crate::sql::{
    retry_lock_conflicts, KeysetPages, Limits, Paged, Pool, ScanItem, Session, CHECK_AFTER_IDLE,
};
use crate::{Engine, Op, RecordIter, Result, StoreError};

mod pipeline;
use pipeline::{Pipelined, ReadLine};

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
/// administrator added, and 54 "program limit exceeded": a digest too
/// long for the primary key's btree, over 2704 bytes after compression):
/// the record's own error. Its transaction is rolled back, so nothing of
/// the batch is written ([`StoreError::BadKey`]) and the server re-runs
/// the batch request by request (D13).
fn row_refused(code: &SqlState) -> bool {
    ["22", "23", "54"]
        .iter()
        .any(|c| code.code().starts_with(c))
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
    /// The request path's statements, prepared on first use.
    prepared: Option<Prepared>,
}

/// The statements of [`Engine::execute`], prepared once per connection.
struct Prepared {
    read: Statement,
    lock: Statement,
    upsert: Statement,
    count: Statement,
    report: Statement,
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
            prepared: None,
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
        checked(what, conflict, self.wait(what, fut)?)
    }

    /// Drive `fut` (requests polled together are pipelined: sent at once,
    /// answered in order) and give up after `silence`.
    fn wait<T>(&self, what: &str, fut: impl Future<Output = T>) -> Result<T> {
        self.rt
            .block_on(async { tokio::time::timeout(self.silence, fut).await })
            .map_err(|_| {
                StoreError::Unavailable(format!(
                    "PostgreSQL {what}: the server did not answer within {:?}",
                    self.silence
                ))
            })
    }

    /// Prepare the request path's statements when this connection first
    /// needs them, one after the other: preparing waits for a lock on the
    /// table, and the first to time out ends it (pipelined, each would wait
    /// its own lock timeout, together longer than the client waits, and the
    /// cause, the lock, would not be told).
    fn prepare_once(&mut self, sql: &Sql) -> Result<()> {
        if self.prepared.is_none() {
            let c = &self.client;
            self.prepared = Some(Prepared {
                read: self.run("prepare", None, c.prepare(&sql.read))?,
                lock: self.run("prepare", None, c.prepare(&sql.lock))?,
                upsert: self.run("prepare", None, c.prepare(&sql.upsert))?,
                count: self.run("prepare", None, c.prepare(&sql.count))?,
                report: self.run("prepare", None, c.prepare(&sql.report))?,
            });
        }
        Ok(())
    }

    /// Run a batch's statements ([`Plan`]) and return the rows of the
    /// state before it and, when it writes, of the state after it. A
    /// batch with writes is one transaction of two round trips: `BEGIN`
    /// and its statements sent together, then `COMMIT` once they all
    /// succeeded (so that a server that stops answering before the commit
    /// leaves nothing written: the connection is dropped, the server rolls
    /// back). When a statement fails the transaction is aborted and the
    /// first statement's error is returned (the ones after it only say the
    /// transaction was aborted).
    fn run_batch(
        &mut self,
        sql: &Sql,
        plan: &Plan<'_>,
        now: Option<SystemTime>,
        conflict: &Cell<bool>,
    ) -> Result<(Vec<Row>, Vec<Row>)> {
        self.prepare_once(sql)?;
        let st = self.prepared.as_ref().expect("prepared above");
        let c = &self.client;
        if plan.written.is_empty() {
            let before = self.run("query", None, c.query(&st.read, &[&plan.all]))?;
            return Ok((before, Vec::new()));
        }
        if !plan.reads {
            // Writes only: one statement, autocommitted (atomic, and as
            // durable as a COMMIT), one round trip; nothing is read back.
            let reports_only = plan.whitelists.iter().all(|&w| w == 0);
            let (st, params): (_, &[&(dyn ToSql + Sync)]) = match reports_only {
                true => (&st.report, &[&plan.written, &plan.reports, &now]),
                false => (
                    &st.count,
                    &[&plan.written, &plan.reports, &plan.whitelists, &now],
                ),
            };
            self.run("upsert", Some(conflict), c.execute(st, params))?;
            return Ok((Vec::new(), Vec::new()));
        }
        let (begin, before, after) = self.wait(
            "batch",
            join3(
                c.batch_execute("BEGIN"),
                c.query(&st.lock, &[&plan.all]),
                c.query(
                    &st.upsert,
                    &[&plan.written, &plan.reports, &plan.whitelists, &now],
                ),
            ),
        )?;
        let flag = Some(conflict);
        let done = checked("begin", flag, begin).and_then(|()| {
            Ok((
                checked("lock", flag, before)?,
                checked("upsert", flag, after)?,
            ))
        });
        match done {
            Ok(rows) => {
                self.run("commit", flag, c.batch_execute("COMMIT"))?;
                Ok(rows)
            }
            // the session is kept (see `Pool`): end its transaction
            Err(e @ StoreError::BadKey(_)) => {
                self.run("rollback", None, c.batch_execute("ROLLBACK"))?;
                Err(e)
            }
            Err(e) => Err(e),
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

/// A statement's outcome as ours; `conflict` is set when it failed on a
/// lock conflict.
fn checked<T>(
    what: &str,
    conflict: Option<&Cell<bool>>,
    r: Result<T, tokio_postgres::Error>,
) -> Result<T> {
    r.map_err(|e| {
        if let Some(flag) = conflict.filter(|_| is_lock_conflict(&e)) {
            flag.set(true);
        }
        pg_err(what, e)
    })
}

impl Session for PgConn {
    fn alive(&mut self, idle: Duration) -> bool {
        self.answers(idle)
    }
}

impl PgConn {
    /// [`Session::alive`], for a session shared by several threads too
    /// ([`Pipelined`]).
    fn answers(&self, idle: Duration) -> bool {
        !self.client.is_closed()
            && (idle < CHECK_AFTER_IDLE
                || self
                    .run("check", None, self.client.simple_query(""))
                    .is_ok())
    }
}

/// How to make a session whose statements may run for `statement`.
fn session_maker(
    base: &Config,
    limits: Limits,
    statement: Duration,
) -> impl Fn() -> Result<PgConn> + Send + Sync + 'static {
    let ms = |d: Duration| d.as_millis().max(1);
    // SET rather than the startup packet's `options`, which connection
    // poolers such as PgBouncer refuse. Prepared statements are planned
    // for their parameters each time: a generic plan made while the table
    // was small (a sequential scan) would otherwise stay for the life of
    // the connection, however large the table grows (measured: every batch
    // of reports read the whole table, 10× slower than before).
    let setup = format!(
        "SET plan_cache_mode = force_custom_plan; \
         SET lock_timeout = {}; SET statement_timeout = {}; SET idle_in_transaction_session_timeout = {}",
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
    move || PgConn::connect(&config, login, silence, &setup)
}

/// Sessions whose statements may run for `statement`.
fn session_pool(base: &Config, max: usize, limits: Limits, statement: Duration) -> Pool<PgConn> {
    Pool::new(
        "PostgreSQL",
        max,
        limits.wait,
        session_maker(base, limits, statement),
    )
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
    /// Batches of reads only, pipelined on one connection (`pipeline`).
    reads: ReadLine,
    /// Batches with writes running now.
    writing: AtomicUsize,
    pool: Pool<PgConn>,
    bulk: Pool<PgConn>,
    table: String,
    sql: Sql,
    sql_put: String,
}

/// A batch with writes in progress ([`PostgresEngine::writing`]); ends
/// when dropped, however the batch ended.
struct Writing<'a>(&'a AtomicUsize);

impl<'a> Writing<'a> {
    fn start(n: &'a AtomicUsize) -> Self {
        n.fetch_add(1, Relaxed);
        Writing(n)
    }
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// The text of the request path's statements ([`Prepared`]).
struct Sql {
    /// The records of `$1` (digests), in no particular order.
    read: String,
    /// The same, in digest order, their rows locked until the commit.
    lock: String,
    /// Add `$2` reports and `$3` whitelists at `$4` to the records of the
    /// digests `$1` (distinct), creating the missing ones; return them.
    upsert: String,
    /// The same without returning them: a batch of writes only, whose
    /// replies carry no record.
    count: String,
    /// `count` for a batch of reports only: `$2` reports at `$3`, the
    /// whitelist side of an existing record untouched, of a new one 0 with
    /// no dates, exactly as `count` with no whitelists; fewer parameters
    /// and expressions per row for the database (bench/RESULTS-sql.md,
    /// "Turns").
    report: String,
}

impl Sql {
    fn new(t: &str) -> Sql {
        const MAX: &str = "9223372036854775807";
        // The reference's r_increment/wl_increment (Record::report and
        // Record::whitelist in Rust) applied n times: the count saturates
        // at sys.maxsize, the first date is kept, the last is `now`; a side
        // with no request in the batch (n = 0) is left as it is.
        let side = |s: &str| {
            format!(
                "{s}_count = CASE WHEN d.{s}_count > {MAX} - EXCLUDED.{s}_count THEN {MAX} \
                 ELSE d.{s}_count + EXCLUDED.{s}_count END, \
                 {s}_entered = COALESCE(d.{s}_entered, EXCLUDED.{s}_entered), \
                 {s}_updated = COALESCE(EXCLUDED.{s}_updated, d.{s}_updated)"
            )
        };
        let (r, wl) = (side("r"), side("wl"));
        let report = format!(
            "INSERT INTO {t} AS d (digest, r_count, wl_count, r_entered, r_updated) \
             SELECT i.digest, i.nr, 0, $3::timestamptz, $3::timestamptz \
             FROM unnest($1::bytea[], $2::bigint[]) AS i(digest, nr) \
             ON CONFLICT (digest) DO UPDATE SET {r}"
        );
        let count = format!(
            "INSERT INTO {t} AS d (digest, {COLS}) \
             SELECT i.digest, i.nr, i.nw, \
             CASE WHEN i.nr > 0 THEN $4::timestamptz END, CASE WHEN i.nr > 0 THEN $4::timestamptz END, \
             CASE WHEN i.nw > 0 THEN $4::timestamptz END, CASE WHEN i.nw > 0 THEN $4::timestamptz END \
             FROM unnest($1::bytea[], $2::bigint[], $3::bigint[]) AS i(digest, nr, nw) \
             ON CONFLICT (digest) DO UPDATE SET {r}, {wl}"
        );
        Sql {
            upsert: format!("{count} RETURNING digest, {COLS}"),
            count,
            report,
            read: format!("SELECT digest, {COLS} FROM {t} WHERE digest = ANY($1::bytea[])"),
            lock: format!(
                "SELECT digest, {COLS} FROM {t} WHERE digest = ANY($1::bytea[]) ORDER BY digest FOR UPDATE"
            ),
        }
    }
}

/// What a batch asks of the database: its distinct digests (read, and
/// locked when it writes) and, per written digest, how many reports and
/// whitelists; both in byte order, PostgreSQL's order of `bytea`.
#[derive(Debug, PartialEq, Eq)]
struct Plan<'a> {
    /// Whether an operation reads (check, info): a batch of writes only
    /// reads nothing back (their replies carry no record).
    reads: bool,
    all: Vec<&'a [u8]>,
    written: Vec<&'a [u8]>,
    reports: Vec<i64>,
    whitelists: Vec<i64>,
}

impl<'a> Plan<'a> {
    fn of(ops: &[Op<'a>]) -> Plan<'a> {
        let mut all: Vec<&[u8]> = ops.iter().map(Op::digest).collect();
        all.sort_unstable();
        all.dedup();
        let mut counts: BTreeMap<&[u8], (i64, i64)> = BTreeMap::new();
        for op in ops {
            match *op {
                Op::Get(_) => {}
                Op::Report(d) => counts.entry(d).or_default().0 += 1,
                Op::Whitelist(d) => counts.entry(d).or_default().1 += 1,
            }
        }
        let mut p = Plan {
            reads: ops.iter().any(|op| !op.is_write()),
            all,
            written: Vec::with_capacity(counts.len()),
            reports: Vec::with_capacity(counts.len()),
            whitelists: Vec::with_capacity(counts.len()),
        };
        for (d, (r, w)) in counts {
            p.written.push(d);
            p.reports.push(r);
            p.whitelists.push(w);
        }
        p
    }
}

/// Each operation's record, pushed onto `out` in request order: the state
/// before the batch (`before`: the records that existed) with the batch's
/// operations applied one by one, as the memory engine does. A written
/// digest's last state must equal what the database returned (`after`);
/// when it does not — its row did not exist when the batch read it and
/// another session created it before the batch's upsert — the operations
/// from its first write on get the database's record less the counts of
/// the batch's later operations on it (their dates are the database's).
fn assemble(
    ops: &[Op<'_>],
    now: Timestamp,
    before: &HashMap<Vec<u8>, Record>,
    after: &HashMap<Vec<u8>, Record>,
    out: &mut Vec<Option<Record>>,
) -> Result<()> {
    let start = out.len();
    // per digest: its record so far, and whether the batch wrote it
    let mut state: HashMap<&[u8], (Option<Record>, bool)> = HashMap::with_capacity(ops.len());
    for op in ops {
        let (s, written) = state
            .entry(op.digest())
            .or_insert_with(|| (before.get(op.digest()).copied(), false));
        match *op {
            Op::Get(_) => {}
            Op::Report(_) => s.get_or_insert_with(Record::default).report(now),
            Op::Whitelist(_) => s.get_or_insert_with(Record::default).whitelist(now),
        }
        *written |= op.is_write();
        out.push(*s);
    }
    for (d, (last, written)) in state {
        if !written {
            continue;
        }
        let Some(fin) = after.get(d) else {
            return Err(StoreError::Other(format!(
                "PostgreSQL: the batch was committed but the upsert returned no row for one of its {} digests",
                after.len()
            )));
        };
        if last.as_ref() == Some(fin) {
            continue;
        }
        log::debug!("postgres: a record changed under the batch; its replies follow the database");
        let (mut later_r, mut later_w) = (0i64, 0i64);
        let mine = ops.iter().enumerate().filter(|(_, op)| op.digest() == d);
        let first_write = mine.clone().find(|(_, op)| op.is_write()).map(|(i, _)| i);
        for (i, op) in mine.rev() {
            if Some(i) < first_write {
                break;
            }
            let less = |count: i64, n: i64| match count {
                i64::MAX => i64::MAX,
                c => c.saturating_sub(n),
            };
            out[start + i] = Some(Record {
                r_count: less(fin.r_count, later_r),
                wl_count: less(fin.wl_count, later_w),
                ..*fin
            });
            match op {
                Op::Get(_) => {}
                Op::Report(_) => later_r += 1,
                Op::Whitelist(_) => later_w += 1,
            }
        }
    }
    Ok(())
}

/// Rows of `digest, COLS` as (digest, record) in digest order, borrowed
/// from the rows (a batch of reads, looked up by binary search: no map
/// and no copy of each digest).
fn records_in_order(rows: &[Row]) -> Result<Vec<(&[u8], Record)>> {
    let mut found = rows
        .iter()
        .map(|r| Ok((row_digest(r)?, row_record(r, 1)?)))
        .collect::<Result<Vec<_>>>()?;
    found.sort_unstable_by(|a, b| a.0.cmp(b.0));
    Ok(found)
}

/// Rows of `digest, COLS` by digest.
fn records_by_digest(rows: &[Row]) -> Result<HashMap<Vec<u8>, Record>> {
    rows.iter()
        .map(|r| Ok((row_digest(r)?.to_vec(), row_record(r, 1)?)))
        .collect()
}

/// A row's digest (its first column), borrowed from the row.
fn row_digest(r: &Row) -> Result<&[u8]> {
    r.try_get(0).map_err(|e| StoreError::Corrupt {
        digest: String::new(),
        reason: e.to_string(),
    })
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
        let max = if connections == 0 {
            DEFAULT_POOL
        } else {
            connections
        };
        let sql = Sql::new(&t);
        let (make, read) = (
            session_maker(&config, limits, limits.wait),
            sql.read.clone(),
        );
        let e = PostgresEngine {
            reads: ReadLine::new(move || Pipelined::start(make()?, &read)),
            writing: Default::default(),
            pool: session_pool(&config, max, limits, limits.wait),
            bulk: session_pool(&config, BULK_POOL, limits, limits.bulk),
            limits,
            sql,
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

    fn pipelines_reads(&self) -> bool {
        true
    }

    /// Measured (bench/RESULTS-sql.md, "Write turns"): report calls of
    /// about 30 requests that waited for each other's commits left a third
    /// of the machine idle; run at once they were faster.
    fn overlaps_commits(&self) -> bool {
        true
    }

    /// One round trip per batch of reads, two per batch with writes
    /// (`PgConn::run_batch`). Batches of
    /// several workers run at once: their rows are locked in one order
    /// (digest order, by the `FOR UPDATE` read and by the upsert), and a
    /// deadlock that still happens (a row created between the two by
    /// another batch) aborts one transaction, which committed nothing and is
    /// run again.
    fn execute(&self, ops: &[Op<'_>], now: Timestamp, out: &mut Vec<Option<Record>>) -> Result<()> {
        if ops.is_empty() {
            return Ok(());
        }
        let plan = Plan::of(ops);
        let at = to_sys(Some(now));
        // Reads only, while no write batch runs: on the pipelined
        // connection (`pipeline`). While commits run, the database's CPU is
        // shared by several sessions, and reads on sessions of their own
        // kept up with them better (90/10 mix 66–71k against 52–58k
        // requests/s on one pipelined connection; bench/RESULTS-sql.md,
        // "Pipelined reads").
        let pipelined = plan.written.is_empty() && self.writing.load(Relaxed) == 0;
        if pipelined {
            // reads only: each operation's record is its digest's row
            let rows = self.reads.read(&plan.all)?;
            let found = records_in_order(&rows)?;
            let record = |d: &[u8]| {
                let i = found.binary_search_by(|(k, _)| (*k).cmp(d)).ok()?;
                Some(found[i].1)
            };
            out.extend(ops.iter().map(|op| record(op.digest())));
            return Ok(());
        }
        let _writing = (!plan.written.is_empty()).then(|| Writing::start(&self.writing));
        let (before, after) = retry_lock_conflicts("postgres", self.limits.wait, |conflict| {
            self.pool
                .with(|c| c.run_batch(&self.sql, &plan, at, conflict))
        })?;
        let read = |rows: &[Row]| match (records_by_digest(rows), plan.written.is_empty()) {
            (Ok(m), _) => Ok(m),
            // nothing was written: the record's own error
            (Err(e), true) => Err(e),
            (Err(e), false) => Err(StoreError::Other(format!(
                "PostgreSQL: the batch was committed but a record could not be read back: {e}"
            ))),
        };
        let start = out.len();
        if !plan.reads {
            out.extend(ops.iter().map(|_| None));
            return Ok(());
        }
        let r = assemble(ops, now, &read(&before)?, &read(&after)?, out);
        if r.is_err() {
            out.truncate(start);
        }
        r
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_aggregates_duplicates_in_byte_order() {
        let ops = [
            Op::Report(b"b"),
            Op::Get(b"c"),
            Op::Whitelist(b"a"),
            Op::Report(b"b"),
            Op::Whitelist(b"b"),
            Op::Get(b"a"),
        ];
        assert_eq!(
            Plan::of(&ops),
            Plan {
                reads: true,
                all: vec![&b"a"[..], b"b", b"c"],
                written: vec![&b"a"[..], b"b"],
                reports: vec![0, 2],
                whitelists: vec![1, 1],
            }
        );
        assert!(Plan::of(&[Op::Get(b"x"), Op::Get(b"x")]).written.is_empty());
        assert!(!Plan::of(&[Op::Report(b"x"), Op::Whitelist(b"y")]).reads);
    }

    /// A row another session created between the batch's read and its
    /// upsert: the replies from the first write on follow the database's
    /// record (less the batch's later counts); a read before it keeps
    /// what the batch read.
    #[test]
    fn replies_follow_the_database_when_a_row_changed_under_the_batch() {
        let now = Timestamp(2_000_000);
        let theirs = Timestamp(1_000_000);
        let ops = [
            Op::Get(b"d"),
            Op::Report(b"d"),
            Op::Get(b"d"),
            Op::Report(b"d"),
            Op::Whitelist(b"d"),
            Op::Get(b"e"),
        ];
        let fin = Record {
            r_count: 7,
            wl_count: 1,
            r_entered: Some(theirs),
            r_updated: Some(now),
            wl_entered: Some(now),
            wl_updated: Some(now),
        };
        let after = HashMap::from([(b"d".to_vec(), fin)]);
        let mut out = vec![None];
        assemble(&ops, now, &HashMap::new(), &after, &mut out).unwrap();
        let counts: Vec<_> = out[1..]
            .iter()
            .map(|r| r.map(|r| (r.r_count, r.wl_count, r.r_entered)))
            .collect();
        assert_eq!(
            counts,
            vec![
                None,
                Some((6, 0, Some(theirs))),
                Some((6, 0, Some(theirs))),
                Some((7, 0, Some(theirs))),
                Some((7, 1, Some(theirs))),
                None
            ]
        );
        // when the database agrees, the replies are the batch's own
        let mut mine = Record::default();
        mine.report(now);
        mine.report(now);
        mine.whitelist(now);
        let after = HashMap::from([(b"d".to_vec(), mine)]);
        let mut out = Vec::new();
        assemble(&ops, now, &HashMap::new(), &after, &mut out).unwrap();
        assert_eq!(out[2].unwrap().r_count, 1);
        assert_eq!(out[4], Some(mine));
        // a saturated count stays saturated
        let full = Record {
            r_count: i64::MAX,
            ..fin
        };
        let after = HashMap::from([(b"d".to_vec(), full)]);
        let mut out = Vec::new();
        assemble(&ops, now, &HashMap::new(), &after, &mut out).unwrap();
        assert_eq!(out[1].unwrap().r_count, i64::MAX);
        // a written digest the upsert did not return: an error, nothing pushed by the caller
        let mut out = Vec::new();
        assert!(matches!(
            assemble(&ops, now, &HashMap::new(), &HashMap::new(), &mut out),
            Err(StoreError::Other(_))
        ));
    }
}
