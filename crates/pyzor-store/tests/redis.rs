#![cfg(feature = "redis")]
mod common;

use std::sync::Arc;

use pyzor_protocol::{Record, Timestamp};
use pyzor_store::redis::{Layout, RedisEngine};
use pyzor_store::{open, Engine, EngineOptions, Op, StoreError};
use serde_json::json;

#[path = "common/refpy.rs"]
mod refpy;

fn engine(test: &str, db: u8, cleanup_age: u64) -> Option<Arc<dyn Engine>> {
    if !pyzor_testkit::redis_available(test) {
        return None;
    }
    let mut o = EngineOptions::new("redis", "/nonexistent").dsn(format!("127.0.0.1,6379,,{db}"));
    o.cleanup_age = cleanup_age;
    Some(open(&o).unwrap())
}

#[test]
fn redis_contract() {
    let Some(e) = engine("redis_contract", 5, 0) else {
        return;
    };
    assert_eq!(e.name(), "redis");
    assert!(e.approx_len().is_some(), "DBSIZE answers");
    common::run_all(e, common::SECONDS, &common::uniq("rc-"));
}

#[test]
fn redis_sets_a_sliding_ttl_of_cleanup_age() {
    let Some(e) = engine("redis_sets_a_sliding_ttl_of_cleanup_age", 6, 1000) else {
        return;
    };
    let d = common::uniq("ttl-").into_bytes();
    let mut out = Vec::new();
    e.execute(&[Op::Report(&d)], pyzor_store::now(), &mut out)
        .unwrap();
    let mut con = redis::Client::open("redis://127.0.0.1:6379/6")
        .unwrap()
        .get_connection()
        .unwrap();
    let key = [b"pyzord.digest_v1.".as_slice(), &d].concat();
    let ttl: i64 = redis::cmd("TTL").arg(&key).query(&mut con).unwrap();
    assert!((990..=1000).contains(&ttl), "ttl {ttl}");
    // the fields are the reference's, as epoch-second integers
    let h: std::collections::HashMap<String, String> =
        redis::cmd("HGETALL").arg(&key).query(&mut con).unwrap();
    assert_eq!(h["r_count"], "1");
    assert_eq!(h["r_entered"], h["r_updated"]);
    assert!(!h.contains_key("wl_entered"));
    e.delete_many(&[d]).unwrap();
}

#[test]
fn redis_python_and_rust_see_each_others_counts() {
    let test = "redis_python_and_rust_see_each_others_counts";
    let Some(e) = engine(test, 6, 0) else { return };
    let dsn = "127.0.0.1,6379,,6";
    let p = common::uniq("py-");
    let keys: Vec<String> = ["a", "b", "caf\u{e9}", "has.dots.in.it"]
        .iter()
        .map(|k| format!("{p}{k}"))
        .collect();
    // Python reports twice and whitelists once; we read.
    let Some(_) = refpy::run(test, "redis", dsn, "report", json!(keys)) else {
        return;
    };
    refpy::run(test, "redis", dsn, "report", json!(keys[..2])).unwrap();
    refpy::run(test, "redis", dsn, "whitelist", json!(keys[..1])).unwrap();
    let r = e.get(keys[0].as_bytes()).unwrap().unwrap();
    assert_eq!((r.r_count, r.wl_count), (2, 1));
    assert!(r.r_entered.is_some() && r.wl_updated.is_some());
    assert_eq!(e.get(keys[2].as_bytes()).unwrap().unwrap().r_count, 1);
    // We report; Python reads.
    let mut out = Vec::new();
    let now = Timestamp::from_secs(pyzor_store::now().secs());
    let ops: Vec<Op> = keys.iter().map(|k| Op::Report(k.as_bytes())).collect();
    e.execute(&ops, now, &mut out).unwrap();
    let read = refpy::parse_read(&refpy::run(test, "redis", dsn, "read", json!(keys)).unwrap());
    assert_eq!(read.len(), 4);
    for (k, (py, ours)) in keys.iter().zip(read.iter().zip(&out)) {
        assert_eq!(py.as_ref(), ours.as_ref(), "{k}");
    }
    // Python's __setitem__ (migration) writes 0 for never; we read never.
    let rec = Record {
        r_count: 7,
        r_entered: Some(Timestamp::from_secs(1_700_000_000)),
        ..Record::default()
    };
    let k = format!("{p}set");
    refpy::run(
        test,
        "redis",
        dsn,
        "set",
        json!([[k, refpy::record_json(&rec)]]),
    )
    .unwrap();
    assert_eq!(e.get(k.as_bytes()).unwrap(), Some(rec));
    // ... and our put_many is what Python reads back.
    let rec2 = Record {
        r_count: 3,
        wl_count: 4,
        r_entered: Some(Timestamp::from_secs(1_700_000_000)),
        r_updated: Some(Timestamp::from_secs(1_700_000_500)),
        wl_entered: None,
        wl_updated: Some(Timestamp::from_secs(1_700_000_900)),
    };
    let k2 = format!("{p}put");
    e.put_many(&[(k2.clone().into_bytes(), rec2)]).unwrap();
    let read = refpy::parse_read(&refpy::run(test, "redis", dsn, "read", json!([k2])).unwrap());
    assert_eq!(read, vec![Some(rec2)]);
    let mut all: Vec<Vec<u8>> = keys.iter().map(|k| k.clone().into_bytes()).collect();
    all.push(k.into_bytes());
    all.push(k2.into_bytes());
    e.delete_many(&all).unwrap();
}

