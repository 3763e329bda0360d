//! Mixed fleets at the pyzord level: the reference Python pyzord 1.1.2 and
//! ours serving one Redis db or one MySQL table at the same time, and ours
//! taking over the reference's `pyzord.db` in place (and handing it back).
//!
//! Every report/whitelist goes through the reference `pyzor` client
//! (anonymous with the default ACL, or signed as the one account allowed
//! to whitelist); counts are read through the *other* server, and `info`
//! through both servers must give the same six numbers (raw UDP: exact
//! epoch seconds) and the same `pyzor info` text. What the numbers must be
//! follows docs/engines.md and docs/protocol.md §6 "Timestamps in info".

mod common;
mod mixed_support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::Proc;
use mixed_support::*;

/// Both servers plus a client home for each (anonymous and signed).
struct Fleet {
    venv: PathBuf,
    _dir: tempfile::TempDir,
    py: Proc,
    rs: Proc,
    anon_py: PathBuf,
    anon_rs: PathBuf,
    wl_py: PathBuf,
    wl_rs: PathBuf,
}

impl Fleet {
    /// Start the reference and ours with `-e engine --dsn dsn`, each in its
    /// own home, both with the environment `env` (e.g. `TZ`).
    fn start(venv: &Path, engine: &str, dsn: &str, env: &[(&str, &str)]) -> Fleet {
        let dir = pyzor_testkit::temp_home();
        let (hp, hr) = (dir.path().join("python"), dir.path().join("rust"));
        for h in [&hp, &hr] {
            std::fs::create_dir_all(h).unwrap();
            write_server_accounts(h);
        }
        let args = ["-e", engine, "--dsn", dsn];
        let py = start_pyzord(Impl::Python, Some(venv), &hp, &args, env);
        let rs = start_pyzord(Impl::Rust, None, &hr, &args, env);
        let c = dir.path().join("clients");
        Fleet {
            venv: venv.to_path_buf(),
            anon_py: client_for(&c.join("anon-py"), py.port, false),
            anon_rs: client_for(&c.join("anon-rs"), rs.port, false),
            wl_py: client_for(&c.join("wl-py"), py.port, true),
            wl_rs: client_for(&c.join("wl-rs"), rs.port, true),
            _dir: dir,
            py,
            rs,
        }
    }

    fn op(&self, client: &Path, op: &str, msg: &[u8]) {
        client_op(&self.venv, client, op, msg);
    }

    /// `info` through both servers: the same numbers, the same client text.
    fn info_both(&self, digest: &str, msg: &[u8]) -> Info {
        let (ip, ir) = (info(self.py.port, digest), info(self.rs.port, digest));
        assert_eq!(ip, ir, "info of {digest}: Python pyzord vs ours");
        let tp = info_text_body(&client_op(&self.venv, &self.anon_py, "info", msg));
        let tr = info_text_body(&client_op(&self.venv, &self.anon_rs, "info", msg));
        assert_eq!(
            tp, tr,
            "`pyzor info` text of {digest}: Python pyzord vs ours"
        );
        let (cp, cr) = (check(self.py.port, digest), check(self.rs.port, digest));
        assert_eq!((cp, cr), ((ip.count, ip.wl_count), (ip.count, ip.wl_count)));
        ip
    }
}

