//! The embedded default engine: an LMDB environment through heed.
//!
//! * **Location.** The DSN (default `pyzord.lmdb`, relative to the homedir)
//!   names a directory holding LMDB's `data.mdb` and `lock.mdb`; it is
//!   created when missing. If the DSN names an existing regular file, that
//!   file is opened as a single-file environment (`MDB_NOSUBDIR`, lock file
//!   `<file>-lock`).
//! * **Keys.** A digest of up to [`MAX_INLINE`] bytes is stored as the key
//!   `0x00 ‖ digest` (exact bytes: empty, NUL, non-UTF-8 all fine). A longer
//!   digest — LMDB keys are limited to 511 bytes — is stored under
//!   `0x01 ‖ SHA-1(digest)` and its full bytes follow the record in the
//!   value, so that `scan` returns it exactly and a hash collision is
//!   detected instead of merging two digests.
//! * **Values.** The compact encoding of [`crate::codec`].
//! * **Durability.** [`Durability::Process`] opens with `MDB_NOSYNC`: a
//!   commit has `pwrite`n its pages when it returns, so it survives
//!   `kill -9`; [`Engine::flush`] (`mdb_env_sync(force)`), which the server
//!   calls every second, puts it on disk. [`Durability::Fsync`] syncs every
//!   commit. One `execute` batch is one write transaction (group commit).
//! * **Map size.** The map is sparse address space; it starts at 64 GiB
//!   (or the size of an existing file, if larger) and is doubled whenever
//!   LMDB answers `MDB_MAP_FULL`, after which the batch is retried.

use std::path::{Path, PathBuf};
use std::sync::RwLock;

use heed::types::Bytes;
use heed::{CommitOrAbort, Database, Env, EnvFlags, EnvOpenOptions, MdbError, RoTxn, RwTxn};
use pyzor_core::{Record, Timestamp};
use sha1::{Digest, Sha1};

use crate::{codec, Durability, Engine, Op, RecordIter, Result, StoreError};

/// Longest digest stored verbatim as (part of) the LMDB key.
pub const MAX_INLINE: usize = 510;
const TAG_INLINE: u8 = 0;
const TAG_HASHED: u8 = 1;
const INITIAL_MAP: usize = 64 << 30;
/// Records per read transaction while scanning or expiring.
const CHUNK: usize = 4096;

/// The `lmdb` engine.
pub struct LmdbEngine {
    env: Env,
    db: Database<'static, Bytes, Bytes>,
    path: PathBuf,
    /// Held shared by every transaction and exclusively while the map is
    /// resized: LMDB allows `mdb_env_set_mapsize` only while no transaction
    /// of this process is active.
    gate: RwLock<()>,
}

fn lmdb_err(path: &Path, what: &str, e: heed::Error) -> StoreError {
    match e {
        heed::Error::Io(source) => StoreError::Io {
            path: format!("{} ({what})", path.display()),
            source,
        },
        heed::Error::EnvAlreadyOpened => StoreError::Config(format!(
            "{} is already open in this process; open each LMDB environment once",
            path.display()
        )),
        other => StoreError::Other(format!("LMDB {what} on {}: {other}", path.display())),
    }
}

fn is_map_full(e: &heed::Error) -> bool {
    matches!(e, heed::Error::Mdb(MdbError::MapFull))
}

/// The LMDB key of a digest.
fn lmdb_key(digest: &[u8], buf: &mut Vec<u8>) {
    buf.clear();
    if digest.len() <= MAX_INLINE {
        buf.push(TAG_INLINE);
        buf.extend_from_slice(digest);
    } else {
        buf.push(TAG_HASHED);
        buf.extend_from_slice(&Sha1::digest(digest));
    }
}

