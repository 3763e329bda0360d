//! Processing one receive batch: parse every datagram, decide it
//! (authentication, PV, ACL, dispatch), run **one** engine batch for all
//! reads and increments (one transaction, one commit), then format every
//! reply. Replies are only sent after the engine batch returned, so an
//! acknowledged report is durable to the engine's level.
//!
//! [`Processor`] keeps all per-request state in vectors reused across
//! batches; the check path allocates nothing per request.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

use log::Level;
use pyzor_protocol::record::Timestamp;
use pyzor_protocol::wire::server::{
    evaluate, format_reply, usage_line, Failure, Parsed, ReplyBody,
};
use pyzor_protocol::wire::{Op, PONG_COUNT};
use pyzor_protocol::Record;
use pyzor_store::{Engine, StoreError};

use crate::forward::ForwardQueue;
use crate::logging::Logs;
use crate::metrics::{Metrics, Tally};
use crate::rules::{RuleSet, Rules};

/// Everything the workers share.
pub struct Shared {
    pub engine: Arc<dyn Engine>,
    pub rules: Arc<RuleSet>,
    pub metrics: Arc<Metrics>,
    pub logs: Option<Logs>,
    pub forward: Option<ForwardQueue>,
    pub stop: Arc<AtomicBool>,
}

#[derive(Clone, Debug)]
enum Decision {
    Fail(Failure),
    /// Accepted; `ops` = index range into the engine batch.
    Ok {
        op: Op,
        ops_start: usize,
        ops_len: usize,
    },
}

/// Per-worker reusable state.
pub struct Processor {
    parsed: Vec<Parsed>,
    decisions: Vec<Decision>,
    records: Vec<Option<Record>>,
    scratch: Vec<u8>,
    /// The engine batch's operation list, kept between batches (empty).
    ops_buf: Vec<pyzor_store::Op<'static>>,
    /// Per-request engine failures; only filled when a refused batch was
    /// re-run request by request ([`Processor::execute_one_by_one`]).
    req_fail: Vec<Option<Failure>>,
    rules: Arc<Rules>,
    rules_gen: u64,
    /// This batch's reply counts, added to the shared metrics at its end.
    tally: Tally,
}

impl Processor {
    pub fn new(shared: &Shared) -> Self {
        Processor {
            parsed: Vec::new(),
            decisions: Vec::new(),
            records: Vec::new(),
            scratch: Vec::with_capacity(1024),
            ops_buf: Vec::new(),
            req_fail: Vec::new(),
            rules: shared.rules.current(),
            rules_gen: shared.rules.generation(),
            tally: Tally::default(),
        }
    }

