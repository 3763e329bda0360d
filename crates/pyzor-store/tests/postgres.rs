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

use pyzor_store::{open, Engine, EngineOptions, Op, StoreError};

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
    assert_eq!(e.get(b"max").unwrap().unwrap().r_count, i64::MAX);
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
        // A report is one autocommitted statement: the database ran it
        // and only its answer was held back, so it counted (once), as any
        // commit whose answer is lost on the way (docs/engines.md,
        // "Errors"); the late answer was not taken for a later query's.
        assert_eq!(
            out[1].map(|r| r.r_count),
            Some(1),
            "the report whose answer was held back counted once"
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

/// The most operations the server hands an engine in one call (four
/// receive batches of 64), and the longest digest a request can carry
/// (a datagram is at most 8192 bytes, its headers take some).
const MAX_OPS: usize = 4 * 64;
const MAX_DIGEST: usize = 8000;

fn h13_engine(test: &str) -> Option<(pgdb::PgDb, std::sync::Arc<dyn pyzor_store::Engine>)> {
    let db = pgdb::PgDb::create_named(test, "pyzor_h13p")?;
    let mut o = EngineOptions::new("postgres", "/").dsn(db.dsn("digests"));
    o.db_connections = 2;
    let e = open(&o).unwrap();
    Some((db, e))
}

/// Random batches of reports, whitelists and reads over a few digests,
/// so that most batches name a digest several times, in every order: each
/// operation's record and every final record equal those of the memory
/// engine (the per-digest oracle: Record::report/whitelist one by one),
/// counts and dates, batch after batch.
#[test]
fn postgres_duplicates_and_mixed_batches_match_the_memory_engine() {
    let test = "postgres_duplicates_and_mixed_batches_match_the_memory_engine";
    let Some((_db, e)) = h13_engine(test) else {
        return;
    };
    let oracle = pyzor_store::memory::MemoryEngine::new();
    let mut rng = pyzor_testkit::XorShift::new(0x5eed_1300);
    let digests: Vec<Vec<u8>> = (0..6)
        .map(|i| format!("h13p-{i}-\u{e9}").into_bytes())
        .chain([Vec::new(), b"\0\xff".to_vec()])
        .collect();
    let mut now = pyzor_store::now().0;
    let mut dup_batches = 0;
    for round in 0..60 {
        let n = 1 + rng.below(if round % 10 == 0 { MAX_OPS } else { 24 });
        let ops: Vec<Op<'_>> = (0..n)
            .map(|_| {
                let d = &digests[rng.below(digests.len())][..];
                match rng.below(3) {
                    0 => Op::Get(d),
                    1 => Op::Report(d),
                    _ => Op::Whitelist(d),
                }
            })
            .collect();
        let mut seen = std::collections::HashSet::new();
        if ops
            .iter()
            .any(|op| op.is_write() && !seen.insert(op.digest()))
        {
            dup_batches += 1;
        }
        now += 1 + rng.below(5_000_000) as i64;
        let t = pyzor_protocol::Timestamp(now);
        let (mut got, mut want) = (vec![None], vec![None]);
        e.execute(&ops, t, &mut got).unwrap();
        oracle.execute(&ops, t, &mut want).unwrap();
        if !ops.iter().any(|op| !op.is_write()) {
            // writes only: nothing is read back
            want.truncate(1);
            want.resize(got.len(), None);
        }
        assert_eq!(got, want, "round {round}: {ops:?}");
        for d in &digests {
            assert_eq!(e.get(d).unwrap(), oracle.get(d).unwrap(), "round {round}");
        }
    }
    assert!(
        dup_batches > 30,
        "only {dup_batches} batches had duplicates"
    );
}

/// A digest longer than the primary key's btree can hold (random bytes do
/// not compress: over 2704 bytes) is refused as the record's own error,
/// `BadKey`, with nothing of its batch written, so that the server re-runs
/// the batch request by request: then it fails alone (D13). Before, the
/// error (SQLSTATE 54000) was "database unavailable" and every request of
/// the batch got 500. Reading such a digest is no error.
#[test]
fn postgres_oversize_digest_fails_alone() {
    let Some((_db, e)) = h13_engine("postgres_oversize_digest_fails_alone") else {
        return;
    };
    let big = pyzor_testkit::XorShift::new(13).bytes(MAX_DIGEST);
    let ops = [
        Op::Report(b"before"),
        Op::Whitelist(&big),
        Op::Report(b"after"),
        Op::Get(b"before"),
    ];
    let mut out = vec![None];
    match e.execute(&ops, pyzor_store::now(), &mut out) {
        Err(StoreError::BadKey(m)) => {
            assert!(m.contains("54000"), "{m}");
            assert!(m.len() < 400, "the message stays short: {m}");
        }
        other => panic!("{other:?}, expected BadKey"),
    }
    assert_eq!(out.len(), 1, "nothing pushed");
    assert_eq!(
        e.get(b"before").unwrap(),
        None,
        "nothing of the batch written"
    );
    // the server's re-run, request by request
    let mut failed = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let mut one = Vec::new();
        if let Err(x) = e.execute(&[*op], pyzor_store::now(), &mut one) {
            assert!(matches!(x, StoreError::BadKey(_)), "{x:?}");
            failed.push(i);
        }
    }
    assert_eq!(failed, vec![1]);
    assert_eq!(e.get(b"before").unwrap().unwrap().r_count, 1);
    assert_eq!(e.get(b"after").unwrap().unwrap().r_count, 1);
    assert_eq!(e.get(&big).unwrap(), None);
}

