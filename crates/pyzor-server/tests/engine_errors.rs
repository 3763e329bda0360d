//! "An engine error is that request's error, never a lie": for every
//! engine, one batch in which one digest fails (a key the engine cannot
//! count) is answered request by request — 200 only to the requests whose
//! counts were all written, 500 to the others — and the good reports of
//! the batch are counted exactly once.
//!
//! How each engine is made to fail on one key:
//! * redis: the digest's key holds a string where a hash is expected
//!   (`WRONGTYPE`), and another's hash holds a count that is not an
//!   integer (the increment fails);
//! * lmdb: a value under the digest's key that is no record (a batch is
//!   one transaction; the failed record is skipped inside it);
//! * gdbm: a value that is no record (GDBM has no transactions);
//! * mysql: a digest the `char(40)` column cannot hold (written by its
//!   own statement inside the batch's transaction, which the database
//!   undoes alone);
//! * postgres: a digest a CHECK constraint of the table refuses (as a
//!   database administrator may add; rolled back, re-run one by one);
//! * memory: a `HashMap` cannot fail on one key (the only error is a
//!   poisoned lock, before anything is written), so there is no test.
//!
//! The batches run through [`Processor`] in this process, as a worker runs
//! them, so that exactly one batch holds the bad key.

mod common;
mod mixed_support;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use mixed_support::{redis_cli, run_bounded, MysqlScratch, RedisKeys};
use pyzor_protocol::auth::{parse_access, Accounts};
use pyzor_server::rules::Rules;
use pyzor_server::worker::{Processor, Shared};
use pyzor_store::{Engine, EngineOptions};

/// Anonymous may do everything (whitelist included).
fn shared(engine: Arc<dyn Engine>) -> Shared {
    let accounts = Accounts::default();
    let (acl, warnings) = parse_access("all : anonymous : allow\n", &accounts);
    assert!(warnings.is_empty(), "{warnings:?}");
    Shared::standalone(engine, Rules { accounts, acl })
}

/// A name unique to this run (tests of several runs may share a service).
fn uniq(tag: &str) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{tag}{:x}{}", n & 0xffff_ffff, std::process::id())
}

fn code(reply: &[u8]) -> u16 {
    mixed_support::reply_code(reply)
}

/// Run `reqs` as one batch; the replies as text.
fn batch(p: &mut Processor, sh: &Shared, reqs: &[String]) -> Vec<String> {
    let mut replies = vec![Vec::new(); reqs.len()];
    p.process(sh, reqs.len(), |i| (reqs[i].as_bytes(), None), &mut replies);
    replies
        .iter()
        .map(|r| String::from_utf8_lossy(r).into_owned())
        .collect()
}

fn req(op: &str, digests: &[&str], thread: u32) -> String {
    let mut s = format!("Op: {op}\n");
    for d in digests {
        s.push_str(&format!("Op-Digest: {d}\n"));
    }
    s.push_str(&format!("Thread: {thread}\nPV: 2.1\n\n"));
    s
}