    /// Process `n` datagrams: `datagram(i)` gives the bytes and sender of
    /// request `i`; replies are written into `replies[i]` (an empty reply
    /// is a valid answer: the reference sends an empty datagram when it
    /// cannot serialise the `Thread` it echoes).
    pub fn process<'d>(
        &mut self,
        shared: &Shared,
        n: usize,
        datagram: impl Fn(usize) -> (&'d [u8], Option<SocketAddr>),
        replies: &mut [Vec<u8>],
    ) {
        let gen = shared.rules.generation();
        if gen != self.rules_gen {
            self.rules = shared.rules.current();
            self.rules_gen = gen;
        }
        while self.parsed.len() < n {
            self.parsed.push(Parsed::new());
        }
        self.decisions.clear();
        // One clock read per batch: the engine's timestamp and the
        // authentication window's float seconds are the same instant.
        let now = pyzor_store::now();
        let now_f = now.0 as f64 / 1_000_000.0;

        // 1. Parse and decide.
        let mut n_ops = 0usize;
        for i in 0..n {
            let (d, _) = datagram(i);
            self.parsed[i].parse(d);
            let p = &self.parsed[i];
            let dec = match evaluate(
                p,
                &self.rules.accounts,
                &self.rules.acl,
                now_f,
                &mut self.scratch,
            ) {
                Err(f) => Decision::Fail(f),
                Ok(a) => {
                    let op = a.op.unwrap_or(Op::Ping);
                    let count = if !a.has_digests {
                        0
                    } else {
                        match op {
                            Op::Check | Op::Info => 1,
                            Op::Report | Op::Whitelist => p.digests().count(),
                            Op::Ping | Op::Pong => 0,
                        }
                    };
                    let d = Decision::Ok {
                        op,
                        ops_start: n_ops,
                        ops_len: count,
                    };
                    n_ops += count;
                    d
                }
            };
            self.decisions.push(dec);
        }

        // 2. One engine batch.
        self.records.clear();
        self.req_fail.clear();
        let mut engine_failure: Option<Failure> = None;
        if n_ops > 0 {
            let mut ops: Vec<pyzor_store::Op<'_>> = recycle(std::mem::take(&mut self.ops_buf));
            for (i, dec) in self.decisions.iter().enumerate() {
                if let Decision::Ok { op, ops_len, .. } = dec {
                    if *ops_len == 0 {
                        continue;
                    }
                    let p = &self.parsed[i];
                    match op {
                        Op::Check | Op::Info => {
                            ops.extend(p.digests().next().map(pyzor_store::Op::Get))
                        }
                        Op::Report => ops.extend(p.digests().map(pyzor_store::Op::Report)),
                        Op::Whitelist => ops.extend(p.digests().map(pyzor_store::Op::Whitelist)),
                        Op::Ping | Op::Pong => {}
                    }
                }
            }
            match shared.engine.execute(&ops, now, &mut self.records) {
                Err(e) if splittable(&e, &ops) && n > 1 => {
                    log::warn!(
                        "Engine {} refused a batch of {} operations ({e}); answering its requests one by one",
                        shared.engine.name(),
                        ops.len()
                    );
                    execute_one_by_one(
                        shared,
                        &self.decisions,
                        &ops,
                        now,
                        &mut self.records,
                        &mut self.req_fail,
                    );
                }
                Err(e) => {
                    shared.metrics.engine_errors.fetch_add(1, Relaxed);
                    log::error!(
                        "Engine {} failed a batch of {} operations: {e}",
                        shared.engine.name(),
                        ops.len()
                    );
                    engine_failure = Some(failure_of(e));
                }
                Ok(()) if self.records.len() != ops.len() => {
                    shared.metrics.engine_errors.fetch_add(1, Relaxed);
                    engine_failure = Some(Failure::internal(format!(
                        "engine returned {} results for {} operations",
                        self.records.len(),
                        ops.len()
                    )));
                }
                Ok(()) => {}
            }
            self.ops_buf = recycle(ops);
        }

        // 3. Replies, usage log, forwarding, metrics.
        let usage_info = shared
            .logs
            .as_ref()
            .is_some_and(|l| l.usage_enabled(Level::Info));
        let usage_err = shared
            .logs
            .as_ref()
            .is_some_and(|l| l.usage_enabled(Level::Error));
        for (i, reply) in replies.iter_mut().enumerate().take(n) {
            let p = &self.parsed[i];
            let thread = p.get("Thread");
            let mut dec = self.decisions[i].clone();
            let fail = engine_failure
                .as_ref()
                .or_else(|| self.req_fail.get(i).and_then(Option::as_ref));
            if let (Some(f), Decision::Ok { ops_len, .. }) = (fail, &dec) {
                if *ops_len > 0 {
                    dec = Decision::Fail(f.clone());
                }
            }
            match dec {
                Decision::Fail(f) => {
                    format_reply(reply, f.code, &f.diag, thread, ReplyBody::Bare);
                    self.tally.add(p.get("Op").and_then(Op::from_bytes), f.code);
                    if usage_err {
                        if let Some(l) = &shared.logs {
                            l.usage(Level::Error, format!("{}: {}", f.code, f.diag));
                        }
                    }
                }
                Decision::Ok {
                    op,
                    ops_start,
                    ops_len,
                } => {
                    let body = match op {
                        Op::Pong if has_digest(p) => ReplyBody::Counts {
                            count: PONG_COUNT,
                            wl_count: 0,
                        },
                        Op::Check if ops_len > 0 => {
                            let r = self.records[ops_start].unwrap_or_default();
                            ReplyBody::Counts {
                                count: r.r_count,
                                wl_count: r.wl_count,
                            }
                        }
                        Op::Info if ops_len > 0 => {
                            let r = self.records[ops_start].unwrap_or_default();
                            ReplyBody::Info {
                                entered: info_time(r.r_entered),
                                updated: info_time(r.r_updated),
                                wl_entered: info_time(r.wl_entered),
                                wl_updated: info_time(r.wl_updated),
                                count: r.r_count,
                                wl_count: r.wl_count,
                            }
                        }
                        _ => ReplyBody::Bare,
                    };
                    format_reply(reply, 200, "OK", thread, body);
                    self.tally.add(Some(op), 200);
                    if usage_info {
                        if let Some(l) = &shared.logs {
                            let user = p
                                .get("User")
                                .filter(|u| !u.is_empty())
                                .unwrap_or(b"anonymous");
                            let ip = datagram(i)
                                .1
                                .map(|a| a.ip().to_string())
                                .unwrap_or_default();
                            l.usage(Level::Info, usage_line(user, &ip, p.get("Op"), p, 200));
                        }
                    }
                    if ops_len > 0 && matches!(op, Op::Report | Op::Whitelist) {
                        if let Some(q) = &shared.forward {
                            for d in p.digests() {
                                q.push(op == Op::Whitelist, d, &shared.metrics);
                            }
                        }
                    }
                }
            }
        }
        shared.metrics.add_tally(&mut self.tally);
    }
}

