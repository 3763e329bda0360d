//! The batch processor without sockets: one engine call per batch, engine
//! errors answer only the requests that needed the engine, and the check
//! path does not allocate at all once warm (counted with a global
//! allocator).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use pyzor_protocol::auth::{Accounts, Acl};
use pyzor_protocol::{Record, Timestamp};
use pyzor_server::rules::Rules;
use pyzor_server::worker::{Processor, Shared};
use pyzor_store::memory::MemoryEngine;
use pyzor_store::{Engine, Op, RecordIter, StoreError};

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);
thread_local! {
    /// Count only on the measuring test's thread (tests run in parallel).
    static COUNT_ON: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn counting() -> bool {
    COUNT_ON.try_with(|c| c.get()).unwrap_or(false)
}

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if counting() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller keeps `GlobalAlloc::alloc`'s contract, which
        // is passed on unchanged.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` came from `System` through `alloc`/`realloc` with
        // layout `l` (the caller's contract).
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if counting() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: as for `dealloc`; `n` is the caller's valid new size.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// An engine that records the batches it gets and can be told to fail.
struct Probe {
    inner: MemoryEngine,
    fail: AtomicBool,
    /// A digest refused with `BadKey` (the whole call, nothing written),
    /// as the mysql engine refuses a digest over 40 characters.
    reject: Mutex<Option<Vec<u8>>>,
    batches: Mutex<Vec<usize>>,
}

impl Engine for Probe {
    fn name(&self) -> &'static str {
        "probe"
    }
    fn execute(
        &self,
        ops: &[Op<'_>],
        now: Timestamp,
        out: &mut Vec<Option<Record>>,
    ) -> pyzor_store::Result<()> {
        if let Ok(mut b) = self.batches.try_lock() {
            if b.capacity() > b.len() {
                b.push(ops.len());
            }
        }
        if self.fail.load(Ordering::Relaxed) {
            return Err(StoreError::Unavailable("probe says no".into()));
        }
        if let Some(bad) = self.reject.lock().unwrap().as_deref() {
            if ops.iter().any(|o| o.digest() == bad) {
                return Err(StoreError::BadKey(format!(
                    "{} is refused",
                    String::from_utf8_lossy(bad)
                )));
            }
        }
        self.inner.execute(ops, now, out)
    }
    fn put_many(&self, r: &[(Vec<u8>, Record)]) -> pyzor_store::Result<()> {
        self.inner.put_many(r)
    }
    fn delete_many(&self, d: &[Vec<u8>]) -> pyzor_store::Result<()> {
        self.inner.delete_many(d)
    }
    fn scan(&self) -> pyzor_store::Result<RecordIter<'_>> {
        self.inner.scan()
    }
    fn expire(&self, c: Timestamp) -> pyzor_store::Result<u64> {
        self.inner.expire(c)
    }
    fn flush(&self) -> pyzor_store::Result<()> {
        Ok(())
    }
}

fn shared(engine: Arc<dyn Engine>) -> Shared {
    Shared::standalone(
        engine,
        Rules {
            accounts: Accounts::default(),
            acl: Acl::reference_default(),
        },
    )
}

fn probe() -> Arc<Probe> {
    Arc::new(Probe {
        inner: MemoryEngine::new(),
        fail: AtomicBool::new(false),
        reject: Mutex::new(None),
        batches: Mutex::new(Vec::with_capacity(100)),
    })
}

