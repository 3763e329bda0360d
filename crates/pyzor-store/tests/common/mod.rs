//! The engine contract: one suite that every engine passes. Each engine's
//! test file opens its engine and calls [`run_all`].
#![allow(dead_code)]

use std::sync::Arc;

use pyzor_protocol::{Record, Timestamp};
use pyzor_store::{Engine, Op, StoreError};

/// What an engine can and cannot keep, where engines legitimately differ.
#[derive(Clone, Copy, Debug)]
pub struct Caps {
    /// Timestamps are kept to the microsecond (else whole seconds).
    pub micros: bool,
    /// Digests that differ only in case or trailing blanks stay distinct
    /// (MySQL's CHAR collation merges them).
    pub exact_keys: bool,
}

pub const EXACT: Caps = Caps {
    micros: true,
    exact_keys: true,
};
pub const SECONDS: Caps = Caps {
    micros: false,
    exact_keys: true,
};

pub fn t(secs: i64, micros: i64) -> Timestamp {
    Timestamp(secs * 1_000_000 + micros)
}

fn at(caps: Caps, ts: Timestamp) -> Timestamp {
    if caps.micros {
        ts
    } else {
        Timestamp::from_secs(ts.secs())
    }
}

/// The record `r` as the engine keeps it.
pub fn kept(caps: Caps, r: Record) -> Record {
    let f = |o: Option<Timestamp>| o.map(|x| at(caps, x));
    Record {
        r_entered: f(r.r_entered),
        r_updated: f(r.r_updated),
        wl_entered: f(r.wl_entered),
        wl_updated: f(r.wl_updated),
        ..r
    }
}

/// A unique digest prefix per test run, so that shared services (Redis,
/// MySQL) never mix runs.
pub fn uniq(tag: &str) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{tag}{:x}{}", n & 0xffff_ffff, std::process::id())
}

fn key(p: &str, s: &str) -> Vec<u8> {
    format!("{p}{s}").into_bytes()
}

pub fn unknown_is_none(e: &dyn Engine, p: &str) {
    assert_eq!(e.get(&key(p, "never")).unwrap(), None);
}

pub fn report_and_whitelist_counts(e: &dyn Engine, caps: Caps, p: &str) {
    let d = key(p, "a");
    let mut out = Vec::new();
    e.execute(&[Op::Report(&d)], t(1_790_000_000, 123_456), &mut out)
        .unwrap();
    e.execute(&[Op::Report(&d)], t(1_790_000_100, 5), &mut out)
        .unwrap();
    e.execute(&[Op::Whitelist(&d)], t(1_790_000_200, 999_999), &mut out)
        .unwrap();
    assert_eq!(out.len(), 3, "execute pushes one result per op");
    let want = Record {
        r_count: 2,
        wl_count: 1,
        r_entered: Some(t(1_790_000_000, 123_456)),
        r_updated: Some(t(1_790_000_100, 5)),
        wl_entered: Some(t(1_790_000_200, 999_999)),
        wl_updated: Some(t(1_790_000_200, 999_999)),
    };
    // a write's own reply is its record or None (not read back: SQL)
    if let Some(r) = out[2] {
        assert_eq!(kept(caps, r), kept(caps, want));
    }
    assert_eq!(e.get(&d).unwrap(), Some(kept(caps, want)));
    // report-only: the whitelist side stays "never"
    let r = key(p, "r");
    e.execute(&[Op::Report(&r)], t(1_790_000_000, 0), &mut out)
        .unwrap();
    let got = e.get(&r).unwrap().unwrap();
    assert_eq!(
        (got.r_count, got.wl_count, got.wl_entered, got.wl_updated),
        (1, 0, None, None)
    );
    // whitelist-only: the report side stays "never"
    let w = key(p, "w");
    e.execute(&[Op::Whitelist(&w)], t(1_790_000_000, 0), &mut out)
        .unwrap();
    let got = e.get(&w).unwrap().unwrap();
    assert_eq!(
        (got.r_count, got.wl_count, got.r_entered, got.r_updated),
        (0, 1, None, None)
    );
}

pub fn batch_runs_in_order(e: &dyn Engine, p: &str) {
    let a = key(p, "ba");
    let b = key(p, "bb");
    let c = key(p, "bc");
    let now = t(1_790_000_000, 0);
    let mut out = vec![None]; // existing content is kept
    e.execute(
        &[
            Op::Get(&a),
            Op::Report(&a),
            Op::Get(&a),
            Op::Report(&a),
            Op::Whitelist(&b),
            Op::Get(&c),
            Op::Get(&b),
        ],
        now,
        &mut out,
    )
    .unwrap();
    let counts: Vec<Option<(i64, i64)>> = out
        .iter()
        .map(|r| r.map(|r| (r.r_count, r.wl_count)))
        .collect();
    assert_eq!(
        counts,
        vec![
            None,
            None,
            Some((1, 0)),
            Some((1, 0)),
            Some((2, 0)),
            Some((0, 1)),
            None,
            Some((0, 1))
        ]
    );
    // a digest listed twice in one report counts twice
    let mut out = Vec::new();
    e.execute(&[Op::Report(&c), Op::Report(&c)], now, &mut out)
        .unwrap();
    assert_eq!(e.get(&c).unwrap().unwrap().r_count, 2);
}

