//! Safe on the internet (docs/security.md): per-network rate limits on a
//! live pyzord (a report flood from one /24 is cut to its bucket while
//! another /24 is answered; the allow list; log mode), a replayed
//! signed whitelist counted once, and the count policies (`StrictDigests`,
//! `DistinctWindow`, `IgnoreEmptyDigest`).

mod common;
use common::*;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use pyzor_protocol::wire::client::{build_request, Credentials, Layout};
use pyzor_protocol::wire::Op;
use pyzor_testkit::free_tcp_port;

const ALICE_KEY: &str = "0123456789abcdef0123456789abcdef01234567";

/// A home whose `[server]` section is `config`; anonymous may do everything.
fn home(config: &str) -> tempfile::TempDir {
    let home = pyzor_testkit::temp_home();
    std::fs::write(home.path().join("config"), format!("[server]\n{config}")).unwrap();
    std::fs::write(
        home.path().join("pyzord.access"),
        "all : anonymous : allow\n",
    )
    .unwrap();
    home
}

/// [`home`] with the account alice and the access file `access`.
fn home_with_alice(config: &str, access: &str) -> tempfile::TempDir {
    let home = home(config);
    let passwd = format!("alice : {ALICE_KEY}\n");
    std::fs::write(home.path().join("pyzord.passwd"), passwd).unwrap();
    std::fs::write(home.path().join("pyzord.access"), access).unwrap();
    home
}

