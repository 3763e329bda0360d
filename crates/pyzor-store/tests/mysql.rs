#![cfg(feature = "mysql")]
mod common;
#[path = "common/mydb.rs"]
mod mydb;
#[path = "common/refpy.rs"]
mod refpy;

use std::sync::Arc;

use mysql::prelude::Queryable;
use pyzor_protocol::{Record, Timestamp};
use pyzor_store::{open, Engine, EngineOptions, Op, StoreError};
use serde_json::json;

fn engine(dsn: &str) -> Arc<dyn Engine> {
    open(&EngineOptions::new("mysql", "/nonexistent").dsn(dsn)).unwrap()
}

#[test]
fn mysql_contract() {
    let Some(db) = mydb::MyDb::create("mysql_contract") else {
        return;
    };
    let e = engine(&db.dsn_tcp(3306, "digests"));
    assert_eq!(e.name(), "mysql");
    common::run_all(
        e,
        common::Caps {
            micros: false,
            exact_keys: false,
        },
        "c-",
    );
}

#[test]
fn mysql_refuses_digests_char40_cannot_hold() {
    let Some(db) = mydb::MyDb::create("mysql_refuses_digests_char40_cannot_hold") else {
        return;
    };
    let e = engine(&db.dsn_local("digests"));
    let mut out = Vec::new();
    for d in [&[b'a'; 41][..], b"\xff\xfe", "\u{e9}".repeat(41).as_bytes()] {
        let r = e.execute(
            &[Op::Report(b"fine"), Op::Report(d)],
            pyzor_store::now(),
            &mut out,
        );
        assert!(matches!(r, Err(StoreError::BadKey(_))), "{r:?}");
        assert!(out.is_empty());
        // the refused batch wrote nothing: "fine" came first, its INSERT
        // was rolled back with the batch
        assert_eq!(e.get(b"fine").unwrap(), None);
    }
}

/// The reference's reads (`SELECT … WHERE digest = %s` on `char(40)`)
/// never fail on length: trailing blanks find the row, other over-long
/// keys find nothing. Its writes fail for over-long keys (strict mode)
/// unless the excess is trailing white space, which is truncated. Ours
/// must answer the same, side by side on one table.
#[test]
fn mysql_reads_of_over_long_and_blank_padded_digests_answer_like_the_reference() {
    let test = "mysql_reads_of_over_long_and_blank_padded_digests_answer_like_the_reference";
    let Some(db) = mydb::MyDb::create(test) else {
        return;
    };
    let dsn = db.dsn_local("digests");
    let e = engine(&dsn);
    let d = format!("{:040x}", 0xfeed_u128 << 100);
    let short = "shortdigest".to_string();
    let nul = "nul\0inside".to_string();
    let now = pyzor_store::now();
    let mut out = Vec::new();
    e.execute(
        &[
            Op::Report(d.as_bytes()),
            Op::Report(short.as_bytes()),
            Op::Whitelist(nul.as_bytes()),
        ],
        now,
        &mut out,
    )
    .unwrap();
    // (key, found by the database)
    let reads: Vec<(String, bool)> = vec![
        (d.clone(), true),
        (format!("{d} "), true),
        (format!("{d}  "), true),
        (format!("{}   ", d.to_uppercase()), true),
        (format!("{d}0"), false),
        (format!("{d}\t"), false),
        (format!("{d} x"), false),
        (format!("{short}{}", " ".repeat(40)), true),
        (format!("{short}x"), false),
        (nul.clone(), true),
        (format!("{d}\0"), false),
        ("z".repeat(5000), false),
        ("\u{e9}".repeat(41), false),
    ];
    // all reads in one batch, none refused
    let ops: Vec<Op> = reads.iter().map(|(k, _)| Op::Get(k.as_bytes())).collect();
    let mut got = Vec::new();
    e.execute(&ops, now, &mut got).unwrap();
    for ((k, found), r) in reads.iter().zip(&got) {
        assert_eq!(r.is_some(), *found, "read of {k:?}: {r:?}");
    }
    // reads of over-long keys inside a write batch do not fail it
    let fresh = "freshdigest".to_string();
    let mut mixed = Vec::new();
    e.execute(
        &[
            Op::Report(fresh.as_bytes()),
            Op::Get(reads[2].0.as_bytes()),
            Op::Get(reads[11].0.as_bytes()),
            Op::Report(d.as_bytes()),
        ],
        now,
        &mut mixed,
    )
    .unwrap();
    assert_eq!(mixed[0].unwrap().r_count, 1);
    assert_eq!(mixed[1].unwrap().r_count, 1);
    assert_eq!(mixed[2], None);
    assert_eq!(mixed[3].unwrap().r_count, 2);
    // writes: over-long refused (nothing of the batch written), blank
    // excess truncated onto the 40-character digest
    let long = format!("{d}0");
    let mut w = Vec::new();
    let r = e.execute(
        &[Op::Report(fresh.as_bytes()), Op::Report(long.as_bytes())],
        now,
        &mut w,
    );
    assert!(matches!(r, Err(StoreError::BadKey(_))), "{r:?}");
    assert!(w.is_empty());
    assert_eq!(e.get(fresh.as_bytes()).unwrap().unwrap().r_count, 1);
    e.execute(&[Op::Whitelist(format!("{d}   ").as_bytes())], now, &mut w)
        .unwrap();
    assert_eq!(
        e.get(d.as_bytes())
            .unwrap()
            .map(|r| (r.r_count, r.wl_count)),
        Some((2, 1))
    );
    // The reference reads the same table the same way.
    let keys: Vec<&String> = reads.iter().map(|(k, _)| k).collect();
    let Some(py) = refpy::run(test, "mysql", &dsn, "read", json!(keys)) else {
        return;
    };
    let py = refpy::parse_read(&py);
    let ours: Vec<Option<Record>> = {
        let mut v = Vec::new();
        e.execute(&ops, pyzor_store::now(), &mut v).unwrap();
        v
    };
    assert_eq!(py.len(), ours.len());
    for ((k, _), (p, o)) in reads.iter().zip(py.iter().zip(&ours)) {
        assert_eq!(p, o, "read of {k:?}: reference vs ours");
    }
    // ... and its writes land where ours do: blank excess onto `d`,
    // NUL kept
    refpy::run(
        test,
        "mysql",
        &dsn,
        "report",
        json!([format!("{d}  "), nul]),
    )
    .unwrap();
    let r = e.get(d.as_bytes()).unwrap().unwrap();
    assert_eq!((r.r_count, r.wl_count), (3, 1));
    let r = e.get(nul.as_bytes()).unwrap().unwrap();
    assert_eq!((r.r_count, r.wl_count), (1, 1));
}

