//! The reference's default engine: a GDBM file (`pyzord.db`) in its exact
//! value format, read and written in place through gdbm-native.
//!
//! Value (docs/protocol.md §6, docs/field-notes.md §5.12):
//! `1,r_count,r_entered,r_updated,wl_count,wl_entered,wl_updated`, each
//! date `str(datetime)` of a naive **local** time or `None`; the older
//! 3-field form `r_count,r_entered,r_updated` (version 0, epoch seconds) is
//! read too. Keys are the digest bytes, exactly.
//!
//! GDBM has no transactions: a batch is applied record by record (as the
//! reference does) and then synced. gdbm-native keeps dirty buckets in
//! process memory until `sync`, and its `sync` always ends in `fdatasync`,
//! so both durability modes sync after every write batch.
//!
//! New files are created in the standard (non-"numsync") GDBM format so
//! that Python's `dbm.gnu` (libgdbm 1.23) opens them.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Mutex;

use gdbm_native::{Gdbm, OpenOptions};
use pyzor_protocol::py::py_int;
use pyzor_protocol::{Record, Timestamp};

use crate::pytime::{naive_local_to_ts, py_parse_datetime, py_str_datetime, ts_to_naive_local};
use crate::{Engine, Op, RecordIter, Result, StoreError};

/// The `gdbm` engine.
pub struct GdbmEngine {
    db: Mutex<Gdbm>,
    path: PathBuf,
}

fn gdbm_err(path: &Path, what: &str, e: gdbm_native::Error) -> StoreError {
    match e {
        gdbm_native::Error::Locked => StoreError::Unavailable(format!(
            "{} is locked by another process (stop the other pyzord or pyzor-migrate using it)",
            path.display()
        )),
        gdbm_native::Error::Io(source) => StoreError::Io {
            path: format!("{} ({what})", path.display()),
            source,
        },
        other => StoreError::Other(format!("GDBM {what} on {}: {other}", path.display())),
    }
}

fn corrupt(key: &[u8], reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        digest: String::from_utf8_lossy(key).into_owned(),
        reason: reason.into(),
    }
}

fn encode_date(t: Option<Timestamp>, key: &[u8]) -> Result<String> {
    match t {
        None => Ok("None".to_string()),
        Some(t) => ts_to_naive_local(t)
            .map(|n| py_str_datetime(&n))
            .ok_or_else(|| {
                corrupt(
                    key,
                    format!("timestamp {} µs is outside Python's datetime range", t.0),
                )
            }),
    }
}

fn decode_date(s: &str) -> Option<Option<Timestamp>> {
    if s == "None" {
        return Some(None);
    }
    py_parse_datetime(s).map(|n| Some(naive_local_to_ts(n)))
}

/// The reference's `GdbmDBHandle.encode_record`.
pub fn encode_record(r: &Record, key: &[u8]) -> Result<String> {
    Ok(format!(
        "1,{},{},{},{},{},{}",
        r.r_count,
        encode_date(r.r_entered, key)?,
        encode_date(r.r_updated, key)?,
        r.wl_count,
        encode_date(r.wl_entered, key)?,
        encode_date(r.wl_updated, key)?
    ))
}

/// The reference's `GdbmDBHandle.decode_record`: version 1 (7 fields) or
/// the legacy 3-field version 0 `r_count,r_entered,r_updated`.
///
/// Python quirk (docs/field-notes.md §5.12): version 0 stores the two dates as
/// integers, which the reference then cannot print or expire; we read them
/// as epoch seconds (0 = never).
pub fn decode_record(v: &[u8], key: &[u8]) -> Result<Record> {
    let s = std::str::from_utf8(v).map_err(|_| corrupt(key, "value is not UTF-8"))?;
    let parts: Vec<&str> = s.split(',').collect();
    let bad = || corrupt(key, format!("don't know how to handle db value {s:?}"));
    if parts.len() == 3 {
        let n = |x: &str| py_int(x).ok_or_else(bad);
        let secs = |x: &str| -> Result<Option<Timestamp>> {
            let v = n(x)?;
            Ok((v != 0).then(|| Timestamp::from_secs(v)))
        };
        return Ok(Record {
            r_count: n(parts[0])?,
            r_entered: secs(parts[1])?,
            r_updated: secs(parts[2])?,
            ..Record::default()
        });
    }
    if parts[0] != "1" || parts.len() != 7 {
        return Err(bad());
    }
    let n = |x: &str| py_int(x).ok_or_else(bad);
    let d = |x: &str| decode_date(x).ok_or_else(bad);
    Ok(Record {
        r_count: n(parts[1])?,
        r_entered: d(parts[2])?,
        r_updated: d(parts[3])?,
        wl_count: n(parts[4])?,
        wl_entered: d(parts[5])?,
        wl_updated: d(parts[6])?,
    })
}

