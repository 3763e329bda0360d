//! pyzord on the open internet (docs/security.md): a reload never turns a
//! deny into an allow, an empty passwd key is refused, no usage-log line
//! grows with what a client sends, and idle or slow TCP clients do not
//! block a `/metrics` scrape.
//!
//! Every wait is bounded; servers are killed by `Proc`'s drop when an
//! assertion fails.

mod common;
use common::*;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use pyzor_protocol::wire::client::{build_request, Credentials, Layout};
use pyzor_protocol::wire::Op;

fn free_tcp_addr() -> String {
    format!("127.0.0.1:{}", pyzor_testkit::free_tcp_port())
}

/// The reply code of a datagram.
fn code_of(reply: &[u8]) -> String {
    String::from_utf8_lossy(reply)
        .lines()
        .next()
        .unwrap_or("")
        .trim_start_matches("Code: ")
        .to_owned()
}

fn anonymous_check(port: u16) -> String {
    code_of(&raw(
        port,
        b"Op: check\nOp-Digest: abc\nThread: 3333\nPV: 2.1\n\n",
    ))
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A check signed by `user` with `key`.
fn signed_check(port: u16, user: &str, key: &str) -> String {
    let mut d = Vec::new();
    build_request(
        Op::Check,
        &["abc"],
        4444,
        &Credentials::new(user, key),
        now_secs(),
        Layout::Single,
        &mut d,
    )
    .unwrap();
    code_of(&raw(port, &d))
}

/// Wait (≤ 10 s) until the server's stderr log holds `needle` `times` times.
fn wait_log(home: &Path, needle: &str, times: usize) -> String {
    let t0 = Instant::now();
    loop {
        let log = std::fs::read_to_string(home.join("stderr.log")).unwrap_or_default();
        if log.matches(needle).count() >= times {
            return log;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{needle:?} not logged {times} time(s):\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One HTTP/1.0 request on the metrics address; (status line, whole
/// answer). The read is bounded by a 20 s timeout.
fn http(addr: &str, request: &str) -> (String, String) {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = c.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    (answer.lines().next().unwrap_or("").to_owned(), answer)
}

fn scrape(addr: &str) -> String {
    let (status, answer) = http(addr, "GET /metrics HTTP/1.0\r\n\r\n");
    assert!(status.contains(" 200 "), "{answer}");
    answer
}

const RELOAD_FAILED: &str = "Reload failed, the previous accounts and ACL stay in force";

#[test]
fn a_vanished_access_file_keeps_the_old_rules_on_reload() {
    let home = pyzor_testkit::temp_home();
    let access = home.path().join("pyzord.access");
    std::fs::write(&access, "ping : anonymous : allow\n").unwrap();
    let metrics = free_tcp_addr();
    let srv = start_ours(
        home.path(),
        &["-e", "memory", "--metrics-address", &metrics],
    );
    assert_eq!(anonymous_check(srv.port), "403");

    // `mv pyzord.access elsewhere; kill -USR1`: still a deny.
    std::fs::rename(&access, home.path().join("elsewhere")).unwrap();
    srv.signal(libc::SIGUSR1);
    let log = wait_log(home.path(), RELOAD_FAILED, 1);
    assert!(log.contains("pyzord.access"), "{log}");
    assert_eq!(anonymous_check(srv.port), "403", "a missing file allowed");
    assert!(
        scrape(&metrics).contains("pyzord_reloads_total{result=\"failed\"} 1"),
        "failed reload not counted"
    );

    // A directory in its place cannot be read: the same.
    std::fs::create_dir(&access).unwrap();
    srv.signal(libc::SIGUSR1);
    wait_log(home.path(), RELOAD_FAILED, 2);
    assert_eq!(anonymous_check(srv.port), "403");
    std::fs::remove_dir(&access).unwrap();

    // Put back (granting check now): the reload applies it.
    std::fs::write(&access, "ping check : anonymous : allow\n").unwrap();
    srv.signal(libc::SIGUSR1);
    let t0 = Instant::now();
    while anonymous_check(srv.port) != "200" {
        assert!(t0.elapsed() < Duration::from_secs(10), "reload not applied");
        std::thread::sleep(Duration::from_millis(50));
    }
    let body = scrape(&metrics);
    assert!(
        body.contains("pyzord_reloads_total{result=\"failed\"} 2"),
        "{body}"
    );
    assert!(
        body.contains("pyzord_reloads_total{result=\"ok\"} 1"),
        "{body}"
    );
    assert_eq!(srv.stop(), Some(0));
}

#[test]
fn a_vanished_passwd_file_keeps_the_old_accounts_on_reload() {
    let home = pyzor_testkit::temp_home();
    let passwd = home.path().join("pyzord.passwd");
    std::fs::write(&passwd, "alice : alices-key\n").unwrap();
    std::fs::write(home.path().join("pyzord.access"), "check : alice : allow\n").unwrap();
    let srv = start_ours(home.path(), &["-e", "memory"]);
    assert_eq!(signed_check(srv.port, "alice", "alices-key"), "200");
    std::fs::remove_file(&passwd).unwrap();
    srv.signal(libc::SIGUSR1);
    let log = wait_log(home.path(), RELOAD_FAILED, 1);
    assert!(log.contains("pyzord.passwd"), "{log}");
    assert_eq!(signed_check(srv.port, "alice", "alices-key"), "200");
    assert_eq!(srv.stop(), Some(0));
}

#[test]
fn a_passwd_line_with_an_empty_key_is_refused_at_start_and_on_reload() {
    let home = pyzor_testkit::temp_home();
    let passwd = home.path().join("pyzord.passwd");
    std::fs::write(&passwd, "alice :\nbob : bobs-key\n").unwrap();
    std::fs::write(
        home.path().join("pyzord.access"),
        "check : alice bob carol : allow\n",
    )
    .unwrap();
    let srv = start_ours(home.path(), &["-e", "memory"]);
    let log = wait_log(home.path(), "empty key", 1);
    assert!(log.contains("alice"), "{log}");
    // Anyone can compute alice's signatures: she is unknown.
    assert_eq!(signed_check(srv.port, "alice", ""), "401");
    assert_eq!(signed_check(srv.port, "bob", "bobs-key"), "200");

    std::fs::write(&passwd, "bob : bobs-key\ncarol :   \n").unwrap();
    srv.signal(libc::SIGUSR1);
    let log = wait_log(home.path(), "empty key", 2);
    assert!(log.contains("carol"), "{log}");
    assert!(!log.contains(RELOAD_FAILED), "{log}");
    assert_eq!(signed_check(srv.port, "carol", ""), "401");
    assert_eq!(signed_check(srv.port, "bob", "bobs-key"), "200");
    assert_eq!(srv.stop(), Some(0));
}

/// The message part of each usage-log line (after `(PID) LEVEL `).
fn usage_messages(home: &Path) -> Vec<String> {
    let usage = std::fs::read_to_string(home.join("usage.log")).unwrap();
    usage
        .lines()
        .map(|l| {
            let rest = &l[l.find(") ").unwrap() + 2..];
            rest[rest.find(' ').unwrap() + 1..].to_owned()
        })
        .collect()
}

#[test]
fn usage_log_lines_do_not_grow_with_client_input() {
    let home = pyzor_testkit::temp_home();
    std::fs::write(home.path().join("pyzord.passwd"), "alice : alices-key\n").unwrap();
    let srv = start_ours(
        home.path(),
        &["-e", "memory", "--usage-log-file", "usage.log"],
    );
    // One digest of 6000 characters.
    let long = "d".repeat(6000);
    let r = raw(
        srv.port,
        format!("Op: check\nOp-Digest: {long}\nThread: 1\nPV: 2.1\n\n").as_bytes(),
    );
    assert_eq!(code_of(&r), "200");
    // 200 short digests.
    let many: String = (0..200).map(|i| format!("Op-Digest: m{i}\n")).collect();
    let r = raw(
        srv.port,
        format!("Op: check\n{many}Thread: 2\nPV: 2.1\n\n").as_bytes(),
    );
    assert_eq!(code_of(&r), "200");
    // An error text quoting `Time` (6000 characters).
    let r = raw(
        srv.port,
        format!(
            "Op: check\nOp-Digest: a\nThread: 3\nPV: 2.1\nUser: alice\nTime: {}\nSig: x\n\n",
            "t".repeat(6000)
        )
        .as_bytes(),
    );
    assert_eq!(code_of(&r), "500");
    srv.stop();
    let lines = usage_messages(home.path());
    // The first line is start_ours's readiness ping.
    assert_eq!(lines.len(), 4, "{lines:#?}");
    for l in &lines {
        assert!(l.len() < 3000, "{} characters: {l:.400}", l.len());
    }
    let (one, many, error) = (&lines[1], &lines[2], &lines[3]);
    assert!(
        one.starts_with(&format!("anonymous,127.0.0.1,check,['{}", "d".repeat(200))),
        "{one}"
    );
    assert!(!one.contains(&"d".repeat(201)), "{one}");
    assert!(one.contains("5800 more characters"), "{one}");
    assert!(one.ends_with(",200"), "{one}");
    assert!(
        many.starts_with("anonymous,127.0.0.1,check,['m0', 'm1', "),
        "{many}"
    );
    assert!(many.contains("190 more"), "{many}");
    assert!(!many.contains("'m10'"), "{many}");
    assert!(many.ends_with("],200"), "{many}");
    assert!(
        error.starts_with(
            "500: Internal Server Error: invalid literal for int() with base 10: 'ttt"
        ),
        "{error}"
    );
    // Python already cuts this one (`%.200R`); the line stays short.
    assert!(error.len() < 400, "{error}");
}

#[test]
fn idle_and_slow_connections_do_not_block_metrics_scrapes() {
    let home = pyzor_testkit::temp_home();
    let metrics = free_tcp_addr();
    let srv = start_ours(
        home.path(),
        &["-e", "memory", "--metrics-address", &metrics],
    );
    let _ = scrape(&metrics);

    // Ten idle connections.
    let idle: Vec<TcpStream> = (0..10)
        .map(|_| TcpStream::connect(&metrics).unwrap())
        .collect();
    // A slow-loris client: a request head one byte every 200 ms.
    let loris = {
        let addr = metrics.clone();
        std::thread::spawn(move || {
            let mut c = TcpStream::connect(&addr).unwrap();
            let head = format!(
                "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: {}",
                "s".repeat(500)
            );
            let t0 = Instant::now();
            for b in head.bytes() {
                if c.write_all(&[b]).is_err() || t0.elapsed() > Duration::from_secs(30) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            t0.elapsed()
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    let body = scrape(&metrics);
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "a scrape behind 10 idle connections and a slow one took {took:?}"
    );
    assert!(body.contains("pyzord_batches_total"), "{body}");

    // Only GET /metrics.
    let (status, answer) = http(&metrics, "GET /other HTTP/1.0\r\n\r\n");
    assert!(status.contains(" 404 "), "{answer}");
    let (status, answer) = http(
        &metrics,
        "POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(status.contains(" 405 "), "{answer}");
    // A request head larger than the server accepts is refused, not read on.
    let big = format!(
        "GET /metrics HTTP/1.0\r\nX-Big: {}\r\n\r\n",
        "b".repeat(64 * 1024)
    );
    let mut c = TcpStream::connect(&metrics).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = c.write_all(big.as_bytes());
    let mut answer = Vec::new();
    let _ = c.read_to_end(&mut answer);
    assert!(
        !String::from_utf8_lossy(&answer).contains(" 200 "),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    // The server closes idle and slow connections itself (header timeout).
    for mut c in idle {
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let t0 = Instant::now();
        let mut buf = [0u8; 64];
        let n = c.read(&mut buf).unwrap_or(0);
        assert_eq!(n, 0, "an idle connection got an answer");
        assert!(t0.elapsed() < Duration::from_secs(25));
    }
    let loris_time = loris.join().unwrap();
    assert!(
        loris_time < Duration::from_secs(20),
        "the slow client was not cut off ({loris_time:?})"
    );

    // More idle connections than the server keeps open: the oldest are
    // closed, the scrape still gets through.
    let crowd: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(&metrics).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    let _ = scrape(&metrics);
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "a scrape behind 100 idle connections took {took:?}"
    );
    drop(crowd);

    assert_eq!(srv.stop(), Some(0));
}
