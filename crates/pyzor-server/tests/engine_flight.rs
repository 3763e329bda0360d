//! Several batches in flight per worker (`EngineConcurrency`, docs/server.md
//! "Concurrency"): with K engine threads per worker, a request naming a
//! digest that an unanswered request names goes behind it, so a check sent
//! after a report of the same digest sees the report, while other batches
//! (reports on the write threads, checks on the read thread) run at the
//! same time; and the worker's queue bound (requests waiting for the
//! engine) counts all K threads together.
//!
//! Clients sit on different loopback /24 networks (127.0.N.1: Linux answers
//! on all of 127.0.0.0/8), which the rate limiter allows by default. The
//! memory engine behind a probe (delay, gate, calls in flight) stands for a
//! slow database; MariaDB and PostgreSQL run the same order test through
//! the pyzord binary when present, and skip loudly otherwise. Every wait is
//! bounded.

mod common;
mod engine_support;
mod mixed_support;

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::start_ours;
use engine_support::{start_one_worker, start_with_distinct, start_workers};
use mixed_support::{parse_check, reply_code, run_bounded, MysqlScratch};
use pyzor_protocol::{Record, Timestamp};
use pyzor_store::memory::MemoryEngine;
use pyzor_store::{Engine, Op};

/// Client networks sending at once (127.0.1.0/24 … 127.0.NETS.0/24).
const NETS: u8 = 12;
/// Rounds per network; each round reports `WINDOW` new digests without
/// waiting, then checks them from a second socket of the same address.
const ROUNDS: u32 = 15;
const WINDOW: u32 = 8;
/// Bound of one network's rounds.
const DEADLINE: Duration = Duration::from_secs(120);
/// How long one reply may take on a loaded machine.
const REPLY_WAIT: Duration = Duration::from_secs(10);
/// The longest an engine call waits for the probe's gate.
const GATE_MAX: Duration = Duration::from_secs(30);

/// A memory engine that takes `delay` per call (a database round trip;
/// [`Probe::set_delay`] changes it),
/// waits while `closed` (bounded by [`GATE_MAX`]), and records how many
/// calls run at once. It does not say `may_block`, so it gets engine
/// threads.
struct Probe {
    inner: MemoryEngine,
    /// µs
    delay: AtomicU64,
    closed: AtomicBool,
    calls: AtomicUsize,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
}

impl Probe {
    fn new(delay: Duration, closed: bool) -> Arc<Probe> {
        Arc::new(Probe {
            inner: MemoryEngine::new(),
            delay: AtomicU64::new(delay.as_micros() as u64),
            closed: AtomicBool::new(closed),
            calls: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            most_in_flight: AtomicUsize::new(0),
        })
    }
}

impl Probe {
    fn set_delay(&self, delay: Duration) {
        self.delay.store(delay.as_micros() as u64, SeqCst);
    }
}

impl Engine for Probe {
    fn name(&self) -> &'static str {
        "probe"
    }
    fn execute(
        &self,
        ops: &[Op<'_>],
        now: Timestamp,
        out: &mut Vec<Option<Record>>,
    ) -> pyzor_store::Result<()> {
        self.calls.fetch_add(1, SeqCst);
        let running = self.in_flight.fetch_add(1, SeqCst) + 1;
        self.most_in_flight.fetch_max(running, SeqCst);
        let t0 = Instant::now();
        while self.closed.load(SeqCst) && t0.elapsed() < GATE_MAX {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_micros(self.delay.load(SeqCst)));
        let r = self.inner.execute(ops, now, out);
        self.in_flight.fetch_sub(1, SeqCst);
        r
    }
    pass_on_to_inner!();
}

/// Opens the probe's gate when the test ends, also when it fails.
struct OpenOnDrop(Arc<Probe>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.closed.store(false, SeqCst);
    }
}

fn datagram(op: &str, digest: &str, thread: u32) -> Vec<u8> {
    format!("Op: {op}\nOp-Digest: {digest}\nThread: {thread}\nPV: 2.1\n\n").into_bytes()
}

/// The `Thread` of a reply.
fn thread_of(reply: &[u8]) -> Option<u32> {
    String::from_utf8_lossy(reply)
        .lines()
        .find_map(|l| l.strip_prefix("Thread: "))
        .and_then(|t| t.trim().parse().ok())
}