#[test]
fn mysql_python_and_rust_share_one_table() {
    let test = "mysql_python_and_rust_share_one_table";
    let Some(db) = mydb::MyDb::create(test) else {
        return;
    };
    let dsn = db.dsn_local("digests");
    let e = engine(&dsn);
    let keys: Vec<String> = (0..5).map(|i| format!("{:040x}", i * 7 + 1)).collect();
    // Python counts, we read.
    let Some(_) = refpy::run(test, "mysql", &dsn, "report", json!(keys)) else {
        return;
    };
    refpy::run(test, "mysql", &dsn, "report", json!(keys[..2])).unwrap();
    refpy::run(test, "mysql", &dsn, "whitelist", json!(keys[..1])).unwrap();
    let r = e.get(keys[0].as_bytes()).unwrap().unwrap();
    assert_eq!((r.r_count, r.wl_count), (2, 1));
    // the reference sets all four dates on the first insert; we read them
    assert!(r.wl_entered.is_some() && r.r_entered.is_some());
    let now_s = pyzor_store::now().secs();
    assert!(
        (r.r_updated.unwrap().secs() - now_s).abs() < 60,
        "local-time reading agrees with the clock"
    );
    // We count, Python reads exactly what we read.
    let mut out = Vec::new();
    let ops: Vec<Op> = keys.iter().map(|k| Op::Whitelist(k.as_bytes())).collect();
    e.execute(&ops, pyzor_store::now(), &mut out).unwrap();
    let read = refpy::parse_read(&refpy::run(test, "mysql", &dsn, "read", json!(keys)).unwrap());
    assert_eq!(
        read.iter().map(|r| r.unwrap()).collect::<Vec<_>>(),
        out.iter().map(|r| r.unwrap()).collect::<Vec<_>>()
    );
    // A row we create has NULL (never) on the side not counted; Python reads None.
    let fresh = "f".repeat(40);
    e.execute(
        &[Op::Report(fresh.as_bytes())],
        pyzor_store::now(),
        &mut out,
    )
    .unwrap();
    let read = refpy::parse_read(&refpy::run(test, "mysql", &dsn, "read", json!([fresh])).unwrap());
    let r = read[0].unwrap();
    assert_eq!(
        (r.r_count, r.wl_count, r.wl_entered, r.wl_updated),
        (1, 0, None, None)
    );
    // Python's __setitem__ (its migration) and our put_many agree.
    let rec = Record {
        r_count: 11,
        wl_count: 2,
        r_entered: Some(Timestamp::from_secs(1_700_000_000)),
        r_updated: Some(Timestamp::from_secs(1_700_000_100)),
        wl_entered: None,
        wl_updated: Some(Timestamp::from_secs(1_700_000_200)),
    };
    refpy::run(
        test,
        "mysql",
        &dsn,
        "set",
        json!([["setbypython", refpy::record_json(&rec)]]),
    )
    .unwrap();
    assert_eq!(e.get(b"setbypython").unwrap(), Some(rec));
    e.put_many(&[(b"setbyrust".to_vec(), rec)]).unwrap();
    let read =
        refpy::parse_read(&refpy::run(test, "mysql", &dsn, "read", json!(["setbyrust"])).unwrap());
    assert_eq!(read, vec![Some(rec)]);
}

#[test]
fn mysql_wrong_password_is_reported() {
    let Some(db) = mydb::MyDb::create("mysql_wrong_password_is_reported") else {
        return;
    };
    let dsn = format!("127.0.0.1,{},wrong,{},digests", db.user, db.db);
    let r = open(&EngineOptions::new("mysql", "/").dsn(dsn));
    assert!(r.is_err());
    // the reference's table name is used as SQL text: refuse anything odd
    let r = open(&EngineOptions::new("mysql", "/").dsn(db.dsn_tcp(3306, "x`;drop")));
    assert!(matches!(r, Err(StoreError::Config(_))));
    let mut db = db;
    let n: Option<i64> = db.root().query_first("SELECT 1").unwrap();
    assert_eq!(n, Some(1));
}

/// Two workers committing batches that touch the same digests in opposite
/// orders would make InnoDB abort one transaction (deadlock 1213); the
/// engine serialises its write transactions (and retries lock conflicts with
/// other processes), so no batch fails and every report counts.
#[test]
fn mysql_lock_conflicts_between_batches_are_retried() {
    let Some(db) = mydb::MyDb::create("mysql_lock_conflicts_between_batches_are_retried") else {
        return;
    };
    common::opposite_order_batches_all_count(engine(&db.dsn_local("digests")));
}