/// Hostile: the largest batch the server makes, every operation on a
/// digest of the longest length a request can carry. Random digests are
/// refused as above (reads of them are fine); digests that compress fit
/// the index and are counted exactly, duplicates included.
#[test]
fn postgres_max_batch_of_max_length_digests() {
    let Some((_db, e)) = h13_engine("postgres_max_batch_of_max_length_digests") else {
        return;
    };
    let mut rng = pyzor_testkit::XorShift::new(0x13);
    let random: Vec<Vec<u8>> = (0..MAX_OPS).map(|_| rng.bytes(MAX_DIGEST)).collect();
    let reads: Vec<Op<'_>> = random.iter().map(|d| Op::Get(d)).collect();
    let mut out = Vec::new();
    e.execute(&reads, pyzor_store::now(), &mut out).unwrap();
    assert_eq!(out, vec![None; MAX_OPS]);
    let writes: Vec<Op<'_>> = random.iter().map(|d| Op::Report(d)).collect();
    let mut out = Vec::new();
    assert!(matches!(
        e.execute(&writes, pyzor_store::now(), &mut out),
        Err(StoreError::BadKey(_))
    ));
    assert!(out.is_empty());
    // 64 distinct compressible digests, each reported four times
    let long: Vec<Vec<u8>> = (0..MAX_OPS / 4)
        .map(|i| {
            let mut d = vec![b'a' + (i % 26) as u8; MAX_DIGEST];
            d[..8].copy_from_slice(&(i as u64).to_be_bytes());
            d
        })
        .collect();
    let ops: Vec<Op<'_>> = (0..MAX_OPS)
        .map(|i| Op::Report(&long[i % long.len()]))
        .collect();
    let mut out = Vec::new();
    e.execute(&ops, pyzor_store::now(), &mut out).unwrap();
    assert_eq!(out.len(), MAX_OPS);
    assert!(
        out.iter().all(Option::is_none),
        "writes only: nothing read back"
    );
    for d in &long {
        assert_eq!(e.get(d).unwrap().unwrap().r_count, 4);
    }
}