/// Decode a stored value for `digest` (the hashed form carries the digest).
fn decode_value(key: &[u8], value: &[u8], digest: Option<&[u8]>) -> Result<(Vec<u8>, Record)> {
    let corrupt = |reason: &str| StoreError::Corrupt {
        digest: String::from_utf8_lossy(digest.unwrap_or(key)).into_owned(),
        reason: reason.to_string(),
    };
    let (rec, used) = codec::decode(value).ok_or_else(|| corrupt("undecodable LMDB value"))?;
    match key.first() {
        Some(&TAG_INLINE) => {
            if used != value.len() {
                return Err(corrupt("trailing bytes after the record"));
            }
            Ok((key[1..].to_vec(), rec))
        }
        Some(&TAG_HASHED) => Ok((value[used..].to_vec(), rec)),
        _ => Err(corrupt("unknown key tag")),
    }
}

impl LmdbEngine {
    /// Open (creating if needed) the environment at `path`.
    pub fn open(path: &Path, durability: Durability) -> Result<Self> {
        Self::open_with_map(path, durability, INITIAL_MAP)
    }

    /// [`LmdbEngine::open`] with a chosen initial map size (bytes, rounded
    /// up to whole pages); tests use a small one to exercise growth.
    pub fn open_with_map(path: &Path, durability: Durability, initial_map: usize) -> Result<Self> {
        let single_file = path.is_file();
        if !single_file {
            std::fs::create_dir_all(path).map_err(|source| StoreError::Io {
                path: path.display().to_string(),
                source,
            })?;
        }
        let data_file = if single_file {
            path.to_path_buf()
        } else {
            path.join("data.mdb")
        };
        let existing = std::fs::metadata(&data_file)
            .map(|m| m.len() as usize)
            .unwrap_or(0);
        let page = 4096usize;
        let map = initial_map
            .next_multiple_of(page)
            .max(existing.next_multiple_of(page) * 2);
        let mut flags = EnvFlags::empty();
        if single_file {
            flags |= EnvFlags::NO_SUB_DIR;
        }
        if durability == Durability::Process {
            flags |= EnvFlags::NO_SYNC;
        }
        let mut opts = EnvOpenOptions::new();
        opts.map_size(map).max_readers(1024).max_dbs(1);
        // SAFETY: the flags are plain LMDB open flags (no WRITE_MAP, so a
        // stray write through a pointer cannot corrupt the file); heed
        // refuses to open the same path twice in this process.
        unsafe { opts.flags(flags) };
        // SAFETY: see above; the environment lives inside this engine.
        let env = unsafe { opts.open(path) }.map_err(|e| lmdb_err(path, "open", e))?;
        // Reader slots left by a process that was killed.
        let _ = env.clear_stale_readers();
        let wtxn = env.write_txn().map_err(|e| lmdb_err(path, "begin", e))?;
        let db: Database<'static, Bytes, Bytes> = env
            .create_databases_and_commit(wtxn, |opener, wtxn| {
                opener
                    .create_database::<Bytes, Bytes>(wtxn, None)
                    .map(CommitOrAbort::<_, ()>::Commit)
            })
            .map_err(|e| lmdb_err(path, "create database", e))?
            .unwrap_commit();
        Ok(LmdbEngine {
            env,
            db,
            path: path.to_path_buf(),
            gate: RwLock::new(()),
        })
    }

    fn err(&self, what: &str, e: heed::Error) -> StoreError {
        lmdb_err(&self.path, what, e)
    }

    /// Double the map after `MDB_MAP_FULL`.
    fn grow(&self) -> Result<()> {
        let _excl = self.gate.write().unwrap_or_else(|p| p.into_inner());
        let current = self.env.info().map_size;
        let new = current.saturating_mul(2);
        log::warn!(
            "LMDB map of {} is full at {current} bytes; growing it to {new}",
            self.path.display()
        );
        // SAFETY: the exclusive gate guarantees no transaction of this
        // process is active (every transaction holds the gate shared).
        unsafe { self.env.resize(new) }.map_err(|e| self.err("resize", e))
    }