#[test]
fn one_engine_batch_and_errors_only_for_engine_requests() {
    let engine = probe();
    let sh = shared(engine.clone());
    let mut p = Processor::new(&sh);
    let reqs: Vec<Vec<u8>> = vec![
        b"Op: report\nOp-Digest: a\nOp-Digest: b\nThread: 1\nPV: 2.1\n\n".to_vec(),
        b"Op: ping\nThread: 2\nPV: 2.1\n\n".to_vec(),
        b"Op: check\nOp-Digest: a\nThread: 3\nPV: 2.1\n\n".to_vec(),
        b"Op: info\nOp-Digest: b\nThread: 4\nPV: 2.1\n\n".to_vec(),
        b"garbage".to_vec(),
    ];
    let mut replies = vec![Vec::new(); reqs.len()];
    p.process(&sh, reqs.len(), |i| (&reqs[i][..], None), &mut replies);
    assert_eq!(
        *engine.batches.lock().unwrap(),
        vec![4],
        "one engine call: 2 reports, 1 check, 1 info"
    );
    assert_eq!(replies[0], b"Code: 200\nDiag: OK\nPV: 2.1\nThread: 1\n\n");
    assert_eq!(
        replies[2], b"Code: 200\nDiag: OK\nPV: 2.1\nThread: 3\nCount: 1\nWL-Count: 0\n\n",
        "check sees the report of the same batch"
    );
    assert!(replies[4].starts_with(b"Code: 400\n"));

    engine.fail.store(true, Ordering::Relaxed);
    p.process(&sh, reqs.len(), |i| (&reqs[i][..], None), &mut replies);
    let e = b"Code: 500\nDiag: Internal Server Error: Database temporarily unavailable.\nPV: 2.1\nThread: 1\n\n";
    assert_eq!(replies[0], e);
    assert!(replies[2].starts_with(b"Code: 500\n") && replies[3].starts_with(b"Code: 500\n"));
    assert_eq!(
        replies[1], b"Code: 200\nDiag: OK\nPV: 2.1\nThread: 2\n\n",
        "ping needs no engine"
    );
    assert_eq!(sh.metrics.engine_errors.load(Ordering::Relaxed), 1);
    engine.fail.store(false, Ordering::Relaxed);
    p.process(&sh, 3, |i| (&reqs[i][..], None), &mut replies);
    assert_eq!(
        replies[2], b"Code: 200\nDiag: OK\nPV: 2.1\nThread: 3\nCount: 2\nWL-Count: 0\n\n",
        "the failed batch stored nothing"
    );
}

#[test]
fn a_refused_key_fails_only_its_own_request() {
    let engine = probe();
    *engine.reject.lock().unwrap() = Some(b"bad".to_vec());
    let sh = shared(engine.clone());
    let mut p = Processor::new(&sh);
    let reqs: Vec<Vec<u8>> = vec![
        b"Op: report\nOp-Digest: good1\nThread: 1\nPV: 2.1\n\n".to_vec(),
        b"Op: report\nOp-Digest: good2\nOp-Digest: bad\nThread: 2\nPV: 2.1\n\n".to_vec(),
        b"Op: ping\nThread: 3\nPV: 2.1\n\n".to_vec(),
        b"Op: info\nOp-Digest: good2\nThread: 4\nPV: 2.1\n\n".to_vec(),
        b"Op: check\nOp-Digest: good1\nThread: 5\nPV: 2.1\n\n".to_vec(),
        b"Op: check\nOp-Digest: bad\nThread: 6\nPV: 2.1\n\n".to_vec(),
    ];
    let mut replies = vec![Vec::new(); reqs.len()];
    p.process(&sh, reqs.len(), |i| (&reqs[i][..], None), &mut replies);
    // One refused batch call, then one call per request that needs the engine.
    assert_eq!(*engine.batches.lock().unwrap(), vec![6, 1, 2, 1, 1, 1]);
    assert_eq!(replies[0], b"Code: 200\nDiag: OK\nPV: 2.1\nThread: 1\n\n");
    assert_eq!(
        replies[1],
        b"Code: 500\nDiag: Internal Server Error: digest not storable by this engine: bad is refused\nPV: 2.1\nThread: 2\n\n"
    );
    assert_eq!(replies[2], b"Code: 200\nDiag: OK\nPV: 2.1\nThread: 3\n\n");
    assert!(
        replies[3].starts_with(b"Code: 200\nDiag: OK\nPV: 2.1\nThread: 4\nEntered: 0\n"),
        "{}",
        String::from_utf8_lossy(&replies[3])
    );
    assert_eq!(
        replies[4], b"Code: 200\nDiag: OK\nPV: 2.1\nThread: 5\nCount: 1\nWL-Count: 0\n\n",
        "the report of request 1 was counted once, after the re-run"
    );
    assert!(replies[5].starts_with(b"Code: 500\n"), "{:?}", replies[5]);
    assert_eq!(sh.metrics.engine_errors.load(Ordering::Relaxed), 2);
    // The refused request wrote nothing, not even its good digest.
    assert_eq!(engine.inner.get(b"good2").unwrap(), None);
    assert_eq!(engine.inner.get(b"bad").unwrap(), None);
    assert_eq!(engine.inner.get(b"good1").unwrap().unwrap().r_count, 1);

    // A clean batch takes the cheap path again: one call.
    engine.batches.lock().unwrap().clear();
    p.process(&sh, 1, |i| (&reqs[i][..], None), &mut replies);
    assert_eq!(*engine.batches.lock().unwrap(), vec![1]);
    assert_eq!(replies[0], b"Code: 200\nDiag: OK\nPV: 2.1\nThread: 1\n\n");
}

