//! Outage tests: a private Redis (append-only, fsync always) and a private
//! MariaDB, each killed in the middle of a load and started again. The
//! engine keeps answering (Unavailable = the server's 500 meanwhile),
//! recovers without being reopened, and loses no acknowledged report.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pyzor_store::{Engine, Op, StoreError};
use pyzor_testkit::{free_tcp_port, programs_available, wait_tcp};

#[cfg(feature = "postgres")]
#[path = "common/private_pg.rs"]
mod private_pg;

/// A child process that is killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Default, Debug)]
struct LoadResult {
    acked: HashMap<Vec<u8>, i64>,
    ok: u64,
    unavailable: u64,
    other: Vec<String>,
    ok_after_restart: u64,
}

/// Report 40 digests round-robin for `secs`; call `outage` once a third
/// of the way in. Every call is bounded by the engine's own timeouts.
fn load(e: Arc<dyn Engine>, secs: u64, outage: impl FnOnce() + Send) -> LoadResult {
    let restarted = Arc::new(AtomicBool::new(false));
    let stop = Instant::now() + Duration::from_secs(secs);
    let r2 = restarted.clone();
    std::thread::scope(|s| {
        let h = s.spawn(move || {
            let mut res = LoadResult::default();
            let mut i = 0u64;
            let mut out = Vec::new();
            while Instant::now() < stop {
                let d = format!("outage-{}", i % 40).into_bytes();
                out.clear();
                match e.execute(&[Op::Report(&d)], pyzor_store::now(), &mut out) {
                    Ok(()) => {
                        *res.acked.entry(d).or_default() += 1;
                        res.ok += 1;
                        if r2.load(Ordering::SeqCst) {
                            res.ok_after_restart += 1;
                        }
                    }
                    Err(StoreError::Unavailable(_)) => {
                        res.unavailable += 1;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(x) => res.other.push(x.to_string()),
                }
                i += 1;
            }
            res
        });
        std::thread::sleep(Duration::from_secs(secs / 3));
        outage();
        restarted.store(true, Ordering::SeqCst);
        h.join().unwrap()
    })
}

#[cfg(feature = "redis")]
#[test]
fn redis_outage_loses_no_acknowledged_report() {
    let test = "redis_outage_loses_no_acknowledged_report";
    if !programs_available(test, &["redis-server"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_tcp_port();
    let start = |dir: &Path| {
        let c = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--appendonly",
                "yes",
            ])
            .args(["--appendfsync", "always", "--save", "", "--dir"])
            .arg(dir)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let p = Proc(c);
        assert!(
            wait_tcp(port, Duration::from_secs(10)),
            "private redis did not start"
        );
        p
    };
    let server = std::sync::Mutex::new(Some(start(dir.path())));
    let e: Arc<dyn Engine> = Arc::new(
        pyzor_store::redis::RedisEngine::open(
            &format!("127.0.0.1,{port},,0"),
            pyzor_store::redis::Layout::V1,
            0,
            4,
        )
        .unwrap(),
    );
    let res = load(e.clone(), 9, || {
        // kill -9 mid-load, stay down for a second, start again on the same AOF
        drop(server.lock().unwrap().take());
        std::thread::sleep(Duration::from_secs(1));
        *server.lock().unwrap() = Some(start(dir.path()));
    });
    assert!(res.other.is_empty(), "unexpected errors: {:?}", res.other);
    assert!(
        res.unavailable > 0,
        "the outage was noticed (500s meanwhile): {res:?}"
    );
    assert!(
        res.ok_after_restart > 0,
        "the engine recovered without being reopened: {res:?}"
    );
    for (d, n) in &res.acked {
        let got = e.get(d).unwrap().map(|r| r.r_count).unwrap_or(0);
        assert!(
            got >= *n,
            "{}: acknowledged {n}, stored {got}",
            String::from_utf8_lossy(d)
        );
    }
    eprintln!(
        "redis outage: {} acknowledged, {} unavailable, {} after restart",
        res.ok, res.unavailable, res.ok_after_restart
    );
}

#[cfg(feature = "mysql")]
#[test]
fn mysql_outage_loses_no_acknowledged_report() {
    let test = "mysql_outage_loses_no_acknowledged_report";
    let mariadbd = Path::new("/usr/sbin/mariadbd");
    if !programs_available(test, &["/usr/sbin/mariadbd", "mariadb-install-db"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let st = Command::new("mariadb-install-db")
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .args([
            "--user=root",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "mariadb-install-db failed");
    let port = free_tcp_port();
    let start = || {
        let c = Command::new(mariadbd)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", dir.path().join("sock").display()))
            .arg(format!("--pid-file={}", dir.path().join("pid").display()))
            .args([
                "--user=root",
                "--bind-address=127.0.0.1",
                "--skip-grant-tables",
                "--innodb-buffer-pool-size=32M",
            ])
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let p = Proc(c);
        assert!(
            wait_tcp(port, Duration::from_secs(30)),
            "private mariadbd did not start"
        );
        p
    };
    let server = std::sync::Mutex::new(Some(start()));
    {
        use mysql::prelude::Queryable;
        let opts = mysql::OptsBuilder::new()
            .ip_or_hostname(Some("127.0.0.1"))
            .tcp_port(port)
            .user(Some("root"));
        let mut c = mysql::Conn::new(opts).unwrap();
        c.query_drop("CREATE DATABASE pyzor").unwrap();
    }
    let e: Arc<dyn Engine> = Arc::new(
        pyzor_store::mysql::MysqlEngine::open(
            &format!("127.0.0.1:{port},root,,pyzor,digests"),
            4,
            pyzor_store::sql::Limits::default(),
        )
        .unwrap(),
    );
    let res = load(e.clone(), 12, || {
        drop(server.lock().unwrap().take()); // kill -9
        std::thread::sleep(Duration::from_secs(1));
        *server.lock().unwrap() = Some(start());
    });
    assert!(res.other.is_empty(), "unexpected errors: {:?}", res.other);
    assert!(res.unavailable > 0, "the outage was noticed: {res:?}");
    assert!(
        res.ok_after_restart > 0,
        "the engine recovered without being reopened: {res:?}"
    );
    for (d, n) in &res.acked {
        let got = e.get(d).unwrap().map(|r| r.r_count).unwrap_or(0);
        assert!(
            got >= *n,
            "{}: acknowledged {n}, stored {got}",
            String::from_utf8_lossy(d)
        );
    }
    eprintln!(
        "mysql outage: {} acknowledged, {} unavailable, {} after restart",
        res.ok, res.unavailable, res.ok_after_restart
    );
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_outage_loses_no_acknowledged_report() {
    let test = "postgres_outage_loses_no_acknowledged_report";
    let Some(pg) = private_pg::PrivatePg::create(test, None) else {
        return;
    };
    let port = pg.port;
    let server = std::sync::Mutex::new(pg);
    let e: Arc<dyn Engine> = Arc::new(
        pyzor_store::postgres::PostgresEngine::open(
            &format!("127.0.0.1:{port},postgres,,postgres,digests"),
            4,
            pyzor_store::sql::Limits::default(),
        )
        .unwrap(),
    );
    let res = load(e.clone(), 12, || {
        // SIGKILL of the postmaster; its backends notice and exit, and the
        // next start recovers from the WAL
        server.lock().unwrap().kill();
        std::thread::sleep(Duration::from_secs(1));
        server.lock().unwrap().start();
    });
    assert!(res.other.is_empty(), "unexpected errors: {:?}", res.other);
    assert!(res.unavailable > 0, "the outage was noticed: {res:?}");
    assert!(
        res.ok_after_restart > 0,
        "the engine recovered without being reopened: {res:?}"
    );
    for (d, n) in &res.acked {
        let got = e.get(d).unwrap().map(|r| r.r_count).unwrap_or(0);
        assert!(
            got >= *n,
            "{}: acknowledged {n}, stored {got}",
            String::from_utf8_lossy(d)
        );
    }
    eprintln!(
        "postgres outage: {} acknowledged, {} unavailable, {} after restart",
        res.ok, res.unavailable, res.ok_after_restart
    );
}