/// Several workers' batches at once over the same few digests (rows
/// created and updated concurrently, in every order): no batch fails and
/// every count lands exactly.
#[test]
fn postgres_concurrent_batches_count_exactly() {
    let Some((_db, e)) = h13_engine("postgres_concurrent_batches_count_exactly") else {
        return;
    };
    const THREADS: usize = 4;
    const BATCHES: usize = 40;
    let digests: Vec<Vec<u8>> = (0..10).map(|i| format!("cc{i}").into_bytes()).collect();
    let totals: Vec<Vec<(i64, i64)>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..THREADS)
            .map(|t| {
                let (e, digests) = (&e, &digests);
                s.spawn(move || {
                    let mut rng = pyzor_testkit::XorShift::new(100 + t as u64);
                    let mut mine = vec![(0i64, 0i64); digests.len()];
                    for _ in 0..BATCHES {
                        let ops: Vec<Op<'_>> = (0..1 + rng.below(32))
                            .map(|_| {
                                let i = rng.below(digests.len());
                                if rng.chance(70) {
                                    mine[i].0 += 1;
                                    Op::Report(&digests[i])
                                } else {
                                    mine[i].1 += 1;
                                    Op::Whitelist(&digests[i])
                                }
                            })
                            .collect();
                        let mut out = Vec::new();
                        e.execute(&ops, pyzor_store::now(), &mut out).unwrap();
                    }
                    mine
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, d) in digests.iter().enumerate() {
        let want = totals
            .iter()
            .fold((0, 0), |a, t| (a.0 + t[i].0, a.1 + t[i].1));
        let got = e.get(d).unwrap().unwrap_or_default();
        assert_eq!((got.r_count, got.wl_count), want, "digest {i}");
    }
}

/// The engine's statements are prepared once per connection, while the
/// table may still be empty: their plans must follow the table as it
/// grows. Before, the generic plan PostgreSQL settled on for the small
/// table (a sequential scan) stayed until the next automatic ANALYZE:
/// every batch of reports read the whole table (`seq_tup_read` in
/// `pg_stat_user_tables`; reports 3× slower than with the old
/// one-statement-per-digest engine).
#[test]
fn postgres_plans_follow_the_table_as_it_grows() {
    let Some((db, e)) = h13_engine("postgres_plans_follow_the_table_as_it_grows") else {
        return;
    };
    // a batch of reports, then a batch of reads of the same digests (the
    // pipelined read connection plans its read once: it must still use
    // the index however the table grew since)
    let batch = |tag: &str| {
        let ds: Vec<Vec<u8>> = (0..32).map(|i| format!("{tag}{i}").into_bytes()).collect();
        for read in [false, true] {
            let ops: Vec<Op<'_>> = match read {
                false => ds.iter().map(|d| Op::Report(d)).collect(),
                true => ds.iter().map(|d| Op::Get(d)).collect(),
            };
            let mut out = Vec::new();
            e.execute(&ops, pyzor_store::now(), &mut out).unwrap();
            if read {
                assert!(out.iter().all(|r| r.map(|r| r.r_count) == Some(1)));
            }
        }
    };
    batch("first-");
    // autovacuum analyses a table when it is young (50 rows + 10 %): then
    // enough executions for PostgreSQL to settle on a generic plan
    admin(&db).batch_execute("ANALYZE digests").unwrap();
    for i in 0..12 {
        batch(&format!("small{i}-"));
    }
    let rows: Vec<(Vec<u8>, pyzor_protocol::Record)> = (0..30_000u32)
        .map(|i| (i.to_be_bytes().to_vec(), Default::default()))
        .collect();
    e.put_many(&rows).unwrap();
    for i in 0..20 {
        batch(&format!("big{i}-"));
    }
    // a session's counters are published when it ends (or after 10 s idle)
    drop(e);
    std::thread::sleep(Duration::from_millis(500));
    let read: i64 = admin(&db)
        .query_one(
            "SELECT seq_tup_read FROM pg_stat_user_tables WHERE relname = 'digests'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(
        read < 30_000,
        "batches read the whole table: {read} rows read by sequential scans"
    );
}

/// The engine's sessions on the test database now, as PostgreSQL counts
/// them (the admin session asking is not counted).
fn sessions(admin: &mut postgres::Client, db: &str) -> i64 {
    admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&db],
        )
        .unwrap()
        .get(0)
}

/// Batches of reads from many threads at once go to one connection,
/// their statements pipelined (sent without waiting for the answer
/// before), and each gets its own answer. Before, each thread took a
/// pooled session of its own (here up to 8), and the database sat idle
/// between one answer and the next statement.
#[test]
fn postgres_concurrent_reads_share_one_pipelined_connection() {
    let test = "postgres_concurrent_reads_share_one_pipelined_connection";
    let Some(db) = pgdb::PgDb::create(test) else {
        return;
    };
    let mut o = EngineOptions::new("postgres", "/").dsn(db.dsn("digests"));
    o.db_connections = 8;
    let e = open(&o).unwrap();
    // digest i reported i times; odd digests never seen
    let digests: Vec<Vec<u8>> = (0..64).map(|i| format!("pr{i}").into_bytes()).collect();
    let records: Vec<_> = (0..64)
        .step_by(2)
        .map(|i| {
            let r = pyzor_protocol::Record {
                r_count: i as i64,
                ..Default::default()
            };
            (digests[i].clone(), r)
        })
        .collect();
    e.put_many(&records).unwrap();
    let mut admin = admin(&db);
    let before = sessions(&mut admin, &db.db);
    const THREADS: u64 = 8;
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (e, digests) = (&e, &digests);
            s.spawn(move || {
                let mut rng = pyzor_testkit::XorShift::new(7 + t);
                for _ in 0..200 {
                    let picked: Vec<usize> = (0..1 + rng.below(40))
                        .map(|_| rng.below(digests.len()))
                        .collect();
                    let ops: Vec<Op<'_>> = picked.iter().map(|&i| Op::Get(&digests[i])).collect();
                    let mut out = Vec::new();
                    e.execute(&ops, pyzor_store::now(), &mut out).unwrap();
                    assert_eq!(out.len(), ops.len());
                    for (&i, got) in picked.iter().zip(&out) {
                        let want = (i % 2 == 0).then_some(i as i64);
                        assert_eq!(got.map(|r| r.r_count), want, "digest {i}");
                    }
                }
            });
        }
    });
    let after = sessions(&mut admin, &db.db);
    assert!(
        after <= before + 1,
        "{THREADS} threads reading at once used {} new sessions, expected the one read connection",
        after - before
    );
}