/// Digests are opaque bytes from the network: stored exactly or refused
/// with `BadKey`, never mixed up, never a panic.
pub fn odd_digests(e: &dyn Engine, caps: Caps, p: &str) {
    let mut digests: Vec<Vec<u8>> = vec![
        key(p, ""),
        key(p, "x\0y"),
        key(p, "trailing  "),
        key(p, "UPPER01453F1A"),
        key(p, "upper01453f1a"),
        [p.as_bytes(), b"\xff\xfe\x80"].concat(),
        key(p, &"l".repeat(300)),
        key(p, &"m".repeat(600)),
        key(p, &"m".repeat(601)),
        key(p, &"k".repeat(5000)),
        b"".to_vec(),
    ];
    if !caps.exact_keys {
        digests.retain(|d| !d.ends_with(b"  ") && !d.ends_with(b"upper01453f1a"));
    }
    let now = t(1_790_000_000, 0);
    let mut stored = Vec::new();
    for (i, d) in digests.iter().enumerate() {
        let ops: Vec<Op> = (0..=i).map(|_| Op::Report(d)).collect();
        let mut out = Vec::new();
        match e.execute(&ops, now, &mut out) {
            Ok(()) => stored.push((d.clone(), i as i64 + 1)),
            Err(StoreError::BadKey(_)) => assert!(out.is_empty()),
            Err(other) => panic!("digest {:?}: {other}", String::from_utf8_lossy(d)),
        }
    }
    for (d, n) in &stored {
        assert_eq!(
            e.get(d).unwrap().map(|r| r.r_count),
            Some(*n),
            "digest {:?}",
            String::from_utf8_lossy(d)
        );
    }
    // scan returns the exact bytes
    let all: std::collections::HashMap<Vec<u8>, Record> = e
        .scan()
        .unwrap()
        .map(|x| x.unwrap())
        .filter(|(k, _)| k.starts_with(p.as_bytes()) || k.is_empty())
        .collect();
    for (d, n) in &stored {
        assert_eq!(
            all.get(d).map(|r| r.r_count),
            Some(*n),
            "scan lost {:?}",
            String::from_utf8_lossy(d)
        );
    }
    let ds: Vec<Vec<u8>> = stored.iter().map(|(d, _)| d.clone()).collect();
    e.delete_many(&ds).unwrap();
    for d in &ds {
        assert_eq!(e.get(d).unwrap(), None);
    }
}

pub fn put_scan_delete(e: &dyn Engine, caps: Caps, p: &str) {
    let recs: Vec<(Vec<u8>, Record)> = (0..250)
        .map(|i| {
            let mut r = Record {
                r_count: i * 1000,
                wl_count: i % 7,
                ..Record::default()
            };
            if i % 3 != 1 {
                r.r_entered = Some(t(1_700_000_000 + i, 1000 + i));
                r.r_updated = Some(t(1_700_100_000 + i, 0));
            }
            if i % 3 != 0 {
                r.wl_entered = Some(t(1_600_000_000 + i, 999_999));
                r.wl_updated = Some(t(1_800_000_000 + i, 7));
            }
            (key(p, &format!("p{i:04}")), r)
        })
        .collect();
    e.put_many(&recs).unwrap();
    // replacing keeps one record per digest
    e.put_many(&recs[..10]).unwrap();
    let mut seen = 0;
    for item in e.scan().unwrap() {
        let (k, r) = item.unwrap();
        if let Some(want) = recs.iter().find(|(d, _)| *d == k) {
            assert_eq!(
                r,
                kept(caps, want.1),
                "digest {}",
                String::from_utf8_lossy(&k)
            );
            seen += 1;
        }
    }
    assert_eq!(seen, recs.len());
    if let Some(n) = e.len_hint() {
        assert!(n >= recs.len() as u64);
    }
    let ds: Vec<Vec<u8>> = recs.iter().map(|(d, _)| d.clone()).collect();
    e.delete_many(&ds).unwrap();
    assert!(e.scan().unwrap().all(|x| !ds.contains(&x.unwrap().0)));
}

