//! The embedded default engine: an LMDB environment through heed.
//!
//! * **Location.** The DSN (default `pyzord.lmdb`, relative to the homedir)
//!   names a directory holding LMDB's `data.mdb` and `lock.mdb`; it is
//!   created when missing. If the DSN names an existing regular file, that
//!   file is opened as a single-file environment (`MDB_NOSUBDIR`, lock file
//!   `<file>-lock`).
//! * **One process.** An environment is used by one process at a time: an
//!   exclusive `flock` on `pyzor.lock` in the directory (`<file>-pyzor.lock`
//!   beside a single-file environment), which names the owner's pid; a
//!   second pyzord or pyzor-migrate on it fails to open, naming the owner.
//! * **Keys.** A digest of up to `MAX_INLINE` bytes is stored as the key
//!   `0x00 ‖ digest` (exact bytes: empty, NUL, non-UTF-8 all fine). A longer
//!   digest — LMDB keys are limited to 511 bytes — is stored under
//!   `0x01 ‖ SHA-1(digest)` and its full bytes follow the record in the
//!   value, so that `scan` returns it exactly and a hash collision is
//!   detected instead of merging two digests.
//! * **Values.** The compact encoding of [`crate::codec`].
//! * **Writes through the map.** Where the file system can reserve disk
//!   blocks (`fallocate`, which ext4, XFS, btrfs and tmpfs can), the
//!   environment is opened with `MDB_WRITEMAP`: a transaction writes its
//!   pages straight into the shared memory map instead of `pwrite`-ing
//!   copies at commit. That takes about a third off the CPU cost of a
//!   report (bench/RESULTS.md). Two costs come with it, both handled here:
//!   LMDB sizes the file to the whole map (a sparse file: `ls` shows the
//!   map size, `du` the space used), so the map starts at 1 GiB instead of
//!   64 GiB; and a write fault on a page the file system cannot allocate
//!   would kill the process with `SIGBUS` when the disk is full, so disk
//!   blocks are reserved (`RESERVE_AHEAD` beyond LMDB's last page) before
//!   they are needed. When the reservation fails, writes are refused with
//!   an `ENOSPC` error (the requests are answered 500, reads keep working)
//!   until space is free again. A file system without `fallocate` (or one
//!   already full at start) gets the `pwrite` path.
//! * **Durability.** [`Durability::Process`] opens with `MDB_NOSYNC`: when
//!   a commit returns its pages are in the kernel's page cache (written
//!   into the shared map, or `pwrite`n), so it survives `kill -9`;
//!   [`Engine::flush`] (`mdb_env_sync(force)`), which the server calls
//!   every second, puts it on disk. [`Durability::Fsync`] syncs every
//!   commit. One `execute` batch is one write transaction (group commit).
//! * **Map size.** The map is sparse address space; it starts at 1 GiB
//!   with `MDB_WRITEMAP` and 64 GiB without (or the size an existing file
//!   needs, if larger) and is doubled whenever LMDB answers
//!   `MDB_MAP_FULL`, after which the batch is retried.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, RwLock};

use heed::types::Bytes;
use heed::{CommitOrAbort, Database, Env, EnvFlags, EnvOpenOptions, MdbError, RoTxn, RwTxn};
use pyzor_protocol::{Record, Timestamp};
use sha1::{Digest, Sha1};

use crate::{codec, Durability, Engine, Op, RecordIter, Result, StoreError};

/// Longest digest stored verbatim as (part of) the LMDB key.
pub(crate) const MAX_INLINE: usize = 510;
const TAG_INLINE: u8 = 0;
const TAG_HASHED: u8 = 1;
/// Initial map without `MDB_WRITEMAP` (sparse address space only).
const INITIAL_MAP: usize = 64 << 30;
/// Initial map with `MDB_WRITEMAP`, where it is also the file's apparent
/// size: small enough not to surprise an operator's `ls` or backup tool.
const INITIAL_MAP_WRITEMAP: usize = 1 << 30;
/// Disk space kept reserved beyond LMDB's last used page when writing
/// through the map. A write transaction of the server (64 requests) dirties
/// at most a few hundred pages; bulk writes ask for more first
/// (`Reserve::ensure`).
pub(crate) const RESERVE_AHEAD: u64 = 64 << 20;
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
    /// Disk reservation ahead of the map's writes; `None` on the `pwrite`
    /// path.
    reserve: Option<Reserve>,
    /// This process's claim on the environment (released when the engine
    /// is dropped or the process ends).
    _owner: OwnerLock,
}

