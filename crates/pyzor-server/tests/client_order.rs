//! Per-client order with several workers (docs/server.md "Workers and
//! per-client order"): a client that sends a report without waiting for
//! its answer and at once checks the same digest from another socket — as
//! Pyzor 1.1.2's `BatchClient` and its functional tests do — must see its
//! own report, on every engine. Both datagrams come from one host, so the
//! server hands them to one worker, which answers them in arrival order.
//!
//! Every round is bounded (two waits of ≤ 5 s), every engine run by a
//! count and a deadline; the servers and database objects go with guards.

mod common;
mod mixed_support;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::start_ours;
use mixed_support::{parse_check, redis_cli, reply_code, MysqlScratch};
use pyzor_testkit::programs_available;

/// Report/check pairs per engine.
const ROUNDS: u32 = 300;
/// Bound of one engine's rounds.
const DEADLINE: Duration = Duration::from_secs(120);
/// Redis database of this test (flushed; claimed with a marker key).
const REDIS_DB: u32 = 12;
const REDIS_MARKER: &str = "pyzor-test:client_order";

fn unique_digest(i: u32) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    format!("{:08x}{:016x}{:016x}", std::process::id(), nanos, i)
}

fn datagram(op: &str, digest: &str, thread: u32) -> Vec<u8> {
    format!("Op: {op}\nOp-Digest: {digest}\nThread: {thread}\nPV: 2.1\n\n").into_bytes()
}

fn wait_reply(s: &UdpSocket) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 8192];
    s.recv_from(&mut buf).ok().map(|(n, _)| buf[..n].to_vec())
}

/// `ROUNDS` times: a report from one socket, then at once a check of the
/// same (new) digest from another socket of the same host. Returns the
/// rounds whose check did not count the report, with what it saw.
fn overtaken_checks(port: u16) -> Vec<String> {
    let mut bad = Vec::new();
    let end = Instant::now() + DEADLINE;
    let mut done = 0;
    for i in 0..ROUNDS {
        if Instant::now() >= end {
            break;
        }
        let d = unique_digest(i);
        let reporter = UdpSocket::bind("127.0.0.1:0").unwrap();
        let checker = UdpSocket::bind("127.0.0.1:0").unwrap();
        for s in [&reporter, &checker] {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        }
        let to = ("127.0.0.1", port);
        reporter
            .send_to(&datagram("report", &d, 2000 + i), to)
            .unwrap();
        checker
            .send_to(&datagram("check", &d, 3000 + i), to)
            .unwrap();
        let check = wait_reply(&checker);
        let report = wait_reply(&reporter);
        assert_eq!(
            report.as_deref().map(reply_code),
            Some(200),
            "round {i}: the report was not answered 200: {:?}",
            report.map(|r| String::from_utf8_lossy(&r).into_owned())
        );
        match check.as_deref().and_then(parse_check) {
            Some((1, 0)) => {}
            other => bad.push(format!("round {i}: check saw {other:?}")),
        }
        done += 1;
    }
    assert!(done >= 20, "only {done} rounds within {DEADLINE:?}");
    bad
}

fn assert_in_order(engine: &str, port: u16) {
    let bad = overtaken_checks(port);
    assert!(
        bad.is_empty(),
        "{engine}: {} check(s) overtook the report sent just before them from the same host:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn check_after_fire_and_forget_report_sees_it_lmdb() {
    let home = pyzor_testkit::temp_home();
    let server = start_ours(home.path(), &["--workers", "4"]);
    assert_in_order("lmdb", server.port);
    assert_eq!(server.stop(), Some(0));
}

/// Empties the test's Redis database when dropped.
struct RedisDb;

impl Drop for RedisDb {
    fn drop(&mut self) {
        redis_cli(6379, REDIS_DB, &["FLUSHDB"]);
    }
}

#[test]
fn check_after_fire_and_forget_report_sees_it_redis() {
    let test = "check_after_fire_and_forget_report_sees_it_redis";
    if !pyzor_testkit::redis_available(test) {
        return;
    }
    if !programs_available(test, &["redis-cli"]) {
        return;
    }
    let size: u64 = redis_cli(6379, REDIS_DB, &["DBSIZE"]).parse().unwrap_or(0);
    if size > 0 && redis_cli(6379, REDIS_DB, &["EXISTS", REDIS_MARKER]) != "1" {
        pyzor_testkit::skip(
            test,
            &format!("Redis db {REDIS_DB} holds {size} keys this test did not write"),
        );
        return;
    }
    redis_cli(6379, REDIS_DB, &["FLUSHDB"]);
    redis_cli(6379, REDIS_DB, &["SET", REDIS_MARKER, "1"]);
    let _flush = RedisDb;
    let home = pyzor_testkit::temp_home();
    let dsn = format!("127.0.0.1,6379,,{REDIS_DB}");
    let server = start_ours(
        home.path(),
        &["--workers", "4", "-e", "redis", "--dsn", &dsn],
    );
    assert_in_order("redis", server.port);
    assert_eq!(server.stop(), Some(0));
}

#[test]
fn check_after_fire_and_forget_report_sees_it_mysql() {
    let test = "check_after_fire_and_forget_report_sees_it_mysql";
    if !pyzor_testkit::mysql_available(test) {
        return;
    }
    if !programs_available(test, &["mysql"]) {
        return;
    }
    let scratch = match MysqlScratch::create("pyzor_client_order") {
        Ok(s) => s,
        Err(e) => {
            pyzor_testkit::skip(test, &format!("cannot create a MariaDB database: {e}"));
            return;
        }
    };
    let home = pyzor_testkit::temp_home();
    let server = start_ours(
        home.path(),
        &["--workers", "4", "-e", "mysql", "--dsn", &scratch.dsn()],
    );
    assert_in_order("mysql", server.port);
    assert_eq!(server.stop(), Some(0));
}