    /// Run `f` in a write transaction and commit, retrying after growing the
    /// map when it is full.
    fn write<T>(&self, mut f: impl FnMut(&mut RwTxn<'_>) -> Result<T, heed::Error>) -> Result<T> {
        loop {
            let r = {
                let _g = self.gate.read().unwrap_or_else(|p| p.into_inner());
                let mut txn = self
                    .env
                    .write_txn()
                    .map_err(|e| self.err("begin write", e))?;
                match f(&mut txn) {
                    Ok(v) => txn.commit().map(|_| v),
                    Err(e) => Err(e),
                }
            };
            match r {
                Ok(v) => return Ok(v),
                Err(e) if is_map_full(&e) => self.grow()?,
                Err(e) => return Err(self.err("write", e)),
            }
        }
    }

    fn read<T>(&self, f: impl FnOnce(&RoTxn<'_>) -> Result<T>) -> Result<T> {
        let _g = self.gate.read().unwrap_or_else(|p| p.into_inner());
        let txn = self.env.read_txn().map_err(|e| self.err("begin read", e))?;
        f(&txn)
    }

    fn lookup(&self, txn: &RoTxn<'_>, key: &[u8], digest: &[u8]) -> Result<Option<Record>> {
        match self.db.get(txn, key).map_err(|e| self.err("get", e))? {
            None => Ok(None),
            Some(v) => {
                let (stored, rec) = decode_value(key, v, Some(digest))?;
                if stored != digest {
                    // Only possible for the hashed form: a SHA-1 collision.
                    return Err(StoreError::BadKey(format!(
                        "digest of {} bytes collides with another stored digest",
                        digest.len()
                    )));
                }
                Ok(Some(rec))
            }
        }
    }

    fn store(
        &self,
        txn: &mut RwTxn<'_>,
        key: &[u8],
        digest: &[u8],
        rec: &Record,
        buf: &mut Vec<u8>,
    ) -> Result<(), heed::Error> {
        buf.clear();
        codec::encode_into(rec, buf);
        if key[0] == TAG_HASHED {
            buf.extend_from_slice(digest);
        }
        self.db.put(txn, key, buf)
    }

    /// One chunk of the key space after `after` (exclusive), in key order.
    fn chunk(&self, after: Option<&[u8]>) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.read(|txn| {
            let mut out = Vec::with_capacity(CHUNK);
            let iter = match after {
                None => self.db.range(
                    txn,
                    &(
                        std::ops::Bound::Unbounded::<&[u8]>,
                        std::ops::Bound::Unbounded,
                    ),
                ),
                Some(k) => self.db.range(
                    txn,
                    &(std::ops::Bound::Excluded(k), std::ops::Bound::Unbounded),
                ),
            }
            .map_err(|e| self.err("range", e))?;
            for item in iter {
                let (k, v) = item.map_err(|e| self.err("cursor", e))?;
                out.push((k.to_vec(), v.to_vec()));
                if out.len() == CHUNK {
                    break;
                }
            }
            Ok(out)
        })
    }
}

/// A scan that reads [`CHUNK`] records per short read transaction, so no
/// transaction stays open for the whole scan (which would keep LMDB from
/// reusing pages while the server writes).
struct Scan<'a> {
    engine: &'a LmdbEngine,
    buf: std::vec::IntoIter<(Vec<u8>, Vec<u8>)>,
    last: Option<Vec<u8>>,
    done: bool,
}

