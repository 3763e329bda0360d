//! A flood from one network against normal traffic from another
//! (docs/security.md, "Floods and count inflation"): four sockets of
//! 127.0.7.0/24 send reports and checks in bursts (about 5 000 a second:
//! reports at 125 times the write limit, checks at 2.5 times the read
//! limit) for a bounded time while 127.0.8.1 sends checks one at a time; every check of the
//! normal network is answered, and the reports stored stay within the
//! flooding network's write budget (burst + rate × elapsed: one bucket,
//! a /24 reaches one worker). The flood stays below what a debug build
//! on a loaded machine can read: beyond that the kernel drops datagrams
//! of every sender before pyzord sees them, which no limit inside pyzord
//! can change (docs/security.md, "What it cannot do"); the full-rate
//! figures are bench/flood.py's. The only timing here is the reply
//! timeout of 5 s.

mod common;
use common::*;
use pyzor_testkit::free_tcp_port;

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Reports per second (and burst) of a network.
const WRITE_RATE: f64 = 20.0;
/// How long the flood lasts at most.
const FLOOD_FOR: Duration = Duration::from_secs(3);
/// Checks the normal network sends.
const NORMAL_CHECKS: u32 = 200;

fn home() -> tempfile::TempDir {
    let home = pyzor_testkit::temp_home();
    // Loopback is limited too (it is allowed by default).
    std::fs::write(home.path().join("config"), "[server]\nRateLimitAllow =\n").unwrap();
    std::fs::write(
        home.path().join("pyzord.access"),
        "all : anonymous : allow\n",
    )
    .unwrap();
    home
}

/// The sample `line` of the metrics page (0 when absent).
fn sample(page: &str, line: &str) -> u64 {
    metric_sample(page, line).unwrap_or(0)
}

/// Four sockets of 127.0.`net`.0/24 sending reports and checks in bursts
/// (about 5 000 a second) to `port` until [`FLOOD_FOR`] after `t0` or
/// [`Flood::stop`].
struct Flood {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Flood {
    fn start(net: u8, port: u16, t0: Instant) -> Flood {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let threads = (0..4)
            .map(|i| {
                let (stop, sent) = (Arc::clone(&stop), Arc::clone(&sent));
                std::thread::spawn(move || {
                    let s = UdpSocket::bind((format!("127.0.{net}.{}", i + 1), 0)).unwrap();
                    s.set_nonblocking(true).unwrap();
                    let mut buf = vec![0u8; 70000];
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) && t0.elapsed() < FLOOD_FOR {
                        let op = if n % 2 == 0 { "report" } else { "check" };
                        let d = format!(
                            "Op: {op}\nOp-Digest: {:040x}\nThread: {}\nPV: 2.1\n\n",
                            n % 64,
                            1024 + n % 60000
                        );
                        // A full socket buffer is the flood's problem.
                        let _ = s.send_to(d.as_bytes(), ("127.0.0.1", port));
                        n += 1;
                        if n % 25 == 0 {
                            while s.recv_from(&mut buf).is_ok() {}
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }
                    sent.fetch_add(n, Ordering::Relaxed);
                })
            })
            .collect();
        Flood {
            stop,
            sent,
            threads,
        }
    }

    /// Stop; the datagrams sent.
    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        self.sent.load(Ordering::Relaxed)
    }
}

