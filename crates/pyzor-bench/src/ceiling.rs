//! `pyzor-bench sql-ceiling`: what MariaDB/MySQL or PostgreSQL itself can do
//! for the statements of one pyzord batch, with no UDP and no pyzord in
//! between — the ceiling the SQL engines are measured against
//! (docs/benchmarking.md, "pyzor-bench sql-ceiling").
//!
//! Each of `--conns` threads owns one connection and runs batches back to
//! back: `--window` digests drawn uniformly from the `--pool` digests of
//! `load` (the same `-S` seed gives the same digests, prefilled here), then
//!
//! * `report`, pattern `batch`: one multi-row upsert in one commit
//!   (MySQL `INSERT … VALUES (…),(…)… ON DUPLICATE KEY UPDATE`, which
//!   applies a key named twice twice; PostgreSQL `INSERT … SELECT FROM
//!   unnest($1, $2) … ON CONFLICT DO UPDATE`, which may touch a row only
//!   once per statement, so a digest drawn twice goes once with count 2);
//! * `report`, pattern `per-digest`: one upsert per digest (the statement
//!   of the one-row engines), all in one transaction, one commit;
//! * `check`, pattern `batch`: one read (`IN (…)` / `= ANY($1)`);
//! * `check`, pattern `per-digest`: one `SELECT … WHERE digest = ?` each.
//!
//! Writes go in digest order (two batches then lock rows in the same
//! order and cannot deadlock each other). Tables: the reference's
//! `digests` schema for MySQL, the postgres engine's for PostgreSQL.

use crate::stats::Latency;
use crate::BenchError;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Which database.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Db {
    Mysql,
    Postgres,
}

/// Which statements make a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Pattern {
    /// One statement per batch.
    Batch,
    /// One statement per digest.
    PerDigest,
}

/// Whether the pool is written into the table before measuring.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Prefill {
    /// Insert the missing pool digests, then measure.
    Yes,
    /// Measure only (the table was prefilled before).
    No,
    /// Insert the missing pool digests and stop.
    Only,
}