impl GdbmEngine {
    /// Open (creating if missing) the GDBM file at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let db = OpenOptions::new()
            .write(true)
            .create(true)
            .numsync(false)
            .open(path)
            .map_err(|e| gdbm_err(path, "open", e))?;
        Ok(GdbmEngine {
            db: Mutex::new(db),
            path: path.to_path_buf(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Gdbm> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get_in(&self, db: &Gdbm, d: &[u8]) -> Result<Option<Record>> {
        match db
            .get::<[u8], Vec<u8>>(d)
            .map_err(|e| gdbm_err(&self.path, "get", e))?
        {
            None => Ok(None),
            Some(v) => decode_record(&v, d).map(Some),
        }
    }

    fn put_in(&self, db: &mut Gdbm, d: &[u8], r: &Record) -> Result<()> {
        let v = encode_record(r, d)?;
        db.insert::<[u8], [u8]>(d, v.as_bytes())
            .map_err(|e| gdbm_err(&self.path, "insert", e))?;
        Ok(())
    }

    fn sync_in(&self, db: &mut Gdbm) -> Result<()> {
        db.sync().map_err(|e| gdbm_err(&self.path, "sync", e))
    }
}

impl Engine for GdbmEngine {
    fn name(&self) -> &'static str {
        "gdbm"
    }

    /// A local file or memory: answered on the worker's own thread.
    fn may_block(&self) -> bool {
        false
    }

    /// GDBM has no transactions: a record that cannot be read fails only
    /// its own operation (nothing of it is written; [`StoreError::Partial`])
    /// and the batch goes on. Any other error (I/O) ends the batch.
    fn execute(&self, ops: &[Op<'_>], now: Timestamp, out: &mut Vec<Option<Record>>) -> Result<()> {
        let start = out.len();
        let mut db = self.lock();
        let mut wrote = false;
        let mut failed = Vec::new();
        let r = (|| {
            for (i, op) in ops.iter().enumerate() {
                // A record that does not decode, or whose dates cannot be
                // encoded, fails before its insert.
                let rec = self.get_in(&db, op.digest()).and_then(|cur| match *op {
                    Op::Get(_) => Ok(cur),
                    Op::Report(d) | Op::Whitelist(d) => {
                        let mut r = cur.unwrap_or_default();
                        if matches!(op, Op::Report(_)) {
                            r.report(now);
                        } else {
                            r.whitelist(now);
                        }
                        self.put_in(&mut db, d, &r)?;
                        wrote = true;
                        Ok(Some(r))
                    }
                });
                match rec {
                    Ok(rec) => out.push(rec),
                    Err(e @ StoreError::Corrupt { .. }) => {
                        out.push(None);
                        failed.push((i, e));
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })();
        // Sync whatever was written, even after a failure part-way.
        let s = if wrote { self.sync_in(&mut db) } else { Ok(()) };
        if let Err(e) = r.and(s) {
            out.truncate(start);
            return Err(e);
        }
        crate::batch_outcome(failed, ops.len(), out, start)
    }

    fn put_many(&self, records: &[(Vec<u8>, Record)]) -> Result<()> {
        let mut db = self.lock();
        let r = records
            .iter()
            .try_for_each(|(d, rec)| self.put_in(&mut db, d, rec));
        let s = self.sync_in(&mut db);
        r.and(s)
    }

    fn delete_many(&self, digests: &[Vec<u8>]) -> Result<()> {
        let mut db = self.lock();
        let r = digests.iter().try_for_each(|d| {
            db.remove::<[u8]>(d)
                .map(|_| ())
                .map_err(|e| gdbm_err(&self.path, "remove", e))
        });
        let s = self.sync_in(&mut db);
        r.and(s)
    }

    /// Streams the file through a second, read-only handle on a producer
    /// thread (bounded channel: constant memory). Everything written through
    /// this engine is synced first; a scan of a file that is being written
    /// at the same time is best-effort, as in the reference.
    fn scan(&self) -> Result<RecordIter<'_>> {
        {
            let mut db = self.lock();
            self.sync_in(&mut db)?;
        }
        let reader = OpenOptions::new()
            .lock(false)
            .open(&self.path)
            .map_err(|e| gdbm_err(&self.path, "open for scan", e))?;
        let (tx, rx) = sync_channel::<Result<(Vec<u8>, Record)>>(1024);
        let path = self.path.clone();
        std::thread::Builder::new()
            .name("gdbm-scan".into())
            .spawn(move || {
                for item in reader.iter::<Vec<u8>, Vec<u8>>() {
                    let msg = match item {
                        Ok((k, v)) => decode_record(&v, &k).map(|r| (k, r)),
                        Err(e) => Err(gdbm_err(&path, "iterate", e)),
                    };
                    let stop = msg.is_err() && !matches!(msg, Err(StoreError::Corrupt { .. }));
                    if tx.send(msg).is_err() || stop {
                        return;
                    }
                }
            })
            .map_err(|e| StoreError::Other(format!("cannot start the GDBM scan thread: {e}")))?;
        Ok(Box::new(ChannelIter(rx)))
    }

    /// The one expiry rule, without the reference's crash on records whose
    /// `r_updated` is `None` (docs/protocol.md §9.11). Undecodable records are kept
    /// and logged.
    fn expire(&self, cutoff: Timestamp) -> Result<u64> {
        let mut db = self.lock();
        let mut victims = Vec::new();
        for item in db.iter::<Vec<u8>, Vec<u8>>() {
            let (k, v) = item.map_err(|e| gdbm_err(&self.path, "iterate", e))?;
            match decode_record(&v, &k) {
                Ok(r) if r.expired(cutoff) => victims.push(k),
                Ok(_) => {}
                Err(e) => log::warn!("expiry keeps an invalid record: {e}"),
            }
        }
        let mut n = 0;
        for k in &victims {
            if db
                .remove::<[u8]>(k)
                .map_err(|e| gdbm_err(&self.path, "remove", e))?
                .is_some()
            {
                n += 1;
            }
        }
        self.sync_in(&mut db)?;
        Ok(n)
    }

    fn flush(&self) -> Result<()> {
        let mut db = self.lock();
        self.sync_in(&mut db)
    }
}

struct ChannelIter(Receiver<Result<(Vec<u8>, Record)>>);

impl Iterator for ChannelIter {
    type Item = Result<(Vec<u8>, Record)>;
    fn next(&mut self) -> Option<Self::Item> {
        self.0.recv().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_format_round_trips() {
        for v in [
            "1,3,2026-11-27 10:14:55.884661,2026-11-27 10:14:56.131157,0,None,None",
            "1,0,None,None,2,2026-11-27 10:15:03.127598,2026-11-27 10:15:04",
            "1,9223372036854775807,2026-01-01 00:00:00,2026-01-01 00:00:00.000001,1,None,None",
        ] {
            let r = decode_record(v.as_bytes(), b"k").unwrap();
            assert_eq!(encode_record(&r, b"k").unwrap(), v);
        }
    }

    #[test]
    fn legacy_three_fields() {
        let r = decode_record(b"5,1000000000,1000000100", b"k").unwrap();
        assert_eq!(r.r_count, 5);
        assert_eq!(r.r_entered, Some(Timestamp::from_secs(1_000_000_000)));
        assert_eq!(r.r_updated, Some(Timestamp::from_secs(1_000_000_100)));
        assert_eq!((r.wl_count, r.wl_entered, r.wl_updated), (0, None, None));
    }

    #[test]
    fn garbage_is_corrupt_not_panic() {
        for v in [
            &b""[..],
            b"2,1,None,None,0,None,None",
            b"1,x,None,None,0,None,None",
            b"\xff",
            b"1,1,None",
            b"1,1,bad,None,0,None,None",
        ] {
            assert!(
                matches!(decode_record(v, b"k"), Err(StoreError::Corrupt { .. })),
                "{v:?}"
            );
        }
    }
}