/// [`NORMAL_CHECKS`] checks from `source`, one at a time, each answered 200
/// within 5 s; how many were answered before [`FLOOD_FOR`] after `t0`.
fn normal_checks(source: &str, port: u16, t0: Instant) -> u32 {
    let normal = UdpSocket::bind((source, 0)).unwrap();
    normal
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = vec![0u8; 70000];
    let mut during_flood = 0;
    for i in 0..NORMAL_CHECKS {
        let thread = 2000 + i;
        let d = format!("Op: check\nOp-Digest: {i:040x}\nThread: {thread}\nPV: 2.1\n\n");
        normal.send_to(d.as_bytes(), ("127.0.0.1", port)).unwrap();
        let (n, _) = normal
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("check {i} of {source}: no reply ({e})"));
        let r = String::from_utf8_lossy(&buf[..n]);
        assert!(
            r.starts_with("Code: 200\n") && r.contains(&format!("Thread: {thread}\n")),
            "{i}: {r}"
        );
        if t0.elapsed() < FLOOD_FOR {
            during_flood += 1;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    during_flood
}

/// pyzord with the memory engine, `workers` workers, the write limit
/// [`WRITE_RATE`] and metrics on `mport`.
fn start(home: &tempfile::TempDir, workers: u32, mport: u16) -> Proc {
    start_ours(
        home.path(),
        &[
            "-e",
            "memory",
            "--workers",
            &workers.to_string(),
            "--report-rate-limit",
            &WRITE_RATE.to_string(),
            "--metrics-address",
            &format!("127.0.0.1:{mport}"),
        ],
    )
}

/// The reports stored (from the metrics `page`), asserted to be at least
/// one and within one bucket (one network): burst + rate × `elapsed`, and
/// a little slack for the clock.
fn stored_within_budget(page: &str, elapsed: f64, sent: u64) -> u64 {
    let stored = sample(page, "pyzord_requests_total{op=\"report\",code=\"200\"}");
    let budget = WRITE_RATE + WRITE_RATE * elapsed + 2.0;
    assert!(
        stored >= 1 && stored as f64 <= budget,
        "{stored} reports stored in {elapsed:.2} s, budget {budget:.0} ({sent} sent)"
    );
    stored
}

#[test]
fn a_flooded_server_answers_every_check_of_another_network() {
    let home = home();
    let mport = free_tcp_port();
    let srv = start(&home, 1, mport);
    let port = srv.port;
    let t0 = Instant::now();
    let flood = Flood::start(7, port, t0);
    let during_flood = normal_checks("127.0.8.1", port, t0);
    let sent = flood.stop();
    let elapsed = t0.elapsed().as_secs_f64();
    let page = metrics_page(mport);
    let stored = stored_within_budget(&page, elapsed, sent);
    let limited = sample(&page, "pyzord_rate_limited_total");
    assert!(limited > 0, "the flood ({sent} datagrams) was not limited");
    eprintln!(
        "flood: {sent} datagrams, {limited} limited, {stored} reports stored in {elapsed:.2} s; \
         {during_flood} of {NORMAL_CHECKS} normal checks answered during the flood"
    );
    assert_eq!(srv.stop(), Some(0));
}

/// The penalty box (docs/security.md, "The penalty box"): with two
/// workers, 127.0.7.0/24 floods (reports at over 100 times the write
/// limit) while 127.0.30.1 — which the steering puts on the same worker —
/// sends checks. The flooding network is moved to the penalty socket (the
/// log and the metrics say so), every check of the other network is
/// answered, the moved network gets no fresh burst (the reports stored
/// stay within one budget), and some time after the flood it is let out.
#[test]
fn a_flooding_network_is_moved_to_the_penalty_socket() {
    let home = home();
    let mport = free_tcp_port();
    let srv = start(&home, 2, mport);
    let port = srv.port;
    let t0 = Instant::now();
    let flood = Flood::start(7, port, t0);
    let during_flood = normal_checks("127.0.30.1", port, t0);
    // Moved within the flood (it needs one second over the threshold).
    let moved = loop {
        let page = metrics_page(mport);
        if sample(&page, "pyzord_penalised_networks") == 1 || t0.elapsed() >= FLOOD_FOR {
            break page;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let sent = flood.stop();
    let elapsed = t0.elapsed().as_secs_f64();
    assert_eq!(
        sample(&moved, "pyzord_penalised_networks"),
        1,
        "{sent} sent"
    );
    let page = metrics_page(mport);
    assert_eq!(sample(&page, "pyzord_penalty_moves_total"), 1);
    assert_eq!(sample(&page, "pyzord_penalty_attach_errors_total"), 0);
    let log = std::fs::read_to_string(home.path().join("stderr.log")).unwrap();
    assert!(
        log.contains("127.0.7.0/24 sends over") && log.contains("moved to the penalty socket"),
        "{log}"
    );
    assert!(!log.contains("127.0.30.0/24 sends"), "{log}");
    let stored = stored_within_budget(&page, elapsed, sent);
    // Let out HOLD (10 s) after the flood; bounded wait.
    let out = loop {
        let page = metrics_page(mport);
        if sample(&page, "pyzord_penalised_networks") == 0
            || t0.elapsed() >= FLOOD_FOR + Duration::from_secs(25)
        {
            break page;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(sample(&out, "pyzord_penalised_networks"), 0);
    eprintln!(
        "penalty: {sent} datagrams in {elapsed:.2} s, {stored} reports stored; \
         {during_flood} of {NORMAL_CHECKS} checks of 127.0.30.1 answered during the flood; \
         let out after {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(srv.stop(), Some(0));
}
