#![cfg(feature = "mysql")]
mod common;
#[path = "common/mydb.rs"]
mod mydb;
#[path = "common/refpy.rs"]
mod refpy;
#[path = "common/sick.rs"]
mod sick;
use sick::{fails_in_time, report};

use std::sync::Arc;
use std::time::Duration;

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

/// A table or row locked by another session: the engine's calls fail
/// (the server's 500) within a small multiple of the engine timeout
/// instead of waiting for the lock, and once the lock is gone the same
/// engine (the same pool) works again and nothing of a failed batch was
/// written.
#[test]
fn mysql_locked_table_fails_within_the_timeout_and_recovers() {
    let Some(mut db) =
        mydb::MyDb::create("mysql_locked_table_fails_within_the_timeout_and_recovers")
    else {
        return;
    };
    let e = sick::sick_engine("mysql", &db.dsn_tcp(3306, "digests"));
    assert_eq!(report(&*e, "locked").unwrap().r_count, 1);
    let table = format!("{}.digests", db.db);
    // a row lock held by an open transaction of another session
    let locker = db.root();
    locker.query_drop("START TRANSACTION").unwrap();
    locker
        .query_drop(format!(
            "SELECT * FROM {table} WHERE digest = 'locked' FOR UPDATE"
        ))
        .unwrap();
    let t0 = std::time::Instant::now();
    fails_in_time(&e, "report of a locked row", |e| report(e, "locked"));
    // a plain read does not wait for row locks
    assert_eq!(e.get(b"locked").unwrap().unwrap().r_count, 1);
    // The lock goes 6 s after the report began. Before, the driver gave
    // up after 5 s but kept the connection, whose late answers then
    // became the answers to the next queries ("can't parse: buf doesn't
    // have enough data", "Packets out of sync"): no connection that
    // failed goes back into the pool now.
    std::thread::sleep(Duration::from_secs(6).saturating_sub(t0.elapsed()));
    db.root().query_drop("ROLLBACK").unwrap();
    // a table locked for writing
    db.root()
        .query_drop(format!("LOCK TABLES {table} WRITE"))
        .unwrap();
    fails_in_time(&e, "read of a locked table", |e| e.get(b"locked"));
    fails_in_time(&e, "report into a locked table", |e| report(e, "other"));
    db.root().query_drop("UNLOCK TABLES").unwrap();
    // the same engine works again, on every pooled connection, and the
    // failed reports counted nothing
    for i in 1..=6 {
        assert_eq!(report(&*e, "locked").unwrap().r_count, 1 + i);
    }
    assert_eq!(e.get(b"other").unwrap(), None);
}

/// A connection whose answer did not come in time is discarded, never
/// reused: here the database's answers are held back by a proxy until
/// after the engine gave up, then delivered. Reusing that connection
/// would read them as the answers to later queries (the mysql crate's
/// "Packets out of sync", or worse, another query's result).
#[test]
fn mysql_connection_that_timed_out_is_not_reused() {
    let Some(db) = mydb::MyDb::create("mysql_connection_that_timed_out_is_not_reused") else {
        return;
    };
    let proxy = sick::StallProxy::start(3306);
    let e = sick::sick_engine("mysql", &db.dsn_tcp(proxy.port, "digests"));
    assert_eq!(report(&*e, "warm").unwrap().r_count, 1);
    proxy.stall(true);
    fails_in_time(&e, "report with its answer held back", |e| {
        report(e, "stalled")
    });
    // the held answers arrive after the engine gave up
    proxy.stall(false);
    for i in 1..=6 {
        let mut out = Vec::new();
        let ops = [Op::Report(b"warm"), Op::Get(b"stalled"), Op::Get(b"never")];
        match e.execute(&ops, pyzor_store::now(), &mut out) {
            Ok(()) => {}
            Err(x) => panic!("call {i} after the stall: {x}"),
        }
        assert_eq!(out[0].unwrap().r_count, 1 + i, "call {i}");
        assert_eq!(
            out[1], None,
            "the report whose answer was held back was rolled back"
        );
        assert_eq!(out[2], None);
    }
}

/// A wrong password is a configuration error that says so, and no error
/// shows the password.
#[test]
fn mysql_wrong_password_is_a_configuration_error_without_the_password() {
    let Some(db) =
        mydb::MyDb::create("mysql_wrong_password_is_a_configuration_error_without_the_password")
    else {
        return;
    };
    let wrong = "Wrong-Pw-7731";
    for host in ["127.0.0.1".to_string(), "localhost".to_string()] {
        let dsn = format!("{host},{},{wrong},{},digests", db.user, db.db);
        let o = EngineOptions::new("mysql", "/").dsn(&dsn);
        match open(&o) {
            Err(StoreError::Config(m)) => {
                assert!(m.to_lowercase().contains("access denied"), "{m}");
                assert!(m.contains("password"), "{m}");
                assert!(!m.contains(wrong), "{m}");
            }
            Err(x) => panic!("{host}: {x:?}, expected a configuration error"),
            Ok(_) => panic!("{host}: opened with a wrong password"),
        }
    }
    // a user without grants on the database
    let dsn = format!("127.0.0.1,{},{},mysql,digests", db.user, db.password);
    match open(&EngineOptions::new("mysql", "/").dsn(&dsn)) {
        Err(StoreError::Config(m)) => assert!(!m.contains(&db.password), "{m}"),
        Err(x) => panic!("{x:?}, expected a configuration error"),
        Ok(_) => panic!("opened a database without grants"),
    }
}
