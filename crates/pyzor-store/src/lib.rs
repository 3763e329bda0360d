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
pub mod pytime;
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
    #[error("corrupt record for digest {digest:?}: {reason}")]
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

    /// Run a batch of operations in order, as one transaction where the
    /// engine has transactions, and push `out[i]` for `ops[i]`: the record
    /// after the operation (`None` for a digest never seen, on `Get`).
    /// When this returns `Ok`, every write of the batch is durable to the
    /// level of the engine's [`Durability`]. On `Err` nothing is pushed
    /// (`out` keeps its previous length) and the caller answers every request
    /// of the batch with 500. A digest the engine cannot store
    /// ([`StoreError::BadKey`], only the `mysql` engine's `char(40)`) fails
    /// the batch before anything is written, so the caller may re-run the
    /// batch's requests one by one to answer only the offending one with 500.
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
pub const DEFAULT_CLEANUP_AGE: u64 = 60 * 60 * 24 * 30 * 4;

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
        }
    }

    pub fn dsn(mut self, dsn: impl Into<String>) -> Self {
        self.dsn = Some(dsn.into());
        self
    }

    /// The DSN as given, or the engine's default.
    pub fn dsn_or_default(&self) -> Result<String> {
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
        if self.cleanup_age == 0 {
            return None;
        }
        let age = i64::try_from(self.cleanup_age).unwrap_or(i64::MAX);
        Some(Timestamp(
            now.0.saturating_sub(age.saturating_mul(1_000_000)),
        ))
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
        )?)),
        #[cfg(feature = "postgres")]
        "postgres" => Ok(Arc::new(postgres::PostgresEngine::open(
            &opts.dsn_or_default()?,
            opts.db_connections,
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
    fn options_defaults_and_cutoff() {
        let mut o = EngineOptions::new("lmdb", "/home/p");
        assert_eq!(o.file_path().unwrap(), PathBuf::from("/home/p/pyzord.lmdb"));
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
}
