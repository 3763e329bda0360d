#![cfg(feature = "postgres")]
mod common;
#[path = "common/mydb.rs"]
mod mydb;
#[path = "common/pgdb.rs"]
mod pgdb;
#[path = "common/private_pg.rs"]
mod private_pg;
#[path = "common/sick.rs"]
mod sick;
use sick::{fails_in_time, report, BOUND};

use std::time::Duration;

use pyzor_store::{open, EngineOptions, Op, StoreError};

#[test]
fn postgres_contract() {
    let Some(db) = pgdb::PgDb::create("postgres_contract") else {
        return;
    };
    let mut o = EngineOptions::new("postgres", "/").dsn(db.dsn("digests"));
    o.db_connections = 3;
    let e = open(&o).unwrap();
    assert_eq!(e.name(), "postgres");
    common::run_all(e, common::EXACT, "c-");
}

#[test]
fn postgres_counts_saturate_and_bad_dsn_is_config() {
    let Some(db) = pgdb::PgDb::create("postgres_counts_saturate_and_bad_dsn_is_config") else {
        return;
    };
    let e = open(&EngineOptions::new("postgres", "/").dsn(db.dsn("public.digests"))).unwrap();
    let rec = pyzor_protocol::Record {
        r_count: i64::MAX,
        ..Default::default()
    };
    e.put_many(&[(b"max".to_vec(), rec)]).unwrap();
    let mut out = Vec::new();
    e.execute(&[Op::Report(b"max")], pyzor_store::now(), &mut out)
        .unwrap();
    assert_eq!(out[0].unwrap().r_count, i64::MAX);
    assert!(matches!(
        open(&EngineOptions::new("postgres", "/").dsn("a,b,c")),
        Err(StoreError::Config(_))
    ));
    assert!(matches!(
        open(&EngineOptions::new("postgres", "/").dsn(db.dsn("bad name"))),
        Err(StoreError::Config(_))
    ));
}

/// Concurrent batches over the same rows in opposite orders never fail
/// (PostgreSQL would abort one with a deadlock, 40P01).
#[test]
fn postgres_lock_conflicts_between_batches_never_fail() {
    let Some(db) = pgdb::PgDb::create("postgres_lock_conflicts_between_batches_never_fail") else {
        return;
    };
    let mut o = EngineOptions::new("postgres", "/").dsn(db.dsn("digests"));
    o.db_connections = 2;
    common::opposite_order_batches_all_count(open(&o).unwrap());
}

fn admin(db: &pgdb::PgDb) -> postgres::Client {
    postgres::Config::new()
        .host("127.0.0.1")
        .user("postgres")
        .dbname(&db.db)
        .connect_timeout(Duration::from_secs(3))
        .connect(postgres::NoTls)
        .unwrap()
}