/// The scenario, with `bad` the digests the engine cannot count (one or
/// two) and `p` a prefix unique to this run (good digests are `p` + a
/// short suffix, at most 40 characters for mysql).
///
/// One batch: report g1 / report g2 + bad[0] / whitelist g3 / report
/// bad[0] / report g4 + every bad / check g1. Only the requests naming a
/// bad digest get 500; g1 and g3 are counted once; the check sees g1's
/// report of the same batch. A request answered 500 may have had its good
/// digests counted (a 500 does not say "nothing was written", only "not
/// everything was"), but never twice.
fn one_bad_key_fails_only_its_requests(engine: Arc<dyn Engine>, p: &str, bad: &[&str]) {
    let (g1, g2, g3, g4) = (
        format!("{p}g1"),
        format!("{p}g2"),
        format!("{p}g3"),
        format!("{p}g4"),
    );
    let sh = shared(engine.clone());
    let mut proc = Processor::new(&sh);
    let mut last: Vec<&str> = vec![&g4];
    last.extend_from_slice(bad);
    let reqs = vec![
        req("report", &[&g1], 1),
        req("report", &[&g2, bad[0]], 2),
        req("whitelist", &[&g3], 3),
        req("report", &[bad[0]], 4),
        req("report", &last, 5),
        req("check", &[&g1], 6),
    ];
    let r = batch(&mut proc, &sh, &reqs);
    let codes: Vec<u16> = r.iter().map(|x| code(x.as_bytes())).collect();
    assert_eq!(codes, vec![200, 500, 200, 500, 500, 200], "{r:#?}");
    assert!(
        r[5].contains("\nCount: 1\nWL-Count: 0\n"),
        "the check sees the report of its batch: {}",
        r[5]
    );
    for (i, x) in r.iter().enumerate() {
        assert!(x.contains(&format!("\nThread: {}\n", i + 1)), "{x}");
    }
    let get = |d: &str| engine.get(d.as_bytes()).unwrap();
    assert_eq!(get(&g1).map(|x| x.r_count), Some(1), "g1 counted once");
    assert_eq!(get(&g3).map(|x| x.wl_count), Some(1), "g3 counted once");
    for g in [&g2, &g4] {
        let n = get(g).map_or(0, |x| x.r_count);
        assert!(n <= 1, "{g} counted {n} times for one report");
    }
    // The next batch without the bad key is all 200.
    let r = batch(
        &mut proc,
        &sh,
        &[req("report", &[&g1], 7), req("check", &[&g1], 8)],
    );
    assert_eq!(code(r[0].as_bytes()), 200, "{}", r[0]);
    assert!(r[1].contains("\nCount: 2\n"), "{}", r[1]);
}

#[test]
fn redis_a_wrongtype_key_fails_only_its_requests() {
    let test = "redis_a_wrongtype_key_fails_only_its_requests";
    if !pyzor_testkit::redis_available(test) {
        return;
    }
    const DB: u32 = 15; // its own: client_order.rs flushes db 12, the bench 13 and 14
    let p = format!("{}-", uniq("ee"));
    let (bad_type, bad_count) = (format!("{p}str"), format!("{p}nan"));
    let key = |d: &str| format!("pyzord.digest_v1.{d}");
    let _cleanup = RedisKeys {
        port: 6379,
        db: DB,
        keys: ["g1", "g2", "g3", "g4", "str", "nan"]
            .iter()
            .map(|s| key(&format!("{p}{s}")))
            .collect(),
    };
    assert_eq!(redis_cli(6379, DB, &["SET", &key(&bad_type), "x"]), "OK");
    redis_cli(
        6379,
        DB,
        &[
            "HSET",
            &key(&bad_count),
            "r_count",
            "many",
            "r_updated",
            "5",
        ],
    );
    let mut o = EngineOptions::new("redis", "/nonexistent").dsn(format!("127.0.0.1,6379,,{DB}"));
    o.cleanup_age = 0;
    let engine = pyzor_store::open(&o).unwrap();
    one_bad_key_fails_only_its_requests(engine, &p, &[&bad_type, &bad_count]);
    // The failed increments wrote nothing.
    assert_eq!(redis_cli(6379, DB, &["GET", &key(&bad_type)]), "x");
    assert_eq!(
        redis_cli(6379, DB, &["HGETALL", &key(&bad_count)]),
        "r_count\nmany\nr_updated\n5"
    );
}

/// LMDB keys of short digests are `0x00 ‖ digest` (crates/pyzor-store lmdb).
#[test]
fn lmdb_a_corrupt_record_fails_only_its_requests() {
    use heed::types::Bytes;
    let home = tempfile::tempdir().unwrap();
    let path = home.path().join("pyzord.lmdb");
    std::fs::create_dir_all(&path).unwrap();
    {
        // SAFETY: nothing else has this fresh environment open.
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
        db.put(&mut w, b"\0lbad", b"\x99garbage").unwrap();
        w.commit().unwrap();
        env.prepare_for_closing().wait();
    }
    let engine = pyzor_store::open(&EngineOptions::new("lmdb", home.path())).unwrap();
    one_bad_key_fails_only_its_requests(engine.clone(), "l", &["lbad"]);
    assert!(
        engine.get(b"lbad").is_err(),
        "the corrupt record is left alone"
    );
}

