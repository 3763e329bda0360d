//! A server whose engine is stuck (a PostgreSQL table locked by another
//! session, a Redis server that stopped answering) keeps answering what
//! needs no engine — ping, pong, refusals, ops without digests — at once,
//! answers every stuck request once the engine returns (or 500 at once
//! when the worker's engine queue is full), keeps one client's requests in
//! order, and drains the queue at shutdown. docs/server.md, "Concurrency".
//!
//! The engine is a memory engine behind a gate: every `execute` waits
//! until the test opens the gate (at most [`GATE_MAX`]). Live servers are
//! started through the library API on a port the OS picks.

mod engine_support;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use engine_support::start_one_worker;
use pyzor_protocol::{Record, Timestamp};
use pyzor_server::server::Server;
use pyzor_store::memory::MemoryEngine;
use pyzor_store::{Engine, Op, StoreError};

/// The longest an engine call waits for the gate (bounds a failing test).
const GATE_MAX: Duration = Duration::from_secs(30);
/// How long a reply that needs no engine may take on a loaded machine.
const PROMPT: Duration = Duration::from_secs(3);
/// How long a reply may take once the engine is free again.
const EVENTUALLY: Duration = Duration::from_secs(10);

/// A memory engine whose calls wait for a gate. It says nothing about
/// `may_block`: an engine that does not say it never blocks is treated as
/// one that may.
struct Gated {
    inner: MemoryEngine,
    open: Mutex<bool>,
    cv: Condvar,
    /// `execute` calls that started.
    calls: AtomicUsize,
    /// Calls fail as unavailable once through the gate.
    fail: AtomicBool,
}

impl Gated {
    fn new(open: bool) -> Arc<Gated> {
        Arc::new(Gated {
            inner: MemoryEngine::new(),
            open: Mutex::new(open),
            cv: Condvar::new(),
            calls: AtomicUsize::new(0),
            fail: AtomicBool::new(false),
        })
    }

    fn set(&self, open: bool) {
        *self.open.lock().unwrap() = open;
        self.cv.notify_all();
    }

