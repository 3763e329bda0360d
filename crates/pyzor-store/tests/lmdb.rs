#![cfg(feature = "lmdb")]
#[path = "common/batch_order.rs"]
mod batch_order;
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pyzor_store::lmdb::LmdbEngine;
use pyzor_store::{open, Durability, Engine, EngineOptions, Op};

#[test]
fn lmdb_contract() {
    let home = tempfile::tempdir().unwrap();
    let e = open(&EngineOptions::new("lmdb", home.path())).unwrap();
    assert_eq!(e.name(), "lmdb");
    common::run_all(e, common::EXACT, "c-");
    assert!(
        home.path().join("pyzord.lmdb/data.mdb").is_file(),
        "default DSN is a directory in the homedir"
    );
}

/// The order semantics of a batch agree with the memory engine's, reply
/// for reply (the same check runs on mysql).
#[test]
fn lmdb_batches_agree_with_the_memory_engine() {
    let home = tempfile::tempdir().unwrap();
    let e = open(&EngineOptions::new("lmdb", home.path())).unwrap();
    let keys: Vec<Vec<u8>> = (0..400).map(|i| format!("k-{i}").into_bytes()).collect();
    batch_order::random_batches_agree_with_memory(&*e, &keys, 0x13, 80);
    batch_order::one_digest_every_kind_in_one_batch(&*e, b"every-kind", b"fresh");
}

#[test]
fn lmdb_contract_fsync_and_single_file() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("one.lmdb");
    std::fs::File::create(&file).unwrap();
    let mut o = EngineOptions::new("lmdb", home.path()).dsn("one.lmdb");
    o.durability = Durability::Fsync;
    let e = open(&o).unwrap();
    common::run_all(e, common::EXACT, "f-");
    assert!(
        home.path().join("one.lmdb-lock").is_file(),
        "an existing file is a single-file environment"
    );
}

#[test]
fn lmdb_survives_reopen_and_reports_len() {
    let home = tempfile::tempdir().unwrap();
    let o = EngineOptions::new("lmdb", home.path());
    {
        let e = open(&o).unwrap();
        let mut out = Vec::new();
        e.execute(
            &[Op::Report(b"a"), Op::Report(b"a"), Op::Whitelist(b"b")],
            common::t(1_790_000_000, 1),
            &mut out,
        )
        .unwrap();
        assert_eq!(e.len_hint(), Some(2));
    }
    let e = open(&o).unwrap();
    assert_eq!(e.get(b"a").unwrap().unwrap().r_count, 2);
    assert_eq!(e.get(b"b").unwrap().unwrap().wl_count, 1);
}

#[test]
fn lmdb_grows_a_full_map() {
    let home = tempfile::tempdir().unwrap();
    let e = LmdbEngine::open_with_map(&home.path().join("small"), Durability::Process, 64 * 1024)
        .unwrap();
    let recs: Vec<(Vec<u8>, pyzor_protocol::Record)> = (0..20_000)
        .map(|i| {
            let mut r = pyzor_protocol::Record::default();
            r.report(common::t(1_790_000_000 + i, 0));
            (format!("{i:040x}").into_bytes(), r)
        })
        .collect();
    for c in recs.chunks(5000) {
        e.put_many(c).unwrap();
    }
    assert_eq!(e.len_hint(), Some(20_000));
    assert_eq!(e.scan().unwrap().count(), 20_000);
}

/// Child half of `lmdb_acknowledged_report_survives_kill_9`: reports one
/// digest in a loop (with a few other digests per batch) and prints each
/// count after `execute` returned.
#[test]
fn lmdb_kill9_child() {
    let Ok(dir) = std::env::var("PYZOR_LMDB_KILL9_DIR") else {
        return;
    };
    let e = LmdbEngine::open(std::path::Path::new(&dir), Durability::Process).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut out = Vec::new();
    let mut i = 0u64;
    while Instant::now() < deadline {
        out.clear();
        let others: Vec<Vec<u8>> = (0..7)
            .map(|k| format!("other{}", (i * 7 + k) % 5000).into_bytes())
            .collect();
        let mut ops = vec![Op::Report(b"SEQ")];
        ops.extend(others.iter().map(|d| Op::Report(d)));
        e.execute(&ops, pyzor_store::now(), &mut out).unwrap();
        println!("ACK {}", out[0].unwrap().r_count);
        i += 1;
    }
}

#[test]
fn lmdb_acknowledged_report_survives_kill_9() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("db");
    for trial in 0..3u64 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "lmdb_kill9_child",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("PYZOR_LMDB_KILL9_DIR", &dir)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut last = 0i64;
        let target = 200 + 150 * trial as i64;
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(n) = line.strip_prefix("ACK ") {
                last = n.parse().unwrap();
                if last >= target {
                    break;
                }
            }
        }
        // kill -9 right after an acknowledgement
        child.kill().unwrap();
        child.wait().unwrap();
        for line in lines.map_while(|l| l.ok()) {
            if let Some(n) = line.strip_prefix("ACK ") {
                last = n.parse().unwrap();
            }
        }
        assert!(last >= target, "child stopped early at {last}");
        let e = LmdbEngine::open(&dir, Durability::Process).unwrap();
        let got = e.get(b"SEQ").unwrap().unwrap().r_count;
        assert!(
            got >= last && got <= last + 1,
            "trial {trial}: acknowledged {last}, found {got}"
        );
    }
}

#[test]
fn lmdb_corrupt_value_is_an_error_not_a_panic() {
    // A value written by something else under our key space.
    let home = tempfile::tempdir().unwrap();
    let path = home.path().join("db");
    {
        let e = LmdbEngine::open(&path, Durability::Process).unwrap();
        e.put_many(&[(b"ok".to_vec(), pyzor_protocol::Record::default())])
            .unwrap();
    }
    // Overwrite the stored value through raw heed.
    {
        use heed::types::Bytes;
        // SAFETY: the engine above is closed, and this environment is the
        // only one open on the path in this process until it is dropped.
        let env = unsafe { heed::EnvOpenOptions::new().map_size(1 << 20).open(&path) }.unwrap();
        let wtxn = env.write_txn().unwrap();
        let db = env
            .create_databases_and_commit(wtxn, |o, w| {
                o.create_database::<Bytes, Bytes>(w, None)
                    .map(heed::CommitOrAbort::<_, ()>::Commit)
            })
            .unwrap()
            .unwrap_commit();
        let mut w = env.write_txn().unwrap();
        db.put(&mut w, b"\0bad", b"\x99garbage").unwrap();
        w.commit().unwrap();
    }
    let e: Arc<dyn Engine> = Arc::new(LmdbEngine::open(&path, Durability::Process).unwrap());
    assert!(matches!(
        e.get(b"bad"),
        Err(pyzor_store::StoreError::Corrupt { .. })
    ));
    let mut out = Vec::new();
    assert!(e
        .execute(&[Op::Report(b"bad")], pyzor_store::now(), &mut out)
        .is_err());
    assert!(out.is_empty());
    let items: Vec<_> = e.scan().unwrap().collect();
    assert_eq!(items.len(), 2);
    assert_eq!(items.iter().filter(|r| r.is_err()).count(), 1);
}
