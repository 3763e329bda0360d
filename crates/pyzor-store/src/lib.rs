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
//! | `postgres` | `postgres` | `postgres` | the same table in PostgreSQL |
//!
//! The trait is batch-shaped: the server hands an engine all operations of a
//! receive batch at once ([`Engine::execute`]) so that a batch of reports is
//! one transaction and one commit.

use pyzor_core::{Record, Timestamp};

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

    /// Run a batch of operations in order, as one transaction where the
    /// engine has transactions, and push `out[i]` for `ops[i]`: the record
    /// after the operation (`None` for a digest never seen, on `Get`).
    /// When this returns `Ok`, every write of the batch is durable to the
    /// level of the engine's [`Durability`]. On `Err` none of `out` is valid
    /// and the caller answers every request of the batch with 500.
    fn execute(&self, ops: &[Op<'_>], now: Timestamp, out: &mut Vec<Option<Record>>) -> Result<()>;

    /// Read one record.
    fn get(&self, digest: &[u8]) -> Result<Option<Record>> {
        let mut out = Vec::with_capacity(1);
        self.execute(&[Op::Get(digest)], Timestamp::now(), &mut out)?;
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
}