/// The one expiry rule: last update of either count before the cutoff.
pub fn expiry_rule(e: &dyn Engine, p: &str) {
    let old = t(1_600_000_000, 0);
    let new = t(1_700_000_000, 0);
    let cutoff = t(1_650_000_000, 0);
    let mk = |r: Option<Timestamp>, w: Option<Timestamp>| Record {
        r_count: r.is_some() as i64,
        wl_count: w.is_some() as i64,
        r_entered: r,
        r_updated: r,
        wl_entered: w,
        wl_updated: w,
    };
    let cases = [
        ("old-report", mk(Some(old), None), true),
        ("new-report", mk(Some(new), None), false),
        ("old-whitelist-only", mk(None, Some(old)), true),
        ("new-whitelist-only", mk(None, Some(new)), false),
        ("old-report-new-wl", mk(Some(old), Some(new)), false),
        ("new-report-old-wl", mk(Some(new), Some(old)), false),
        ("both-old", mk(Some(old), Some(old)), true),
        (
            "no-timestamps",
            Record {
                r_count: 5,
                ..Record::default()
            },
            false,
        ),
    ];
    let recs: Vec<(Vec<u8>, Record)> = cases.iter().map(|(n, r, _)| (key(p, n), *r)).collect();
    e.put_many(&recs).unwrap();
    e.expire(cutoff).unwrap();
    for (n, _, gone) in cases {
        let got = e.get(&key(p, n)).unwrap();
        assert_eq!(got.is_none(), gone, "{n}: {got:?}");
    }
    let ds: Vec<Vec<u8>> = recs.iter().map(|(d, _)| d.clone()).collect();
    e.delete_many(&ds).unwrap();
}

/// Concurrent reports of one digest are never lost.
pub fn concurrent_reports(e: Arc<dyn Engine>, p: &str) {
    let d = key(p, "hot");
    let threads = 4;
    let per = 200;
    std::thread::scope(|s| {
        for i in 0..threads {
            let e = e.clone();
            let d = d.clone();
            s.spawn(move || {
                let mut out = Vec::new();
                for j in 0..per {
                    out.clear();
                    let op = if (i + j) % 5 == 0 {
                        Op::Whitelist(&d)
                    } else {
                        Op::Report(&d)
                    };
                    e.execute(&[op, Op::Get(&d)], pyzor_store::now(), &mut out)
                        .unwrap();
                }
            });
        }
    });
    let r = e.get(&d).unwrap().unwrap();
    assert_eq!(r.r_count + r.wl_count, (threads * per) as i64);
    e.delete_many(&[d]).unwrap();
}

pub fn run_all(e: Arc<dyn Engine>, caps: Caps, p: &str) {
    unknown_is_none(&*e, p);
    report_and_whitelist_counts(&*e, caps, p);
    batch_runs_in_order(&*e, p);
    odd_digests(&*e, caps, p);
    put_scan_delete(&*e, caps, p);
    expiry_rule(&*e, p);
    concurrent_reports(e.clone(), p);
    // an estimate for progress bars: whatever it is, it must not fail loudly
    let _ = e.approx_len();
    e.flush().unwrap();
    cleanup(&*e, p);
}

/// Delete every record of this run (shared services keep nothing).
pub fn cleanup(e: &dyn Engine, p: &str) {
    let mine: Vec<Vec<u8>> = e
        .scan()
        .unwrap()
        .filter_map(|x| x.ok())
        .map(|(k, _)| k)
        .filter(|k| k.starts_with(p.as_bytes()))
        .collect();
    e.delete_many(&mine).unwrap();
    assert!(e
        .scan()
        .unwrap()
        .filter_map(|x| x.ok())
        .all(|(k, _)| !k.starts_with(p.as_bytes())));
}

/// Two threads commit batches of reports over the same digests in opposite
/// orders (the lock pattern that deadlocks SQL engines): no batch may fail
/// and every report must count.
#[allow(dead_code)]
pub fn opposite_order_batches_all_count(e: std::sync::Arc<dyn pyzor_store::Engine>) {
    use pyzor_store::Op;
    let digests: Vec<Vec<u8>> = (0..8).map(|i| format!("{i:040x}").into_bytes()).collect();
    const ROUNDS: usize = 150;
    let threads: Vec<_> = (0..2)
        .map(|t| {
            let e = std::sync::Arc::clone(&e);
            let mut order = digests.clone();
            if t == 1 {
                order.reverse();
            }
            std::thread::spawn(move || {
                let ops: Vec<Op<'_>> = order.iter().map(|d| Op::Report(d)).collect();
                let mut failures = Vec::new();
                let mut out = Vec::new();
                for _ in 0..ROUNDS {
                    out.clear();
                    if let Err(err) = e.execute(&ops, pyzor_store::now(), &mut out) {
                        failures.push(err.to_string());
                    }
                }
                failures
            })
        })
        .collect();
    let failures: Vec<String> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert!(failures.is_empty(), "batches failed: {failures:?}");
    for d in &digests {
        let r = e.get(d).unwrap().expect("counted");
        assert_eq!(
            r.r_count,
            2 * ROUNDS as i64,
            "{}",
            String::from_utf8_lossy(d)
        );
    }
}
