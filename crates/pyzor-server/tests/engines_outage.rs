//! Outages and crashes at the pyzord level.
//!
//! * A private Redis (append-only, `appendfsync always`) and a private
//!   MariaDB under our pyzord are killed with SIGKILL in the middle of a
//!   report load and started again on the same data: pyzord keeps
//!   answering (500 `Internal Server Error: Database temporarily
//!   unavailable.` meanwhile), never
//!   dies, recovers without a restart, and every report it acknowledged
//!   with a 200 is counted.
//! * lmdb and gdbm: reports acknowledged by pyzord survive `kill -9` of pyzord at
//!   random points, over 200 acknowledged reports.
//!
//! Every load loop is bounded in count and time; every process started
//! here is killed by a guard even when an assertion fails.

mod common;
mod mixed_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Proc;
use mixed_support::*;
use pyzor_testkit::{free_tcp_port, wait_tcp};
use rand::{Rng, SeedableRng};

const DIGESTS: usize = 20;
/// The reference's Diag for a database error: `Internal Server Error: ` +
/// the exception text (docs/protocol.md §4.1, step 7 of §4).
const UNAVAILABLE: &str = "Internal Server Error: Database temporarily unavailable.";

fn load_digest(i: usize) -> String {
    format!("{:040x}", 0xdead_0000_u64 + i as u64)
}

/// What one digest's reports got.
#[derive(Default, Debug, Clone, Copy)]
struct Tally {
    /// 200 answers.
    acked: i64,
    /// 500 answers (the increment may or may not have been applied).
    failed: i64,
    /// No answer within the wait (in flight).
    silent: i64,
}

#[derive(Default, Debug)]
struct Load {
    per: BTreeMap<String, Tally>,
    ok: u64,
    unavailable: u64,
    silent: u64,
    ok_after_restart: u64,
    /// Replies that are neither 200 nor the documented 500 (should stay empty).
    odd: Vec<String>,
}