/// Up to `n` replies on `s`, each within [`REPLY_WAIT`].
fn replies(s: &UdpSocket, n: usize) -> Vec<Vec<u8>> {
    s.set_read_timeout(Some(REPLY_WAIT)).unwrap();
    let mut buf = vec![0u8; 8192];
    let mut got = Vec::new();
    while got.len() < n {
        match s.recv_from(&mut buf) {
            Ok((k, _)) => got.push(buf[..k].to_vec()),
            Err(_) => break,
        }
    }
    got
}

/// One network's rounds: `WINDOW` reports of new digests from one socket,
/// then at once their checks from another socket of the same address.
/// Returns the checks that did not see their report, and the rounds done.
fn network_rounds(server: SocketAddr, net: u8, tag: &str) -> (Vec<String>, u32) {
    let ip = format!("127.0.{net}.1");
    let reporter = UdpSocket::bind((ip.as_str(), 0)).unwrap();
    let checker = UdpSocket::bind((ip.as_str(), 0)).unwrap();
    let end = Instant::now() + DEADLINE;
    let mut bad = Vec::new();
    let mut done = 0;
    for round in 0..ROUNDS {
        if Instant::now() >= end {
            break;
        }
        let digest = |i: u32| format!("{tag:>8.8}{net:08x}{round:08x}{i:016x}");
        for i in 0..WINDOW {
            reporter
                .send_to(&datagram("report", &digest(i), i), server)
                .unwrap();
        }
        for i in 0..WINDOW {
            checker
                .send_to(&datagram("check", &digest(i), i), server)
                .unwrap();
        }
        let checks = replies(&checker, WINDOW as usize);
        let reports = replies(&reporter, WINDOW as usize);
        assert_eq!(
            reports.iter().filter(|r| reply_code(r) == 200).count(),
            WINDOW as usize,
            "{ip} round {round}: not every report was answered 200"
        );
        assert_eq!(
            checks.len(),
            WINDOW as usize,
            "{ip} round {round}: checks lost"
        );
        for c in &checks {
            if parse_check(c) != Some((1, 0)) {
                bad.push(format!(
                    "{ip} round {round} digest {:?}: {}",
                    thread_of(c),
                    String::from_utf8_lossy(c).replace('\n', " | ")
                ));
            }
        }
        done += 1;
    }
    (bad, done)
}