/// The read connection closed by the server (a restart, an operator's
/// `pg_terminate_backend`) is replaced: at most the read that met the
/// closed connection fails, as unavailable, and the next ones are
/// answered right.
#[test]
fn postgres_read_connection_closed_by_the_server_is_replaced() {
    let test = "postgres_read_connection_closed_by_the_server_is_replaced";
    let Some(db) = pgdb::PgDb::create(test) else {
        return;
    };
    let e = open(&EngineOptions::new("postgres", "/").dsn(db.dsn("digests"))).unwrap();
    assert_eq!(report(&*e, "kept").unwrap().r_count, 1);
    assert_eq!(e.get(b"kept").unwrap().unwrap().r_count, 1);
    let mut admin = admin(&db);
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&db.db],
        )
        .unwrap();
    let mut failed = 0;
    for i in 0..5 {
        match e.get(b"kept") {
            Ok(r) => assert_eq!(r.unwrap().r_count, 1, "read {i}"),
            Err(StoreError::Unavailable(m)) => {
                eprintln!("read {i}: {m}");
                failed += 1;
            }
            Err(x) => panic!("read {i}: {x:?}, expected the record or Unavailable"),
        }
    }
    assert!(
        failed <= 1,
        "{failed} reads failed after the connection was closed"
    );
    assert_eq!(e.get(b"kept").unwrap().unwrap().r_count, 1);
}

/// A server that stops answering a read on the pipelined connection: the
/// read fails within the bound, and so does one sent behind it on the
/// same connection; the connection is dropped, so that once the server
/// answers again no late answer is taken for a later read's.
#[test]
fn postgres_silent_server_fails_pipelined_reads_in_time_and_recovers() {
    let test = "postgres_silent_server_fails_pipelined_reads_in_time_and_recovers";
    let Some(db) = pgdb::PgDb::create(test) else {
        return;
    };
    let proxy = sick::StallProxy::start(5432);
    let e = sick::sick_engine(
        "postgres",
        &format!("127.0.0.1:{},postgres,,{},digests", proxy.port, db.db),
    );
    assert_eq!(report(&*e, "one").unwrap().r_count, 1);
    assert_eq!(report(&*e, "two").unwrap().r_count, 1);
    assert_eq!(report(&*e, "two").unwrap().r_count, 2);
    assert_eq!(e.get(b"one").unwrap().unwrap().r_count, 1);
    proxy.stall(true);
    std::thread::sleep(Duration::from_millis(150));
    // both at once: the second is sent behind the first on the connection
    let reads: Vec<_> = ["one", "two"]
        .into_iter()
        .map(|d| {
            let (e, (tx, rx)) = (e.clone(), std::sync::mpsc::channel());
            let t0 = std::time::Instant::now();
            std::thread::spawn(move || {
                let _ = tx.send((e.get(d.as_bytes()), t0.elapsed()));
            });
            rx
        })
        .collect();
    let reads: Vec<_> = reads
        .into_iter()
        .map(|rx| rx.recv_timeout(BOUND).ok())
        .collect();
    proxy.stall(false);
    for r in reads {
        match r {
            Some((Err(StoreError::Unavailable(m)), took)) => {
                eprintln!("failed after {took:?}: {m}")
            }
            Some((other, took)) => panic!("{other:?} after {took:?}, expected Unavailable"),
            None => panic!("no answer within {BOUND:?}"),
        }
    }
    for i in 0..6 {
        let mut out = Vec::new();
        let ops = [Op::Get(b"two"), Op::Get(b"one"), Op::Get(b"never")];
        if let Err(x) = e.execute(&ops, pyzor_store::now(), &mut out) {
            panic!("read {i} after the stall: {x}");
        }
        let counts: Vec<_> = out.iter().map(|r| r.map(|r| r.r_count)).collect();
        assert_eq!(counts, [Some(2), Some(1), None], "read {i}");
    }
}
