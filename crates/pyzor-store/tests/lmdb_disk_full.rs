//! The lmdb engine on a full disk: with writes through the map
//! (`MDB_WRITEMAP`) a page fault on a block the file system cannot allocate
//! would kill the process with SIGBUS. The engine reserves blocks ahead, so
//! a full disk must show up as an error on writes, with reads and all
//! acknowledged data intact, and writes must work again once space is free.
//!
//! Needs a small file system of its own: the test mounts a 48 MiB tmpfs
//! (root only; skipped loudly elsewhere).
#![cfg(feature = "lmdb")]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use pyzor_protocol::Timestamp;
use pyzor_store::lmdb::LmdbEngine;
use pyzor_store::{Durability, Engine, Op, StoreError};

/// A tmpfs mounted for the test, unmounted on drop.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(dir: &Path, size: &str) -> Option<Mount> {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then(|| Mount(dir.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn digest(i: u32) -> Vec<u8> {
    format!("{i:040x}").into_bytes()
}

/// Fill the file system with `filler` until it refuses more.
fn fill(filler: &Path) {
    let mut f = std::fs::File::create(filler).unwrap();
    let chunk = vec![0x5au8; 64 * 1024];
    for _ in 0..10_000 {
        if f.write_all(&chunk).and_then(|_| f.flush()).is_err() {
            return;
        }
    }
    panic!("the test file system did not fill up");
}

#[test]
fn lmdb_on_a_full_disk_refuses_writes_instead_of_crashing() {
    let dir = tempfile::tempdir().unwrap();
    let Some(_mount) = Mount::tmpfs(dir.path(), "48m") else {
        pyzor_testkit::skip(
            "lmdb_on_a_full_disk_refuses_writes_instead_of_crashing",
            "cannot mount a tmpfs here (needs root)",
        );
        return;
    };
    let db = dir.path().join("pyzord.lmdb");
    let now = Timestamp::from_secs(1_790_000_000);
    let e = LmdbEngine::open_tuned(&db, Durability::Process, 1 << 30, 1 << 20).unwrap();
    assert!(
        e.writes_through_map(),
        "tmpfs can reserve blocks, so pages are written through the map"
    );

    // Some acknowledged data, then a full disk.
    let mut out = Vec::new();
    let first: Vec<Vec<u8>> = (0..2000).map(digest).collect();
    for c in first.chunks(64) {
        let ops: Vec<Op<'_>> = c.iter().map(|d| Op::Report(d)).collect();
        e.execute(&ops, now, &mut out).unwrap();
    }
    fill(&dir.path().join("filler"));

    // Keep reporting new digests: each batch either succeeds (acknowledged,
    // it must be kept) or fails with ENOSPC; never a crash.
    let mut acked = first.clone();
    let mut refused = 0;
    let mut i = 2000u32;
    while refused < 3 && i < 400_000 {
        let batch: Vec<Vec<u8>> = (i..i + 64).map(digest).collect();
        i += 64;
        let ops: Vec<Op<'_>> = batch.iter().map(|d| Op::Report(d)).collect();
        out.clear();
        match e.execute(&ops, now, &mut out) {
            Ok(()) => acked.extend(batch),
            Err(StoreError::Io { source, path }) => {
                assert_eq!(
                    source.raw_os_error(),
                    Some(libc_enospc()),
                    "{path}: {source}"
                );
                assert!(path.contains("free some space"), "{path}");
                refused += 1;
            }
            Err(other) => panic!("unexpected error on a full disk: {other}"),
        }
    }
    assert_eq!(refused, 3, "writes were never refused on the full disk");

    // Reads still work and every acknowledged report is there.
    let ops: Vec<Op<'_>> = acked.iter().map(|d| Op::Get(d)).collect();
    for c in ops.chunks(512) {
        out.clear();
        e.execute(c, now, &mut out).unwrap();
        assert!(out.iter().all(|r| r.is_some_and(|r| r.r_count == 1)));
    }

    // Space again: writes are accepted.
    std::fs::remove_file(dir.path().join("filler")).unwrap();
    let d = digest(999_999);
    out.clear();
    e.execute(&[Op::Report(&d)], now, &mut out).unwrap();
    assert_eq!(out[0].unwrap().r_count, 1);
    drop(e);

    // And it all survives a reopen.
    let e = LmdbEngine::open_tuned(&db, Durability::Process, 1 << 30, 1 << 20).unwrap();
    assert_eq!(e.len_hint(), Some(acked.len() as u64 + 1));
}

/// ENOSPC without a libc dependency in the tests (Linux: 28).
fn libc_enospc() -> i32 {
    28
}
