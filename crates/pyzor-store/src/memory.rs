//! `memory`: a volatile engine — records in a `HashMap` behind one mutex.
//!
//! For tests and benchmarks only: nothing survives a restart, and
//! [`Durability`](crate::Durability) does not apply. Always compiled (no
//! cargo feature), so every build of pyzord accepts `-e memory`.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use pyzor_protocol::{Record, Timestamp};

use crate::{Engine, Op, RecordIter, Result, StoreError};

/// The `memory` engine.
#[derive(Default)]
pub struct MemoryEngine {
    map: Mutex<HashMap<Vec<u8>, Record>>,
}

impl MemoryEngine {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, HashMap<Vec<u8>, Record>>> {
        self.map.lock().map_err(|_| {
            StoreError::Other(
                "memory engine lock poisoned (a thread panicked while writing); restart the process"
                    .into(),
            )
        })
    }
}

impl Engine for MemoryEngine {
    fn name(&self) -> &'static str {
        "memory"
    }

    /// A local file or memory: answered on the worker's own thread.
    fn may_block(&self) -> bool {
        false
    }

    /// No operation can fail on its own here (a `HashMap` entry and a
    /// saturating count): the only error is a poisoned lock, before
    /// anything is written, so a batch is all done or not at all.
    fn execute(&self, ops: &[Op<'_>], now: Timestamp, out: &mut Vec<Option<Record>>) -> Result<()> {
        let mut m = self.lock()?;
        for op in ops {
            match *op {
                Op::Get(d) => out.push(m.get(d).copied()),
                Op::Report(d) => {
                    let r = m.entry(d.to_vec()).or_default();
                    r.report(now);
                    out.push(Some(*r));
                }
                Op::Whitelist(d) => {
                    let r = m.entry(d.to_vec()).or_default();
                    r.whitelist(now);
                    out.push(Some(*r));
                }
            }
        }
        Ok(())
    }

    fn put_many(&self, records: &[(Vec<u8>, Record)]) -> Result<()> {
        let mut m = self.lock()?;
        for (d, r) in records {
            m.insert(d.clone(), *r);
        }
        Ok(())
    }

    fn delete_many(&self, digests: &[Vec<u8>]) -> Result<()> {
        let mut m = self.lock()?;
        for d in digests {
            m.remove(d);
        }
        Ok(())
    }

    fn scan(&self) -> Result<RecordIter<'_>> {
        let all: Vec<_> = self
            .lock()?
            .iter()
            .map(|(k, v)| Ok((k.clone(), *v)))
            .collect();
        Ok(Box::new(all.into_iter()))
    }

    fn expire(&self, cutoff: Timestamp) -> Result<u64> {
        let mut m = self.lock()?;
        let before = m.len();
        m.retain(|_, r| !r.expired(cutoff));
        Ok((before - m.len()) as u64)
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn len_hint(&self) -> Option<u64> {
        self.map.lock().ok().map(|m| m.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_scan_expire_delete() {
        let e = crate::open(&crate::EngineOptions::new("memory", "/nonexistent")).unwrap();
        assert_eq!(e.name(), "memory");
        let t1 = Timestamp::from_secs(1_000);
        let t2 = Timestamp::from_secs(2_000);
        let mut out = Vec::new();
        e.execute(
            &[
                Op::Get(b"a"),
                Op::Report(b"a"),
                Op::Report(b"a"),
                Op::Whitelist(b"b"),
            ],
            t1,
            &mut out,
        )
        .unwrap();
        assert_eq!(out[0], None);
        assert_eq!(out[2].unwrap().r_count, 2);
        assert_eq!(out[3].unwrap().wl_count, 1);
        e.execute(&[Op::Report(b"c")], t2, &mut out).unwrap();
        assert_eq!(e.len_hint(), Some(3));
        let mut all: Vec<_> = e.scan().unwrap().map(|r| r.unwrap().0).collect();
        all.sort();
        assert_eq!(all, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
        assert_eq!(e.expire(Timestamp::from_secs(1_500)).unwrap(), 2);
        assert_eq!(e.get(b"c").unwrap().unwrap().r_count, 1);
        e.put_many(&[(b"d".to_vec(), Record::default())]).unwrap();
        e.delete_many(&[b"c".to_vec()]).unwrap();
        assert_eq!(e.get(b"c").unwrap(), None);
        assert_eq!(e.len_hint(), Some(1));
    }
}