#[test]
fn gdbm_a_corrupt_record_fails_only_its_requests() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("pyzord.db");
    {
        let engine = pyzor_store::open(&EngineOptions::new("gdbm", home.path())).unwrap();
        engine
            .put_many(&[(b"seed".to_vec(), Default::default())])
            .unwrap();
    }
    {
        let mut db = gdbm_native::OpenOptions::new()
            .write(true)
            .open(&file)
            .unwrap();
        db.insert::<[u8], [u8]>(b"gbad", b"no,record").unwrap();
        db.sync().unwrap();
    }
    let engine = pyzor_store::open(&EngineOptions::new("gdbm", home.path())).unwrap();
    one_bad_key_fails_only_its_requests(engine.clone(), "g", &["gbad"]);
    assert!(
        engine.get(b"gbad").is_err(),
        "the corrupt record is left alone"
    );
}

#[test]
fn mysql_a_digest_too_long_for_char_40_fails_only_its_requests() {
    let test = "mysql_a_digest_too_long_for_char_40_fails_only_its_requests";
    if !pyzor_testkit::mysql_available(test) {
        return;
    }
    let name = uniq("pz_ee_");
    let db = MysqlScratch::create(&name).unwrap();
    let engine = pyzor_store::open(&EngineOptions::new("mysql", "/").dsn(db.dsn())).unwrap();
    let bad = "x".repeat(41);
    one_bad_key_fails_only_its_requests(engine.clone(), "m", &[&bad]);
    let n = mixed_support::mysql_root(&format!("SELECT COUNT(*) FROM `{name}`.digests")).unwrap();
    // g1 and g3, and g2 and g4, the good digests of the failed requests,
    // counted once each: only the bad digest wrote nothing (the reference
    // counts none of a failed request's digests: docs/compatibility.md D35)
    assert_eq!(n, "4", "only the bad digest wrote nothing");
    drop(engine);
}

/// `psql` as postgres over TCP to the local server.
fn psql(db: &str, sql: &str) -> String {
    let (ok, out) = run_bounded(
        Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-X", "-q", "-t", "-A"])
            .args(["-d", db, "-c", sql]),
        Duration::from_secs(30),
    );
    assert!(ok, "psql {sql}: {out}");
    out.trim().to_string()
}

/// Drops the database when dropped.
struct PgScratch(String);

impl Drop for PgScratch {
    fn drop(&mut self) {
        let _ = run_bounded(
            Command::new("psql")
                .args(["-h", "127.0.0.1", "-U", "postgres", "-X", "-q"])
                .args(["-d", "postgres", "-c"])
                .arg(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.0)),
            Duration::from_secs(30),
        );
    }
}

#[test]
fn postgres_a_digest_refused_by_a_constraint_fails_only_its_requests() {
    let test = "postgres_a_digest_refused_by_a_constraint_fails_only_its_requests";
    if !pyzor_testkit::postgres_available(test) {
        return;
    }
    if !pyzor_testkit::programs_available(test, &["psql"]) {
        return;
    }
    let name = uniq("pz_ee_");
    psql("postgres", &format!("CREATE DATABASE {name}"));
    let _drop = PgScratch(name.clone());
    let dsn = format!("127.0.0.1:5432,postgres,,{name},digests");
    let engine = pyzor_store::open(&EngineOptions::new("postgres", "/").dsn(dsn)).unwrap();
    psql(
        &name,
        "ALTER TABLE digests ADD CONSTRAINT no_bad CHECK (digest <> 'pbad'::bytea)",
    );
    one_bad_key_fails_only_its_requests(engine.clone(), "p", &["pbad"]);
    assert_eq!(
        psql(&name, "SELECT COUNT(*) FROM digests WHERE digest = 'pbad'"),
        "0"
    );
    drop(engine);
}
