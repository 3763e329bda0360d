//! # pyzor-store
//!
//! Where Pyzor's records live. One trait, [`Engine`], and one module per
//! engine, each behind a cargo feature of the same name:
//!
//! | engine name (`-e`) | module | feature | data |
//! | --- | --- | --- | --- |
//! | `lmdb` (default) | `lmdb` | `lmdb` | embedded LMDB environment (heed) |
//! | `gdbm` | `gdbm` | `gdbm` | the reference's `pyzord.db` GDBM file, in place |
//! | `redis` | `redis` | `redis` | the reference's `pyzord.digest_v1.*` hashes |
//! | `redis_v0` | `redis` | `redis` | the reference's old string layout (migration source) |
//! | `mysql` | `mysql` | `mysql` | the reference's `digests` table |
//! | `postgres` | `postgres` | `postgres` | the same fields in a PostgreSQL table (new) |
//! | `memory` | `memory` | — (always) | a `HashMap`; volatile, for tests and benchmarks |
//!
//! The trait is batch-shaped: the server hands an engine all operations of a
//! receive batch at once ([`Engine::execute`]) so that a batch of reports is
//! one transaction and one commit.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pyzor_protocol::{Record, Timestamp};

/// The wall clock as a [`Timestamp`]: the one place the storage side reads
/// it (the protocol crate never does; callers pass time in).
pub fn now() -> Timestamp {
    Timestamp::from_system_time(std::time::SystemTime::now())
}

#[cfg(any(feature = "redis", feature = "mysql", feature = "postgres"))]
mod backoff;
pub mod codec;
#[cfg(feature = "gdbm")]
pub mod gdbm;
#[cfg(feature = "lmdb")]
pub mod lmdb;
pub mod memory;
#[cfg(feature = "mysql")]
pub mod mysql;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(any(feature = "gdbm", feature = "redis", feature = "mysql"))]
pub(crate) mod pytime;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(any(feature = "mysql", feature = "postgres"))]
pub mod sql;

/// One operation of a batch, in the order the requests arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op<'a> {
    /// Read a record (check, info).
    Get(&'a [u8]),
    /// Count one spam report.
    Report(&'a [u8]),
    /// Count one whitelist request.
    Whitelist(&'a [u8]),
}

impl<'a> Op<'a> {
    pub fn digest(&self) -> &'a [u8] {
        match *self {
            Op::Get(d) | Op::Report(d) | Op::Whitelist(d) => d,
        }
    }
    /// Whether the operation changes a count (report, whitelist).
    pub fn is_write(&self) -> bool {
        !matches!(self, Op::Get(_))
    }
}

/// How hard a write is pushed to disk before it is acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Durability {
    /// An acknowledged write survives a crash of the process (`kill -9`);
    /// it reaches the disk within about a second.
    #[default]
    Process,
    /// An acknowledged write survives power loss: every commit is fsynced
    /// (one fsync serves a whole batch).
    Fsync,
}

/// What went wrong in an engine. Each variant says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The engine's service or file cannot be reached right now; the
    /// request may succeed later (the reference answers 500
    /// "Database temporarily unavailable.").
    #[error("database temporarily unavailable: {0}")]
    Unavailable(String),
    /// The DSN or engine options are wrong; fix the configuration.
    #[error("bad engine configuration: {0}")]
    Config(String),
    /// A stored value could not be decoded; the record is skipped or reported.
    /// (The message shows at most 64 characters of the digest: digests
    /// come from the network.)
    #[error("corrupt record for digest {:?}: {reason}", shown(digest))]
    Corrupt { digest: String, reason: String },
    /// The digest cannot be stored by this engine (e.g. too long for the
    /// MySQL `char(40)` column).
    #[error("digest not storable by this engine: {0}")]
    BadKey(String),
    /// An I/O error on a local file.
    #[error("I/O error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Anything else the engine's library reported.
    #[error("{0}")]
    Other(String),
    /// Some operations of a batch failed, the others were done: only
    /// from [`Engine::execute`], which then has pushed one entry per
    /// operation (`None` for a failed one). Lists each failed operation's
    /// index in the batch (ascending) and error; a failed operation wrote
    /// nothing.
    #[error("{}", partial_text(.0))]
    Partial(Vec<(usize, StoreError)>),
}

