#![cfg(feature = "postgres")]
mod common;
#[path = "common/mydb.rs"]
mod mydb;
#[path = "common/pgdb.rs"]
mod pgdb;

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