/// A client socket bound to `from` (any address of 127/8 is local).
fn client(from: &str) -> UdpSocket {
    let s = UdpSocket::bind((from, 0)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Send `dgram` from `s` and wait for its reply.
fn ask(s: &UdpSocket, port: u16, dgram: &[u8]) -> String {
    s.send_to(dgram, ("127.0.0.1", port)).unwrap();
    let mut buf = vec![0u8; 70000];
    let (n, _) = s
        .recv_from(&mut buf)
        .unwrap_or_else(|e| panic!("no reply to {dgram:?}: {e}"));
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn op(op: &str, digest: &str, thread: u32) -> Vec<u8> {
    format!("Op: {op}\nOp-Digest: {digest}\nThread: {thread}\nPV: 2.1\n\n").into_bytes()
}

/// `Name: value` of a reply, as a number.
fn field(reply: &str, name: &str) -> i64 {
    reply
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} in {reply:?}"))
        .parse()
        .unwrap()
}

/// The value of the counter `name` on the metrics endpoint.
fn metric(mport: u16, name: &str) -> u64 {
    let page = metrics_page(mport);
    metric_sample(&page, name).unwrap_or_else(|| panic!("no {name} in {page}"))
}

#[test]
fn a_report_flood_is_cut_to_its_bucket_and_other_networks_are_answered() {
    let home = home("RateLimitAllow =\n");
    let mport = free_tcp_port();
    let srv = start_ours(
        home.path(),
        &[
            "-e",
            "memory",
            "--report-rate-limit",
            "10",
            "--metrics-address",
            &format!("127.0.0.1:{mport}"),
        ],
    );
    let flood = client("127.0.5.1");
    let other = client("127.0.6.1");
    let t0 = Instant::now();
    let report = op("report", "flood", 1);
    for round in 0..10 {
        for _ in 0..100 {
            flood.send_to(&report, ("127.0.0.1", srv.port)).unwrap();
        }
        let r = ask(&other, srv.port, &op("check", "flood", 100 + round));
        assert!(r.starts_with("Code: 200\n"), "{r}");
    }
    // Some limited reports are answered (the slip), with a short error.
    let mut buf = vec![0u8; 70000];
    let mut limited_replies = 0;
    flood
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    for _ in 0..1000 {
        match flood.recv_from(&mut buf) {
            Ok((n, _)) if buf[..n].starts_with(b"Code: 503\n") => limited_replies += 1,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    assert!(limited_replies > 0, "no 503 reply to the flood");
    let count = field(&ask(&other, srv.port, &op("check", "flood", 7)), "Count");
    let elapsed = t0.elapsed().as_secs_f64();
    let bound = 10.0 + 10.0 * elapsed + 2.0;
    assert!(
        count >= 1 && (count as f64) <= bound,
        "stored {count} reports in {elapsed:.2} s (at most {bound:.0})"
    );
    assert!(metric(mport, "pyzord_rate_limited_total") > 500);
    assert!(metric(mport, "pyzord_rate_dropped_total") > 0);
    assert_eq!(srv.stop(), Some(0));
}

#[test]
fn the_allow_list_exempts_a_network() {
    let home = home("RateLimitAllow = 10.0.0.0/8 127.0.7.0/24\n");
    let mport = free_tcp_port();
    let srv = start_ours(
        home.path(),
        &[
            "-e",
            "memory",
            "--report-rate-limit",
            "10",
            "--metrics-address",
            &format!("127.0.0.1:{mport}"),
        ],
    );
    let listed = client("127.0.7.1");
    for i in 0..100 {
        let r = ask(&listed, srv.port, &op("report", "listed", i));
        assert!(r.starts_with("Code: 200\n"), "{i}: {r}");
    }
    let r = ask(&listed, srv.port, &op("check", "listed", 1));
    assert_eq!(field(&r, "Count"), 100);
    assert!(metric(mport, "pyzord_rate_allowlisted_total") >= 101);
    assert_eq!(metric(mport, "pyzord_rate_limited_total"), 0);
    assert_eq!(srv.stop(), Some(0));
}

#[test]
fn log_mode_stores_everything_and_counts() {
    let home = home("RateLimitAllow =\nRateLimitMode = log\n");
    let mport = free_tcp_port();
    let srv = start_ours(
        home.path(),
        &[
            "-e",
            "memory",
            "--report-rate-limit",
            "10",
            "--metrics-address",
            &format!("127.0.0.1:{mport}"),
        ],
    );
    let c = client("127.0.8.1");
    let t0 = Instant::now();
    for i in 0..100 {
        let r = ask(&c, srv.port, &op("report", "logged", i));
        assert!(r.starts_with("Code: 200\n"), "{i}: {r}");
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let r = ask(&c, srv.port, &op("check", "logged", 1));
    assert_eq!(field(&r, "Count"), 100);
    let limited = metric(mport, "pyzord_rate_limited_total");
    // Everything beyond the burst and the refill would have been limited.
    let over = 100.0 - (10.0 + 10.0 * elapsed) - 2.0;
    assert!(
        limited >= 1 && limited as f64 >= over,
        "{limited} in {elapsed:.2} s"
    );
    assert_eq!(metric(mport, "pyzord_rate_dropped_total"), 0);
    let port = srv.port;
    assert_eq!(srv.stop(), Some(0));
    let log = std::fs::read_to_string(home.path().join("stderr.log")).unwrap();
    assert!(log.contains("RateLimitMode = log"), "{log}");
    let _ = port;
}

#[test]
fn a_replayed_signed_whitelist_counts_once() {
    let home = home_with_alice("", "check : anonymous : allow\nall : alice : allow\n");
    let srv = start_ours(home.path(), &["-e", "memory"]);
    let dg = signed(Op::Whitelist, "replayed", 4242);
    // From two networks: a replay may come from anywhere.
    let (a, b) = (client("127.0.9.1"), client("127.0.10.1"));
    let first = ask(&a, srv.port, &dg);
    assert!(first.starts_with("Code: 200\n"), "{first}");
    for i in 0..99 {
        let s = if i % 2 == 0 { &b } else { &a };
        let r = ask(s, srv.port, &dg);
        assert!(
            r.starts_with("Code: 401\nDiag: Unauthorized: Request already seen.\n"),
            "{i}: {r}"
        );
    }
    let r = ask(&a, srv.port, &op("check", "replayed", 1));
    assert_eq!(field(&r, "WL-Count"), 1, "{r}");
    assert_eq!(srv.stop(), Some(0));
}

/// `--strict-digests` and `StrictDigests = True` reach the workers: a
/// report of a digest that is not 40 lower-case hex digits is refused 400
/// and not counted; without them it is counted, as by the reference.
#[test]
fn strict_digests_on_a_live_server() {
    let sha1 = "2aedaac999d71421c9ee49b9d81f627a7bc570aa";
    for (config, flags, strict) in [
        ("", &["-e", "memory", "--strict-digests"][..], true),
        ("StrictDigests = True\n", &["-e", "memory"][..], true),
        ("", &["-e", "memory"][..], false),
    ] {
        let home = home(config);
        let srv = start_ours(home.path(), flags);
        let c = client("127.0.0.1");
        let r = ask(&c, srv.port, &op("report", "junk", 1));
        if strict {
            assert!(
                r.starts_with("Code: 400\nDiag: Bad request: Invalid digest.\n"),
                "{r}"
            );
        } else {
            assert!(r.starts_with("Code: 200\n"), "{r}");
        }
        let r = ask(&c, srv.port, &op("check", "junk", 2));
        assert_eq!(field(&r, "Count"), i64::from(!strict), "{r}");
        let r = ask(&c, srv.port, &op("report", sha1, 3));
        assert!(r.starts_with("Code: 200\n"), "{r}");
        let r = ask(&c, srv.port, &op("check", sha1, 4));
        assert_eq!(field(&r, "Count"), 1, "{r}");
        assert_eq!(srv.stop(), Some(0));
    }
}

/// The Redis db of this file's tests (docs: each test file its own).
const REDIS_DB: u32 = 2;

/// A signed `op` of `digest` by alice at the current time.
fn signed(op_: Op, digest: &str, thread: u32) -> Vec<u8> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut dg = Vec::new();
    build_request(
        op_,
        &[digest],
        thread,
        &Credentials::new("alice", ALICE_KEY),
        now,
        Layout::Single,
        &mut dg,
    )
    .unwrap();
    dg
}

/// `DistinctWindow` on a live pyzord, with an engine the worker calls
/// (memory) and one its engine thread calls (redis, db 2, when running):
/// two reports from one /24 in the window count once, from two /24s
/// twice; whitelists alike; a signed account is one reporter from any
/// network; after the window the same network counts again; every repeat
/// is answered 200 and counted in the metrics. Off (the default), the
/// reference's counts.
#[test]
fn distinct_reporters_on_a_live_server() {
    let test = "distinct_reporters_on_a_live_server";
    let mut engines = vec![("memory", String::new())];
    if pyzor_testkit::redis_available(test) {
        engines.push(("redis", format!("127.0.0.1,6379,,{REDIS_DB}")));
    }
    let run = std::process::id();
    for (engine, dsn) in engines {
        let home = home_with_alice(
            "RateLimitAllow =\nDistinctWindow = 2\n",
            "all : anonymous : allow\nall : alice : allow\n",
        );
        let mport = free_tcp_port();
        let maddr = format!("127.0.0.1:{mport}");
        let mut flags = vec!["-e", engine, "--metrics-address", &maddr];
        if !dsn.is_empty() {
            flags.extend(["--dsn", &dsn]);
        }
        let srv = start_ours(home.path(), &flags);
        let digest = format!("{run:08x}{:032x}", engine.len());
        let (a1, a2, b) = (
            client("127.0.30.1"),
            client("127.0.30.2"),
            client("127.0.31.1"),
        );
        let counts = |s: &UdpSocket| {
            let r = ask(s, srv.port, &op("check", &digest, 99));
            (field(&r, "Count"), field(&r, "WL-Count"))
        };
        for (i, s) in [&a1, &a2].into_iter().enumerate() {
            for o in ["report", "whitelist"] {
                let r = ask(s, srv.port, &op(o, &digest, i as u32));
                assert!(r.starts_with("Code: 200\n"), "{engine} {o}: {r}");
            }
        }
        assert_eq!(counts(&a1), (1, 1), "{engine}: one /24");
        ask(&b, srv.port, &op("report", &digest, 3));
        assert_eq!(counts(&b), (2, 1), "{engine}: a second /24");
        // alice from a1's network is another reporter; from b's, herself.
        let r = ask(&a1, srv.port, &signed(Op::Report, &digest, 4));
        assert!(r.starts_with("Code: 200\n"), "{engine}: {r}");
        let r = ask(&b, srv.port, &signed(Op::Report, &digest, 5));
        assert!(r.starts_with("Code: 200\n"), "{engine}: {r}");
        assert_eq!(counts(&a1), (3, 1), "{engine}: alice counts once");
        assert_eq!(metric(mport, "pyzord_distinct_repeats_total"), 3);
        std::thread::sleep(Duration::from_millis(2100));
        ask(&a2, srv.port, &op("report", &digest, 6));
        assert_eq!(counts(&a2), (4, 1), "{engine}: after the window");
        assert_eq!(srv.stop(), Some(0));
        if engine == "redis" {
            let key = format!("pyzord.digest_v1.{digest}");
            let out = std::process::Command::new("redis-cli")
                .args(["-n", &REDIS_DB.to_string(), "DEL", &key])
                .output();
            assert!(out.is_ok_and(|o| o.status.success()), "cannot remove {key}");
        }
    }
    // Off by default: each report counts, as with the reference.
    let home = home("RateLimitAllow =\n");
    let srv = start_ours(home.path(), &["-e", "memory"]);
    let (a1, a2) = (client("127.0.30.1"), client("127.0.30.2"));
    ask(&a1, srv.port, &op("report", "off", 1));
    ask(&a2, srv.port, &op("report", "off", 2));
    assert_eq!(
        field(&ask(&a1, srv.port, &op("check", "off", 3)), "Count"),
        2
    );
    assert_eq!(srv.stop(), Some(0));
}

/// `--ignore-empty-digest` and `IgnoreEmptyDigest = True`: the empty-body
/// digest is reported and whitelisted with 200 and stored nowhere; check
/// and info answer zeros; the metrics count each. Off, it counts.
#[test]
fn ignore_empty_digest_on_a_live_server() {
    let empty = "da39a3ee5e6b4b0d3255bfef95601890afd80709";
    for (config, flag, ignore) in [
        ("", Some("--ignore-empty-digest"), true),
        ("IgnoreEmptyDigest = True\n", None, true),
        ("", None, false),
    ] {
        let home = home(config);
        let mport = free_tcp_port();
        let maddr = format!("127.0.0.1:{mport}");
        let mut flags = vec!["-e", "memory", "--metrics-address", &maddr];
        flags.extend(flag);
        let srv = start_ours(home.path(), &flags);
        let c = client("127.0.0.1");
        for (i, o) in ["report", "whitelist"].into_iter().enumerate() {
            let r = ask(&c, srv.port, &op(o, empty, i as u32));
            assert!(r.starts_with("Code: 200\n"), "{r}");
        }
        let n = i64::from(!ignore);
        let r = ask(&c, srv.port, &op("check", empty, 3));
        assert_eq!((field(&r, "Count"), field(&r, "WL-Count")), (n, n), "{r}");
        let r = ask(&c, srv.port, &op("info", empty, 4));
        assert_eq!((field(&r, "Count"), field(&r, "WL-Count")), (n, n), "{r}");
        assert_eq!(field(&r, "Entered") == 0, ignore, "{r}");
        let ignored = metric(mport, "pyzord_empty_digest_ignored_total");
        assert_eq!(ignored, if ignore { 4 } else { 0 });
        assert_eq!(srv.stop(), Some(0));
    }
}