/// The outcome of a batch of `n` operations whose `failed` ones are known
/// and whose results were pushed onto `out` from `start` on: `Ok`, a
/// [`StoreError::Partial`], or — when every operation failed, so nothing
/// was written — the first error itself with nothing pushed.
#[cfg(any(
    feature = "redis",
    feature = "lmdb",
    feature = "gdbm",
    feature = "mysql"
))]
pub(crate) fn batch_outcome(
    mut failed: Vec<(usize, StoreError)>,
    n: usize,
    out: &mut Vec<Option<Record>>,
    start: usize,
) -> Result<()> {
    if failed.is_empty() {
        Ok(())
    } else if failed.len() == n {
        out.truncate(start);
        Err(failed.swap_remove(0).1)
    } else {
        Err(StoreError::Partial(failed))
    }
}

/// At most 64 characters of a digest, for messages.
fn shown(digest: &str) -> std::borrow::Cow<'_, str> {
    match digest.char_indices().nth(64) {
        Some((end, _)) => format!("{}… ({} bytes)", &digest[..end], digest.len()).into(),
        None => digest.into(),
    }
}

fn partial_text(failed: &[(usize, StoreError)]) -> String {
    match failed.first() {
        Some((i, e)) => format!(
            "{} operation(s) of the batch failed, the first (#{i}): {e}",
            failed.len()
        ),
        None => "no operation of the batch failed".into(),
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A stream of all records, for migration, export and expiry.
pub type RecordIter<'a> = Box<dyn Iterator<Item = Result<(Vec<u8>, Record)>> + 'a>;

/// A storage engine. Implementations are shared by all server workers.
pub trait Engine: Send + Sync {
    /// The engine's name as given to `-e` (`lmdb`, `gdbm`, ...).
    fn name(&self) -> &'static str;

    /// Whether a call may wait on something outside this process — a
    /// network round trip, a lock held by another database session — for
    /// much longer than a local disk access. The server runs such an
    /// engine's calls on an engine thread per worker, so that requests that
    /// need no engine are never held behind one. The default is `true`;
    /// the local engines (`lmdb`, `gdbm`, `memory`) say `false` and are
    /// called on the worker's own thread, the fastest path.
    fn may_block(&self) -> bool {
        true
    }

    /// Whether read-only calls made at once by several threads go to the
    /// database on one connection, sent without waiting for each other's
    /// answers and run one after the other (pipelined: `postgres`). The
    /// server's read threads then take no turns (docs/server.md,
    /// "Concurrency"): the database already runs their calls back to
    /// back, and a turn would only hold a call until the one before it
    /// was answered. The default is `false`.
    fn pipelines_reads(&self) -> bool {
        false
    }

    /// Whether the database runs the commits of several write calls well
    /// at once: one waits for its log flush while another's statement
    /// runs (`postgres`). The server's write threads then wait for their
    /// turn only with calls of fewer than 16 requests, not 32
    /// (docs/server.md, "Concurrency"). The default is `false`: waiting
    /// (1 ms at most) for the call before makes a call larger, which is
    /// cheaper where a statement costs the database more CPU than its
    /// commit's wait (MariaDB).
    fn overlaps_commits(&self) -> bool {
        false
    }

    /// Run a batch of operations in order, as one transaction where the
    /// engine has transactions, and push `out[i]` for `ops[i]`: on `Get`
    /// the record as the operation sees it (`None` for a digest never
    /// seen); on a write, the record after it, or `None` when the engine
    /// did not read it back. A report's or whitelist's reply carries no
    /// counts, so the SQL engines do not read a batch of writes only
    /// (one statement instead of a transaction of three or four round
    /// trips); a write in a batch that also reads gets its record.
    /// The outcome says what was written, operation by operation, so that
    /// the server answers 200 exactly to the requests whose operations were
    /// all done (docs/engines.md, "Errors"):
    ///
    /// * `Ok`: every operation was done; every write is durable to the
    ///   level of the engine's [`Durability`].
    /// * [`StoreError::Partial`]: the listed operations failed and wrote
    ///   nothing, every other one was done (as for `Ok`); `out` has one
    ///   entry per operation, `None` for a failed one. Engines that cannot
    ///   undo a batch's earlier writes (Redis, GDBM) report a record that
    ///   fails this way, and so do LMDB, which skips it inside its
    ///   transaction, and MySQL, which writes a digest the column may not
    ///   hold with a statement of its own that the database undoes alone. When every operation failed, the engine returns the
    ///   first one's error instead (nothing was written).
    /// * [`StoreError::BadKey`] or [`StoreError::Corrupt`]: one record
    ///   failed and **nothing** of the batch was written (refused before
    ///   the first write, or rolled back): the caller may re-run the batch's
    ///   requests one by one to find the offending ones (the SQL engines).
    /// * any other error: the batch failed as a whole (the service is
    ///   unreachable, a commit failed); some writes may have been applied
    ///   and the caller answers every request of the batch with 500.
    ///
    /// On any `Err` but `Partial` nothing is pushed (`out` keeps its
    /// previous length).
    fn execute(&self, ops: &[Op<'_>], now: Timestamp, out: &mut Vec<Option<Record>>) -> Result<()>;

    /// Read one record.
    fn get(&self, digest: &[u8]) -> Result<Option<Record>> {
        let mut out = Vec::with_capacity(1);
        self.execute(&[Op::Get(digest)], crate::now(), &mut out)?;
        Ok(out.pop().flatten())
    }

    /// Store records as they are (migration and import), replacing any
    /// existing record of the same digest, in one transaction where possible.
    fn put_many(&self, records: &[(Vec<u8>, Record)]) -> Result<()>;

    /// Remove records (`pyzor-migrate --delete` on the source).
    fn delete_many(&self, digests: &[Vec<u8>]) -> Result<()>;

    /// Stream every record. Memory stays bounded however many there are.
    fn scan(&self) -> Result<RecordIter<'_>>;

    /// Remove every record whose last update (of either count) is before
    /// `cutoff`; return how many went. Engines with native expiry (Redis
    /// TTL) may return 0 and rely on it.
    fn expire(&self, cutoff: Timestamp) -> Result<u64>;

    /// Push everything written so far to stable storage (timer and shutdown).
    fn flush(&self) -> Result<()>;

    /// How many records are stored, if the engine can tell cheaply.
    fn len_hint(&self) -> Option<u64> {
        None
    }

    /// A cheap estimate of the number of records, for progress bars (the
    /// SQL engines' table statistics, Redis's `DBSIZE`); it may be off.
    fn approx_len(&self) -> Option<u64> {
        self.len_hint()
    }
}

/// The engines compiled into this build, as accepted by [`open`].
pub const ENGINES: &[&str] = &[
    #[cfg(feature = "lmdb")]
    "lmdb",
    #[cfg(feature = "gdbm")]
    "gdbm",
    #[cfg(feature = "redis")]
    "redis",
    #[cfg(feature = "redis")]
    "redis_v0",
    #[cfg(feature = "mysql")]
    "mysql",
    #[cfg(feature = "postgres")]
    "postgres",
    "memory",
];

/// The default engine (`-e` not given).
pub const DEFAULT_ENGINE: &str = "lmdb";

/// The reference's default CleanupAge: 60*60*24*30*4 seconds (about four
/// months).
pub(crate) const DEFAULT_CLEANUP_AGE: u64 = 60 * 60 * 24 * 30 * 4;

/// The default bound on each wait on a network database
/// (`EngineTimeout`, see [`EngineOptions::engine_timeout`]).
pub(crate) const DEFAULT_ENGINE_TIMEOUT: Duration = Duration::from_secs(5);

/// The DSN used when none is given, for the engines that have one
/// (file engines; relative to the homedir). Network engines need a DSN.
pub fn default_dsn(engine: &str) -> Option<&'static str> {
    match engine {
        "lmdb" => Some("pyzord.lmdb"),
        "gdbm" => Some("pyzord.db"),
        _ => None,
    }
}

/// Everything needed to open an engine.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Engine name, one of [`ENGINES`].
    pub engine: String,
    /// The DSN (`--dsn`); `None` takes [`default_dsn`].
    pub dsn: Option<String>,
    /// The homedir; relative file DSNs resolve against it.
    pub homedir: PathBuf,
    pub durability: Durability,
    /// Connection pool size for network engines (`DBConnections`); 0 means
    /// the engine's default.
    pub db_connections: usize,
    /// CleanupAge in seconds; 0 disables expiry. Engines with native
    /// expiry (Redis) apply it on every write; the others expire when the
    /// server calls [`Engine::expire`].
    pub cleanup_age: u64,
    /// `EngineTimeout`: how long the network engines (mysql, postgres)
    /// wait for their database, each time they wait: to connect, for a
    /// free pooled connection or this process's previous write, for a lock
    /// inside the database (`lock_timeout`, `innodb_lock_wait_timeout`,
    /// `lock_wait_timeout`) and for a statement (`statement_timeout`,
    /// MariaDB's `max_statement_time`). A database that does not answer at
    /// all (hung, or the network gone) is given twice as long before the
    /// connection is dropped (client-side deadline, TCP keepalive and
    /// `TCP_USER_TIMEOUT`). Bulk statements off the request path (expiry,
    /// migration, scans) get `bulk_timeout` instead.
    /// See docs/engines.md.
    pub engine_timeout: Duration,
}

impl EngineOptions {
    /// Options for `engine` with the defaults of pyzord.
    pub fn new(engine: &str, homedir: impl Into<PathBuf>) -> Self {
        EngineOptions {
            engine: engine.to_string(),
            dsn: None,
            homedir: homedir.into(),
            durability: Durability::default(),
            db_connections: 0,
            cleanup_age: DEFAULT_CLEANUP_AGE,
            engine_timeout: DEFAULT_ENGINE_TIMEOUT,
        }
    }

    /// The statement bound of bulk work (expiry, `put_many`,
    /// `delete_many`, scan pages): 60 × `engine_timeout` (5 minutes by
    /// default); lock waits stay bounded by `engine_timeout`.
    #[cfg(any(feature = "mysql", feature = "postgres"))]
    pub(crate) fn bulk_timeout(&self) -> Duration {
        self.engine_timeout.saturating_mul(60)
    }

    /// The DSN for messages and logs: the password field of a network
    /// engine's DSN (the third comma-separated field of the mysql,
    /// postgres and redis forms) is replaced by `***`. A DSN without the
    /// engine's number of fields shows only its first field (the host),
    /// since where its password is cannot be told.
    pub fn masked_dsn(&self) -> String {
        let Some(dsn) = &self.dsn else {
            return default_dsn(&self.engine).unwrap_or_default().to_string();
        };
        let fields = match self.engine.as_str() {
            "mysql" | "postgres" => 5,
            "redis" | "redis_v0" => 4,
            _ => return dsn.clone(),
        };
        let mut f: Vec<&str> = dsn.split(',').collect();
        if f.len() != fields {
            return format!("{},*** ({} fields)", f[0], f.len());
        }
        if !f[2].is_empty() {
            f[2] = "***";
        }
        f.join(",")
    }

    pub fn dsn(mut self, dsn: impl Into<String>) -> Self {
        self.dsn = Some(dsn.into());
        self
    }

    /// The DSN as given, or the engine's default.
    pub(crate) fn dsn_or_default(&self) -> Result<String> {
        match (&self.dsn, default_dsn(&self.engine)) {
            (Some(d), _) => Ok(d.clone()),
            (None, Some(d)) => Ok(d.to_string()),
            (None, None) => Err(StoreError::Config(format!(
                "engine {} needs a DSN (--dsn); see docs/engines.md",
                self.engine
            ))),
        }
    }

    /// The expiry cutoff for [`Engine::expire`] at `now`: records last
    /// updated before it go. `None` when CleanupAge is 0 (expiry disabled).
    pub fn expiry_cutoff(&self, now: Timestamp) -> Option<Timestamp> {
        let age = i64::try_from(self.cleanup_age).unwrap_or(i64::MAX);
        pyzor_protocol::record::expiry_cutoff(now, age)
    }

    /// A file DSN resolved against the homedir (absolute paths stay).
    pub fn file_path(&self) -> Result<PathBuf> {
        let dsn = self.dsn_or_default()?;
        Ok(resolve(&self.homedir, &dsn))
    }
}

fn resolve(home: &Path, dsn: &str) -> PathBuf {
    let p = Path::new(dsn);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        home.join(p)
    }
}

/// Open the engine the options name.
pub fn open(opts: &EngineOptions) -> Result<Arc<dyn Engine>> {
    match opts.engine.as_str() {
        #[cfg(feature = "lmdb")]
        "lmdb" => Ok(Arc::new(lmdb::LmdbEngine::open(
            &opts.file_path()?,
            opts.durability,
        )?)),
        #[cfg(feature = "gdbm")]
        "gdbm" => Ok(Arc::new(gdbm::GdbmEngine::open(&opts.file_path()?)?)),
        #[cfg(feature = "redis")]
        "redis" | "redis_v0" => {
            let layout = if opts.engine == "redis" {
                redis::Layout::V1
            } else {
                redis::Layout::V0
            };
            Ok(Arc::new(redis::RedisEngine::open(
                &opts.dsn_or_default()?,
                layout,
                opts.cleanup_age,
                opts.db_connections,
            )?))
        }
        #[cfg(feature = "mysql")]
        "mysql" => Ok(Arc::new(mysql::MysqlEngine::open(
            &opts.dsn_or_default()?,
            opts.db_connections,
            sql::Limits::of(opts),
        )?)),
        #[cfg(feature = "postgres")]
        "postgres" => Ok(Arc::new(postgres::PostgresEngine::open(
            &opts.dsn_or_default()?,
            opts.db_connections,
            sql::Limits::of(opts),
        )?)),
        "memory" => Ok(Arc::new(memory::MemoryEngine::new())),
        other => Err(StoreError::Config(format!(
            "unknown or not compiled-in engine {other:?}; this build has: {}",
            ENGINES.join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_messages_are_bounded() {
        let e = StoreError::Corrupt {
            digest: "d".repeat(5000),
            reason: "bad".into(),
        };
        let m = e.to_string();
        assert!(m.len() < 120, "{m}");
        assert!(m.contains("(5000 bytes)"), "{m}");
        let e = StoreError::Corrupt {
            digest: "short".into(),
            reason: "bad".into(),
        };
        assert_eq!(e.to_string(), "corrupt record for digest \"short\": bad");
    }

    #[test]
    fn options_defaults_and_cutoff() {
        let mut o = EngineOptions::new("lmdb", "/srv/p");
        assert_eq!(o.file_path().unwrap(), PathBuf::from("/srv/p/pyzord.lmdb"));
        assert_eq!(
            o.clone().dsn("/abs.lmdb").file_path().unwrap(),
            PathBuf::from("/abs.lmdb")
        );
        let now = Timestamp::from_secs(20_000_000);
        assert_eq!(
            o.expiry_cutoff(now),
            Some(Timestamp::from_secs(20_000_000 - 10_368_000))
        );
        o.cleanup_age = 0;
        assert_eq!(o.expiry_cutoff(now), None);
        o.cleanup_age = u64::MAX;
        assert!(o.expiry_cutoff(now).is_some());
        assert!(matches!(
            EngineOptions::new("redis", "/").dsn_or_default(),
            Err(StoreError::Config(_))
        ));
        assert!(matches!(
            open(&EngineOptions::new("nosuch", "/")),
            Err(StoreError::Config(_))
        ));
        #[cfg(feature = "lmdb")]
        assert_eq!(ENGINES[0], DEFAULT_ENGINE);
    }

    #[test]
    fn masked_dsns_never_show_the_password() {
        let m = |engine: &str, dsn: &str| EngineOptions::new(engine, "/").dsn(dsn).masked_dsn();
        assert_eq!(
            m("mysql", "127.0.0.1,pyzor,secret,pyzor,digests"),
            "127.0.0.1,pyzor,***,pyzor,digests"
        );
        assert_eq!(
            m("mysql", "localhost,pyzor,,pyzor,digests"),
            "localhost,pyzor,,pyzor,digests"
        );
        assert_eq!(
            m("postgres", "db:5433,u,secret,pyzor,public.digests"),
            "db:5433,u,***,pyzor,public.digests"
        );
        assert_eq!(
            m("redis", "localhost,6379,secret,0"),
            "localhost,6379,***,0"
        );
        assert_eq!(
            m("redis", "sentinel:m@h1:26379;h2:26379,,secret,2"),
            "sentinel:m@h1:26379;h2:26379,,***,2"
        );
        assert_eq!(m("redis_v0", ",,secret,"), ",,***,");
        // a malformed DSN: where the password is cannot be told
        assert_eq!(m("mysql", "h,u,secret,db"), "h,*** (4 fields)");
        assert_eq!(m("redis", "h,1,secret,0,extra"), "h,*** (5 fields)");
        assert_eq!(m("lmdb", "/var/lib/pyzor,x.lmdb"), "/var/lib/pyzor,x.lmdb");
        assert_eq!(EngineOptions::new("lmdb", "/").masked_dsn(), "pyzord.lmdb");
        assert_eq!(EngineOptions::new("mysql", "/").masked_dsn(), "");
    }
}