impl Iterator for Scan<'_> {
    type Item = Result<(Vec<u8>, Record)>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((k, v)) = self.buf.next() {
                let r = decode_value(&k, &v, None);
                self.last = Some(k);
                return Some(r);
            }
            if self.done {
                return None;
            }
            match self.engine.chunk(self.last.as_deref()) {
                Ok(c) => {
                    if c.len() < CHUNK {
                        self.done = true;
                    }
                    self.buf = c.into_iter();
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

impl Engine for LmdbEngine {
    fn name(&self) -> &'static str {
        "lmdb"
    }

    fn execute(&self, ops: &[Op<'_>], now: Timestamp, out: &mut Vec<Option<Record>>) -> Result<()> {
        let start = out.len();
        let mut key = Vec::with_capacity(64);
        if !ops.iter().any(Op::is_write) {
            let r = self.read(|txn| {
                for op in ops {
                    lmdb_key(op.digest(), &mut key);
                    out.push(self.lookup(txn, &key, op.digest())?);
                }
                Ok(())
            });
            if r.is_err() {
                out.truncate(start);
            }
            return r;
        }
        let mut val = Vec::with_capacity(64);
        // A typed error from inside the transaction (corrupt value, key
        // collision) aborts it; heed errors go through `write` for retry.
        let mut inner: Option<StoreError> = None;
        let r = self.write(|txn| {
            out.truncate(start);
            for op in ops {
                let d = op.digest();
                lmdb_key(d, &mut key);
                let cur = match self.lookup(txn, &key, d) {
                    Ok(c) => c,
                    Err(e) => {
                        inner = Some(e);
                        return Err(heed::Error::Mdb(MdbError::Incompatible));
                    }
                };
                let rec = match *op {
                    Op::Get(_) => cur,
                    Op::Report(_) => {
                        let mut r = cur.unwrap_or_default();
                        r.report(now);
                        self.store(txn, &key, d, &r, &mut val)?;
                        Some(r)
                    }
                    Op::Whitelist(_) => {
                        let mut r = cur.unwrap_or_default();
                        r.whitelist(now);
                        self.store(txn, &key, d, &r, &mut val)?;
                        Some(r)
                    }
                };
                out.push(rec);
            }
            Ok(())
        });
        if let Err(e) = r {
            out.truncate(start);
            return Err(inner.take().unwrap_or(e));
        }
        Ok(())
    }

    fn put_many(&self, records: &[(Vec<u8>, Record)]) -> Result<()> {
        let mut key = Vec::with_capacity(64);
        let mut val = Vec::with_capacity(64);
        self.write(|txn| {
            for (d, rec) in records {
                lmdb_key(d, &mut key);
                self.store(txn, &key, d, rec, &mut val)?;
            }
            Ok(())
        })
    }

    fn delete_many(&self, digests: &[Vec<u8>]) -> Result<()> {
        let mut key = Vec::with_capacity(64);
        self.write(|txn| {
            for d in digests {
                lmdb_key(d, &mut key);
                self.db.delete(txn, &key)?;
            }
            Ok(())
        })
    }

    fn scan(&self) -> Result<RecordIter<'_>> {
        Ok(Box::new(Scan {
            engine: self,
            buf: Vec::new().into_iter(),
            last: None,
            done: false,
        }))
    }

    fn expire(&self, cutoff: Timestamp) -> Result<u64> {
        let mut removed = 0u64;
        let mut last: Option<Vec<u8>> = None;
        loop {
            let chunk = self.chunk(last.as_deref())?;
            let done = chunk.len() < CHUNK;
            last = chunk.last().map(|(k, _)| k.clone());
            let victims: Vec<Vec<u8>> = chunk
                .into_iter()
                .filter(
                    |(k, v)| matches!(decode_value(k, v, None), Ok((_, r)) if r.expired(cutoff)),
                )
                .map(|(k, _)| k)
                .collect();
            if !victims.is_empty() {
                // Re-check inside the write transaction: a report may have
                // refreshed the record since the chunk was read.
                removed += self.write(|txn| {
                    let mut n = 0u64;
                    for k in &victims {
                        let still = match self.db.get(txn, k)? {
                            Some(v) => {
                                matches!(decode_value(k, v, None), Ok((_, r)) if r.expired(cutoff))
                            }
                            None => false,
                        };
                        if still && self.db.delete(txn, k)? {
                            n += 1;
                        }
                    }
                    Ok(n)
                })?;
            }
            if done {
                return Ok(removed);
            }
        }
    }

    fn flush(&self) -> Result<()> {
        self.env.force_sync().map_err(|e| self.err("sync", e))
    }

    fn len_hint(&self) -> Option<u64> {
        self.read(|txn| self.db.len(txn).map_err(|e| self.err("stat", e)))
            .ok()
    }
}