fn within(what: &str, v: i64, lo: i64, hi: i64) {
    assert!(
        lo <= v && v <= hi,
        "{what} = {v}, expected within [{lo}, {hi}]"
    );
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Shared {
    Redis,
    Mysql,
}

/// Messages and digests of one scenario.
struct Msgs {
    a: (Vec<u8>, String),
    b: (Vec<u8>, String),
    c: (Vec<u8>, String),
    d: (Vec<u8>, String),
}

fn messages(f: &Fleet) -> Msgs {
    let mk = |tag: &str| {
        let m = unique_message(tag);
        let d = digest_of(&f.venv, &f.anon_py, &m);
        (m, d)
    };
    let m = Msgs {
        a: mk("A"),
        b: mk("B"),
        c: mk("C"),
        d: mk("D"),
    };
    let mut ds = [&m.a.1, &m.b.1, &m.c.1, &m.d.1];
    ds.sort();
    ds.windows(2)
        .for_each(|w| assert_ne!(w[0], w[1], "distinct digests"));
    m
}

/// The scenario on one shared store. `skew_py` is what the reference's
/// dates read back as minus the true time (MySQL: DB session zone vs
/// pyzord's zone; 0 for Redis); dates written by ours read back exactly.
fn run_scenario(f: &Fleet, m: &Msgs, shared: Shared, skew_py: i64) {
    let s = skew_py;
    let ((ma, da), (mb, db), (mc, dc), (md, dd)) = (&m.a, &m.b, &m.c, &m.d);

    // A never-seen digest: all zero through both.
    assert_eq!(f.info_both(da, ma), Info::default());

    // A: two reports through Python, one through ours.
    let t0 = now();
    f.op(&f.anon_py, "report", ma);
    f.op(&f.anon_py, "report", ma);
    let t1 = now();
    f.op(&f.anon_rs, "report", ma);
    let t2 = now();
    let ia = f.info_both(da, ma);
    assert_eq!((ia.count, ia.wl_count), (3, 0), "{ia:?}");
    within(
        "A Entered (Python's first report)",
        ia.entered,
        t0 + s,
        t1 + s,
    );
    within("A Updated (our report)", ia.updated, t1, t2);
    match shared {
        // WL fields never set: 0.
        Shared::Redis => assert_eq!((ia.wl_entered, ia.wl_updated), (0, 0), "{ia:?}"),
        // The reference's first INSERT sets all four dates (§6 mysql).
        Shared::Mysql => assert_eq!(
            (ia.wl_entered, ia.wl_updated),
            (ia.entered, ia.entered),
            "{ia:?}"
        ),
    }
    let out = client_op(&f.venv, &f.anon_py, "check", ma);
    assert!(out.ends_with("\t(200, 'OK')\t3\t0\n"), "{out}");

    // B: reported by ours, whitelisted through Python, then through ours.
    let t0 = now();
    f.op(&f.anon_rs, "report", mb);
    let t1 = now();
    let ib = f.info_both(db, mb);
    assert_eq!(
        (ib.count, ib.wl_count, ib.wl_entered, ib.wl_updated),
        (1, 0, 0, 0),
        "{ib:?}"
    );
    within("B Entered (ours)", ib.entered, t0, t1);
    assert_eq!(ib.updated, ib.entered);
    f.op(&f.wl_py, "whitelist", mb);
    let t2 = now();
    let ib2 = f.info_both(db, mb);
    assert_eq!(
        (ib2.count, ib2.entered, ib2.updated, ib2.wl_count),
        (1, ib.entered, ib.updated, 1)
    );
    within("B WL-Updated (Python)", ib2.wl_updated, t1 + s, t2 + s);
    match shared {
        Shared::Redis => assert_eq!(ib2.wl_entered, ib2.wl_updated, "HSETNX set it: {ib2:?}"),
        // The reference's ON DUPLICATE KEY UPDATE sets only wl_updated, so
        // a row first inserted by ours keeps WL-Entered NULL = 0.
        Shared::Mysql => assert_eq!(ib2.wl_entered, 0, "{ib2:?}"),
    }
    f.op(&f.wl_rs, "whitelist", mb);
    let t3 = now();
    let ib3 = f.info_both(db, mb);
    assert_eq!((ib3.count, ib3.wl_count), (1, 2), "{ib3:?}");
    within("B WL-Updated (ours)", ib3.wl_updated, t2, t3);
    match shared {
        Shared::Redis => assert_eq!(ib3.wl_entered, ib2.wl_entered, "first whitelist stays"),
        // Ours fills a NULL wl_entered on its first whitelist (docs/engines.md).
        Shared::Mysql => within("B WL-Entered (ours fills NULL)", ib3.wl_entered, t2, t3),
    }

    // C: whitelisted only, through ours.
    let t0 = now();
    f.op(&f.wl_rs, "whitelist", mc);
    let t1 = now();
    let ic = f.info_both(dc, mc);
    assert_eq!(
        (ic.count, ic.entered, ic.updated, ic.wl_count),
        (0, 0, 0, 1),
        "{ic:?}"
    );
    within("C WL-Entered (ours)", ic.wl_entered, t0, t1);
    assert_eq!(ic.wl_updated, ic.wl_entered);

    // D: whitelisted only, through Python.
    let t0 = now();
    f.op(&f.wl_py, "whitelist", md);
    let t1 = now();
    let id = f.info_both(dd, md);
    assert_eq!((id.count, id.wl_count), (0, 1), "{id:?}");
    within("D WL-Entered (Python)", id.wl_entered, t0 + s, t1 + s);
    assert_eq!(id.wl_updated, id.wl_entered);
    match shared {
        Shared::Redis => assert_eq!((id.entered, id.updated), (0, 0), "{id:?}"),
        Shared::Mysql => assert_eq!(
            (id.entered, id.updated),
            (id.wl_entered, id.wl_entered),
            "{id:?}"
        ),
    }

    // Count across both: alternate reports on D, then read through each.
    for i in 0..6 {
        let c = if i % 2 == 0 { &f.anon_py } else { &f.anon_rs };
        f.op(c, "report", md);
    }
    assert_eq!(check(f.py.port, dd), (6, 1));
    assert_eq!(check(f.rs.port, dd), (6, 1));
}

/// The Redis scenario with both servers and clients in time zone `tz`
/// (`None` = inherited), on Redis database `db` of 127.0.0.1:6379. Redis
/// keeps epoch seconds, so no zone skews anything (docs/protocol.md §6:
/// fromtimestamp/mktime round trip).
///
/// Each test has its own `db` (the tests run in parallel; 5–8 are
/// pyzor-store's, 8 pyzor-migrate's, 13/14 the bench's) and its own
/// digests, and removes only the keys it created (never `FLUSHDB`).
fn redis_fleet(test: &str, tz: Option<&str>, db: u32) {
    let Some(venv) = pyzor_testkit::ref_venv(test) else {
        return;
    };
    if !pyzor_testkit::redis_available(test) {
        return;
    }
    if !pyzor_testkit::programs_available(test, &["redis-cli"]) {
        return;
    }
    let env: Vec<(&str, &str)> = tz.map(|z| ("TZ", z)).into_iter().collect();
    let f = Fleet::start(&venv, "redis", &format!("127.0.0.1,6379,,{db}"), &env);
    let m = messages(&f);
    let hot = unique_hex_digest();
    let keys: Vec<String> = [&m.a.1, &m.b.1, &m.c.1, &m.d.1, &hot]
        .iter()
        .map(|d| format!("pyzord.digest_v1.{d}"))
        .collect();
    for k in &keys {
        assert_eq!(
            redis_cli(6379, db, &["EXISTS", k]),
            "0",
            "{k} exists before the test"
        );
    }
    let _cleanup = RedisKeys {
        port: 6379,
        db,
        keys: keys.clone(),
    };
    run_scenario(&f, &m, Shared::Redis, 0);
    concurrent_reports(&f, &hot);
    // Both servers keep the reference's sliding TTL of CleanupAge.
    for k in &keys {
        let ttl: i64 = redis_cli(6379, db, &["TTL", k]).parse().unwrap();
        within(&format!("TTL of {k}"), ttl, 10_368_000 - 900, 10_368_000);
    }
    assert_eq!(f.rs.stop(), Some(0));
}

/// A 40-hex digest nobody else uses (fits MySQL's char(40)): process id,
/// a per-process counter (tests of one process run in parallel) and the
/// time.
fn unique_hex_digest() -> String {
    static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let c = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{:08x}{:08x}{:024x}", std::process::id(), c, n)
}

/// Two threads per server report `digest` at the same time (raw UDP,
/// 100 each, every answer awaited ≤ 10 s): every report is acknowledged
/// and the shared count is exactly their number through both servers.
fn concurrent_reports(f: &Fleet, digest: &str) {
    const PER_THREAD: u32 = 100;
    let acked: u32 = std::thread::scope(|s| {
        let hs: Vec<_> = [f.py.port, f.py.port, f.rs.port, f.rs.port]
            .into_iter()
            .enumerate()
            .map(|(t, port)| {
                s.spawn(move || {
                    let mut ok = 0;
                    for i in 0..PER_THREAD {
                        let thread = t as u32 * 1000 + i;
                        let r = request(port, "report", digest, thread, Duration::from_secs(10))
                            .unwrap_or_else(|| panic!("no answer from port {port}"));
                        assert_eq!(reply_code(&r), 200, "{}", String::from_utf8_lossy(&r));
                        ok += 1;
                    }
                    ok
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(acked, 4 * PER_THREAD);
    let want = (i64::from(acked), 0);
    assert_eq!(check(f.py.port, digest), want, "through Python pyzord");
    assert_eq!(check(f.rs.port, digest), want, "through ours");
}

#[test]
fn redis_python_and_rust_pyzord_share_one_db() {
    redis_fleet("redis_python_and_rust_pyzord_share_one_db", None, 9);
}

#[test]
fn redis_shared_db_with_pyzord_in_another_zone() {
    redis_fleet(
        "redis_shared_db_with_pyzord_in_another_zone",
        Some("America/New_York"),
        10,
    );
}

/// MySQL keys (docs/protocol.md §6, docs/engines.md "Keys"): the default
/// collation makes case not distinguish digests — for both servers alike,
/// so a digest reported in upper case through one and lower case through
/// the other is one row; a report of a key over 40 characters is refused
/// with a 500 by both (strict SQL mode).
fn collation_and_key_length(f: &Fleet) {
    let lower = unique_hex_digest();
    let upper = lower.to_uppercase();
    for (port, d) in [
        (f.py.port, &lower),
        (f.rs.port, &upper),
        (f.rs.port, &lower),
    ] {
        let r = request(port, "report", d, 77, Duration::from_secs(10)).expect("answer");
        assert_eq!(reply_code(&r), 200, "{}", String::from_utf8_lossy(&r));
    }
    for port in [f.py.port, f.rs.port] {
        assert_eq!(check(port, &upper), (3, 0));
        assert_eq!(check(port, &lower), (3, 0));
    }
    let long = format!("{lower}0");
    let mut diags = Vec::new();
    for port in [f.py.port, f.rs.port] {
        let r = request(port, "report", &long, 78, Duration::from_secs(10)).expect("answer");
        assert_eq!(reply_code(&r), 500, "{}", String::from_utf8_lossy(&r));
        let text = String::from_utf8_lossy(&r).into_owned();
        diags.push(
            text.lines()
                .find(|l| l.starts_with("Diag: "))
                .unwrap_or("")
                .to_string(),
        );
    }
    eprintln!(
        "report of a 41-character digest: Python {:?}, ours {:?}",
        diags[0], diags[1]
    );
}

/// The MySQL scenario with both servers and clients in time zone `tz`.
fn mysql_fleet(test: &str, name: &str, tz: &str) {
    let Some(venv) = pyzor_testkit::ref_venv(test) else {
        return;
    };
    if !pyzor_testkit::mysql_available(test) {
        return;
    }
    if !pyzor_testkit::programs_available(test, &["mysql"]) {
        return;
    }
    // Unique per process: two runs of the suite must not drop each other's.
    let name = format!("{name}_{}", std::process::id());
    let scratch = match MysqlScratch::create(&name) {
        Ok(s) => s,
        Err(e) => {
            pyzor_testkit::skip(
                test,
                &format!("cannot create a database as root over the socket: {e}"),
            );
            return;
        }
    };
    // NOW() is in the DB session's zone; pyzord reads naive dates in its
    // own zone (docs/protocol.md §6 "Timestamps in info").
    let db_offset: i64 = mysql_root("SELECT TIMESTAMPDIFF(SECOND, UTC_TIMESTAMP(), NOW())")
        .unwrap()
        .parse()
        .unwrap();
    let skew_py = db_offset - tz_offset(tz);
    eprintln!("{test}: TZ={tz}, DB session offset {db_offset} s: the reference's dates read back {skew_py} s off");
    let f = Fleet::start(&venv, "mysql", &scratch.dsn(), &[("TZ", tz)]);
    let m = messages(&f);
    run_scenario(&f, &m, Shared::Mysql, skew_py);
    concurrent_reports(&f, &unique_hex_digest());
    collation_and_key_length(&f);
    let rows = mysql_root(&format!("SELECT COUNT(*) FROM `{}`.digests", scratch.db)).unwrap();
    assert_eq!(rows, "6", "one row per digest, shared by both servers");
    assert_eq!(f.rs.stop(), Some(0));
}

#[test]
fn mysql_python_and_rust_pyzord_share_one_table() {
    // Servers in UTC like the DB here: the reference's dates are right.
    mysql_fleet(
        "mysql_python_and_rust_pyzord_share_one_table",
        "pz_mixed_utc",
        "UTC",
    );
}

#[test]
fn mysql_shared_table_with_pyzord_zone_unlike_the_db() {
    // Servers in New York, DB in its own zone: both servers still agree on
    // every date (they read the same way); the reference's own writes are
    // off by the zone difference, ours are right.
    mysql_fleet(
        "mysql_shared_table_with_pyzord_zone_unlike_the_db",
        "pz_mixed_ny",
        "America/New_York",
    );
}

/// Start `which` on `home`'s pyzord.db while the other server has it open:
/// it must exit non-zero within 30 s (GDBM's file lock), never serve.
fn refused_while_locked(which: Impl, venv: &Path, home: &Path) -> String {
    let port = pyzor_testkit::free_udp_port();
    let log = format!("{which:?}-locked.log");
    let child = spawn_pyzord(which, Some(venv), home, port, &["-e", "gdbm"], &[], &log);
    let mut p = Proc { child, port };
    let t0 = std::time::Instant::now();
    while t0.elapsed() < std::time::Duration::from_secs(30) {
        if let Ok(Some(st)) = p.child.try_wait() {
            assert!(
                !st.success(),
                "{which:?} pyzord exited {st} on a locked file"
            );
            return std::fs::read_to_string(home.join(&log)).unwrap_or_default();
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    kill_9(&mut p);
    panic!("{which:?} pyzord kept running on a pyzord.db that another server holds");
}

/// Start the reference on `home`'s pyzord.db with default CleanupAge and
/// expect it to die at start-up (it reads `r_updated` of a whitelist-only
/// record as a date: docs/protocol.md §9.11, docs/engines.md).
fn reference_crashes_on_whitelist_only_record(venv: &Path, home: &Path) {
    let port = pyzor_testkit::free_udp_port();
    let child = spawn_pyzord(
        Impl::Python,
        Some(venv),
        home,
        port,
        &["-e", "gdbm"],
        &[],
        "python-crash.log",
    );
    let mut p = Proc { child, port };
    let t0 = std::time::Instant::now();
    while t0.elapsed() < std::time::Duration::from_secs(30) {
        if let Ok(Some(st)) = p.child.try_wait() {
            assert!(!st.success(), "reference exited {st}");
            let log = std::fs::read_to_string(home.join("python-crash.log")).unwrap_or_default();
            assert!(
                log.contains("NoneType"),
                "expected the None.timetuple() crash: {log}"
            );
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let answers = request(port, "ping", "x", 1, std::time::Duration::from_secs(1)).is_some();
    kill_9(&mut p);
    panic!("the reference neither crashed nor stopped within 30 s (answers ping: {answers})");
}

#[test]
fn gdbm_reference_file_taken_over_in_place_and_handed_back() {
    let test = "gdbm_reference_file_taken_over_in_place_and_handed_back";
    let Some(venv) = pyzor_testkit::ref_venv(test) else {
        return;
    };
    let dir = pyzor_testkit::temp_home();
    let home = dir.path().join("server");
    std::fs::create_dir_all(&home).unwrap();
    write_server_accounts(&home);
    let cdir = dir.path().join("clients");
    let gdbm = ["-e", "gdbm"]; // default DSN pyzord.db, default CleanupAge

    // 1. The reference writes pyzord.db.
    let py = start_pyzord(Impl::Python, Some(&venv), &home, &gdbm, &[]);
    let anon = client_for(&cdir.join("anon1"), py.port, false);
    let wl = client_for(&cdir.join("wl1"), py.port, true);
    let msgs: Vec<(Vec<u8>, String)> = ["A", "B", "C", "D"]
        .iter()
        .map(|t| {
            let m = unique_message(t);
            let d = digest_of(&venv, &anon, &m);
            (m, d)
        })
        .collect();
    let [a, b, c, d] = [&msgs[0], &msgs[1], &msgs[2], &msgs[3]];
    client_op(&venv, &anon, "report", &a.0);
    client_op(&venv, &anon, "report", &a.0);
    client_op(&venv, &anon, "report", &b.0);
    client_op(&venv, &wl, "whitelist", &b.0);
    client_op(&venv, &wl, "whitelist", &c.0); // whitelist-only record
    let log = refused_while_locked(Impl::Rust, &venv, &home);
    assert!(log.contains("locked by another process"), "{log}");
    let before: Vec<Info> = msgs.iter().map(|(_, dg)| info(py.port, dg)).collect();
    let texts: Vec<String> = msgs
        .iter()
        .map(|(m, _)| info_text_body(&client_op(&venv, &anon, "info", m)))
        .collect();
    assert_eq!(
        (before[0].count, before[1].count, before[1].wl_count),
        (2, 1, 1)
    );
    assert_eq!(
        (before[2].count, before[2].entered, before[2].wl_count),
        (0, 0, 1)
    );
    assert_eq!(before[3], Info::default());
    py.stop();
    assert!(
        home.join("pyzord.db").is_file(),
        "the reference wrote pyzord.db"
    );

    // 2. Ours on the same homedir and file, default CleanupAge: starts
    // (the reference would crash on C), answers the same, counts on.
    let rs = start_pyzord(Impl::Rust, None, &home, &gdbm, &[]);
    let anon = client_for(&cdir.join("anon2"), rs.port, false);
    let wl = client_for(&cdir.join("wl2"), rs.port, true);
    for (i, (m, dg)) in msgs.iter().enumerate() {
        assert_eq!(
            info(rs.port, dg),
            before[i],
            "ours reads the reference's record {dg}"
        );
        assert_eq!(
            info_text_body(&client_op(&venv, &anon, "info", m)),
            texts[i]
        );
    }
    let t0 = now();
    client_op(&venv, &anon, "report", &a.0);
    client_op(&venv, &wl, "whitelist", &c.0);
    client_op(&venv, &anon, "report", &d.0);
    let t1 = now();
    let after: Vec<Info> = msgs.iter().map(|(_, dg)| info(rs.port, dg)).collect();
    let after_texts: Vec<String> = msgs
        .iter()
        .map(|(m, _)| info_text_body(&client_op(&venv, &anon, "info", m)))
        .collect();
    assert_eq!((after[0].count, after[0].entered), (3, before[0].entered));
    within("A Updated (ours)", after[0].updated, t0, t1);
    assert_eq!(after[1], before[1]);
    assert_eq!(
        (after[2].count, after[2].entered, after[2].wl_count),
        (0, 0, 2)
    );
    assert_eq!(after[2].wl_entered, before[2].wl_entered);
    within("C WL-Updated (ours)", after[2].wl_updated, t0, t1);
    assert_eq!(
        (after[3].count, after[3].wl_count, after[3].wl_entered),
        (1, 0, 0)
    );
    within("D Entered (ours)", after[3].entered, t0, t1);
    // GDBM's lock (EAGAIN in gdbm.open), before any record is read.
    let log = refused_while_locked(Impl::Python, &venv, &home);
    assert!(log.contains("Resource temporarily unavailable"), "{log}");
    assert_eq!(
        info(rs.port, &a.1),
        after[0],
        "ours unaffected by the refused start"
    );
    assert_eq!(rs.stop(), Some(0));

    // 3. The reference with its default CleanupAge dies on the
    // whitelist-only record C (why operators can't go back without it).
    reference_crashes_on_whitelist_only_record(&venv, &home);

    // 4. The reference with expiry off reads our writes.
    let py = start_pyzord(
        Impl::Python,
        Some(&venv),
        &home,
        &["-e", "gdbm", "--cleanup-age", "0"],
        &[],
    );
    let anon = client_for(&cdir.join("anon3"), py.port, false);
    for (i, (m, dg)) in msgs.iter().enumerate() {
        assert_eq!(
            info(py.port, dg),
            after[i],
            "the reference reads our record {dg}"
        );
        assert_eq!(
            info_text_body(&client_op(&venv, &anon, "info", m)),
            after_texts[i]
        );
    }
    client_op(&venv, &anon, "report", &d.0);
    assert_eq!(check(py.port, &d.1), (2, 0));
    py.stop();
}

#[test]
fn mysql_reads_of_over_long_digests_answer_like_the_reference() {
    let test = "mysql_reads_of_over_long_digests_answer_like_the_reference";
    let Some(venv) = pyzor_testkit::ref_venv(test) else {
        return;
    };
    if !pyzor_testkit::mysql_available(test) || !pyzor_testkit::programs_available(test, &["mysql"])
    {
        return;
    }
    let name = format!("pz_mixed_long_{}", std::process::id());
    let scratch = match MysqlScratch::create(&name) {
        Ok(s) => s,
        Err(e) => {
            pyzor_testkit::skip(test, &format!("cannot create a database: {e}"));
            return;
        }
    };
    let f = Fleet::start(&venv, "mysql", &scratch.dsn(), &[]);
    let d = unique_hex_digest();
    let r = request(f.py.port, "report", &d, 1, Duration::from_secs(10)).expect("answer");
    assert_eq!(reply_code(&r), 200);
    // The reference: a read never errs on length; CHAR comparison pads, so
    // trailing blanks find the row, any other longer key finds nothing.
    for port in [f.py.port, f.rs.port] {
        let who = if port == f.py.port { "Python" } else { "ours" };
        for (key, want) in [(format!("{d}  "), 1), (format!("{d}0"), 0)] {
            let r = request(port, "check", &key, 2, Duration::from_secs(10)).expect("answer");
            assert_eq!(
                parse_check(&r),
                Some((want, 0)),
                "{who}: check of {key:?}: {}",
                String::from_utf8_lossy(&r)
            );
            let r = request(port, "info", &key, 3, Duration::from_secs(10)).expect("answer");
            assert_eq!(
                reply_code(&r),
                200,
                "{who}: info of {key:?}: {}",
                String::from_utf8_lossy(&r)
            );
        }
    }
}

/// Send `rounds` × (good report, over-long report, good report) as fast as
/// possible from one socket (so that they share the server's receive
/// batches) and collect the answers by Thread; returns the codes of the
/// good reports (missing answer = 0).
fn burst_with_bad_keys(port: u16, good: &str, bad: &str, rounds: u32) -> Vec<u16> {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut good_threads = Vec::new();
    for r in 0..rounds {
        for (k, d) in [good, bad, good].iter().enumerate() {
            let t = 10_000 + r * 3 + k as u32;
            if k != 1 {
                good_threads.push(t);
            }
            let dgram = format!("Op: report\nOp-Digest: {d}\nThread: {t}\nPV: 2.1\n\n");
            s.send_to(dgram.as_bytes(), ("127.0.0.1", port)).unwrap();
        }
    }
    let mut codes = std::collections::HashMap::new();
    let mut buf = vec![0u8; 65536];
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while codes.len() < (rounds * 3) as usize && std::time::Instant::now() < deadline {
        let Ok((n, _)) = s.recv_from(&mut buf) else {
            break;
        };
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        let t: u32 = text
            .lines()
            .find_map(|l| l.strip_prefix("Thread: "))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        codes.insert(t, reply_code(&buf[..n]));
    }
    good_threads
        .iter()
        .map(|t| codes.get(t).copied().unwrap_or(0))
        .collect()
}

#[test]
fn mysql_bad_digest_does_not_fail_other_requests_in_its_batch() {
    // The reference handles each datagram on its own; a report of a key
    // the table cannot hold fails only that request (500). Ours batches up
    // to 32 datagrams into one engine call: the bad key must not take the
    // others down with it.
    let test = "mysql_bad_digest_does_not_fail_other_requests_in_its_batch";
    let Some(venv) = pyzor_testkit::ref_venv(test) else {
        return;
    };
    if !pyzor_testkit::mysql_available(test) || !pyzor_testkit::programs_available(test, &["mysql"])
    {
        return;
    }
    let name = format!("pz_mixed_batch_{}", std::process::id());
    let scratch = match MysqlScratch::create(&name) {
        Ok(s) => s,
        Err(e) => {
            pyzor_testkit::skip(test, &format!("cannot create a database: {e}"));
            return;
        }
    };
    let f = Fleet::start(&venv, "mysql", &scratch.dsn(), &[]);
    let bad = format!("{}0", unique_hex_digest());
    for (who, port) in [("Python", f.py.port), ("ours", f.rs.port)] {
        let good = unique_hex_digest();
        let codes = burst_with_bad_keys(port, &good, &bad, 100);
        // UDP: a burst may overflow a receive buffer (the reference drops
        // some); a missing answer is a drop, not a failure.
        let ok = codes.iter().filter(|&&c| c == 200).count() as i64;
        let dropped = codes.iter().filter(|&&c| c == 0).count() as i64;
        let failed: Vec<&u16> = codes.iter().filter(|&&c| c != 200 && c != 0).collect();
        eprintln!(
            "{who}: of {} good reports {ok} answered 200, {} answered otherwise, {dropped} unanswered",
            codes.len(),
            failed.len()
        );
        assert!(
            failed.is_empty(),
            "{who}: {} good reports failed next to bad ones (codes {:?})",
            failed.len(),
            failed.iter().take(10).collect::<Vec<_>>()
        );
        let counted = check(port, &good).0;
        assert!(
            ok <= counted && counted <= ok + dropped,
            "{who}: {ok} acknowledged, {dropped} unanswered, {counted} counted"
        );
    }
}

#[test]
fn gdbm_dates_shift_when_the_servers_run_in_different_zones() {
    // pyzord.db holds naive local times (docs/engines.md "gdbm"): a file
    // written by the reference in UTC and read by ours in New York shows
    // every date off by the zone difference, and vice versa. This is the
    // caveat of docs/mixed-fleet.md: run both with the same TZ.
    let test = "gdbm_dates_shift_when_the_servers_run_in_different_zones";
    let Some(venv) = pyzor_testkit::ref_venv(test) else {
        return;
    };
    let ny = "America/New_York";
    let shift = tz_offset("UTC") - tz_offset(ny); // 18000 in winter
    let dir = pyzor_testkit::temp_home();
    let home = dir.path().join("server");
    std::fs::create_dir_all(&home).unwrap();
    write_server_accounts(&home);
    let gdbm = ["-e", "gdbm", "--cleanup-age", "0"];
    let (a, b) = (
        unique_hex_digest(),
        format!("{}b", &unique_hex_digest()[1..]),
    );

    let py = start_pyzord(Impl::Python, Some(&venv), &home, &gdbm, &[("TZ", "UTC")]);
    let t0 = now();
    assert_eq!(
        reply_code(&request(py.port, "report", &a, 1, Duration::from_secs(10)).unwrap()),
        200
    );
    let t1 = now();
    let ia = info(py.port, &a);
    within("A Entered (reference, UTC)", ia.entered, t0, t1);
    py.stop();

    let rs = start_pyzord(Impl::Rust, None, &home, &gdbm, &[("TZ", ny)]);
    let ia_ny = info(rs.port, &a);
    assert_eq!(ia_ny.entered, ia.entered + shift, "read in {ny}: {ia_ny:?}");
    let t0 = now();
    assert_eq!(
        reply_code(&request(rs.port, "report", &b, 2, Duration::from_secs(10)).unwrap()),
        200
    );
    let t1 = now();
    let ib = info(rs.port, &b);
    within("B Entered (ours, New York)", ib.entered, t0, t1);
    assert_eq!(rs.stop(), Some(0));

    let py = start_pyzord(Impl::Python, Some(&venv), &home, &gdbm, &[("TZ", "UTC")]);
    assert_eq!(info(py.port, &a), ia, "the reference in its own zone");
    let ib_utc = info(py.port, &b);
    assert_eq!(
        ib_utc.entered,
        ib.entered - shift,
        "read in UTC: {ib_utc:?}"
    );
    py.stop();
}