/// [`NETS`] networks at once against `server`; panics naming every check
/// that overtook its report.
fn assert_per_network_order(engine: &str, server: SocketAddr) {
    let tag = format!("{:08x}", std::process::id());
    let threads: Vec<_> = (1..=NETS)
        .map(|net| {
            let tag = tag.clone();
            std::thread::spawn(move || network_rounds(server, net, &tag))
        })
        .collect();
    let mut bad = Vec::new();
    for t in threads {
        let (b, done) = t.join().expect("a client thread panicked");
        assert!(
            done >= 3,
            "{engine}: only {done} rounds within {DEADLINE:?}"
        );
        bad.extend(b);
    }
    assert!(
        bad.is_empty(),
        "{engine}: {} check(s) overtook the report sent before them from the same network:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

/// Four engine threads on one worker, a 2 ms engine: other networks'
/// batches run at the same time (more than one call in flight), and no
/// check overtakes its network's report.
#[test]
fn per_network_order_with_four_batches_in_flight() {
    let engine = Probe::new(Duration::from_millis(2), false);
    let server = start_one_worker(engine.clone(), 1024, 4);
    assert_per_network_order("memory, K = 4", server.local_addr());
    let most = engine.most_in_flight.load(SeqCst);
    assert!(
        (2..=4).contains(&most),
        "{most} engine calls ran at once with 4 engine threads on one worker"
    );
    server.shutdown();
}

/// Sends `n` datagrams of `op` (new digests) from one address, each after
/// the previous call began, and returns how many were answered 200.
fn one_network_burst(server: SocketAddr, op: &str, n: u32, engine: &Probe) -> usize {
    let s = UdpSocket::bind("127.0.77.1:0").unwrap();
    let tag = format!("{:08x}{op:>6.6}", std::process::id());
    for i in 0..n {
        let calls = engine.calls.load(SeqCst);
        s.send_to(&datagram(op, &format!("{tag}{i:026x}"), i), server)
            .unwrap();
        // the next datagram reaches the worker while this one's call runs
        let t0 = Instant::now();
        while engine.calls.load(SeqCst) == calls && t0.elapsed() < REPLY_WAIT {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    replies(&s, n as usize)
        .iter()
        .filter(|r| reply_code(r) == 200)
        .count()
}

/// Reports of different digests from ONE network do not wait for each
/// other's commit: with K = 4 they run on the three write threads at once
/// (when lanes were chosen by network, one network's reports ran one call
/// at a time). Checks from one network stay on one thread (the worker,
/// which makes its reads itself), so that they are merged into few calls;
/// their calls are kept shorter than a stuck call
/// (`own_calls::STUCK_AFTER`, 20 ms), after which the standby would
/// hand the next ones to the read thread.
#[test]
fn one_networks_reports_overlap_and_its_checks_do_not() {
    let engine = Probe::new(Duration::from_millis(40), false);
    let server = start_one_worker(engine.clone(), 1024, 4);
    assert_eq!(
        one_network_burst(server.local_addr(), "report", 6, &engine),
        6
    );
    let most = engine.most_in_flight.load(SeqCst);
    assert!(
        (2..=3).contains(&most),
        "{most} report calls of one network ran at once with 4 engine threads (3 write threads)"
    );
    engine.most_in_flight.store(0, SeqCst);
    engine.set_delay(Duration::from_millis(4));
    assert_eq!(
        one_network_burst(server.local_addr(), "check", 6, &engine),
        6
    );
    assert_eq!(
        engine.most_in_flight.load(SeqCst),
        1,
        "checks of one network ran on more than one thread"
    );
    let own = server.metrics().worker_reads.load(SeqCst);
    assert_eq!(own, 6, "reads the worker made itself, of 6");
    assert_eq!(server.metrics().standby_batches.load(SeqCst), 0);
    server.shutdown();
}

/// Sends `ops` (op, digest) from `s`, all at once, and returns how many
/// were answered 200.
fn round(s: &UdpSocket, server: SocketAddr, ops: &[(&str, String)]) -> usize {
    for (i, (op, digest)) in ops.iter().enumerate() {
        s.send_to(&datagram(op, digest, i as u32), server).unwrap();
    }
    replies(s, ops.len())
        .iter()
        .filter(|r| reply_code(r) == 200)
        .count()
}

/// A flood of writes (256 engine requests in a row without a read,
/// `engine_queue::WRITE_FLOOD`) is made by the worker itself, with
/// `DistinctWindow` applied to it as the engine threads apply it to theirs;
/// a check ends the flood, and the writes after it go to the engine
/// threads again. A batch whose own writes were all repeats gives back
/// what it held of the queue bound (before, the bound kept them for
/// ever).
#[test]
fn a_flood_of_reports_is_made_by_the_worker_until_a_check_comes() {
    let engine = Probe::new(Duration::from_micros(200), false);
    let server = start_with_distinct(engine.clone(), (1, 1024, 2), 600);
    let addr = server.local_addr();
    let m = server.metrics();
    let s = UdpSocket::bind("127.0.78.1:0").unwrap();
    let tag = format!("{:08x}", std::process::id());
    let fresh = |r: u32| -> Vec<(&str, String)> {
        (0..30)
            .map(|i| ("report", format!("{tag}{r:08x}{i:024x}")))
            .collect()
    };
    // 9 rounds of 30 new digests, each answered before the next: the
    // batches begun after the 256th report are the worker's own
    for r in 0..9 {
        assert_eq!(round(&s, addr, &fresh(r)), 30, "round {r}");
    }
    let flood = m.worker_writes.load(SeqCst);
    assert!(flood <= 14, "{flood} own writes before the 256th report");
    // one digest 30 times from one reporter: the worker's own, counted once
    let same = format!("{tag}{:032x}", 0xd15);
    let repeats = vec![("report", same.clone()); 30];
    assert_eq!(round(&s, addr, &repeats), 30);
    assert_eq!(
        m.worker_writes.load(SeqCst),
        flood + 1,
        "one own write kept"
    );
    assert_eq!(m.distinct_repeats.load(SeqCst), 29);
    // again: every own write is a repeat, none reaches the engine
    let calls = engine.calls.load(SeqCst);
    assert_eq!(round(&s, addr, &repeats), 30);
    assert_eq!(m.distinct_repeats.load(SeqCst), 59);
    assert_eq!(
        engine.calls.load(SeqCst),
        calls,
        "an engine call of nothing"
    );
    assert_eq!(
        m.engine_queued.load(SeqCst),
        0,
        "own writes that were all repeats still held in the queue bound"
    );
    let r = round(&s, addr, &[("check", same.clone())]);
    assert_eq!(r, 1);
    assert_eq!(
        engine.inner.get(same.as_bytes()).unwrap().unwrap().r_count,
        1
    );
    // the check ended the flood: these go to the engine threads
    let own = m.worker_writes.load(SeqCst);
    assert_eq!(round(&s, addr, &fresh(99)), 30);
    assert_eq!(
        m.worker_writes.load(SeqCst),
        own,
        "writes made by the worker after a check"
    );
    for r in (0..9).chain([99]) {
        for (_, d) in fresh(r) {
            let rec = engine.inner.get(d.as_bytes()).unwrap();
            assert_eq!(rec.map(|x| x.r_count), Some(1), "{d}");
        }
    }
    // an engine thread counts its requests answered just after sending
    let t0 = Instant::now();
    while m.engine_queued.load(SeqCst) > 0 && t0.elapsed() < REPLY_WAIT {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(m.engine_queued.load(SeqCst), 0);
    assert_eq!(m.standby_batches.load(SeqCst), 0);
    server.shutdown();
}

/// A report naming many digests (up to what a datagram holds), then at
/// once a check of each from another socket: every check goes behind the
/// report (its digests are in flight on the report's engine thread) and
/// sees it, although checks otherwise run on the read thread.
#[test]
fn checks_wait_for_a_many_digest_report_on_another_thread() {
    let engine = Probe::new(Duration::from_millis(20), false);
    let server = start_one_worker(engine.clone(), 1024, 4);
    let to = server.local_addr();
    let reporter = UdpSocket::bind("127.0.78.1:0").unwrap();
    let checker = UdpSocket::bind("127.0.78.1:0").unwrap();
    let tag = format!("{:08x}", std::process::id());
    let digests: Vec<String> = (0..150u32).map(|i| format!("{tag}{i:032x}")).collect();
    let mut report = String::from("Op: report\n");
    for d in &digests {
        report.push_str(&format!("Op-Digest: {d}\n"));
    }
    report.push_str("Thread: 9999\nPV: 2.1\n\n");
    assert!(report.len() < 8192, "{} bytes", report.len());
    reporter.send_to(report.as_bytes(), to).unwrap();
    for (i, d) in digests.iter().enumerate() {
        checker
            .send_to(&datagram("check", d, i as u32), to)
            .unwrap();
    }
    let r = replies(&reporter, 1);
    assert_eq!(r.len(), 1, "the report was not answered");
    assert_eq!(reply_code(&r[0]), 200, "{}", String::from_utf8_lossy(&r[0]));
    let checks = replies(&checker, digests.len());
    assert_eq!(checks.len(), digests.len(), "checks lost");
    let overtook: Vec<_> = checks
        .iter()
        .filter(|c| parse_check(c) != Some((1, 0)))
        .map(|c| thread_of(c))
        .collect();
    assert!(
        overtook.is_empty(),
        "checks that overtook the report: {overtook:?}"
    );
    server.shutdown();
}

/// K = 1 is the old single engine thread: one call at a time per worker.
#[test]
fn one_engine_thread_runs_one_batch_at_a_time() {
    let engine = Probe::new(Duration::from_millis(2), false);
    let server = start_one_worker(engine.clone(), 1024, 1);
    assert_per_network_order("memory, K = 1", server.local_addr());
    assert_eq!(engine.most_in_flight.load(SeqCst), 1);
    server.shutdown();
}

/// The queue bound is the sum over the engine threads: with the engine
/// stuck, 4 threads and a queue of 8, at most 8 of 64 requests wait (the
/// rest are answered 500 at once), and those 8 are answered once the
/// engine is back.
#[test]
fn the_queue_bound_counts_every_engine_thread() {
    const QUEUE: usize = 8;
    const SENT: usize = 64;
    let engine = Probe::new(Duration::ZERO, true);
    let _open = OpenOnDrop(Arc::clone(&engine));
    let server = start_one_worker(engine.clone(), QUEUE, 4);
    let to = server.local_addr();
    let socks: Vec<UdpSocket> = (1..=16u8)
        .map(|net| UdpSocket::bind((format!("127.0.{net}.1").as_str(), 0)).unwrap())
        .collect();
    for i in 0..SENT {
        let s = &socks[i % socks.len()];
        let d = format!("{i:040x}");
        s.send_to(&datagram("check", &d, i as u32), to).unwrap();
        // One request per receive batch, so that the bound is met exactly.
        std::thread::sleep(Duration::from_millis(2));
    }
    // Everything beyond the bound is answered at once, 500.
    let mut refused = 0;
    for s in &socks {
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut buf = [0u8; 2048];
        while let Ok((n, _)) = s.recv_from(&mut buf) {
            assert_eq!(
                reply_code(&buf[..n]),
                500,
                "a reply came while the engine was stuck: {}",
                String::from_utf8_lossy(&buf[..n])
            );
            refused += 1;
        }
    }
    let waiting = SENT - refused;
    assert!(
        (1..=QUEUE).contains(&waiting),
        "{waiting} requests waited for a stuck engine; the bound is {QUEUE} for all engine threads together"
    );
    assert!(
        server.metrics().engine_queue_full.load(SeqCst) as usize >= refused,
        "the refusals were not counted"
    );
    let stuck = engine.in_flight.load(SeqCst);
    assert!(
        (1..=4).contains(&stuck),
        "{stuck} engine calls were stuck with 4 engine threads"
    );
    engine.closed.store(false, SeqCst);
    let mut answered = 0;
    for s in &socks {
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut buf = [0u8; 2048];
        while let Ok((n, _)) = s.recv_from(&mut buf) {
            assert_eq!(reply_code(&buf[..n]), 200);
            answered += 1;
        }
    }
    assert_eq!(answered, waiting, "every waiting request is answered once");
    server.shutdown();
}

#[test]
fn per_network_order_with_batches_in_flight_mysql() {
    let test = "per_network_order_with_batches_in_flight_mysql";
    if !pyzor_testkit::mysql_available(test) || !pyzor_testkit::programs_available(test, &["mysql"])
    {
        return;
    }
    let scratch = match MysqlScratch::create("pyzor_engine_flight") {
        Ok(s) => s,
        Err(e) => {
            pyzor_testkit::skip(test, &format!("cannot create a MariaDB database: {e}"));
            return;
        }
    };
    let home = pyzor_testkit::temp_home();
    let args = ["--workers", "2", "--engine-concurrency", "4"];
    let server = start_ours(
        home.path(),
        &[&args[..], &["-e", "mysql", "--dsn", &scratch.dsn()]].concat(),
    );
    assert_per_network_order("mysql", ([127, 0, 0, 1], server.port).into());
    assert_eq!(server.stop(), Some(0));
}

/// `psql` as postgres over TCP, bounded; `Err` with its output.
fn psql(db: &str, sql: &str) -> Result<String, String> {
    let (ok, out) = run_bounded(
        Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-X", "-q", "-t", "-A"])
            .args(["-d", db, "-c", sql]),
        Duration::from_secs(30),
    );
    if ok {
        Ok(out)
    } else {
        Err(out)
    }
}

/// A PostgreSQL database of this test, dropped with the guard.
struct PgDatabase(String);

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.0);
        if let Err(e) = psql("postgres", &sql) {
            eprintln!("could not drop {}: {e}", self.0);
        }
    }
}

#[test]
fn per_network_order_with_batches_in_flight_postgres() {
    let test = "per_network_order_with_batches_in_flight_postgres";
    if !pyzor_testkit::postgres_available(test)
        || !pyzor_testkit::programs_available(test, &["psql"])
    {
        return;
    }
    let name = format!("pz_flight_{}", std::process::id());
    if let Err(e) = psql("postgres", &format!("CREATE DATABASE {name}")) {
        pyzor_testkit::skip(test, &format!("cannot create a PostgreSQL database: {e}"));
        return;
    }
    let _drop = PgDatabase(name.clone());
    let home = pyzor_testkit::temp_home();
    let dsn = format!("127.0.0.1:5432,postgres,,{name},digests");
    let args = ["--workers", "2", "--engine-concurrency", "4"];
    let server = start_ours(
        home.path(),
        &[&args[..], &["-e", "postgres", "--dsn", &dsn]].concat(),
    );
    assert_per_network_order("postgres", ([127, 0, 0, 1], server.port).into());
    assert_eq!(server.stop(), Some(0));
}

/// A memory engine whose calls naming [`Stuck::DIGEST`] wait until
/// released (at most [`GATE_MAX`]); the others answer at once.
struct Stuck {
    inner: MemoryEngine,
    held: AtomicBool,
    started: AtomicBool,
}

impl Stuck {
    const DIGEST: &'static str = "5700c4005700c4005700c4005700c4005700c400";
}

impl Engine for Stuck {
    fn name(&self) -> &'static str {
        "stuck"
    }
    fn execute(
        &self,
        ops: &[Op<'_>],
        now: Timestamp,
        out: &mut Vec<Option<Record>>,
    ) -> pyzor_store::Result<()> {
        if ops.iter().any(|op| op.digest() == Stuck::DIGEST.as_bytes()) {
            self.started.store(true, SeqCst);
            let t0 = Instant::now();
            while self.held.load(SeqCst) && t0.elapsed() < GATE_MAX {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        self.inner.execute(ops, now, out)
    }
    pass_on_to_inner!();
}

/// Releases a [`Stuck`] call when the test ends, also when it fails.
struct ReleaseOnDrop(Arc<Stuck>);

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        self.0.held.store(false, SeqCst);
    }
}

/// The engine threads of two workers take turns (one read call at a time),
/// but a call that does not end holds the other worker's reads only for a
/// bounded wait: while one worker's check is stuck in the engine, checks
/// from other networks that reach the other worker are answered. (Were the
/// turn waited for without bound, none would be until the stuck call
/// ended.) Twelve networks: the chance that all of them land on the stuck
/// worker is 2^-12.
#[test]
fn a_stuck_call_holds_the_other_workers_reads_only_briefly() {
    let engine = Arc::new(Stuck {
        inner: MemoryEngine::new(),
        held: AtomicBool::new(true),
        started: AtomicBool::new(false),
    });
    let _release = ReleaseOnDrop(engine.clone());
    let server = start_workers(engine.clone(), 2, 1024, 2);
    let addr = server.local_addr();
    let stuck = UdpSocket::bind("127.0.78.1:0").unwrap();
    stuck
        .send_to(&datagram("check", Stuck::DIGEST, 1), addr)
        .unwrap();
    let t0 = Instant::now();
    while !engine.started.load(SeqCst) && t0.elapsed() < REPLY_WAIT {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        engine.started.load(SeqCst),
        "the stuck check never reached the engine"
    );
    let socks: Vec<UdpSocket> = (1..=NETS)
        .map(|net| {
            let s = UdpSocket::bind(format!("127.0.{}.1:0", 100 + net)).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            let digest = format!("{:040x}", 0xf1ee_u32 + u32::from(net));
            s.send_to(&datagram("check", &digest, u32::from(net)), addr)
                .unwrap();
            s
        })
        .collect();
    let mut answered = vec![false; socks.len()];
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + REPLY_WAIT;
    while Instant::now() < deadline && !answered.iter().all(|&a| a) {
        for (s, a) in socks.iter().zip(answered.iter_mut()).filter(|(_, a)| !**a) {
            if let Ok((k, _)) = s.recv_from(&mut buf) {
                assert_eq!(reply_code(&buf[..k]), 200);
                *a = true;
            }
        }
        if answered.iter().any(|&a| a) && t0.elapsed() > Duration::from_secs(1) {
            break;
        }
    }
    let during = answered.iter().filter(|&&a| a).count();
    assert!(
        engine.held.load(SeqCst),
        "the stuck call was released early"
    );
    assert!(
        during >= 1,
        "no check of {NETS} networks was answered in {REPLY_WAIT:?} while another worker's call was stuck"
    );
    // released, the stuck worker answers what waited behind the call
    engine.held.store(false, SeqCst);
    let mut rest = 0;
    for (s, _) in socks.iter().zip(&answered).filter(|(_, a)| !**a) {
        s.set_read_timeout(Some(REPLY_WAIT)).unwrap();
        if let Ok((k, _)) = s.recv_from(&mut buf) {
            assert_eq!(reply_code(&buf[..k]), 200);
            rest += 1;
        }
    }
    assert_eq!(
        during + rest,
        socks.len(),
        "every check is answered once released"
    );
    assert_eq!(replies(&stuck, 1).len(), 1, "the stuck check is answered");
    server.shutdown();
}

/// Two workers whose engine threads take turns keep each network's order
/// (a check sent after its report sees it).
#[test]
fn per_network_order_with_two_workers_taking_turns() {
    let engine = Probe::new(Duration::from_micros(300), false);
    let server = start_workers(engine.clone(), 2, 1024, 2);
    assert_per_network_order("memory, 2 workers, K = 2", server.local_addr());
    server.shutdown();
}