#[test]
fn redis_v0_is_readable_as_a_migration_source() {
    let test = "redis_v0_is_readable_as_a_migration_source";
    if !pyzor_testkit::redis_available(test) {
        return;
    }
    let dsn = "127.0.0.1,6379,,7";
    let v0 = RedisEngine::open(dsn, Layout::V0, 0, 0).unwrap();
    let p = common::uniq("v0-");
    let rec = Record {
        r_count: 9,
        wl_count: 1,
        r_entered: Some(Timestamp::from_secs(1_700_000_000)),
        r_updated: Some(Timestamp::from_secs(1_700_000_100)),
        wl_entered: Some(Timestamp::from_secs(1_700_000_200)),
        wl_updated: Some(Timestamp::from_secs(1_700_000_300)),
    };
    let Some(_) = refpy::run(
        test,
        "redis_v0",
        dsn,
        "set",
        json!([[format!("{p}x"), refpy::record_json(&rec)]]),
    ) else {
        return;
    };
    assert_eq!(v0.get(format!("{p}x").as_bytes()).unwrap(), Some(rec));
    let found: Vec<_> = v0
        .scan()
        .unwrap()
        .map(|x| x.unwrap())
        .filter(|(k, _)| k.starts_with(p.as_bytes()))
        .collect();
    assert_eq!(found, vec![(format!("{p}x").into_bytes(), rec)]);
    // our v0 writer matches the reference's reader
    v0.put_many(&[(format!("{p}y").into_bytes(), rec)]).unwrap();
    let read = refpy::parse_read(
        &refpy::run(test, "redis_v0", dsn, "read", json!([format!("{p}y")])).unwrap(),
    );
    assert_eq!(read, vec![Some(rec)]);
    let mut out = Vec::new();
    assert!(matches!(
        v0.execute(&[Op::Report(b"x")], pyzor_store::now(), &mut out),
        Err(StoreError::Config(_))
    ));
    v0.delete_many(&[format!("{p}x").into_bytes(), format!("{p}y").into_bytes()])
        .unwrap();
}

#[test]
fn redis_unreachable_is_unavailable_not_a_panic() {
    let port = pyzor_testkit::free_udp_port(); // nothing listens on TCP there either, most likely
    match RedisEngine::open(&format!("127.0.0.1,{port},,0"), Layout::V1, 0, 0) {
        Err(StoreError::Unavailable(_)) => {}
        Err(e) => panic!("wrong error {e}"),
        Ok(_) => panic!("connected to nothing"),
    }
    assert!(matches!(
        RedisEngine::open("pyzord.db", Layout::V1, 0, 0),
        Err(StoreError::Config(_))
    ));
}

