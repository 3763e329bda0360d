//! What pyzord logs while its engine is down: one line when it starts
//! failing, one when it answers again (and a periodic summary in between,
//! unit-tested in `health.rs`), never one line per failed request.
//!
//! A private redis-server (free port, no persistence) is killed under a
//! running pyzord, 400 requests are answered 500 meanwhile, and Redis is
//! started again on the same port. Every wait is bounded; both processes
//! are killed by guards even when an assertion fails.

mod common;
mod mixed_support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use mixed_support::{reply_code, request, Guard};
use pyzor_testkit::{free_tcp_port, programs_available, wait_tcp};

/// A throw-away redis-server on `port` (no RDB, no AOF); waits ≤ 20 s.
fn private_redis(port: u16, dir: &std::path::Path) -> Guard {
    let c = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
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
fn an_engine_outage_logs_its_state_changes_not_every_request() {
    let test = "an_engine_outage_logs_its_state_changes_not_every_request";
    if !programs_available(test, &["redis-server"]) {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let rport = free_tcp_port();
    let mut redis = private_redis(rport, data.path());
    let home = pyzor_testkit::temp_home();
    let dsn = format!("127.0.0.1,{rport},,0");
    let srv = start_ours(home.path(), &["-e", "redis", "--dsn", &dsn]);
    let digest = "0123456789abcdef0123456789abcdef01234567";
    let r = request(srv.port, "report", digest, 1, Duration::from_secs(5)).expect("answer");
    assert_eq!(reply_code(&r), 200);

    redis.kill_9();
    let mut failed = 0;
    for i in 0..400u32 {
        if let Some(r) = request(srv.port, "check", digest, 10 + i, Duration::from_secs(3)) {
            if reply_code(&r) == 500 {
                failed += 1;
            }
        }
    }
    assert!(failed >= 300, "the outage was seen: {failed} answers 500");

    let _redis = private_redis(rport, data.path());
    let t0 = Instant::now();
    loop {
        let r = request(srv.port, "check", digest, 5000, Duration::from_secs(3));
        if r.is_some_and(|r| reply_code(&r) == 200) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "pyzord did not recover within 30 s of Redis coming back"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(srv.stop(), Some(0));

    let log = std::fs::read_to_string(home.path().join("stderr.log")).unwrap();
    let noisy: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" ERROR ") || l.contains(" WARNING "))
        .collect();
    // The engine's own reconnection backoff logs at most one line per
    // attempt (at most every 2 s); pyzord adds one line for "down" and
    // one for "up again".
    assert!(
        noisy.len() <= 20,
        "{} error/warning lines for one outage:\n{}",
        noisy.len(),
        noisy[..noisy.len().min(30)].join("\n")
    );
    let down: Vec<&&str> = noisy
        .iter()
        .filter(|l| l.contains("Engine redis is failing"))
        .collect();
    assert_eq!(down.len(), 1, "one 'failing' line: {log}");
    let up: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Engine redis answers again"))
        .collect();
    assert_eq!(up.len(), 1, "one 'answers again' line: {log}");
    assert!(
        up[0].contains("failed while it was down"),
        "the recovery line counts the failures: {}",
        up[0]
    );
}