/// What a batch does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum CeilOp {
    /// Count one report of each digest.
    Report,
    /// Read each digest's record.
    Check,
}

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct CeilingArgs {
    /// Database.
    #[arg(long, value_enum)]
    pub engine: Db,
    /// Connection URL in the driver's own form, e.g.
    /// `mysql://user:password@127.0.0.1:3306/db` or
    /// `host=127.0.0.1 user=postgres dbname=db`.
    #[arg(long)]
    pub dsn: String,
    /// Table (created when missing, with the engine's schema).
    #[arg(long, default_value = "pyzor_ceiling")]
    pub table: String,
    /// What a batch does.
    #[arg(short, long = "op", value_enum, default_value_t = CeilOp::Report)]
    pub op: CeilOp,
    /// One statement per batch, or one per digest.
    #[arg(long, value_enum, default_value_t = Pattern::Batch)]
    pub pattern: Pattern,
    /// Digests per batch (1 … 1024).
    #[arg(short, long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub window: u32,
    /// Size of the digest pool (prefilled before measuring).
    #[arg(short = 'P', long, default_value_t = 100_000)]
    pub pool: u64,
    /// Seed of the digest pool (the same as `load -S`).
    #[arg(short = 'S', long, default_value_t = 1)]
    pub seed: u64,
    /// Write the pool into the table first (checks must all hit).
    #[arg(long, value_enum, default_value_t = Prefill::Yes)]
    pub prefill: Prefill,
    /// Connections, each on its own thread running batches back to back.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub conns: u32,
    /// Measured seconds.
    #[arg(short, long, default_value_t = 10.0)]
    pub duration: f64,
    /// Warm-up seconds before measuring.
    #[arg(short = 'W', long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Seconds each statement (and connecting) may take before it fails.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
    /// Print the result as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Largest pool: prefilled and held in memory (40 bytes a digest).
const POOL_MAX: u64 = 10_000_000;
/// Rows per prefill statement.
const PREFILL_CHUNK: usize = 1000;
/// The reference's sys.maxsize, where counts saturate.
const MAXSIZE: i64 = i64::MAX;

type Digest = [u8; 40];

/// One connection doing a batch the chosen way.
trait Client: Send {
    /// Count one report of each digest (sorted).
    fn report(&mut self, batch: &[Digest], pattern: Pattern, now: SystemTime)
        -> Result<(), String>;
    /// Read each digest; how many records exist with a report count.
    fn check(&mut self, batch: &[Digest], pattern: Pattern) -> Result<u64, String>;
    /// Insert the digests that are missing (count 1).
    fn prefill(&mut self, digests: &[Digest], now: SystemTime) -> Result<(), String>;
    /// The server's durability settings, as `name=value` pairs.
    fn durability(&mut self) -> Result<String, String>;
}

/// The result, printed as text or JSON.
#[derive(Serialize, Debug)]
pub(crate) struct CeilingStats {
    pub engine: &'static str,
    pub op: &'static str,
    pub pattern: &'static str,
    pub window: u32,
    pub pool: u64,
    pub conns: u32,
    /// What a commit means on this server (read from it).
    pub durability: String,
    pub duration_s: f64,
    pub batches: u64,
    pub rows: u64,
    pub rows_per_s: f64,
    /// Per batch, from its first statement to its commit (or last read).
    pub batch_latency: Latency,
    /// Checks only: digests read that had a record with a report count
    /// (must equal `rows` after the prefill).
    pub check_hits: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub ok: bool,
}

impl CeilingStats {
    pub fn text(&self) -> String {
        let l = &self.batch_latency;
        format!(
            "{} {} ({}), window {}, pool {}, {} connection(s); {}\n\
             {} batches, {} rows in {:.2} s: {:.0} rows/s\n\
             batch latency ms: mean {:.3} p50 {:.3} p99 {:.3} max {:.3}\n\
             check hits {}, errors {}{}\n",
            self.engine,
            self.op,
            self.pattern,
            self.window,
            self.pool,
            self.conns,
            self.durability,
            self.batches,
            self.rows,
            self.duration_s,
            self.rows_per_s,
            l.mean_ms,
            l.p50_ms,
            l.p99_ms,
            l.max_ms,
            self.check_hits,
            self.errors,
            self.first_error
                .as_deref()
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default()
        )
    }
}

pub(crate) fn check_args(a: &CeilingArgs) -> Result<(), BenchError> {
    crate::check_timing(a.duration, a.warmup)?;
    if a.pool == 0 || a.pool > POOL_MAX {
        return Err(BenchError::BadArg(format!("--pool must be 1 … {POOL_MAX}")));
    }
    if a.timeout == 0 || a.timeout > 3600 {
        return Err(BenchError::BadArg("--timeout must be 1 … 3600 s".into()));
    }
    let name_ok = |s: &str| {
        !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    };
    if !name_ok(&a.table) {
        return Err(BenchError::BadArg(
            "--table must be 1 … 64 letters, digits or underscores".into(),
        ));
    }
    Ok(())
}

/// An error's text cut to a bounded length: driver messages may quote SQL.
fn cut(e: impl std::fmt::Display) -> String {
    let s = e.to_string();
    match s.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}

fn connect(a: &CeilingArgs) -> Result<Box<dyn Client>, BenchError> {
    let t = Duration::from_secs(a.timeout);
    let c: Box<dyn Client> = match a.engine {
        Db::Mysql => Box::new(my::MyClient::connect(&a.dsn, &a.table, a.window, t)?),
        Db::Postgres => Box::new(pg::PgClient::connect(&a.dsn, &a.table, t)?),
    };
    Ok(c)
}

/// Run the measurement: connect, create and prefill the table, then
/// `--conns` threads of batches for warm-up + duration.
pub(crate) fn run(a: &CeilingArgs, stop: Arc<AtomicBool>) -> Result<CeilingStats, BenchError> {
    let pool: Arc<Vec<Digest>> = Arc::new(
        (0..a.pool)
            .map(|i| crate::proto::population_digest(a.seed, i))
            .collect(),
    );
    let mut first = connect(a)?;
    let durability = first.durability().map_err(BenchError::Db)?;
    let now = SystemTime::now();
    if a.prefill != Prefill::No {
        for chunk in pool.chunks(PREFILL_CHUNK) {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            first.prefill(chunk, now).map_err(BenchError::Db)?;
        }
    }
    drop(first);
    let mut total = Worker::default();
    if a.prefill == Prefill::Only {
        return Ok(summary(a, durability, total, Instant::now()));
    }

    // Every connection first, so that connecting is not measured.
    let clients = (0..a.conns)
        .map(|_| connect(a))
        .collect::<Result<Vec<_>, _>>()?;
    let start = Instant::now() + Duration::from_secs_f64(a.warmup);
    let plan = Plan {
        op: a.op,
        pattern: a.pattern,
        window: a.window as usize,
        start,
        end: start + Duration::from_secs_f64(a.duration),
    };
    let mut handles = Vec::new();
    for (i, mut c) in (0u64..).zip(clients) {
        let pool = Arc::clone(&pool);
        let stop = Arc::clone(&stop);
        let rng = fastrand::Rng::with_seed(a.seed ^ (i + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let h = std::thread::Builder::new()
            .name(format!("ceiling-{i}"))
            .spawn(move || worker(c.as_mut(), &pool, rng, plan, &stop))
            .map_err(BenchError::Thread)?;
        handles.push(h);
    }
    for h in handles {
        let w = h.join().map_err(|_| BenchError::WorkerPanic)?;
        total.merge(w);
    }
    Ok(summary(a, durability, total, start))
}

fn summary(a: &CeilingArgs, durability: String, total: Worker, start: Instant) -> CeilingStats {
    let elapsed = total
        .last_end
        .map(|e| e.saturating_duration_since(start).as_secs_f64())
        .unwrap_or(0.0);
    let rows_per_s = if elapsed > 0.0 {
        total.rows as f64 / elapsed
    } else {
        0.0
    };
    let ok = total.errors == 0
        && (a.prefill == Prefill::Only
            || (total.batches > 0 && (a.op != CeilOp::Check || total.hits == total.rows)));
    CeilingStats {
        engine: match a.engine {
            Db::Mysql => "mysql",
            Db::Postgres => "postgres",
        },
        op: match a.op {
            CeilOp::Report => "report",
            CeilOp::Check => "check",
        },
        pattern: match a.pattern {
            Pattern::Batch => "batch",
            Pattern::PerDigest => "per-digest",
        },
        window: a.window,
        pool: a.pool,
        conns: a.conns,
        durability,
        duration_s: elapsed,
        batches: total.batches,
        rows: total.rows,
        rows_per_s,
        batch_latency: Latency::of(&total.hist),
        check_hits: total.hits,
        errors: total.errors,
        first_error: total.first_error,
        ok,
    }
}

/// One thread's counts.
struct Worker {
    batches: u64,
    rows: u64,
    hits: u64,
    errors: u64,
    first_error: Option<String>,
    hist: Histogram<u64>,
    last_end: Option<Instant>,
}

impl Default for Worker {
    fn default() -> Self {
        Worker {
            batches: 0,
            rows: 0,
            hits: 0,
            errors: 0,
            first_error: None,
            hist: crate::stats::new_hist(),
            last_end: None,
        }
    }
}

impl Worker {
    fn merge(&mut self, o: Worker) {
        self.batches += o.batches;
        self.rows += o.rows;
        self.hits += o.hits;
        self.errors += o.errors;
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
        self.hist.add(&o.hist).expect("same histogram bounds");
        self.last_end = self.last_end.max(o.last_end);
    }
}

/// What every connection's thread does, and when.
#[derive(Clone, Copy)]
struct Plan {
    op: CeilOp,
    pattern: Pattern,
    window: usize,
    /// End of the warm-up.
    start: Instant,
    end: Instant,
}

fn worker(
    c: &mut dyn Client,
    pool: &[Digest],
    mut rng: fastrand::Rng,
    plan: Plan,
    stop: &AtomicBool,
) -> Worker {
    let Plan {
        op,
        pattern,
        window,
        start,
        end,
    } = plan;
    let mut w = Worker::default();
    let mut batch: Vec<Digest> = Vec::with_capacity(window);
    loop {
        let t0 = Instant::now();
        if t0 >= end || stop.load(Ordering::Relaxed) {
            break;
        }
        batch.clear();
        batch.extend((0..window).map(|_| pool[rng.usize(..pool.len())]));
        let r = match op {
            CeilOp::Report => {
                batch.sort_unstable();
                c.report(&batch, pattern, SystemTime::now()).map(|()| 0)
            }
            CeilOp::Check => c.check(&batch, pattern),
        };
        let t1 = Instant::now();
        if t0 < start {
            continue; // warm-up
        }
        w.batches += 1;
        w.last_end = Some(t1);
        match r {
            Ok(hits) => {
                w.rows += window as u64;
                w.hits += hits;
                let ns = (t1 - t0).as_nanos().min(u128::from(u64::MAX)) as u64;
                w.hist.saturating_record(ns.max(1));
            }
            Err(e) => {
                w.errors += 1;
                if w.first_error.is_none() {
                    w.first_error = Some(e);
                }
                // A database that fails every batch is not hammered.
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    w
}

/// Distinct digests of a sorted batch with how often each was drawn.
fn runs(batch: &[Digest]) -> (Vec<&[u8]>, Vec<i64>) {
    let mut keys: Vec<&[u8]> = Vec::with_capacity(batch.len());
    let mut counts: Vec<i64> = Vec::with_capacity(batch.len());
    for d in batch {
        if keys.last() == Some(&&d[..]) {
            *counts.last_mut().expect("pushed with its key") += 1;
        } else {
            keys.push(d);
            counts.push(1);
        }
    }
    (keys, counts)
}

mod my {
    //! MariaDB/MySQL through the `mysql` crate (binary protocol, statements
    //! prepared once per connection).

    use super::{cut, Client, Digest, Pattern, PREFILL_CHUNK};
    use crate::BenchError;
    use mysql::prelude::Queryable;
    use mysql::{Conn, Opts, OptsBuilder, Statement, TxOpts, Value};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    pub(super) struct MyClient {
        conn: Conn,
        window: usize,
        /// The reference's schema and the engine's one-row upsert.
        one_upsert: Statement,
        /// `window` rows of the same upsert in one statement.
        multi_upsert: Statement,
        one_get: Statement,
        multi_get: Statement,
        table: String,
    }

    const COLS: &str = "r_count, wl_count, r_entered, r_updated, wl_entered, wl_updated";
    const UPDATE: &str =
        "ON DUPLICATE KEY UPDATE r_count = COALESCE(r_count, 0) + VALUES(r_count), \
         r_entered = COALESCE(r_entered, VALUES(r_entered)), r_updated = VALUES(r_updated)";

    fn placeholders(n: usize, one: &str) -> String {
        vec![one; n].join(", ")
    }

    /// A datetime parameter: the reference stores local time to the second.
    fn datetime(t: SystemTime) -> Value {
        use chrono::{Datelike, TimeZone, Timelike};
        let secs = t
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let dt = chrono::Local
            .timestamp_opt(i64::try_from(secs).unwrap_or(0), 0)
            .earliest()
            .unwrap_or_default()
            .naive_local();
        Value::Date(
            u16::try_from(dt.year()).unwrap_or(0),
            dt.month() as u8,
            dt.day() as u8,
            dt.hour() as u8,
            dt.minute() as u8,
            dt.second() as u8,
            0,
        )
    }

    impl MyClient {
        pub fn connect(
            url: &str,
            table: &str,
            window: u32,
            timeout: Duration,
        ) -> Result<Self, BenchError> {
            let opts = Opts::from_url(url).map_err(|e| {
                BenchError::BadArg(format!(
                    "--dsn is no MySQL URL ({e}); e.g. mysql://user:password@127.0.0.1:3306/db"
                ))
            })?;
            let secs = timeout.as_secs().max(1);
            let opts = OptsBuilder::from_opts(opts)
                .tcp_connect_timeout(Some(timeout))
                .read_timeout(Some(timeout * 2))
                .write_timeout(Some(timeout * 2))
                .init(vec![format!(
                    "SET SESSION innodb_lock_wait_timeout = {secs}, lock_wait_timeout = {secs} \
                     /*M!100108 , max_statement_time = {secs} */"
                )]);
            let db =
                |what: &str, e: mysql::Error| BenchError::Db(format!("MySQL {what}: {}", cut(e)));
            let mut conn = Conn::new(opts).map_err(|e| db("connect", e))?;
            conn.query_drop(format!(
                "CREATE TABLE IF NOT EXISTS {table} (digest char(40) NOT NULL, r_count int(11) DEFAULT NULL, \
                 wl_count int(11) DEFAULT NULL, r_entered datetime DEFAULT NULL, wl_entered datetime DEFAULT NULL, \
                 r_updated datetime DEFAULT NULL, wl_updated datetime DEFAULT NULL, PRIMARY KEY (digest))"
            ))
            .map_err(|e| db("create table", e))?;
            let window = window as usize;
            let insert = format!(
                "INSERT INTO {table} (digest, r_count, wl_count, r_entered, r_updated) VALUES"
            );
            let mut prep = |sql: String| conn.prep(sql).map_err(|e| db("prepare", e));
            let one_upsert = prep(format!("{insert} (?, 1, 0, ?, ?) {UPDATE}"))?;
            let multi_upsert = prep(format!(
                "{insert} {} {UPDATE}",
                placeholders(window, "(?, 1, 0, ?, ?)")
            ))?;
            let one_get = prep(format!("SELECT {COLS} FROM {table} WHERE digest = ?"))?;
            let multi_get = prep(format!(
                "SELECT digest, {COLS} FROM {table} WHERE digest IN ({})",
                placeholders(window, "?")
            ))?;
            Ok(MyClient {
                conn,
                window,
                one_upsert,
                multi_upsert,
                one_get,
                multi_get,
                table: table.to_owned(),
            })
        }
    }

    fn bytes(d: &Digest) -> Value {
        Value::Bytes(d.to_vec())
    }

    impl Client for MyClient {
        fn report(
            &mut self,
            batch: &[Digest],
            pattern: Pattern,
            now: SystemTime,
        ) -> Result<(), String> {
            let now = datetime(now);
            match pattern {
                Pattern::Batch => {
                    debug_assert_eq!(batch.len(), self.window);
                    // One statement, autocommit: one commit. A digest drawn
                    // twice is two rows; MySQL applies them one after the
                    // other, so it counts 2.
                    let params: Vec<Value> = batch
                        .iter()
                        .flat_map(|d| [bytes(d), now.clone(), now.clone()])
                        .collect();
                    self.conn.exec_drop(&self.multi_upsert, params).map_err(cut)
                }
                Pattern::PerDigest => {
                    let mut tx = self
                        .conn
                        .start_transaction(TxOpts::default())
                        .map_err(cut)?;
                    for d in batch {
                        tx.exec_drop(&self.one_upsert, (bytes(d), now.clone(), now.clone()))
                            .map_err(cut)?;
                    }
                    tx.commit().map_err(cut)
                }
            }
        }

        fn check(&mut self, batch: &[Digest], pattern: Pattern) -> Result<u64, String> {
            match pattern {
                Pattern::Batch => {
                    let params: Vec<Value> = batch.iter().map(bytes).collect();
                    let rows: Vec<(Vec<u8>, Option<i64>)> = self
                        .conn
                        .exec_map(&self.multi_get, params, |row: mysql::Row| {
                            let d: Vec<u8> = row.get(0).unwrap_or_default();
                            let n: Option<i64> = row.get(1).flatten();
                            (d, n)
                        })
                        .map_err(cut)?;
                    // A digest drawn twice is read once: count it per draw.
                    let hit = |d: &Digest| rows.iter().any(|(k, n)| k == d && n.unwrap_or(0) > 0);
                    Ok(batch.iter().filter(|d| hit(d)).count() as u64)
                }
                Pattern::PerDigest => {
                    let mut hits = 0;
                    for d in batch {
                        let row: Option<mysql::Row> = self
                            .conn
                            .exec_first(&self.one_get, (bytes(d),))
                            .map_err(cut)?;
                        let n: Option<i64> = row.and_then(|r| r.get(0).flatten());
                        hits += u64::from(n.unwrap_or(0) > 0);
                    }
                    Ok(hits)
                }
            }
        }

        fn prefill(&mut self, digests: &[Digest], now: SystemTime) -> Result<(), String> {
            debug_assert!(digests.len() <= PREFILL_CHUNK);
            let now = datetime(now);
            let sql = format!(
                "INSERT IGNORE INTO {} (digest, r_count, wl_count, r_entered, r_updated) VALUES {}",
                self.table,
                placeholders(digests.len(), "(?, 1, 0, ?, ?)")
            );
            let params: Vec<Value> = digests
                .iter()
                .flat_map(|d| [bytes(d), now.clone(), now.clone()])
                .collect();
            self.conn.exec_drop(sql, params).map_err(cut)
        }

        fn durability(&mut self) -> Result<String, String> {
            let row: Option<(String, String, String)> = self
                .conn
                .query_first(
                    "SELECT CAST(@@innodb_flush_log_at_trx_commit AS CHAR), CAST(@@sync_binlog AS CHAR), \
                     CAST(@@log_bin AS CHAR)",
                )
                .map_err(cut)?;
            let (f, s, b) = row.ok_or("no answer to SELECT @@innodb_flush_log_at_trx_commit")?;
            Ok(format!(
                "innodb_flush_log_at_trx_commit={f} sync_binlog={s} log_bin={b}"
            ))
        }
    }
}

mod pg {
    //! PostgreSQL through the `postgres` crate (statements prepared once
    //! per connection).

    use super::{cut, runs, Client, Digest, Pattern, MAXSIZE};
    use crate::BenchError;
    use postgres::{Client as PgConn, Config, NoTls, Statement};
    use std::str::FromStr;
    use std::time::{Duration, SystemTime};

    pub(super) struct PgClient {
        conn: PgConn,
        /// The postgres engine's one-row upsert.
        one_upsert: Statement,
        /// Distinct digests and their counts as two arrays.
        multi_upsert: Statement,
        one_get: Statement,
        multi_get: Statement,
        prefill: Statement,
    }

    const COLS: &str = "r_count, wl_count, r_entered, r_updated, wl_entered, wl_updated";

    impl PgClient {
        pub fn connect(dsn: &str, table: &str, timeout: Duration) -> Result<Self, BenchError> {
            let mut config = Config::from_str(dsn).map_err(|e| {
                BenchError::BadArg(format!(
                    "--dsn is no PostgreSQL connection string ({}); e.g. host=127.0.0.1 user=postgres dbname=db",
                    cut(e)
                ))
            })?;
            let ms = timeout.as_millis();
            config
                .connect_timeout(timeout)
                .keepalives(true)
                .keepalives_idle(timeout)
                .options(&format!("-c statement_timeout={ms} -c lock_timeout={ms}"));
            let db = |what: &str, e: postgres::Error| {
                let cause = std::error::Error::source(&e)
                    .map(|c| format!(": {c}"))
                    .unwrap_or_default();
                BenchError::Db(format!("PostgreSQL {what}: {}", cut(format!("{e}{cause}"))))
            };
            let mut conn = config.connect(NoTls).map_err(|e| db("connect", e))?;
            conn.batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {table} (digest bytea PRIMARY KEY, r_count bigint NOT NULL DEFAULT 0, \
                 wl_count bigint NOT NULL DEFAULT 0, r_entered timestamptz, r_updated timestamptz, \
                 wl_entered timestamptz, wl_updated timestamptz)"
            ))
            .map_err(|e| db("create table", e))?;
            let update = |n: &str| {
                format!(
                    "ON CONFLICT (digest) DO UPDATE SET \
                     r_count = CASE WHEN d.r_count > {MAXSIZE} - {n} THEN {MAXSIZE} ELSE d.r_count + {n} END, \
                     r_entered = COALESCE(d.r_entered, EXCLUDED.r_entered), r_updated = EXCLUDED.r_updated"
                )
            };
            let mut prep = |sql: String| conn.prepare(&sql).map_err(|e| db("prepare", e));
            let one_upsert = prep(format!(
                "INSERT INTO {table} AS d (digest, r_count, r_entered, r_updated) VALUES ($1, 1, $2, $2) {}",
                update("1")
            ))?;
            let multi_upsert = prep(format!(
                "INSERT INTO {table} AS d (digest, r_count, r_entered, r_updated) \
                 SELECT u.digest, u.n, $3, $3 FROM unnest($1::bytea[], $2::bigint[]) AS u(digest, n) {}",
                update("EXCLUDED.r_count")
            ))?;
            let one_get = prep(format!("SELECT {COLS} FROM {table} WHERE digest = $1"))?;
            let multi_get = prep(format!(
                "SELECT digest, {COLS} FROM {table} WHERE digest = ANY($1)"
            ))?;
            let prefill = prep(format!(
                "INSERT INTO {table} (digest, r_count, r_entered, r_updated) \
                 SELECT u, 1, $2, $2 FROM unnest($1::bytea[]) AS u ON CONFLICT (digest) DO NOTHING"
            ))?;
            Ok(PgClient {
                conn,
                one_upsert,
                multi_upsert,
                one_get,
                multi_get,
                prefill,
            })
        }
    }

    impl Client for PgClient {
        fn report(
            &mut self,
            batch: &[Digest],
            pattern: Pattern,
            now: SystemTime,
        ) -> Result<(), String> {
            match pattern {
                Pattern::Batch => {
                    // One statement, autocommit: one commit. ON CONFLICT may
                    // touch a row once per statement: duplicates go as one
                    // row with their count.
                    let (keys, counts) = runs(batch);
                    self.conn
                        .execute(&self.multi_upsert, &[&keys, &counts, &now])
                        .map(drop)
                        .map_err(cut)
                }
                Pattern::PerDigest => {
                    let mut tx = self.conn.transaction().map_err(cut)?;
                    for d in batch {
                        tx.execute(&self.one_upsert, &[&&d[..], &now])
                            .map_err(cut)?;
                    }
                    tx.commit().map_err(cut)
                }
            }
        }

        fn check(&mut self, batch: &[Digest], pattern: Pattern) -> Result<u64, String> {
            match pattern {
                Pattern::Batch => {
                    let keys: Vec<&[u8]> = batch.iter().map(|d| &d[..]).collect();
                    let rows = self.conn.query(&self.multi_get, &[&keys]).map_err(cut)?;
                    let hit = |d: &Digest| {
                        rows.iter()
                            .any(|r| r.get::<_, &[u8]>(0) == &d[..] && r.get::<_, i64>(1) > 0)
                    };
                    Ok(batch.iter().filter(|d| hit(d)).count() as u64)
                }
                Pattern::PerDigest => {
                    let mut hits = 0;
                    for d in batch {
                        let row = self
                            .conn
                            .query_opt(&self.one_get, &[&&d[..]])
                            .map_err(cut)?;
                        hits += u64::from(row.is_some_and(|r| r.get::<_, i64>(0) > 0));
                    }
                    Ok(hits)
                }
            }
        }

        fn prefill(&mut self, digests: &[Digest], now: SystemTime) -> Result<(), String> {
            let keys: Vec<&[u8]> = digests.iter().map(|d| &d[..]).collect();
            self.conn
                .execute(&self.prefill, &[&keys, &now])
                .map(drop)
                .map_err(cut)
        }

        fn durability(&mut self) -> Result<String, String> {
            let mut out = Vec::new();
            for name in ["synchronous_commit", "fsync", "wal_sync_method"] {
                let row = self
                    .conn
                    .query_one(&format!("SHOW {name}"), &[])
                    .map_err(cut)?;
                out.push(format!("{name}={}", row.get::<_, String>(0)));
            }
            Ok(out.join(" "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_counts_repeated_digests() {
        let a = [b'a'; 40];
        let b = [b'b'; 40];
        let batch = [a, a, b, b, b];
        let (keys, counts) = runs(&batch);
        assert_eq!(keys, vec![&a[..], &b[..]]);
        assert_eq!(counts, vec![2, 3]);
        assert_eq!(runs(&[]).0.len(), 0);
    }

    #[test]
    fn cut_bounds_error_text() {
        let long = "x".repeat(10_000);
        assert!(cut(&long).chars().count() <= 301);
        assert_eq!(cut("short"), "short");
    }
}
