//! A volatile in-memory [`Engine`] (`-e memory`): for tests and benchmarks
//! only — nothing survives a restart.

use std::collections::HashMap;
use std::sync::Mutex;

use pyzor_core::{Record, Timestamp};
use pyzor_store::{Engine, Op, RecordIter, Result, StoreError};

/// Records in a `HashMap` behind one mutex.
#[derive(Default)]
pub struct MemoryEngine {
    map: Mutex<HashMap<Vec<u8>, Record>>,
}

impl MemoryEngine {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, HashMap<Vec<u8>, Record>>> {
        self.map
            .lock()
            .map_err(|_| StoreError::Other("memory engine lock poisoned".into()))
    }
}

impl Engine for MemoryEngine {
    fn name(&self) -> &'static str {
        "memory"
    }

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