/// A child process killed when dropped.
struct Proc(std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A TCP port that is free, whose cluster-bus port (+10000) is free too.
fn cluster_port() -> u16 {
    loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let p = l.local_addr().unwrap().port();
        if p < 55_000 && std::net::TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok() {
            return p;
        }
    }
}

#[test]
fn redis_cluster_contract() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let test = "redis_cluster_contract";
    if !pyzor_testkit::programs_available(test, &["redis-server", "redis-cli"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<u16> = (0..3).map(|_| cluster_port()).collect();
    let _servers: Vec<Proc> = ports
        .iter()
        .map(|p| {
            let d = dir.path().join(p.to_string());
            std::fs::create_dir(&d).unwrap();
            Proc(
                Command::new("redis-server")
                    .args([
                        "--port",
                        &p.to_string(),
                        "--bind",
                        "127.0.0.1",
                        "--cluster-enabled",
                        "yes",
                    ])
                    .args(["--save", "", "--appendonly", "no", "--dir"])
                    .arg(&d)
                    .stdout(Stdio::null())
                    .spawn()
                    .unwrap(),
            )
        })
        .collect();
    for p in &ports {
        assert!(
            pyzor_testkit::wait_tcp(*p, Duration::from_secs(10)),
            "cluster node {p} did not start"
        );
    }
    let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let st = Command::new("redis-cli")
        .arg("--cluster")
        .arg("create")
        .args(&addrs)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "redis-cli --cluster create failed");
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let ok = ports.iter().all(|p| {
            Command::new("redis-cli")
                .args(["-p", &p.to_string(), "cluster", "info"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok"))
                .unwrap_or(false)
        });
        if ok {
            break;
        }
        assert!(Instant::now() < end, "cluster did not become ok");
        std::thread::sleep(Duration::from_millis(200));
    }
    let dsn = format!("cluster:{};{},,,", addrs[0], addrs[1]);
    let e = open(&EngineOptions::new("redis", "/").dsn(dsn)).unwrap();
    common::run_all(e.clone(), common::SECONDS, "cl-");
    // keys really are spread over the masters, and a scan finds them all
    let recs: Vec<(Vec<u8>, Record)> = (0..300)
        .map(|i| {
            (
                format!("spread{i}").into_bytes(),
                Record {
                    r_count: i,
                    ..Record::default()
                },
            )
        })
        .collect();
    e.put_many(&recs).unwrap();
    assert_eq!(
        e.scan()
            .unwrap()
            .filter(|x| x.as_ref().unwrap().0.starts_with(b"spread"))
            .count(),
        300
    );
    let with_keys = ports
        .iter()
        .filter(|p| {
            let o = Command::new("redis-cli")
                .args(["-p", &p.to_string(), "dbsize"])
                .output()
                .unwrap();
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<u64>()
                .unwrap_or(0)
                > 0
        })
        .count();
    assert_eq!(with_keys, 3);
    // A cluster pipeline with one error reply: only that operation fails,
    // the others (on every node) are done and their records read.
    let st = Command::new("redis-cli")
        .args(["-c", "-p", &ports[0].to_string()])
        .args(["SET", "pyzord.digest_v1.clbad", "x"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&st.stdout).contains("OK"), "{st:?}");
    let good: Vec<String> = (0..12).map(|i| format!("clgood{i}")).collect();
    let mut ops: Vec<Op> = good.iter().map(|g| Op::Report(g.as_bytes())).collect();
    ops.insert(5, Op::Report(b"clbad"));
    let mut out = Vec::new();
    match e.execute(&ops, pyzor_store::now(), &mut out) {
        Err(StoreError::Partial(f)) => {
            assert_eq!(f.iter().map(|x| x.0).collect::<Vec<_>>(), vec![5]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(out.len(), 13);
    for (i, r) in out.iter().enumerate() {
        assert_eq!(r.map(|r| r.r_count), (i != 5).then_some(1), "op {i}");
    }
}

/// A host containing `/` is a unix socket; the password field is used.
#[test]
fn redis_unix_socket_and_password() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let test = "redis_unix_socket_and_password";
    if !pyzor_testkit::programs_available(test, &["redis-server"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("redis.sock");
    let _server = Proc(
        Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(&sock)
            .args(["--requirepass", "s3cret", "--save", "", "--dir"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let end = Instant::now() + Duration::from_secs(10);
    while !sock.exists() {
        assert!(Instant::now() < end, "private redis did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let s = sock.to_str().unwrap();
    assert!(RedisEngine::open(&format!("{s},,wrong,0"), Layout::V1, 0, 0).is_err());
    assert!(RedisEngine::open(&format!("{s},,,0"), Layout::V1, 0, 0).is_err());
    let e = open(&EngineOptions::new("redis", "/").dsn(format!("{s},,s3cret,2"))).unwrap();
    common::run_all(e, common::SECONDS, "us-");
}

/// `sentinel:<master>@host:port`: the engine finds the master through a
/// Sentinel (a private master and Sentinel on free ports).
#[test]
fn redis_sentinel_contract() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let test = "redis_sentinel_contract";
    if !pyzor_testkit::programs_available(test, &["redis-server", "redis-cli"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (mport, sport) = (free(), free());
    let _master = Proc(
        Command::new("redis-server")
            .args([
                "--port",
                &mport.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--dir",
            ])
            .arg(dir.path())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let conf = dir.path().join("sentinel.conf");
    std::fs::write(
        &conf,
        format!(
            "port {sport}\nbind 127.0.0.1\ndir {}\nsentinel monitor pz 127.0.0.1 {mport} 1\n\
             sentinel down-after-milliseconds pz 5000\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let _sentinel = Proc(
        Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Wait for both: the sentinel names its master from its configuration
    // at once, possibly before the master itself accepts connections.
    let end = Instant::now() + Duration::from_secs(15);
    let answers = |port: u16, args: &[&str], want: &str| {
        Command::new("redis-cli")
            .arg("-p")
            .arg(port.to_string())
            .args(args)
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(want))
    };
    while !(answers(mport, &["ping"], "PONG")
        && answers(
            sport,
            &["sentinel", "get-master-addr-by-name", "pz"],
            &mport.to_string(),
        ))
    {
        assert!(
            Instant::now() < end,
            "the master or the sentinel did not come up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let e =
        open(&EngineOptions::new("redis", "/").dsn(format!("sentinel:pz@127.0.0.1:{sport},,,3")))
            .unwrap();
    common::run_all(e, common::SECONDS, "se-");
    assert!(matches!(
        open(
            &EngineOptions::new("redis", "/")
                .dsn(format!("sentinel:nosuchmaster@127.0.0.1:{sport},,,0"))
        ),
        Err(StoreError::Unavailable(_))
    ));
}

/// A report whose increment cannot be made (the count is not an integer,
/// or the key holds no hash) fails and writes nothing at all — no
/// `*_updated`, no TTL; a count at sys.maxsize saturates and is a success.
#[test]
fn redis_a_failed_increment_is_an_error_and_writes_nothing() {
    let Some(e) = engine(
        "redis_a_failed_increment_is_an_error_and_writes_nothing",
        11,
        1000,
    ) else {
        return;
    };
    let p = common::uniq("inc-");
    let mut con = redis::Client::open("redis://127.0.0.1:6379/11")
        .unwrap()
        .get_connection()
        .unwrap();
    let key = |s: &str| format!("pyzord.digest_v1.{p}{s}");
    let hash = |con: &mut redis::Connection, k: &str| -> Vec<(String, String)> {
        let mut h: Vec<(String, String)> = redis::cmd("HGETALL").arg(k).query(con).unwrap();
        h.sort();
        h
    };
    let _: () = redis::cmd("HSET")
        .arg(key("nan"))
        .arg(&["r_count", "many", "r_updated", "5"])
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("HSET")
        .arg(key("date"))
        .arg(&["r_count", "1", "r_updated", "yesterday"])
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(key("str"))
        .arg("x")
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("HSET")
        .arg(key("max"))
        .arg(&["r_count", "9223372036854775807", "r_updated", "5"])
        .query(&mut con)
        .unwrap();
    let now = Timestamp::from_secs(1_790_000_000);
    for (s, op) in [
        ("nan", "report"),
        ("nan", "whitelist"),
        ("date", "report"),
        ("date", "whitelist"),
        ("str", "report"),
    ] {
        let before = (s != "str").then(|| hash(&mut con, &key(s)));
        let d = format!("{p}{s}");
        let o = if op == "report" {
            Op::Report(d.as_bytes())
        } else {
            Op::Whitelist(d.as_bytes())
        };
        let mut out = Vec::new();
        let r = e.execute(&[o], now, &mut out);
        if let Some(before) = before {
            assert_eq!(hash(&mut con, &key(s)), before, "{s} {op} wrote nothing");
        } else {
            let v: String = redis::cmd("GET").arg(key(s)).query(&mut con).unwrap();
            assert_eq!(v, "x", "{s} {op} wrote nothing");
        }
        assert!(
            matches!(r, Err(StoreError::Corrupt { .. })),
            "{s} {op}: the record's own error, not {r:?}"
        );
        assert!(out.is_empty());
        let ttl: i64 = redis::cmd("TTL").arg(key(s)).query(&mut con).unwrap();
        assert_eq!(ttl, -1, "{s} {op}: no TTL set");
    }
    let mut out = Vec::new();
    let d = format!("{p}max");
    e.execute(&[Op::Report(d.as_bytes())], now, &mut out)
        .unwrap();
    let r = out[0].unwrap();
    assert_eq!(r.r_count, i64::MAX, "saturates at sys.maxsize");
    assert_eq!(r.r_updated, Some(now));
    // In a batch, the failed operations are listed; the others are done.
    let (ok, nan, s) = (format!("{p}ok"), format!("{p}nan"), format!("{p}str"));
    let mut out = vec![None];
    let r = e.execute(
        &[
            Op::Report(ok.as_bytes()),
            Op::Report(nan.as_bytes()),
            Op::Get(ok.as_bytes()),
            Op::Get(s.as_bytes()),
            Op::Whitelist(ok.as_bytes()),
        ],
        now,
        &mut out,
    );
    match r {
        Err(StoreError::Partial(f)) => {
            let idx: Vec<usize> = f.iter().map(|x| x.0).collect();
            assert_eq!(idx, vec![1, 3]);
            assert!(f.iter().all(|x| matches!(x.1, StoreError::Corrupt { .. })));
        }
        other => panic!("{other:?}"),
    }
    let counts: Vec<Option<(i64, i64)>> = out
        .iter()
        .map(|r| r.map(|r| (r.r_count, r.wl_count)))
        .collect();
    assert_eq!(
        counts,
        vec![None, Some((1, 0)), None, Some((1, 0)), None, Some((1, 1))]
    );
    e.delete_many(&[ok.into_bytes()]).unwrap();
    let _: () = redis::cmd("DEL")
        .arg(key("nan"))
        .arg(key("date"))
        .arg(key("str"))
        .arg(key("max"))
        .query(&mut con)
        .unwrap();
}

/// Every wait on a Sentinel has a timeout: a Sentinel that accepts
/// connections but never answers makes `open` fail (Unavailable), not hang.
#[test]
fn redis_sentinel_that_never_answers_is_unavailable_not_a_hang() {
    use std::time::Duration;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    // Accept and hold connections without ever replying.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().take(64) {
            held.push(s);
        }
    });
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = RedisEngine::open(
            &format!("sentinel:pz@127.0.0.1:{port},,,0"),
            Layout::V1,
            0,
            0,
        );
        let _ = tx.send(r.err().map(|e| e.to_string()));
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(Some(e)) => assert!(e.contains("unavailable"), "{e}"),
        Ok(None) => panic!("connected to a Sentinel that never answers"),
        Err(_) => panic!("open still waits for the silent Sentinel after 20 s"),
    }
}

/// The count script returns the fields as they were before its write and
/// the engine derives the record after it (no read-back): that record is
/// exactly what a read then finds, for every kind of stored count — none,
/// small ones the script increments itself, counts past 15 digits (left to
/// `HINCRBY`), the last one before sys.maxsize, sys.maxsize (saturates),
/// negative ones, a first-entered of `0` (never) — on both sides. A count
/// `HINCRBY` cannot parse (`007`) still fails and writes nothing.
#[test]
fn redis_count_result_is_what_a_read_finds() {
    let Some(e) = engine("redis_count_result_is_what_a_read_finds", 4, 1000) else {
        return;
    };
    let p = common::uniq("cnt-");
    let mut con = redis::Client::open("redis://127.0.0.1:6379/4")
        .unwrap()
        .get_connection()
        .unwrap();
    let now = Timestamp::from_secs(1_790_000_000);
    // (name, stored fields with COUNT/ENTERED standing for the side's, count after)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], i64);
    let cases: &[Case] = &[
        ("none", &[], 1),
        ("zero", &[("COUNT", "0"), ("ENTERED", "0")], 1),
        ("small", &[("COUNT", "41"), ("ENTERED", "1700000000")], 42),
        ("neg", &[("COUNT", "-3")], -2),
        (
            "d15",
            &[("COUNT", "999999999999999")],
            1_000_000_000_000_000,
        ),
        (
            "d16",
            &[("COUNT", "1000000000000000")],
            1_000_000_000_000_001,
        ),
        ("d19", &[("COUNT", "9223372036854775806")], i64::MAX),
        ("max", &[("COUNT", "9223372036854775807")], i64::MAX),
    ];
    let mut keys = Vec::new();
    for side in ["r", "wl"] {
        for &(name, fields, want) in cases {
            let d = format!("{p}{side}{name}");
            let key = format!("pyzord.digest_v1.{d}");
            keys.push(key.clone());
            for &(f, v) in fields {
                let f = f
                    .replace("COUNT", &format!("{side}_count"))
                    .replace("ENTERED", &format!("{side}_entered"));
                let _: () = redis::cmd("HSET")
                    .arg(&key)
                    .arg(f)
                    .arg(v)
                    .query(&mut con)
                    .unwrap();
            }
            let op = if side == "r" {
                Op::Report(d.as_bytes())
            } else {
                Op::Whitelist(d.as_bytes())
            };
            let mut out = Vec::new();
            e.execute(&[op], now, &mut out).unwrap();
            let got = out[0].expect("a count returns the record");
            assert_eq!(Some(got), e.get(d.as_bytes()).unwrap(), "{side} {name}");
            let (count, entered, updated) = if side == "r" {
                (got.r_count, got.r_entered, got.r_updated)
            } else {
                (got.wl_count, got.wl_entered, got.wl_updated)
            };
            assert_eq!(count, want, "{side} {name}");
            assert_eq!(updated, Some(now), "{side} {name}");
            let first = if name == "small" {
                Timestamp::from_secs(1_700_000_000)
            } else {
                now
            };
            assert_eq!(entered, Some(first), "{side} {name}: entered");
            let ttl: i64 = redis::cmd("TTL").arg(&key).query(&mut con).unwrap();
            assert!((990..=1000).contains(&ttl), "{side} {name}: ttl {ttl}");
        }
    }
    // Not canonical: HINCRBY refuses it before anything is written.
    let d = format!("{p}lead0");
    let key = format!("pyzord.digest_v1.{d}");
    keys.push(key.clone());
    let _: () = redis::cmd("HSET")
        .arg(&key)
        .arg(&["r_count", "007", "r_updated", "5"])
        .query(&mut con)
        .unwrap();
    let mut out = Vec::new();
    let r = e.execute(&[Op::Report(d.as_bytes())], now, &mut out);
    assert!(matches!(r, Err(StoreError::Corrupt { .. })), "{r:?}");
    let mut h: Vec<(String, String)> = redis::cmd("HGETALL").arg(&key).query(&mut con).unwrap();
    h.sort();
    assert_eq!(
        h,
        vec![
            ("r_count".into(), "007".into()),
            ("r_updated".into(), "5".into())
        ]
    );
    let _: () = redis::cmd("DEL").arg(&keys).query(&mut con).unwrap();
}