/// A table or row locked by another session: the engine's calls fail
/// (the server's 500) within a small multiple of the engine timeout
/// instead of waiting for the lock (measured before: every request hung
/// for as long as the lock was held), and once the lock is gone the same
/// engine works again and nothing of a failed batch was written.
#[test]
fn postgres_locked_table_fails_within_the_timeout_and_recovers() {
    let Some(db) =
        pgdb::PgDb::create("postgres_locked_table_fails_within_the_timeout_and_recovers")
    else {
        return;
    };
    let e = sick::sick_engine("postgres", &db.dsn("digests"));
    assert_eq!(report(&*e, "locked").unwrap().r_count, 1);
    let mut locker = admin(&db);
    // a row lock held by an open transaction of another session
    locker
        .batch_execute("BEGIN; SELECT * FROM digests WHERE digest = 'locked' FOR UPDATE")
        .unwrap();
    fails_in_time(&e, "report of a locked row", |e| report(e, "locked"));
    // a plain read does not wait for row locks
    assert_eq!(e.get(b"locked").unwrap().unwrap().r_count, 1);
    locker.batch_execute("ROLLBACK").unwrap();
    // the whole table, as in the measurement
    locker
        .batch_execute("BEGIN; LOCK TABLE digests IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    fails_in_time(&e, "read of a locked table", |e| e.get(b"locked"));
    fails_in_time(&e, "report into a locked table", |e| report(e, "other"));
    locker.batch_execute("COMMIT").unwrap();
    for i in 1..=6 {
        assert_eq!(report(&*e, "locked").unwrap().r_count, 1 + i);
    }
    assert_eq!(e.get(b"other").unwrap(), None);
}

/// A server that stops answering (hung, or its answers lost on the way)
/// does not hang the engine: the call fails within the bound, and the
/// connection it was using is discarded, never reused.
#[test]
fn postgres_silent_server_fails_within_the_timeout_and_recovers() {
    let Some(db) =
        pgdb::PgDb::create("postgres_silent_server_fails_within_the_timeout_and_recovers")
    else {
        return;
    };
    let proxy = sick::StallProxy::start(5432);
    let e = sick::sick_engine(
        "postgres",
        &format!("127.0.0.1:{},postgres,,{},digests", proxy.port, db.db),
    );
    assert_eq!(report(&*e, "warm").unwrap().r_count, 1);
    proxy.stall(true);
    // the proxy looks at the flag between reads of up to 50 ms: an answer
    // arriving meanwhile would still pass (a batch is one round trip and
    // its commit another, so the commit would be sent and the row written)
    std::thread::sleep(Duration::from_millis(150));
    let r = sick::within(BOUND, {
        let e = e.clone();
        move || report(&*e, "stalled")
    });
    proxy.stall(false);
    match r {
        Some((Err(StoreError::Unavailable(m)), took)) => eprintln!("failed after {took:?}: {m}"),
        Some((other, took)) => panic!("{other:?} after {took:?}, expected Unavailable"),
        None => panic!("no answer within {BOUND:?}"),
    }
    for i in 1..=6 {
        let mut out = Vec::new();
        let ops = [Op::Report(b"warm"), Op::Get(b"stalled"), Op::Get(b"never")];
        if let Err(x) = e.execute(&ops, pyzor_store::now(), &mut out) {
            panic!("call {i} after the stall: {x}");
        }
        assert_eq!(out[0].unwrap().r_count, 1 + i, "call {i}");
        assert_eq!(
            out[1], None,
            "the report whose answer was held back was rolled back"
        );
        assert_eq!(out[2], None);
    }
}

/// A wrong password (on a private server with password authentication:
/// the shared one trusts every local connection) is a configuration error
/// that says so, and no error shows the password; so is a missing database.
#[test]
fn postgres_wrong_password_is_a_configuration_error_without_the_password() {
    let test = "postgres_wrong_password_is_a_configuration_error_without_the_password";
    let right = "Right-Pw-5521";
    let Some(pg) = private_pg::PrivatePg::create(test, Some(right)) else {
        return;
    };
    let wrong = "Wrong-Pw-7731";
    let dsn = |pw: &str, db: &str| format!("127.0.0.1:{},postgres,{pw},{db},digests", pg.port);
    match open(&EngineOptions::new("postgres", "/").dsn(dsn(wrong, "postgres"))) {
        Err(StoreError::Config(m)) => {
            assert!(m.contains("password"), "{m}");
            assert!(!m.contains(wrong), "{m}");
        }
        Err(x) => panic!("{x:?}, expected a configuration error"),
        Ok(_) => panic!("opened with a wrong password"),
    }
    match open(&EngineOptions::new("postgres", "/").dsn(dsn(right, "nosuchdb"))) {
        Err(StoreError::Config(m)) => {
            assert!(m.contains("nosuchdb"), "{m}");
            assert!(!m.contains(right), "{m}");
        }
        Err(x) => panic!("{x:?}, expected a configuration error"),
        Ok(_) => panic!("opened a database that does not exist"),
    }
    let e = open(&EngineOptions::new("postgres", "/").dsn(dsn(right, "postgres"))).unwrap();
    assert_eq!(e.get(b"x").unwrap(), None);
}
