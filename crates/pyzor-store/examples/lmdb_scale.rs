//! Scale check of the embedded engine: load N digests through `execute`
//! (report batches, as the server sends them), then read them back, and
//! print rates, the size on disk and the process's resident memory.
//!
//! `cargo run --release -p pyzor-store --example lmdb_scale -- 10000000 /tmp/scale`

use std::time::Instant;

use pyzor_store::lmdb::LmdbEngine;
use pyzor_store::{Durability, Engine, Op};

fn status(field: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into())
}

/// A 40-hex-digit digest from a counter (a cheap bijective mix, so keys
/// arrive in random order like SHA-1 digests do).
fn digest(i: u64) -> [u8; 40] {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let mut out = [0u8; 40];
    for (k, chunk) in out.chunks_mut(16).enumerate() {
        x = (x ^ (x >> 31))
            .wrapping_mul(0xBF58_476D_1CE4_E5B9)
            .wrapping_add(k as u64);
        let s = format!("{x:016x}");
        chunk.copy_from_slice(&s.as_bytes()[..chunk.len()]);
    }
    out
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let dir = std::path::PathBuf::from(
        args.next()
            .unwrap_or_else(|| "/tmp/pyzor-lmdb-scale".into()),
    );
    let _ = std::fs::remove_dir_all(&dir);
    let e = LmdbEngine::open(&dir, Durability::Process).expect("open");
    let batch = 256u64;
    let t0 = Instant::now();
    let mut out = Vec::with_capacity(batch as usize);
    let mut i = 0;
    while i < n {
        let end = (i + batch).min(n);
        let ds: Vec<[u8; 40]> = (i..end).map(digest).collect();
        let ops: Vec<Op> = ds.iter().map(|d| Op::Report(d)).collect();
        out.clear();
        e.execute(&ops, pyzor_store::now(), &mut out)
            .expect("execute");
        i = end;
    }
    e.flush().expect("flush");
    let load = t0.elapsed().as_secs_f64();
    let size = std::fs::metadata(dir.join("data.mdb"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "loaded {n} digests in {load:.1} s ({:.0} reports/s, batches of {batch}); data.mdb {:.0} MB ({:.0} B/record)",
        n as f64 / load,
        size as f64 / 1e6,
        size as f64 / n as f64
    );
    println!(
        "after load: VmRSS {} VmHWM {}",
        status("VmRSS:"),
        status("VmHWM:")
    );
    let reads = n.min(2_000_000);
    let t1 = Instant::now();
    let mut found = 0u64;
    for k in 0..reads {
        let d = digest(k.wrapping_mul(7_919) % n);
        if e.get(&d).expect("get").is_some() {
            found += 1;
        }
    }
    let rt = t1.elapsed().as_secs_f64();
    assert_eq!(found, reads);
    println!(
        "{reads} random hit reads (one read txn each): {:.0} reads/s",
        reads as f64 / rt
    );
    let t2 = Instant::now();
    let misses = 500_000u64;
    for k in 0..misses {
        let d = digest(n + k);
        assert!(e.get(&d).expect("get").is_none());
    }
    println!(
        "{misses} misses: {:.0} reads/s",
        misses as f64 / t2.elapsed().as_secs_f64()
    );
    println!(
        "after reads: VmRSS {} VmHWM {}",
        status("VmRSS:"),
        status("VmHWM:")
    );
    let t3 = Instant::now();
    let scanned = e.scan().expect("scan").count() as u64;
    assert_eq!(scanned, n);
    println!(
        "full scan: {:.0} records/s",
        n as f64 / t3.elapsed().as_secs_f64()
    );
    println!(
        "after scan: VmRSS {} VmHWM {}",
        status("VmRSS:"),
        status("VmHWM:")
    );
}