/// Why an operation inside a write transaction stopped: a typed error
/// (corrupt value, key collision), which aborts the transaction and is
/// returned as it is, or an LMDB error, which goes through the map-full
/// retry of [`LmdbEngine::write`].
enum Abort {
    Typed(StoreError),
    Lmdb(heed::Error),
}

impl From<StoreError> for Abort {
    fn from(e: StoreError) -> Self {
        Abort::Typed(e)
    }
}

impl From<heed::Error> for Abort {
    fn from(e: heed::Error) -> Self {
        Abort::Lmdb(e)
    }
}

/// Disk blocks reserved with `fallocate(FALLOC_FL_KEEP_SIZE)` in the data
/// file, so that LMDB's writes through the map never fault on a block the
/// file system cannot allocate (which would be `SIGBUS`, not an error).
struct Reserve {
    file: File,
    /// Bytes from the start of the file known to be allocated.
    reserved: AtomicU64,
    /// The last reservation failed for lack of space: refuse writes until
    /// a new attempt succeeds.
    full: AtomicBool,
    /// Serialises `fallocate` calls (workers commit concurrently).
    lock: Mutex<()>,
    page_size: u64,
    /// [`RESERVE_AHEAD`], or a test's value.
    ahead: u64,
}

impl Reserve {
    /// Try to reserve `[0, len)`. `Err` is the `fallocate` error.
    fn allocate(file: &File, len: u64) -> std::io::Result<()> {
        let len = libc::off_t::try_from(len).unwrap_or(libc::off_t::MAX);
        // SAFETY: plain syscall on an open descriptor owned by `file`.
        let r = unsafe { libc::fallocate(file.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, 0, len) };
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    /// Make sure `extra_pages` pages beyond LMDB's last page (plus half of
    /// the reservation ahead) are allocated; when they are not, reserve the
    /// whole reservation ahead plus those pages beyond it. Fails with
    /// `ENOSPC` when the disk is full.
    fn ensure(&self, env: &Env, extra_pages: u64) -> std::io::Result<()> {
        let used = (env.info().last_page_number as u64 + 1) * self.page_size;
        let extra = extra_pages * self.page_size;
        let need = used + extra + self.ahead / 2;
        if need <= self.reserved.load(Relaxed) && !self.full.load(Relaxed) {
            return Ok(());
        }
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        if need <= self.reserved.load(Relaxed) && !self.full.load(Relaxed) {
            return Ok(());
        }
        let target = used + extra + self.ahead;
        match Self::allocate(&self.file, target) {
            Ok(()) => {
                self.reserved.fetch_max(target, Relaxed);
                if self.full.swap(false, Relaxed) {
                    log::warn!("LMDB: disk space is available again; accepting writes");
                }
                Ok(())
            }
            Err(e) => {
                if !self.full.swap(true, Relaxed) {
                    log::error!(
                        "LMDB: cannot reserve {target} bytes of disk for the database ({e}); \
                         writes are refused until space is freed"
                    );
                }
                Err(e)
            }
        }
    }
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

/// Open (creating if needed) the data file and reserve its first `ahead`
/// bytes (without changing its length): the probe that decides whether
/// writes go through the map. Fails where `fallocate` is unsupported or the disk is
/// already full (the `pwrite` path reports ENOSPC as an error by itself).
fn probe_reserve(data_file: &Path, ahead: u64) -> std::io::Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(data_file)?;
    Reserve::allocate(&file, ahead)?;
    Ok(file)
}

/// The lock file of [`OwnerLock`]: `pyzor.lock` inside an environment
/// directory, `<file>-pyzor.lock` beside a single-file environment.
fn owner_lock_path(path: &Path, single_file: bool) -> PathBuf {
    if single_file {
        let mut name = path.as_os_str().to_owned();
        name.push("-pyzor.lock");
        PathBuf::from(name)
    } else {
        path.join("pyzor.lock")
    }
}

/// One process at a time per environment: two pyzords on one database
/// would each keep their own map size and disk reservation, so the second
/// refuses to start, naming the first (docs/server.md, "One server per
/// port and per database"). An exclusive `flock` on the lock file, which
/// then holds the owner's pid for the next one to name; the kernel drops
/// the lock when the owner ends, however it ends.
struct OwnerLock(#[allow(dead_code)] File);

impl OwnerLock {
    fn acquire(env: &Path, lock: &Path) -> Result<OwnerLock> {
        use std::io::{Read, Seek, Write};
        let io_err = |source| StoreError::Io {
            path: lock.display().to_string(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(lock)
            .map_err(io_err)?;
        // SAFETY: plain syscall on a descriptor owned by `file`.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            // Best effort: on a full disk the lock holds without the pid
            // (the next one then says "another process").
            if file.set_len(0).is_ok() {
                let _ = file.write_all(format!("{}\n", std::process::id()).as_bytes());
            }
            return Ok(OwnerLock(file));
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(io_err(e));
        }
        // The owner writes its pid right after taking the lock: read until
        // the file names a live process (bounded: 1 s).
        let mut holder = None;
        for _ in 0..40 {
            let mut text = String::new();
            if file.rewind().is_ok() && file.read_to_string(&mut text).is_ok() {
                if let Ok(pid) = text.trim().parse::<libc::pid_t>() {
                    // SAFETY: signal 0 only checks that the process exists.
                    let alive = pid > 0
                        && (unsafe { libc::kill(pid, 0) } == 0
                            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM));
                    if alive {
                        holder = Some(pid);
                        break;
                    }
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        let who = match holder {
            Some(pid) => format!("process {pid}"),
            None => "another process".to_owned(),
        };
        Err(StoreError::Config(format!(
            "{} is in use by {who} (another pyzord or pyzor-migrate, lock file {}); \
             stop it, or give each server its own database",
            env.display(),
            lock.display()
        )))
    }
}

fn is_map_full(e: &heed::Error) -> bool {
    matches!(e, heed::Error::Mdb(MdbError::MapFull))
}

/// The LMDB key of a digest, built on the stack (a check allocates
/// nothing): `0x00 ‖ digest`, or `0x01 ‖ SHA-1(digest)` for digests longer
/// than [`MAX_INLINE`].
struct Key {
    len: usize,
    buf: [u8; 1 + MAX_INLINE],
}

impl Key {
    fn new(digest: &[u8]) -> Key {
        let mut k = Key {
            len: 0,
            buf: [0; 1 + MAX_INLINE],
        };
        if digest.len() <= MAX_INLINE {
            k.buf[0] = TAG_INLINE;
            k.buf[1..=digest.len()].copy_from_slice(digest);
            k.len = 1 + digest.len();
        } else {
            let h = Sha1::digest(digest);
            k.buf[0] = TAG_HASHED;
            k.buf[1..=h.len()].copy_from_slice(&h);
            k.len = 1 + h.len();
        }
        k
    }
}

impl std::ops::Deref for Key {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Decode a stored value: the record and the digest it belongs to (a slice
/// of the key, or of the value for the hashed form). No allocation: the
/// check path runs through here.
fn decode_stored<'a>(
    key: &'a [u8],
    value: &'a [u8],
    digest: Option<&[u8]>,
) -> Result<(&'a [u8], Record)> {
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
            Ok((&key[1..], rec))
        }
        Some(&TAG_HASHED) => Ok((&value[used..], rec)),
        _ => Err(corrupt("unknown key tag")),
    }
}

/// The value stored under `key`: the record, followed by the digest for
/// the hashed key form.
fn encode_stored(rec: &Record, key: &[u8], digest: &[u8], buf: &mut Vec<u8>) {
    buf.clear();
    codec::encode_into(rec, buf);
    if key[0] == TAG_HASHED {
        buf.extend_from_slice(digest);
    }
}

/// [`decode_stored`] with the digest copied out (scans).
fn decode_value(key: &[u8], value: &[u8], digest: Option<&[u8]>) -> Result<(Vec<u8>, Record)> {
    decode_stored(key, value, digest).map(|(d, r)| (d.to_vec(), r))
}

/// The record stored under `key` for `digest`, checking that a hashed key
/// really holds this digest.
fn record_for(key: &[u8], value: &[u8], digest: &[u8]) -> Result<Record> {
    let (stored, rec) = decode_stored(key, value, Some(digest))?;
    if stored != digest {
        // Only possible for the hashed form: a SHA-1 collision.
        return Err(StoreError::BadKey(format!(
            "digest of {} bytes collides with another stored digest",
            digest.len()
        )));
    }
    Ok(rec)
}

impl LmdbEngine {
    /// Open (creating if needed) the environment at `path`.
    pub fn open(path: &Path, durability: Durability) -> Result<Self> {
        Self::open_with_map(path, durability, INITIAL_MAP)
    }

    /// [`LmdbEngine::open`] with a chosen initial map size (bytes, rounded
    /// up to whole pages); tests use a small one to exercise growth.
    pub fn open_with_map(path: &Path, durability: Durability, initial_map: usize) -> Result<Self> {
        Self::open_tuned(path, durability, initial_map, RESERVE_AHEAD)
    }

    /// [`LmdbEngine::open_with_map`] with a chosen disk reservation ahead
    /// of the last page (see `RESERVE_AHEAD`); tests use a small one to
    /// fill a small file system.
    pub fn open_tuned(
        path: &Path,
        durability: Durability,
        initial_map: usize,
        reserve_ahead: u64,
    ) -> Result<Self> {
        let single_file = path.is_file();
        if !single_file {
            std::fs::create_dir_all(path).map_err(|source| StoreError::Io {
                path: path.display().to_string(),
                source,
            })?;
        }
        let owner = OwnerLock::acquire(path, &owner_lock_path(path, single_file))?;
        let data_file = if single_file {
            path.to_path_buf()
        } else {
            path.join("data.mdb")
        };
        let existing = std::fs::metadata(&data_file)
            .map(|m| m.len() as usize)
            .unwrap_or(0);
        // Write through the map only where disk blocks can be reserved
        // ahead (see the module docs). The probe creates the data file if
        // needed; LMDB initialises an empty file as a new environment.
        let reserve_file = match probe_reserve(&data_file, reserve_ahead) {
            Ok(f) => Some(f),
            Err(e) => {
                log::info!(
                    "LMDB {}: cannot reserve disk blocks ({e}); writing pages with pwrite instead of through the map",
                    path.display()
                );
                None
            }
        };
        let page = 4096usize;
        let map = match reserve_file {
            // With MDB_WRITEMAP the file's length is the previous map size.
            Some(_) => initial_map
                .min(INITIAL_MAP_WRITEMAP)
                .next_multiple_of(page)
                .max(existing.next_multiple_of(page)),
            None => initial_map
                .next_multiple_of(page)
                .max(existing.next_multiple_of(page) * 2),
        };
        let mut flags = EnvFlags::empty();
        if single_file {
            flags |= EnvFlags::NO_SUB_DIR;
        }
        if durability == Durability::Process {
            flags |= EnvFlags::NO_SYNC;
        }
        if reserve_file.is_some() {
            flags |= EnvFlags::WRITE_MAP;
        }
        let mut opts = EnvOpenOptions::new();
        opts.map_size(map).max_readers(1024).max_dbs(1);
        // SAFETY: the flags are plain LMDB open flags; heed refuses to open
        // the same path twice in this process. With WRITE_MAP the map is
        // writable: only LMDB writes into it (this crate has no unsafe code
        // that writes through pointers into LMDB's memory).
        unsafe { opts.flags(flags) };
        // SAFETY: see above; the environment lives inside this engine.
        let env = unsafe { opts.open(path) }.map_err(|e| lmdb_err(path, "open", e))?;
        // Reader slots left by a process that was killed.
        let _ = env.clear_stale_readers();
        // LMDB's lock file is a shared map too: give its pages disk blocks
        // now, so that a new reader slot touched when the disk is full is
        // not a SIGBUS. Best effort (small: the reader table).
        let lock_file = if single_file {
            let mut name = path.as_os_str().to_owned();
            name.push("-lock");
            PathBuf::from(name)
        } else {
            path.join("lock.mdb")
        };
        if let Ok(f) = std::fs::OpenOptions::new().write(true).open(&lock_file) {
            if let Ok(m) = f.metadata() {
                let _ = Reserve::allocate(&f, m.len());
            }
        }
        let wtxn = env.write_txn().map_err(|e| lmdb_err(path, "begin", e))?;
        let db: Database<'static, Bytes, Bytes> = env
            .create_databases_and_commit(wtxn, |opener, wtxn| {
                opener
                    .create_database::<Bytes, Bytes>(wtxn, None)
                    .map(CommitOrAbort::<_, ()>::Commit)
            })
            .map_err(|e| lmdb_err(path, "create database", e))?
            .unwrap_commit();
        let reserve = match reserve_file {
            None => None,
            Some(file) => {
                let rtxn = env.read_txn().map_err(|e| lmdb_err(path, "begin", e))?;
                let page_size = db
                    .stat(&rtxn)
                    .map_err(|e| lmdb_err(path, "stat", e))?
                    .page_size as u64;
                drop(rtxn);
                let r = Reserve {
                    file,
                    reserved: AtomicU64::new(0),
                    full: AtomicBool::new(false),
                    lock: Mutex::new(()),
                    page_size,
                    ahead: reserve_ahead,
                };
                // A failure here is logged and refuses writes until space
                // is freed; reads work.
                let _ = r.ensure(&env, 0);
                Some(r)
            }
        };
        Ok(LmdbEngine {
            env,
            db,
            path: path.to_path_buf(),
            gate: RwLock::new(()),
            reserve,
            _owner: owner,
        })
    }

    /// Whether pages are written through the map (`MDB_WRITEMAP`).
    pub fn writes_through_map(&self) -> bool {
        self.reserve.is_some()
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
    fn write<T>(&self, f: impl FnMut(&mut RwTxn<'_>) -> Result<T, heed::Error>) -> Result<T> {
        self.write_sized(0, f)
    }

    /// [`Self::write`] for a transaction that may add about `extra_pages`
    /// pages beyond the usual reservation (bulk writes).
    fn write_sized<T>(
        &self,
        extra_pages: u64,
        mut f: impl FnMut(&mut RwTxn<'_>) -> Result<T, heed::Error>,
    ) -> Result<T> {
        if let Some(r) = &self.reserve {
            r.ensure(&self.env, extra_pages)
                .map_err(|source| StoreError::Io {
                    path: format!(
                        "{} (reserving disk space for the database; free some space)",
                        self.path.display()
                    ),
                    source,
                })?;
        }
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
            Some(v) => record_for(key, v, digest).map(Some),
        }
    }

    /// Apply `change` to the record of `digest` (a new one if none) and
    /// store it, with one B-tree search when the record exists: a cursor
    /// finds it and the new value replaces it in place (`MDB_CURRENT`).
    fn update(
        &self,
        txn: &mut RwTxn<'_>,
        key: &[u8],
        digest: &[u8],
        change: impl Fn(&mut Record),
        val: &mut Vec<u8>,
    ) -> Result<Record, Abort> {
        let mut it = self.db.range_mut(
            txn,
            &(
                std::ops::Bound::Included(key),
                std::ops::Bound::Included(key),
            ),
        )?;
        if let Some(found) = it.next() {
            let (_, v) = found?;
            let mut rec = record_for(key, v, digest)?;
            change(&mut rec);
            encode_stored(&rec, key, digest, val);
            // SAFETY: no value borrowed from the cursor is alive any more
            // (`v` was decoded into `rec`, a copy), which is what heed
            // requires of `put_current`.
            unsafe { it.put_current(key, val) }?;
            return Ok(rec);
        }
        drop(it);
        let mut rec = Record::default();
        change(&mut rec);
        encode_stored(&rec, key, digest, val);
        self.db.put(txn, key, val)?;
        Ok(rec)
    }

    fn store(
        &self,
        txn: &mut RwTxn<'_>,
        key: &[u8],
        digest: &[u8],
        rec: &Record,
        buf: &mut Vec<u8>,
    ) -> Result<(), heed::Error> {
        encode_stored(rec, key, digest, buf);
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

    /// A local file or memory: answered on the worker's own thread.
    fn may_block(&self) -> bool {
        false
    }

    /// A record that cannot be read (corrupt value, hash collision) fails
    /// only its own operation ([`StoreError::Partial`]): its update stops
    /// before writing, and the transaction goes on with the others.
    fn execute(&self, ops: &[Op<'_>], now: Timestamp, out: &mut Vec<Option<Record>>) -> Result<()> {
        let start = out.len();
        let mut failed: Vec<(usize, StoreError)> = Vec::new();
        let push = |i: usize, rec, out: &mut Vec<_>, failed: &mut Vec<_>| match rec {
            Ok(rec) => out.push(rec),
            Err(e) => {
                out.push(None);
                failed.push((i, e));
            }
        };
        if !ops.iter().any(Op::is_write) {
            let r = self.read(|txn| {
                for (i, op) in ops.iter().enumerate() {
                    let key = Key::new(op.digest());
                    push(i, self.lookup(txn, &key, op.digest()), out, &mut failed);
                }
                Ok(())
            });
            if r.is_err() {
                out.truncate(start);
                return r;
            }
        } else {
            let mut val = Vec::with_capacity(64);
            let r = self.write(|txn| {
                // `write` runs this again after growing the map.
                out.truncate(start);
                failed.clear();
                for (i, op) in ops.iter().enumerate() {
                    let d = op.digest();
                    let key = Key::new(d);
                    let rec = match *op {
                        Op::Get(_) => self.lookup(txn, &key, d).map_err(Abort::from),
                        Op::Report(_) => self
                            .update(txn, &key, d, |r| r.report(now), &mut val)
                            .map(Some),
                        Op::Whitelist(_) => self
                            .update(txn, &key, d, |r| r.whitelist(now), &mut val)
                            .map(Some),
                    };
                    match rec {
                        Ok(rec) => push(i, Ok(rec), out, &mut failed),
                        // The record's own error: nothing of it was written.
                        Err(Abort::Typed(e)) => push(i, Err(e), out, &mut failed),
                        Err(Abort::Lmdb(e)) => return Err(e),
                    }
                }
                Ok(())
            });
            if let Err(e) = r {
                out.truncate(start);
                return Err(e);
            }
        }
        crate::batch_outcome(failed, ops.len(), out, start)
    }

    fn put_many(&self, records: &[(Vec<u8>, Record)]) -> Result<()> {
        let mut val = Vec::with_capacity(64);
        // At most one new leaf page per record, and the branch pages above.
        self.write_sized(records.len() as u64 * 2, |txn| {
            for (d, rec) in records {
                let key = Key::new(d);
                self.store(txn, &key, d, rec, &mut val)?;
            }
            Ok(())
        })
    }

    fn delete_many(&self, digests: &[Vec<u8>]) -> Result<()> {
        self.write(|txn| {
            for d in digests {
                let key = Key::new(d);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_owner_at_a_time_named_by_pid() {
        let home = tempfile::tempdir().unwrap();
        let path = home.path().join("env");
        let first = LmdbEngine::open(&path, Durability::Process).unwrap();
        let pid = std::process::id();
        let held = std::fs::read_to_string(path.join("pyzor.lock")).unwrap();
        assert_eq!(held.trim(), pid.to_string());
        match LmdbEngine::open(&path, Durability::Process) {
            Err(StoreError::Config(m)) => {
                assert!(m.contains(&format!("in use by process {pid} ")), "{m}")
            }
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("a second owner opened the environment"),
        }
        drop(first);
        LmdbEngine::open(&path, Durability::Process).unwrap();
    }
}