/// The slow path after the engine refused a whole batch without writing
/// anything: run each request's operations as its own engine call, so that
/// only the offending request is answered 500 (the reference handles every
/// datagram on its own). `records` gets one entry per operation either way
/// (`None` for a failed request's); `req_fail[i]` says why request `i` failed.
fn execute_one_by_one(
    shared: &Shared,
    decisions: &[Decision],
    ops: &[pyzor_store::Op<'_>],
    now: Timestamp,
    records: &mut Vec<Option<Record>>,
    req_fail: &mut Vec<Option<Failure>>,
) {
    records.clear();
    req_fail.clear();
    req_fail.resize(decisions.len(), None);
    for (i, dec) in decisions.iter().enumerate() {
        let Decision::Ok {
            ops_start, ops_len, ..
        } = *dec
        else {
            continue;
        };
        if ops_len == 0 {
            continue;
        }
        let mine = &ops[ops_start..ops_start + ops_len];
        let before = records.len();
        let res = shared.engine.execute(mine, now, records);
        let fail = match res {
            Err(e) => Some(failure_of(e)),
            Ok(()) if records.len() != before + ops_len => Some(Failure::internal(format!(
                "engine returned {} results for {ops_len} operations",
                records.len() - before
            ))),
            Ok(()) => None,
        };
        if let Some(f) = fail {
            shared.metrics.engine_errors.fetch_add(1, Relaxed);
            log::error!(
                "Engine {} failed request {i} of its batch: {}",
                shared.engine.name(),
                f.diag
            );
            records.truncate(before);
            records.resize(before + ops_len, None);
            req_fail[i] = Some(f);
        }
    }
}

/// Whether a batch the engine refused can be re-run request by request:
/// only when the engine guarantees nothing of it was written —
/// [`StoreError::BadKey`] (documented on [`Engine::execute`]), or any
/// per-record error of a batch of reads only.
fn splittable(e: &StoreError, ops: &[pyzor_store::Op<'_>]) -> bool {
    match e {
        StoreError::BadKey(_) => true,
        StoreError::Corrupt { .. } => !ops.iter().any(|o| o.is_write()),
        _ => false,
    }
}

/// The reference's answer to an engine error.
fn failure_of(e: StoreError) -> Failure {
    match e {
        StoreError::Unavailable(_) => Failure::DB_UNAVAILABLE,
        other => Failure::internal(other),
    }
}

/// Empty a vector of borrowed operations and hand its allocation to another
/// lifetime: the in-place `collect` of an empty `vec::IntoIter` keeps the
/// buffer, so the per-batch operation list is allocated once per worker.
fn recycle<'a, 'b>(mut v: Vec<pyzor_store::Op<'a>>) -> Vec<pyzor_store::Op<'b>> {
    v.clear();
    v.into_iter()
        .map(|_| unreachable!("the vector is empty"))
        .collect()
}

fn has_digest(p: &Parsed) -> bool {
    p.digests().next().is_some()
}

/// `info` times: `"%d" % time.mktime(dt.timetuple())` of the stored local
/// time, i.e. whole epoch seconds; 0 when never set (docs/protocol.md §6).
fn info_time(t: Option<Timestamp>) -> i64 {
    t.map_or(0, |t| t.secs())
}

/// A worker's loop: receive a batch, process it, send the replies, until
/// `shared.stop` is set. The batch in hand is always answered.
pub fn run_worker(shared: Arc<Shared>, sock: std::net::UdpSocket) {
    let mut io = crate::net::BatchIo::new();
    let mut proc = Processor::new(&shared);
    let send_all = [true; crate::net::BATCH];
    while !shared.stop.load(Relaxed) {
        let n = match io.recv(&sock) {
            Ok(0) => continue,
            Ok(n) => n,
            Err(e) => {
                log::error!("receive failed: {e}");
                std::thread::sleep(std::time::Duration::from_millis(10));
                continue;
            }
        };
        shared.metrics.batch(n);
        let mut replies = std::mem::take(&mut io.replies);
        {
            let io_ref = &io;
            proc.process(
                &shared,
                n,
                |i| (io_ref.datagram(i), io_ref.peer(i)),
                &mut replies,
            );
        }
        io.replies = replies;
        let errors = io.send(&sock, &send_all);
        if errors > 0 {
            shared.metrics.send_errors.fetch_add(errors as u64, Relaxed);
        }
    }
}