    /// Wait (bounded) until at least `n` engine calls have started.
    fn wait_calls(&self, n: usize) {
        let t0 = Instant::now();
        while self.calls.load(SeqCst) < n {
            assert!(
                t0.elapsed() < EVENTUALLY,
                "the engine was not called {n} times"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Engine for Gated {
    fn name(&self) -> &'static str {
        "gated"
    }
    fn execute(
        &self,
        ops: &[Op<'_>],
        now: Timestamp,
        out: &mut Vec<Option<Record>>,
    ) -> pyzor_store::Result<()> {
        self.calls.fetch_add(1, SeqCst);
        let g = self.open.lock().unwrap();
        let _g = self.cv.wait_timeout_while(g, GATE_MAX, |open| !*open);
        if self.fail.load(SeqCst) {
            return Err(StoreError::Unavailable("gated engine says no".into()));
        }
        self.inner.execute(ops, now, out)
    }
    pass_on_to_inner!();
}

/// Opens the gate when the test ends, also when it fails, so that no
/// server thread stays blocked.
struct OpenOnDrop(Arc<Gated>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

/// One worker (so that every client lands on the stuck one), one engine
/// thread.
fn start(engine: Arc<Gated>, engine_queue: usize) -> Server {
    start_one_worker(engine, engine_queue, 1)
}

/// A client socket on loopback.
struct Client {
    sock: UdpSocket,
    server: SocketAddr,
}

impl Client {
    fn new(server: &Server) -> Client {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        Client {
            sock,
            server: server.local_addr(),
        }
    }

    fn send(&self, dgram: &str) {
        self.sock.send_to(dgram.as_bytes(), self.server).unwrap();
    }

    /// The next reply within `wait`, if any.
    fn recv(&self, wait: Duration) -> Option<String> {
        self.sock.set_read_timeout(Some(wait)).unwrap();
        let mut buf = [0u8; 9000];
        let (n, _) = self.sock.recv_from(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// Every reply that arrives within `wait` (at most `max`).
    fn recv_all(&self, max: usize, wait: Duration) -> Vec<String> {
        let until = Instant::now() + wait;
        let mut got = Vec::new();
        while got.len() < max {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match self.recv(left) {
                Some(r) => got.push(r),
                None => break,
            }
        }
        got
    }
}

fn check(thread: u32, digest: &str) -> String {
    format!("Op: check\nOp-Digest: {digest}\nThread: {thread}\nPV: 2.1\n\n")
}

fn report(thread: u32, digest: &str) -> String {
    format!("Op: report\nOp-Digest: {digest}\nThread: {thread}\nPV: 2.1\n\n")
}

fn counts(thread: u32, count: u32) -> String {
    format!("Code: 200\nDiag: OK\nPV: 2.1\nThread: {thread}\nCount: {count}\nWL-Count: 0\n\n")
}

const UNAVAILABLE: &str =
    "Code: 500\nDiag: Internal Server Error: Database temporarily unavailable.\nPV: 2.1\n";

#[test]
fn requests_that_need_no_engine_are_answered_while_it_is_stuck() {
    let server = answered_while_stuck(1, false);
    assert_eq!(server.metrics().worker_reads.load(SeqCst), 0);
    server.shutdown();
}

/// With two engine threads the worker makes its reads itself
/// (docs/server.md, "Concurrency"), so the stuck check holds the worker,
/// not an engine thread: its standby thread answers in its stead.
#[test]
fn a_worker_stuck_in_its_own_read_is_relieved_by_its_standby() {
    let server = answered_while_stuck(2, false);
    let m = server.metrics();
    assert_eq!(
        m.worker_reads.load(SeqCst),
        1,
        "the stuck check was the worker's own"
    );
    assert!(m.standby_batches.load(SeqCst) >= 1, "the standby answered");
    server.shutdown();
}

/// In a flood of reports the worker makes its writes itself
/// (docs/server.md, "Floods of writes"): a report stuck in the worker's
/// own commit is relieved by the standby in the same way.
#[test]
fn a_worker_stuck_in_its_own_commit_is_relieved_by_its_standby() {
    let server = answered_while_stuck(2, true);
    let m = server.metrics();
    assert!(
        m.worker_writes.load(SeqCst) >= 1,
        "the stuck report was the worker's own"
    );
    assert!(m.standby_batches.load(SeqCst) >= 1, "the standby answered");
    server.shutdown();
}

/// A check (with `flood`: a report, after a flood of 260 reports) stuck in
/// the engine; what needs no engine is answered at once meanwhile, the
/// stuck request once the engine returns. `lanes` engine threads.
fn answered_while_stuck(lanes: usize, flood: bool) -> Server {
    let engine = Gated::new(flood);
    let _open = OpenOnDrop(Arc::clone(&engine));
    let server = start_one_worker(engine.clone(), 64, lanes);
    if flood {
        let flooder = Client::new(&server);
        for r in 0..10u32 {
            for i in 0..26u32 {
                flooder.send(&report(i, &format!("{r:04x}{i:04x}")));
            }
            assert_eq!(
                flooder.recv_all(26, EVENTUALLY).len(),
                26,
                "flood round {r}"
            );
        }
        engine.set(false);
    }
    let calls = engine.calls.load(SeqCst);
    let stuck = Client::new(&server);
    let (request, answer) = match flood {
        true => (
            report(1, "aa"),
            "Code: 200\nDiag: OK\nPV: 2.1\nThread: 1\n\n".to_owned(),
        ),
        false => (check(1, "aa"), counts(1, 0)),
    };
    stuck.send(&request);
    engine.wait_calls(calls + 1);

    let other = Client::new(&server);
    let bare = |thread: u32| format!("Code: 200\nDiag: OK\nPV: 2.1\nThread: {thread}\n\n");
    for (request, reply) in [
        ("Op: ping\nThread: 2\nPV: 2.1\n\n".to_owned(), bare(2)),
        (
            "Op: pong\nThread: 3\nPV: 2.1\nOp-Digest: aa\n\n".to_owned(),
            "Code: 200\nDiag: OK\nPV: 2.1\nThread: 3\nCount: 9223372036854775807\nWL-Count: 0\n\n"
                .to_owned(),
        ),
        // No Op-Digest: no engine call (the reference's `if dispatch and digests`).
        ("Op: check\nThread: 4\nPV: 2.1\n\n".to_owned(), bare(4)),
        (
            "Op: check\nOp-Digest: aa\nThread: 5\n\n".to_owned(),
            "Code: 400\nDiag: Bad request: Protocol Version not specified in request\nPV: 2.1\nThread: 5\n\n".to_owned(),
        ),
        (
            "Op: whitelist\nOp-Digest: aa\nThread: 6\nPV: 2.1\n\n".to_owned(),
            "Code: 403\nDiag: Forbidden: User is not authorized to request the operation.\nPV: 2.1\nThread: 6\n\n".to_owned(),
        ),
    ] {
        other.send(&request);
        let got = other.recv(PROMPT);
        assert_eq!(
            got.as_deref(),
            Some(reply.as_str()),
            "answered while the engine is stuck: {request:?}"
        );
    }
    assert_eq!(stuck.recv(Duration::from_millis(200)), None, "still stuck");

    engine.set(true);
    assert_eq!(
        stuck.recv(EVENTUALLY),
        Some(answer),
        "answered once the engine returns"
    );
    server
}

#[test]
fn a_full_engine_queue_answers_500_at_once() {
    const QUEUE: usize = 4;
    let engine = Gated::new(false);
    let _open = OpenOnDrop(Arc::clone(&engine));
    let server = start(Arc::clone(&engine), QUEUE);
    let client = Client::new(&server);
    client.send(&check(1, "bb"));
    engine.wait_calls(1);
    // Seven more: whatever fits in the queue waits, the rest is refused
    // at once. At most QUEUE requests (the stuck one included) wait.
    for t in 2..=8 {
        client.send(&check(t, "bb"));
    }
    let early = client.recv_all(8, PROMPT);
    assert!(
        early.len() >= 8 - QUEUE,
        "at least {} refused at once: {early:?}",
        8 - QUEUE
    );
    assert!(
        early.iter().all(|r| r.starts_with(UNAVAILABLE)),
        "only refusals before the engine returns: {early:?}"
    );
    let full = server.metrics().engine_queue_full.load(SeqCst);
    assert_eq!(full, early.len() as u64, "each refusal counted");
    assert_eq!(
        server
            .metrics()
            .requests_for(Some(pyzor_protocol::wire::Op::Check), 500),
        full
    );
    // A ping still passes while the queue is full.
    let other = Client::new(&server);
    other.send("Op: ping\nThread: 99\nPV: 2.1\n\n");
    assert!(other
        .recv(PROMPT)
        .is_some_and(|r| r.starts_with("Code: 200\n")));

    engine.set(true);
    let late = client.recv_all(8 - early.len(), EVENTUALLY);
    assert_eq!(
        late.len(),
        8 - early.len(),
        "every request answered: {late:?}"
    );
    assert!(
        late.iter()
            .all(|r| r.starts_with("Code: 200\n") && r.contains("\nCount: 0\n")),
        "the queued ones get the engine's answer: {late:?}"
    );
    assert!(
        late.iter().any(|r| r == &counts(1, 0)),
        "the stuck one too: {late:?}"
    );
    server.shutdown();
}

#[test]
fn one_clients_report_then_check_are_answered_in_order() {
    let engine = Gated::new(false);
    let _open = OpenOnDrop(Arc::clone(&engine));
    let server = start(Arc::clone(&engine), 64);
    let client = Client::new(&server);
    // Queued behind a stuck call: a fire-and-forget report, then checks of
    // the same digest; each check must see every report sent before it.
    client.send(&check(1, "other"));
    engine.wait_calls(1);
    client.send(&report(2, "cc"));
    client.send(&check(3, "cc"));
    client.send(&report(4, "cc"));
    client.send(&check(5, "cc"));
    engine.set(true);
    let mut got = client.recv_all(5, EVENTUALLY);
    got.sort_by_key(|r| r.lines().nth(3).map(str::to_owned));
    assert_eq!(got.len(), 5, "{got:?}");
    assert_eq!(got[2], counts(3, 1), "{got:?}");
    assert_eq!(got[4], counts(5, 2), "{got:?}");
    // And without a stall, one request at a time.
    for i in 0..20u32 {
        let d = format!("d{i}");
        client.send(&report(100 + i, &d));
        client.send(&check(200 + i, &d));
        let replies = client.recv_all(2, EVENTUALLY);
        assert!(replies.contains(&counts(200 + i, 1)), "{replies:?}");
    }
    server.shutdown();
}

#[test]
fn shutdown_answers_the_queued_requests() {
    let engine = Gated::new(false);
    let _open = OpenOnDrop(Arc::clone(&engine));
    let server = start(Arc::clone(&engine), 64);
    let client = Client::new(&server);
    client.send(&check(1, "ee"));
    engine.wait_calls(1);
    client.send(&report(2, "ee"));
    client.send(&check(3, "ee"));
    std::thread::sleep(Duration::from_millis(300));
    let stopping = std::thread::spawn(move || server.shutdown());
    std::thread::sleep(Duration::from_millis(300));
    engine.set(true);
    let mut got = client.recv_all(3, EVENTUALLY);
    got.sort_by_key(|r| r.lines().nth(3).map(str::to_owned));
    assert_eq!(
        got,
        vec![
            counts(1, 0),
            "Code: 200\nDiag: OK\nPV: 2.1\nThread: 2\n\n".to_owned(),
            counts(3, 1)
        ]
    );
    let t0 = Instant::now();
    while !stopping.is_finished() {
        assert!(t0.elapsed() < EVENTUALLY, "shutdown did not return");
        std::thread::sleep(Duration::from_millis(20));
    }
    stopping.join().unwrap();
}

/// A database that is down at shutdown costs one engine failure, not one
/// per waiting batch: once a call failed as unavailable after the stop,
/// the rest of the queue is answered 500 without calling the engine.
#[test]
fn shutdown_with_the_database_down_answers_the_rest_500_at_once() {
    let engine = Gated::new(false);
    engine.fail.store(true, SeqCst);
    let _open = OpenOnDrop(Arc::clone(&engine));
    let server = start(Arc::clone(&engine), 64);
    let client = Client::new(&server);
    client.send(&check(1, "ff"));
    engine.wait_calls(1);
    client.send(&check(2, "ff"));
    client.send(&report(3, "ff"));
    std::thread::sleep(Duration::from_millis(300));
    let metrics = Arc::clone(server.metrics());
    let stopping = std::thread::spawn(move || server.shutdown());
    std::thread::sleep(Duration::from_millis(300));
    engine.set(true);
    let got = client.recv_all(3, EVENTUALLY);
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(got.iter().all(|r| r.starts_with(UNAVAILABLE)), "{got:?}");
    let t0 = Instant::now();
    while !stopping.is_finished() {
        assert!(t0.elapsed() < EVENTUALLY, "shutdown did not return");
        std::thread::sleep(Duration::from_millis(20));
    }
    stopping.join().unwrap();
    assert_eq!(
        engine.calls.load(SeqCst),
        1,
        "no engine call after the failure"
    );
    assert_eq!(metrics.engine_errors.load(SeqCst), 1);
}