/// One load thread: report the load digests round-robin through the
/// server on `port` until `stop` (at most 50 000 requests, each waiting
/// ≤ 3 s for its answer).
fn load_loop(port: u16, stop: Instant, restarted: &AtomicBool) -> Load {
    let mut res = Load::default();
    for i in 0..50_000u32 {
        if Instant::now() >= stop {
            break;
        }
        let d = load_digest(i as usize % DIGESTS);
        let t = res.per.entry(d.clone()).or_default();
        match request(port, "report", &d, i, Duration::from_secs(3)) {
            None => {
                t.silent += 1;
                res.silent += 1;
            }
            Some(r) if reply_code(&r) == 200 => {
                t.acked += 1;
                res.ok += 1;
                if restarted.load(Ordering::SeqCst) {
                    res.ok_after_restart += 1;
                }
            }
            Some(r) => {
                t.failed += 1;
                let text = String::from_utf8_lossy(&r).into_owned();
                if reply_code(&r) == 500 && text.contains(&format!("Diag: {UNAVAILABLE}\n")) {
                    res.unavailable += 1;
                } else if res.odd.len() < 10 {
                    res.odd.push(text);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
    res
}

/// Load every server in `servers` at once (one thread each) for `secs`;
/// call `outage` a third of the way in. Asserts that every server still
/// runs when the load ends.
fn drive_all(servers: &mut [&mut Proc], secs: u64, outage: impl FnOnce() + Send) -> Vec<Load> {
    let restarted = Arc::new(AtomicBool::new(false));
    let stop = Instant::now() + Duration::from_secs(secs);
    let ports: Vec<u16> = servers.iter().map(|p| p.port).collect();
    let loads = std::thread::scope(|s| {
        let hs: Vec<_> = ports
            .iter()
            .map(|&port| {
                let r = restarted.clone();
                s.spawn(move || load_loop(port, stop, &r))
            })
            .collect();
        std::thread::sleep(Duration::from_secs(secs / 3));
        outage();
        restarted.store(true, Ordering::SeqCst);
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for p in servers.iter_mut() {
        assert!(
            p.child.try_wait().unwrap().is_none(),
            "the pyzord on port {} died during the outage",
            p.port
        );
    }
    loads
}

/// [`drive_all`] with one server.
fn drive(secs: u64, pyzord: &mut Proc, outage: impl FnOnce() + Send) -> Load {
    drive_all(&mut [pyzord], secs, outage).pop().unwrap()
}

/// Wait (≤ 30 s) until pyzord answers a check with 200 again.
fn wait_recovered(port: u16) {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(30) {
        if let Some(r) = request(port, "check", &load_digest(0), 7, Duration::from_secs(2)) {
            if reply_code(&r) == 200 {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("pyzord did not recover within 30 s of the database coming back");
}

/// Every acknowledged report is counted; nothing beyond the reports that
/// may have been applied (500 or unanswered) is: acked ≤ count ≤ acked +
/// failed + silent, so count = acked when nothing was in doubt.
/// Returns how many counted reports had not been acknowledged.
fn assert_counts(load: &Load, stored: impl Fn(&str) -> i64) -> i64 {
    let mut extra = 0;
    for (d, t) in &load.per {
        let got = stored(d);
        assert!(
            t.acked <= got && got <= t.acked + t.failed + t.silent,
            "{d}: {t:?} but {got} stored"
        );
        extra += got - t.acked;
    }
    extra
}

fn assert_load_sane(what: &str, load: &Load) {
    eprintln!(
        "{what}: {} acknowledged, {} x 500 unavailable, {} unanswered, {} acknowledged after the restart",
        load.ok, load.unavailable, load.silent, load.ok_after_restart
    );
    assert!(
        load.odd.is_empty(),
        "replies other than 200 / 500 {UNAVAILABLE:?}: {:?}",
        load.odd
    );
    assert!(
        load.unavailable > 0,
        "the outage was answered with 500s: {load:?}"
    );
    assert!(
        load.ok_after_restart > 0,
        "pyzord recovered without a restart: {load:?}"
    );
}

/// A private append-only redis-server (`appendfsync always`, no RDB) on
/// `port` with its files in `dir`; waits ≤ 20 s for it.
fn private_redis(port: u16, dir: &Path) -> Guard {
    let c = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args([
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
        ])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn redis-server");
    let g = Guard(c);
    assert!(
        wait_tcp(port, Duration::from_secs(20)),
        "private redis-server did not start"
    );
    g
}

#[test]
fn redis_killed_under_pyzord_load_loses_no_acknowledged_report() {
    let test = "redis_killed_under_pyzord_load_loses_no_acknowledged_report";
    if !pyzor_testkit::programs_available(test, &["redis-server", "redis-cli"]) {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let rport = free_tcp_port();
    let start_redis = |dir: &Path| private_redis(rport, dir);
    let redis = std::sync::Mutex::new(Some(start_redis(data.path())));
    let home = pyzor_testkit::temp_home();
    let dsn = format!("127.0.0.1,{rport},,0");
    let mut srv = start_pyzord(
        Impl::Rust,
        None,
        home.path(),
        &["-e", "redis", "--dsn", &dsn],
        &[],
    );
    let port = srv.port;
    let load = drive(9, &mut srv, || {
        // kill -9 mid-load, down for a second, back on the same AOF and port
        redis.lock().unwrap().take().unwrap().kill_9();
        std::thread::sleep(Duration::from_secs(1));
        *redis.lock().unwrap() = Some(start_redis(data.path()));
    });
    wait_recovered(port);
    assert_load_sane("redis outage under pyzord", &load);
    let extra = assert_counts(&load, |d| {
        let v = redis_cli(
            rport,
            0,
            &["HGET", &format!("pyzord.digest_v1.{d}"), "r_count"],
        );
        let in_redis: i64 = if v.is_empty() { 0 } else { v.parse().unwrap() };
        assert_eq!(
            check(port, d).0,
            in_redis,
            "pyzord's check agrees with Redis for {d}"
        );
        in_redis
    });
    eprintln!("redis outage under pyzord: {extra} reports answered 500 were counted anyway");
    assert!(srv.child.try_wait().unwrap().is_none(), "pyzord still runs");
    assert_eq!(srv.stop(), Some(0));
}

/// A private MariaDB in a temp dir (killed by its guard).
struct PrivateMariadb {
    dir: tempfile::TempDir,
    port: u16,
}

impl PrivateMariadb {
    fn install(test: &str) -> Option<PrivateMariadb> {
        if !pyzor_testkit::programs_available(
            test,
            &["/usr/sbin/mariadbd", "mariadb-install-db", "mysql"],
        ) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let (ok, out) = run_bounded(
            Command::new("mariadb-install-db")
                .arg("--no-defaults")
                .arg(format!("--datadir={}", dir.path().join("data").display()))
                .args([
                    "--user=root",
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                ]),
            Duration::from_secs(180),
        );
        assert!(ok, "mariadb-install-db failed: {out}");
        Some(PrivateMariadb {
            dir,
            port: free_tcp_port(),
        })
    }

    fn start(&self) -> Guard {
        let d = self.dir.path();
        let c = Command::new("/usr/sbin/mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", d.join("data").display()))
            .arg(format!("--socket={}", d.join("sock").display()))
            .arg(format!("--pid-file={}", d.join("pid").display()))
            .args([
                "--user=root",
                "--bind-address=127.0.0.1",
                "--skip-grant-tables",
            ])
            .args([
                "--innodb-buffer-pool-size=32M",
                "--innodb-flush-log-at-trx-commit=1",
            ])
            .arg(format!("--port={}", self.port))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn mariadbd");
        let g = Guard(c);
        assert!(
            wait_tcp(self.port, Duration::from_secs(60)),
            "private mariadbd did not start within 60 s"
        );
        g
    }

    fn sql(&self, sql: &str) -> String {
        let (ok, out) = run_bounded(
            Command::new("mysql")
                .args(["--protocol=TCP", "-h127.0.0.1", "-uroot", "-N", "-B"])
                .arg(format!("-P{}", self.port))
                .args(["-e", sql]),
            Duration::from_secs(30),
        );
        assert!(ok, "{sql}: {out}");
        out.trim().to_string()
    }
}

#[test]
fn mariadb_killed_under_pyzord_load_loses_no_acknowledged_report() {
    let test = "mariadb_killed_under_pyzord_load_loses_no_acknowledged_report";
    let Some(db) = PrivateMariadb::install(test) else {
        return;
    };
    let server = std::sync::Mutex::new(Some(db.start()));
    db.sql("CREATE DATABASE pyzor");
    let home = pyzor_testkit::temp_home();
    let dsn = format!("127.0.0.1:{},root,,pyzor,digests", db.port);
    let mut srv = start_pyzord(
        Impl::Rust,
        None,
        home.path(),
        &["-e", "mysql", "--dsn", &dsn],
        &[],
    );
    let port = srv.port;
    let load = drive(15, &mut srv, || {
        server.lock().unwrap().take().unwrap().kill_9();
        std::thread::sleep(Duration::from_secs(1));
        *server.lock().unwrap() = Some(db.start());
    });
    wait_recovered(port);
    assert_load_sane("mariadb outage under pyzord", &load);
    let extra = assert_counts(&load, |d| {
        let v = db.sql(&format!(
            "SELECT r_count FROM pyzor.digests WHERE digest = '{d}'"
        ));
        let in_db: i64 = if v.is_empty() { 0 } else { v.parse().unwrap() };
        assert_eq!(
            check(port, d).0,
            in_db,
            "pyzord's check agrees with MariaDB for {d}"
        );
        in_db
    });
    eprintln!("mariadb outage under pyzord: {extra} reports answered 500 were counted anyway");
    assert!(srv.child.try_wait().unwrap().is_none(), "pyzord still runs");
    assert_eq!(srv.stop(), Some(0));
}

/// 200 acknowledged reports through our pyzord on `engine`, killed -9 at
/// random points (half the time with one report in flight) and restarted
/// on the same homedir; after every restart each digest holds at least
/// its acknowledged reports and at most those plus the in-flight ones.
fn kill_9_durability(engine: &str) {
    const TOTAL: i64 = 200;
    let seed = now() as u64;
    eprintln!("{engine} kill -9 durability: seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let home = pyzor_testkit::temp_home();
    let args = ["-e", engine];
    let mut per: BTreeMap<String, Tally> = BTreeMap::new();
    let (mut acked, mut kills) = (0i64, 0u32);
    let t0 = Instant::now();
    let mut n = 0u32;
    while acked < TOTAL && t0.elapsed() < Duration::from_secs(180) {
        let mut srv = start_pyzord(Impl::Rust, None, home.path(), &args, &[]);
        let life = rng.random_range(1..=30);
        for _ in 0..life {
            if acked == TOTAL {
                break;
            }
            let d = load_digest(n as usize % 4);
            n += 1;
            let r = request(srv.port, "report", &d, n, Duration::from_secs(5))
                .unwrap_or_else(|| panic!("no answer to report {n}"));
            assert_eq!(reply_code(&r), 200, "{}", String::from_utf8_lossy(&r));
            per.entry(d).or_default().acked += 1;
            acked += 1;
        }
        // Half the time one more report is in flight when the kill lands.
        if rng.random_bool(0.5) {
            let d = load_digest(n as usize % 4);
            n += 1;
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.send_to(
                format!("Op: report\nOp-Digest: {d}\nThread: {n}\nPV: 2.1\n\n").as_bytes(),
                ("127.0.0.1", srv.port),
            )
            .unwrap();
            per.entry(d).or_default().silent += 1;
        }
        kill_9(&mut srv);
        kills += 1;
        // Right after each kill: everything acknowledged so far is there.
        let srv = start_pyzord(Impl::Rust, None, home.path(), &args, &[]);
        for (d, t) in &per {
            let got = check(srv.port, d).0;
            assert!(
                t.acked <= got && got <= t.acked + t.silent,
                "after kill {kills}: {d}: {t:?} but {got} counted"
            );
        }
        let mut srv = srv;
        kill_9(&mut srv);
        kills += 1;
    }
    assert_eq!(acked, TOTAL, "200 acknowledged reports within 180 s");
    let srv = start_pyzord(Impl::Rust, None, home.path(), &args, &[]);
    let total: i64 = per.keys().map(|d| check(srv.port, d).0).sum();
    let in_flight: i64 = per.values().map(|t| t.silent).sum();
    eprintln!("{engine}: {acked} acknowledged reports, {kills} kill -9, {in_flight} in flight at a kill, {total} counted");
    assert!(TOTAL <= total && total <= TOTAL + in_flight);
    assert_eq!(srv.stop(), Some(0));
}

#[test]
fn lmdb_acknowledged_reports_survive_kill_9_of_pyzord_at_random_points() {
    kill_9_durability("lmdb");
}

#[test]
fn gdbm_acknowledged_reports_survive_kill_9_of_pyzord_at_random_points() {
    // gdbm-native keeps unsynced changes in process memory: the engine
    // syncs every batch before pyzord answers (docs/engines.md "gdbm").
    kill_9_durability("gdbm");
}

/// Spawn `which` with Redis unreachable and wait (≤ 30 s) for it to exit;
/// returns its exit status and log.
fn start_with_redis_down(
    which: Impl,
    venv: Option<&Path>,
) -> (std::process::ExitStatus, String, u16) {
    let home = pyzor_testkit::temp_home();
    let dead = free_tcp_port(); // nothing listens there
    let port = pyzor_testkit::free_udp_port();
    let dsn = format!("127.0.0.1,{dead},,0");
    let args = ["-e", "redis", "--dsn", dsn.as_str()];
    let child = spawn_pyzord(which, venv, home.path(), port, &args, &[], "start.log");
    let mut p = Proc { child, port };
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = p.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "{which:?} pyzord neither served nor exited within 30 s with Redis down"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = std::fs::read_to_string(home.path().join("start.log")).unwrap();
    (status, log, dead)
}

#[test]
fn pyzord_exits_with_a_message_when_redis_is_down_at_start() {
    // Like the reference (its start-up `KEYS pyzord.digest.*` raises
    // ConnectionError), ours does not start without its database; it must
    // say why and exit promptly rather than hang, so a supervisor can
    // restart it.
    let (status, log, dead) = start_with_redis_down(Impl::Rust, None);
    assert!(!status.success(), "exit status {status}: {log}");
    assert!(
        log.contains("redis") && log.contains(&dead.to_string()),
        "the message names the engine and DSN: {log}"
    );
    if let Some(venv) = pyzor_testkit::ref_venv(
        "pyzord_exits_with_a_message_when_redis_is_down_at_start (reference part)",
    ) {
        let (status, log, _) = start_with_redis_down(Impl::Python, Some(&venv));
        assert!(!status.success(), "the reference exited {status}: {log}");
        assert!(log.contains("ConnectionError"), "{log}");
    }
}

#[test]
fn redis_killed_under_a_mixed_fleet_loses_no_acknowledged_report() {
    // The reference and ours on one private Redis, both loaded at once on
    // the same digests; Redis is killed -9 and restarted. Both keep
    // running and answer again without a restart, and every report either
    // of them acknowledged is counted.
    let test = "redis_killed_under_a_mixed_fleet_loses_no_acknowledged_report";
    let Some(venv) = pyzor_testkit::ref_venv(test) else {
        return;
    };
    if !pyzor_testkit::programs_available(test, &["redis-server", "redis-cli"]) {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let rport = free_tcp_port();
    let redis = std::sync::Mutex::new(Some(private_redis(rport, data.path())));
    let homes = pyzor_testkit::temp_home();
    let (hp, hr) = (homes.path().join("py"), homes.path().join("rs"));
    std::fs::create_dir_all(&hp).unwrap();
    std::fs::create_dir_all(&hr).unwrap();
    let dsn = format!("127.0.0.1,{rport},,0");
    let args = ["-e", "redis", "--dsn", dsn.as_str()];
    let mut py = start_pyzord(Impl::Python, Some(&venv), &hp, &args, &[]);
    let mut rs = start_pyzord(Impl::Rust, None, &hr, &args, &[]);
    let loads = drive_all(&mut [&mut py, &mut rs], 12, || {
        redis.lock().unwrap().take().unwrap().kill_9();
        std::thread::sleep(Duration::from_secs(1));
        *redis.lock().unwrap() = Some(private_redis(rport, data.path()));
    });
    wait_recovered(py.port);
    wait_recovered(rs.port);
    // The reference's redis client retries a failed connection (with
    // backoff) inside the request, so it may ride out a short outage
    // without a single 500: only its answers' kinds and its recovery are
    // asserted.
    let p = &loads[0];
    eprintln!(
        "mixed fleet, Python pyzord: {} acknowledged, {} x 500, {} unanswered, {} after the restart",
        p.ok, p.unavailable, p.silent, p.ok_after_restart
    );
    assert!(p.odd.is_empty(), "Python pyzord answered {:?}", p.odd);
    assert!(p.ok_after_restart > 0, "Python pyzord recovered: {p:?}");
    assert_load_sane("mixed fleet, our pyzord", &loads[1]);
    let mut all = Load::default();
    for l in &loads {
        for (d, t) in &l.per {
            let a = all.per.entry(d.clone()).or_default();
            a.acked += t.acked;
            a.failed += t.failed;
            a.silent += t.silent;
        }
    }
    let extra = assert_counts(&all, |d| {
        let v = redis_cli(
            rport,
            0,
            &["HGET", &format!("pyzord.digest_v1.{d}"), "r_count"],
        );
        let in_redis: i64 = if v.is_empty() { 0 } else { v.parse().unwrap() };
        assert_eq!(
            check(py.port, d).0,
            in_redis,
            "Python pyzord's check for {d}"
        );
        assert_eq!(check(rs.port, d).0, in_redis, "our pyzord's check for {d}");
        in_redis
    });
    eprintln!("mixed fleet outage: {extra} reports answered 500 were counted anyway");
    py.stop();
    assert_eq!(rs.stop(), Some(0));
}

/// A database session of a command-line client (`psql`, `mysql`) that
/// holds a lock until [`release`](Self::release) or drop: its statements
/// go through stdin, so its transaction stays open in between.
struct LockHolder {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl LockHolder {
    /// Run `lock` (which ends by selecting the word `locked`) and wait
    /// (≤ 20 s) until it has.
    fn start(cmd: &mut Command, lock: &str) -> LockHolder {
        use std::io::{BufRead, Write};
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let out = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let mut h = LockHolder { child, lines };
        writeln!(h.child.stdin.as_mut().unwrap(), "{lock}").unwrap();
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match h.lines.recv_timeout(left) {
                Ok(l) if l.trim() == "locked" => return h,
                Ok(_) => {}
                Err(_) => panic!("{lock:?} did not take its lock within 20 s"),
            }
        }
    }

    /// Run `release` and end the session (≤ 20 s).
    fn release(mut self, release: &str) {
        use std::io::Write;
        let mut stdin = self.child.stdin.take().unwrap();
        writeln!(stdin, "{release}").unwrap();
        drop(stdin);
        let t0 = Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "{release:?} did not end"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// With a table locked by another session, our pyzord (`--engine-timeout
/// 1`) answers every report and check with the reference's 500 within a
/// small bound instead of leaving them unanswered (measured before: 23 s
/// without an answer, nothing logged), logs the cause, never shows the
/// password, and once the lock is gone answers 200 again with nothing of
/// the failed reports counted.
fn locked_table_answers_500_in_time(
    engine: &str,
    dsn: &str,
    password: Option<&str>,
    lock: impl FnOnce() -> LockHolder,
    release: &str,
) {
    let home = pyzor_testkit::temp_home();
    let srv = start_pyzord(
        Impl::Rust,
        None,
        home.path(),
        &["-e", engine, "--dsn", dsn, "--engine-timeout", "1"],
        &[],
    );
    // locked after the start: MariaDB's CREATE TABLE IF NOT EXISTS waits
    // for the lock too (and fails the start after the timeout)
    let lock = lock();
    let d = load_digest(7);
    for (i, op) in ["report", "check", "report"].iter().enumerate() {
        let t0 = Instant::now();
        let r = request(srv.port, op, &d, i as u32 + 1, Duration::from_secs(8))
            .unwrap_or_else(|| panic!("{engine}: no answer to {op} within 8 s"));
        let text = String::from_utf8_lossy(&r);
        assert_eq!(reply_code(&r), 500, "{engine}: {op}: {text}");
        assert!(
            text.contains(&format!("Diag: {UNAVAILABLE}\n")),
            "{engine}: {text}"
        );
        eprintln!("{engine}: {op} answered 500 after {:?}", t0.elapsed());
    }
    lock.release(release);
    let r = request(srv.port, "report", &d, 9, Duration::from_secs(8)).expect("an answer");
    assert_eq!(reply_code(&r), 200, "{}", String::from_utf8_lossy(&r));
    assert_eq!(
        check(srv.port, &d).0,
        1,
        "{engine}: the failed reports counted nothing"
    );
    assert_eq!(srv.stop(), Some(0));
    let log = std::fs::read_to_string(home.path().join("rust-pyzord.log")).unwrap();
    assert!(
        log.contains("timeout") || log.contains("max_statement_time"),
        "{engine}: the log names the cause:\n{log}"
    );
    if let Some(pw) = password {
        assert!(
            !log.contains(pw),
            "{engine}: the log shows the password:\n{log}"
        );
    }
}

#[test]
fn postgres_locked_table_answers_500_within_the_engine_timeout() {
    let test = "postgres_locked_table_answers_500_within_the_engine_timeout";
    if !pyzor_testkit::postgres_available(test) {
        return;
    }
    if !pyzor_testkit::programs_available(test, &["psql"]) {
        return;
    }
    let db = format!("pyzor_rs_lock_{}", std::process::id());
    let psql = |db: &str| {
        let mut c = Command::new("psql");
        c.args([
            "-X",
            "-q",
            "-t",
            "-A",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            db,
        ]);
        c
    };
    let admin = |sql: &str| {
        let (ok, out) = run_bounded(psql("postgres").args(["-c", sql]), Duration::from_secs(30));
        assert!(ok, "{sql}: {out}");
    };
    admin(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
    admin(&format!("CREATE DATABASE {db}"));
    struct Drop_(Box<dyn Fn()>);
    impl Drop for Drop_ {
        fn drop(&mut self) {
            (self.0)()
        }
    }
    let _cleanup = Drop_(Box::new({
        let db = db.clone();
        move || {
            let _ = run_bounded(
                Command::new("psql")
                    .args([
                        "-X",
                        "-q",
                        "-h",
                        "127.0.0.1",
                        "-U",
                        "postgres",
                        "-d",
                        "postgres",
                        "-c",
                    ])
                    .arg(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")),
                Duration::from_secs(30),
            );
        }
    }));
    // the engine's own table, created ahead so that it can be locked
    let (ok, out) = run_bounded(
        psql(&db).args([
            "-c",
            "CREATE TABLE digests (digest bytea PRIMARY KEY, r_count bigint NOT NULL DEFAULT 0, \
             wl_count bigint NOT NULL DEFAULT 0, r_entered timestamptz, r_updated timestamptz, \
             wl_entered timestamptz, wl_updated timestamptz)",
        ]),
        Duration::from_secs(30),
    );
    assert!(ok, "{out}");
    let lock = || {
        LockHolder::start(
            &mut psql(&db),
            "BEGIN; LOCK TABLE digests IN ACCESS EXCLUSIVE MODE; SELECT 'locked';",
        )
    };
    let dsn = format!("127.0.0.1,postgres,,{db},digests");
    locked_table_answers_500_in_time("postgres", &dsn, None, lock, "COMMIT;");
}

#[test]
fn mariadb_locked_table_answers_500_within_the_engine_timeout() {
    let test = "mariadb_locked_table_answers_500_within_the_engine_timeout";
    if !pyzor_testkit::mysql_available(test) {
        return;
    }
    if !pyzor_testkit::programs_available(test, &["mysql"]) {
        return;
    }
    let name = format!("pyzor_rs_lock_{}", std::process::id());
    let scratch = match MysqlScratch::create(&name) {
        Ok(s) => s,
        Err(e) => {
            pyzor_testkit::skip(
                test,
                &format!("cannot create a MariaDB database as root: {e}"),
            );
            return;
        }
    };
    let lock = || {
        LockHolder::start(
            Command::new("mysql").args(["-uroot", "--protocol=SOCKET", "-N", "-B", "-n"]),
            &format!(
                "LOCK TABLES `{}`.digests WRITE; SELECT 'locked';",
                scratch.db
            ),
        )
    };
    locked_table_answers_500_in_time(
        "mysql",
        &scratch.dsn(),
        Some(&scratch.password),
        lock,
        "UNLOCK TABLES;",
    );
}