#[test]
fn check_path_does_not_allocate_once_warm() {
    let engine = probe();
    assert_check_path_does_not_allocate(shared(engine));
}

/// The same with the default engine (lmdb) and every check a hit, so that
/// the record decoding is on the path too.
#[test]
fn check_path_does_not_allocate_once_warm_on_lmdb() {
    let home = tempfile::tempdir().unwrap();
    let engine = pyzor_store::lmdb::LmdbEngine::open(
        &home.path().join("pyzord.lmdb"),
        pyzor_store::Durability::Process,
    )
    .unwrap();
    let digests: Vec<Vec<u8>> = (0..32).map(|i| format!("{i:040x}").into_bytes()).collect();
    let ops: Vec<Op<'_>> = digests.iter().map(|d| Op::Report(d)).collect();
    let mut out = Vec::new();
    engine.execute(&ops, pyzor_store::now(), &mut out).unwrap();
    let replies = assert_check_path_does_not_allocate(shared(Arc::new(engine)));
    let last = String::from_utf8_lossy(&replies[31]);
    assert!(last.contains("\nCount: 1\n"), "a hit: {last}");
}

/// Returns the last batch's replies.
fn assert_check_path_does_not_allocate(sh: Shared) -> Vec<Vec<u8>> {
    let mut p = Processor::new(&sh);
    let reqs: Vec<Vec<u8>> = (0..32)
        .map(|i| format!("Op: check\nOp-Digest: {:040x}\nThread: {}\nPV: 2.1\nUser: anonymous\nTime: 1\nSig: x\n\n", i, 1024 + i).into_bytes())
        .collect();
    let mut replies: Vec<Vec<u8>> = (0..32).map(|_| Vec::with_capacity(512)).collect();
    // Warm up (buffers grow once).
    for _ in 0..3 {
        p.process(&sh, 32, |i| (&reqs[i][..], None), &mut replies);
    }
    ALLOCS.store(0, Ordering::Relaxed);
    COUNT_ON.with(|c| c.set(true));
    for _ in 0..100 {
        p.process(&sh, 32, |i| (&reqs[i][..], None), &mut replies);
    }
    COUNT_ON.with(|c| c.set(false));
    let allocs = ALLOCS.load(Ordering::Relaxed);
    assert!(replies[31].starts_with(b"Code: 200\n"));
    // Nothing at all: the batch's operation list and every buffer are
    // reused, and the lmdb key is built on the stack.
    eprintln!("{allocs} allocations for 100 batches of 32 checks");
    assert_eq!(
        allocs, 0,
        "{allocs} allocations for 100 batches of 32 checks"
    );
    replies
}
