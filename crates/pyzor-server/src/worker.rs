//! Processing one receive batch: parse every datagram, decide it
//! (`evaluate`: authentication, PV, ACL, dispatch; then the op's own
//! `Request`), run **one** engine batch for all reads and increments (one
//! transaction, one commit), then format every reply. Replies are only
//! sent after the engine batch returned, so an acknowledged report is
//! durable to the engine's level. What each op does is in `crate::cmd`.
//!
//! That is the whole path for the local engines. For an engine that may
//! block ([`Engine::may_block`]) the worker answers at once what needs no
//! engine and hands the rest to its engine threads
//! (`crate::engine_queue`), which run the engine batch and answer it
//! (`Processor::process_jobs`); with two engine threads or more it keeps
//! the reads that need not wait for a write (and, in a flood of writes,
//! the writes) and makes them itself, as one engine call
//! (`crate::own_calls`).
//!
//! [`Processor`] keeps all per-request state in vectors reused across
//! batches; the check path allocates nothing per request.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};

use log::Level;
use pyzor_protocol::auth::ANONYMOUS;
use pyzor_protocol::record::Timestamp;
use pyzor_protocol::wire::server::{
    bound_reply, evaluate, format_reply, usage_line, Failure, Parsed, ReplyBody,
};
use pyzor_protocol::wire::Op;
use pyzor_protocol::Record;
use pyzor_store::{Engine, StoreError};

use crate::cmd::{ParseOptions, Request};
use crate::engine_queue::{EngineQueue, Job};
use crate::forward::ForwardQueue;
use crate::logging::Logs;
use crate::metrics::{Metrics, Tally};
use crate::net::penalty::{PenaltyBox, Role};
use crate::own_calls::{OwnCalls, Standby};
use crate::protect::{DistinctReporters, RateLimiter, ReplayGuard, Verdict};
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

impl Shared {
    /// An engine and fixed rules, with fresh metrics, no logs, no
    /// forwarding, not stopped: what a processor needs outside a running
    /// server (tests, examples, benchmarks).
    pub fn standalone(engine: Arc<dyn Engine>, rules: Rules) -> Shared {
        Shared {
            engine,
            rules: Arc::new(RuleSet::fixed(rules)),
            metrics: Arc::new(Metrics::default()),
            logs: None,
            forward: None,
            stop: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// The protections of the decide path (docs/security.md): the rate limits
/// (each worker keeps its own buckets) and the replay guard (one for all
/// workers).
#[derive(Clone, Debug)]
pub(crate) struct Protection {
    pub(crate) rate: pyzor_config::RateLimitConfig,
    pub(crate) replay: Arc<ReplayGuard>,
    /// `StrictDigests`: report and whitelist count only SHA-1 digests.
    pub(crate) strict_digests: bool,
    /// `IgnoreEmptyDigest`: the empty-body digest is neither read nor counted.
    pub(crate) ignore_empty_digest: bool,
    /// `DistinctWindow` (one table for all workers and engine threads).
    pub(crate) distinct: Option<Arc<DistinctReporters>>,
    /// The penalty box (two workers or more) and who this worker is to it.
    pub(crate) penalty: Option<(Arc<PenaltyBox>, Role)>,
}

impl Default for Protection {
    /// No rate limit; a replay guard of its own; no policy.
    fn default() -> Self {
        Protection {
            rate: pyzor_config::RateLimitConfig::off(),
            replay: Arc::default(),
            strict_digests: false,
            ignore_empty_digest: false,
            distinct: None,
            penalty: None,
        }
    }
}

/// The short reply to every `SLIP`-th rate-limited request
/// (`crate::protect::SLIP`); the others get none.
const RATE_LIMITED: Failure = Failure {
    code: 503,
    diag: Cow::Borrowed("Service Unavailable: rate limit exceeded"),
};

/// The reply to a replayed signed write (docs/security.md, "Replay").
const REPLAYED: Failure = Failure {
    code: 401,
    diag: Cow::Borrowed("Unauthorized: Request already seen."),
};

/// What became of one datagram before the engine call.
#[derive(Debug)]
enum Decision<'a> {
    Fail(Failure),
    /// Rate-limited and not answered.
    Drop,
    /// Handed to the engine threads, which answer it.
    Handed,
    Ok {
        /// For the usage log.
        user: &'a [u8],
        request: Request<'a>,
        /// The request's operations in the engine batch.
        ops: Range<usize>,
    },
}

/// A request's reply: 200 for its user, op, store operations and their
/// records, or a failure.
type Answer<'s, 'a> = Result<
    (
        &'a [u8],
        &'s Request<'a>,
        &'s [pyzor_store::Op<'a>],
        &'s [Option<Record>],
    ),
    &'s Failure,
>;

impl<'a> Decision<'a> {
    /// Whether the request has store operations.
    fn needs_engine(&self) -> bool {
        matches!(self, Decision::Ok { ops, .. } if !ops.is_empty())
    }

    /// The request's user, op, operations (of the batch's `ops`) and
    /// records, or its failure: its own, or the engine's (`engine_fail`)
    /// when it has operations.
    fn answer<'s>(
        &'s self,
        engine_fail: Option<&'s Failure>,
        all_ops: &'s [pyzor_store::Op<'a>],
        records: &'s [Option<Record>],
    ) -> Answer<'s, 'a> {
        match self {
            Decision::Fail(f) => Err(f),
            // Never answered here (`Processor::process_batch` skips them).
            Decision::Drop | Decision::Handed => Err(&RATE_LIMITED),
            Decision::Ok { user, request, ops } => match engine_fail {
                Some(f) if !ops.is_empty() => Err(f),
                _ => Ok((
                    user,
                    request,
                    all_ops.get(ops.clone()).unwrap_or_default(),
                    records.get(ops.clone()).unwrap_or_default(),
                )),
            },
        }
    }
}

/// Per-worker reusable state.
pub struct Processor {
    parsed: Vec<Parsed>,
    /// This batch's decisions (empty between batches: they borrow `parsed`).
    decisions: Vec<Decision<'static>>,
    records: Vec<Option<Record>>,
    scratch: Vec<u8>,
    /// The engine batch's operation list, kept between batches (empty).
    ops_buf: Vec<pyzor_store::Op<'static>>,
    /// With engine threads: the operations of the requests the worker
    /// makes itself (crate::own_calls), kept between batches (empty).
    own_ops_buf: Vec<pyzor_store::Op<'static>>,
    /// With engine threads: per request, whether it goes to them.
    goes: Vec<bool>,
    /// Per-request engine failures; only filled when some operations of a
    /// batch failed or a refused batch was re-run request by request
    /// ([`execute_one_by_one`]).
    req_fail: Vec<Option<Failure>>,
    rules: Arc<Rules>,
    rules_gen: u64,
    /// This batch's reply counts, added to the shared metrics at its end.
    tally: Tally,
    /// This worker's per-network buckets (`None`: no limit).
    limiter: Option<RateLimiter>,
    replay: Arc<ReplayGuard>,
    distinct: Option<Arc<DistinctReporters>>,
    /// What the ops accept (`StrictDigests`, `IgnoreEmptyDigest`).
    parse_opts: ParseOptions,
    /// The limiter's monotonic clock starts here.
    clock0: std::time::Instant,
    /// When a rate limit was last logged (µs of `clock0`).
    limit_logged: Option<u64>,
    /// Where floods are reported ([`Protection::penalty`]).
    penalty: Option<(Arc<PenaltyBox>, Role)>,
}

impl Processor {
    pub fn new(shared: &Shared) -> Self {
        Self::with_protection(shared, &Protection::default())
    }

    /// [`Self::new`] with rate limits and a replay guard.
    pub(crate) fn with_protection(shared: &Shared, protection: &Protection) -> Self {
        Processor {
            // The penalty worker's networks arrive with their burst spent.
            limiter: RateLimiter::new(&protection.rate).map(|l| match protection.penalty {
                Some((_, Role::PenaltyWorker)) => l.strict(),
                _ => l,
            }),
            penalty: protection.penalty.clone(),
            replay: Arc::clone(&protection.replay),
            distinct: protection.distinct.clone(),
            parse_opts: ParseOptions {
                strict_digests: protection.strict_digests,
                ignore_empty_digest: protection.ignore_empty_digest,
            },
            clock0: std::time::Instant::now(),
            limit_logged: None,
            parsed: Vec::new(),
            decisions: Vec::new(),
            records: Vec::new(),
            scratch: Vec::with_capacity(1024),
            ops_buf: Vec::new(),
            own_ops_buf: Vec::new(),
            goes: Vec::new(),
            req_fail: Vec::new(),
            rules: shared.rules.current(),
            rules_gen: shared.rules.generation(),
            tally: Tally::default(),
        }
    }

    /// Process `n` datagrams: `datagram(i)` gives the bytes and sender of
    /// request `i`; replies are written into `replies[i]` (an empty reply
    /// is a valid answer: the reference sends an empty datagram when it
    /// cannot serialise the `Thread` it echoes; a request dropped by the
    /// rate limit also has an empty reply here, which the worker loop does
    /// not send).
    pub fn process<'d>(
        &mut self,
        shared: &Shared,
        n: usize,
        datagram: impl Fn(usize) -> (&'d [u8], Option<SocketAddr>),
        replies: &mut [Vec<u8>],
    ) {
        self.process_batch(shared, n, datagram, replies, None, &mut []);
    }

    /// [`Self::process`]; `ready[i]` (when `ready` is that long) says
    /// whether `replies[i]` is an answer to send now: not when the rate
    /// limit dropped it, nor, with `queue` (an engine that may block),
    /// when it has store operations and was handed to the engine threads,
    /// which answer it. When the queue is full they are answered 500
    /// here. With `queue.own`, the reads that need not wait (and the
    /// writes of a flood of writes) are made here (crate::own_calls).
    pub(crate) fn process_batch<'d>(
        &mut self,
        shared: &Shared,
        n: usize,
        datagram: impl Fn(usize) -> (&'d [u8], Option<SocketAddr>),
        replies: &mut [Vec<u8>],
        queue: Option<Handoff<'_>>,
        ready: &mut [bool],
    ) {
        let gen = shared.rules.generation();
        if gen != self.rules_gen {
            self.rules = shared.rules.current();
            self.rules_gen = gen;
        }
        while self.parsed.len() < n {
            self.parsed.push(Parsed::new());
        }
        for (i, p) in self.parsed[..n].iter_mut().enumerate() {
            p.parse(datagram(i).0);
        }
        // One clock read per batch: the engine's timestamp and the
        // authentication window's float seconds are the same instant.
        let now = pyzor_store::now();
        let now_f = now.0 as f64 / 1_000_000.0;

        // 1. Decide every request; collect its store operations.
        let mut decisions: Vec<Decision<'_>> = recycle(std::mem::take(&mut self.decisions));
        let mut ops: Vec<pyzor_store::Op<'_>> = recycle(std::mem::take(&mut self.ops_buf));
        let mono = self.clock0.elapsed().as_micros() as u64;
        let ctx = Context {
            rules: &self.rules,
            now: now_f,
            replay: (&self.replay, now.0),
            // With an engine thread, it applies `DistinctWindow` to the
            // operations it runs (`Self::process_jobs`).
            distinct: self
                .distinct
                .as_deref()
                .filter(|_| queue.is_none())
                .map(|d| (d, d.now())),
            metrics: &shared.metrics,
            opts: self.parse_opts,
        };
        for (i, p) in self.parsed[..n].iter().enumerate() {
            let limited = limit(
                (&mut self.limiter, &mut self.limit_logged),
                self.penalty.as_ref(),
                shared,
                p,
                datagram(i).1,
                mono,
            );
            if let Some(d) = limited {
                decisions.push(d);
                continue;
            }
            decisions.push(decide(p, datagram(i).1, &ctx, &mut self.scratch, &mut ops));
        }

        // 2. One engine batch, here or on the engine threads (and the
        // worker's own calls here).
        let mut own_ops: Vec<pyzor_store::Op<'_>> = recycle(std::mem::take(&mut self.own_ops_buf));
        let engine_failure = match &queue {
            None => execute(
                shared,
                &decisions,
                &ops,
                now,
                &mut self.records,
                &mut self.req_fail,
            ),
            Some(to) => {
                let own = to.own.filter(|r| r.allowed());
                let held = {
                    let mut q = to.queue.lock().unwrap_or_else(PoisonError::into_inner);
                    let scratch = &mut self.goes;
                    let batch = (&mut decisions[..], &ops[..]);
                    hand_off(shared, &mut q, batch, &datagram, (own.is_some(), scratch))
                };
                // What is left with operations: the requests made here.
                // `DistinctWindow` applies to their writes here, as the
                // engine threads apply it to theirs.
                let distinct = self.distinct.as_deref().map(|d| (d, d.now()));
                for (i, dec) in decisions.iter_mut().enumerate() {
                    if let Decision::Ok {
                        ops: mine, user, ..
                    } = dec
                    {
                        let start = own_ops.len();
                        own_ops.extend_from_slice(&ops[mine.clone()]);
                        if let Some(d) = distinct {
                            let peer = datagram(i).1;
                            keep_distinct(d, user, peer, &mut own_ops, start, &shared.metrics);
                        }
                        *mine = start..own_ops.len();
                    }
                }
                let f = match own {
                    Some(r) if !own_ops.is_empty() => {
                        let writes = own_ops.iter().filter(|o| o.is_write()).count();
                        let m = &shared.metrics;
                        m.worker_writes.fetch_add(writes as u64, Relaxed);
                        m.worker_reads
                            .fetch_add((own_ops.len() - writes) as u64, Relaxed);
                        let (records, req_fail) = (&mut self.records, &mut self.req_fail);
                        r.call(|| execute(shared, &decisions, &own_ops, now, records, req_fail))
                    }
                    _ => {
                        self.records.clear();
                        self.req_fail.clear();
                        None
                    }
                };
                // (every own write of a request may have been a repeat)
                if held > 0 {
                    let q = to.queue.lock().unwrap_or_else(PoisonError::into_inner);
                    q.unhold(held, shared);
                }
                f
            }
        };
        let ops_answered = if queue.is_some() { &own_ops } else { &ops };

        // 3. Replies, usage log, forwarding, metrics.
        let answers = Answers::new(shared);
        for (i, (dec, reply)) in decisions.iter().zip(replies.iter_mut()).enumerate() {
            // The engine threads have it.
            let handed = matches!(dec, Decision::Handed);
            let send = !handed && !matches!(dec, Decision::Drop);
            if let Some(r) = ready.get_mut(i) {
                *r = send;
            }
            if !send {
                if matches!(dec, Decision::Drop) {
                    // Not sent by the worker loop; empty for `process`.
                    reply.clear();
                }
                continue;
            }
            let engine_fail = engine_failure
                .as_ref()
                .or_else(|| self.req_fail.get(i).and_then(Option::as_ref));
            let p = &self.parsed[i];
            let peer = || datagram(i).1;
            answers.answer(
                &mut self.tally,
                p,
                dec,
                engine_fail,
                (ops_answered, &self.records),
                peer,
                reply,
            );
        }
        shared.metrics.add_tally(&mut self.tally);
        self.own_ops_buf = recycle(own_ops);
        self.ops_buf = recycle(ops);
        self.decisions = recycle(decisions);
    }

    /// The engine thread's side of [`Self::process_batch`]: answer the
    /// requests of `jobs`, in order, with one engine batch; the replies go
    /// to `replies[..]` in the same order. With `give_up` the engine is not
    /// called and every request is answered 500 "Database temporarily
    /// unavailable.". Returns whether the engine was unavailable.
    pub(crate) fn process_jobs(
        &mut self,
        shared: &Shared,
        jobs: &[Job],
        replies: &mut [Vec<u8>],
        (give_up, turn): (bool, Option<crate::call_gate::Turn<'_>>),
    ) -> bool {
        let requests = || jobs.iter().flat_map(Job::requests);
        let n = jobs.iter().map(Job::len).sum();
        while self.parsed.len() < n {
            self.parsed.push(Parsed::new());
        }
        for (p, r) in self.parsed.iter_mut().zip(requests()) {
            p.parse(r.datagram);
        }
        let now = pyzor_store::now();
        let distinct = self.distinct.as_deref().map(|d| (d, d.now()));
        let mut decisions: Vec<Decision<'_>> = recycle(std::mem::take(&mut self.decisions));
        let mut ops: Vec<pyzor_store::Op<'_>> = recycle(std::mem::take(&mut self.ops_buf));
        for (p, r) in self.parsed.iter().zip(requests()) {
            // The worker accepted these bytes for `r.op` as `r.user`:
            // only the op's own fields are read again (the same bytes and
            // options give the same request). `DistinctWindow` is applied
            // here, once, to the operations this thread runs.
            decisions.push(match Request::new(r.op, p, self.parse_opts) {
                Ok(request) => {
                    let start = ops.len();
                    request.store_ops(&mut ops);
                    if let Some(d) = distinct {
                        keep_distinct(d, r.user, r.peer, &mut ops, start, &shared.metrics);
                    }
                    Decision::Ok {
                        user: r.user,
                        request,
                        ops: start..ops.len(),
                    }
                }
                Err(f) => Decision::Fail(f),
            });
        }
        let engine_failure = if give_up {
            self.records.clear();
            self.req_fail.clear();
            Some(Failure::DB_UNAVAILABLE)
        } else {
            execute(
                shared,
                &decisions,
                &ops,
                now,
                &mut self.records,
                &mut self.req_fail,
            )
        };
        // the engine call is over: another engine thread's turn
        drop(turn);
        let answers = Answers::new(shared);
        let each = decisions.iter().zip(replies.iter_mut()).zip(requests());
        for (i, ((dec, reply), r)) in each.enumerate() {
            let engine_fail = engine_failure
                .as_ref()
                .or_else(|| self.req_fail.get(i).and_then(Option::as_ref));
            let p = &self.parsed[i];
            answers.answer(
                &mut self.tally,
                p,
                dec,
                engine_fail,
                (&ops, &self.records),
                || r.peer,
                reply,
            );
        }
        shared.metrics.add_tally(&mut self.tally);
        self.ops_buf = recycle(ops);
        self.decisions = recycle(decisions);
        engine_failure == Some(Failure::DB_UNAVAILABLE)
    }
}

/// The rate limit's decision on request `p` from `peer`, if it is not
/// let through (`limiter` and when it last logged; `mono`: µs of the limiter's clock).
fn limit(
    (limiter, limit_logged): (&mut Option<RateLimiter>, &mut Option<u64>),
    penalty: Option<&(Arc<PenaltyBox>, Role)>,
    shared: &Shared,
    p: &Parsed,
    peer: Option<SocketAddr>,
    mono: u64,
) -> Option<Decision<'static>> {
    let (limiter, peer) = (limiter.as_mut()?, peer?);
    let write = matches!(
        p.get("Op").and_then(Op::from_bytes),
        Some(Op::Report | Op::Whitelist)
    );
    let m = &shared.metrics;
    let verdict = limiter.check(peer.ip(), write, mono);
    match verdict {
        Verdict::Allow => return None,
        Verdict::Listed => {
            m.rate_allowlisted.fetch_add(1, Relaxed);
            return None;
        }
        Verdict::Logged => {
            m.rate_limited.fetch_add(1, Relaxed);
        }
        Verdict::Limited { over, .. } => {
            m.rate_limited.fetch_add(1, Relaxed);
            if let (Some((b, by)), true) = (penalty, over > 0) {
                b.report(peer.ip(), over, *by);
            }
        }
    }
    // One line a minute per worker at most.
    if limit_logged.is_none_or(|t| mono.saturating_sub(t) >= 60_000_000) {
        *limit_logged = Some(mono);
        let what = if write { "report/whitelist" } else { "request" };
        let how = if verdict == Verdict::Logged {
            "processed anyway (RateLimitMode = log)"
        } else {
            "limited"
        };
        log::warn!(
            "{} exceeds its {what} rate limit: {how} (pyzord_rate_limited_total counts every one; logged at most once a minute per worker)",
            peer.ip()
        );
    }
    match verdict {
        Verdict::Limited { answer: true, .. } => Some(Decision::Fail(RATE_LIMITED)),
        Verdict::Limited { answer: false, .. } => {
            m.rate_dropped.fetch_add(1, Relaxed);
            Some(Decision::Drop)
        }
        _ => None,
    }
}

/// Where a worker's engine requests go: its engine threads' `queue`
/// (shared with its standby thread), and, with `own`, what decides the
/// calls the worker makes itself (crate::own_calls).
#[derive(Clone, Copy)]
pub(crate) struct Handoff<'q> {
    pub(crate) queue: &'q Mutex<EngineQueue>,
    pub(crate) own: Option<&'q OwnCalls>,
}

/// Hand the requests of `decisions` that need the engine to the engine
/// threads (all of them, or, with `own_calls`, all but those the worker
/// may make itself: [`EngineQueue::makes_itself`]); each becomes
/// [`Decision::Handed`]. The queue bound counts the worker's own requests
/// too: when it refuses the batch's requests (or the engine threads are
/// gone) they all become a 500 "Database temporarily unavailable.", as
/// they were before. Returns how many own requests the bound holds
/// ([`EngineQueue::hold`]). `goes` is scratch.
fn hand_off<'d>(
    shared: &Shared,
    queue: &mut EngineQueue,
    (decisions, all_ops): (&mut [Decision<'_>], &[pyzor_store::Op<'_>]),
    datagram: &impl Fn(usize) -> (&'d [u8], Option<SocketAddr>),
    (own_calls, goes): (bool, &mut Vec<bool>),
) -> usize {
    goes.clear();
    if own_calls {
        queue.begin_batch();
    }
    goes.extend(decisions.iter().map(|dec| match dec {
        Decision::Ok { ops, .. } if !ops.is_empty() => {
            !own_calls || !queue.makes_itself(&all_ops[ops.clone()])
        }
        _ => false,
    }));
    let k = goes.iter().filter(|g| **g).count();
    let own = decisions.iter().filter(|d| d.needs_engine()).count() - k;
    if k + own == 0 {
        return 0;
    }
    if !queue.admit(k + own, shared) {
        for dec in decisions.iter_mut() {
            if dec.needs_engine() {
                *dec = Decision::Fail(Failure::DB_UNAVAILABLE);
            }
        }
        return 0;
    }
    queue.hold(own, shared);
    if k == 0 {
        return own;
    }
    let mut job = queue.job();
    for (i, dec) in decisions.iter().enumerate() {
        if let (true, Decision::Ok { user, request, ops }) = (goes[i], dec) {
            let (bytes, peer) = datagram(i);
            let mine = &all_ops[ops.clone()];
            queue.push(&mut job, (bytes, user, peer), request.op(), mine);
        }
    }
    let handed = queue.submit(job, shared).is_ok();
    for (dec, _) in decisions.iter_mut().zip(goes.iter()).filter(|(_, g)| **g) {
        *dec = match handed {
            true => Decision::Handed,
            false => Decision::Fail(Failure::DB_UNAVAILABLE),
        };
    }
    own
}

/// Step 3 of a batch for one request: its reply, usage-log line,
/// forwarding and count.
struct Answers<'s> {
    shared: &'s Shared,
    usage_info: Option<&'s Logs>,
    usage_err: Option<&'s Logs>,
}

impl<'s> Answers<'s> {
    fn new(shared: &'s Shared) -> Self {
        let logs = shared.logs.as_ref();
        Answers {
            shared,
            usage_info: logs.filter(|l| l.usage_enabled(Level::Info)),
            usage_err: logs.filter(|l| l.usage_enabled(Level::Error)),
        }
    }

    /// Answer `p` as decided (`dec`), with the engine's failure if any and
    /// the batch's operations and `records`; `peer` is the sender, for the
    /// usage log.
    #[allow(clippy::too_many_arguments)]
    fn answer<'a>(
        &self,
        tally: &mut Tally,
        p: &Parsed,
        dec: &Decision<'a>,
        engine_fail: Option<&Failure>,
        (ops, records): (&[pyzor_store::Op<'a>], &[Option<Record>]),
        peer: impl FnOnce() -> Option<SocketAddr>,
        reply: &mut Vec<u8>,
    ) {
        let thread = p.get("Thread");
        match dec.answer(engine_fail, ops, records) {
            Err(f) => {
                format_reply(reply, f.code, &f.diag, thread, ReplyBody::Bare);
                tally.add(p.get("Op").and_then(Op::from_bytes), f.code);
                if let Some(l) = self.usage_err {
                    l.usage(Level::Error, format!("{}: {}", f.code, f.diag));
                }
            }
            Ok((user, request, ops, records)) => {
                format_reply(reply, 200, "OK", thread, request.reply(records));
                tally.add(Some(request.op()), 200);
                if let Some(l) = self.usage_info {
                    let ip = peer().map(|a| a.ip().to_string());
                    let line = usage_line(user, &ip.unwrap_or_default(), p.get("Op"), p, 200);
                    l.usage(Level::Info, line);
                }
                if let Some(q) = &self.shared.forward {
                    request.forward(ops, q, &self.shared.metrics);
                }
            }
        }
        // docs/security.md "Amplification": only a signed request may get
        // a reply much larger than itself.
        let signed = matches!(dec, Decision::Ok { user, .. } if *user != ANONYMOUS.as_bytes());
        bound_reply(reply, p.received_len(), signed, thread);
    }
}

/// What [`decide`] needs besides the request: the rules, the clock (float
/// seconds for the authentication window), the replay guard with the
/// clock in µs, the distinct-reporters table with its clock (`None`: off,
/// or applied by the engine thread), the metrics and the ops' options.
struct Context<'c> {
    rules: &'c Rules,
    now: f64,
    replay: (&'c ReplayGuard, i64),
    distinct: Option<(&'c DistinctReporters, u32)>,
    metrics: &'c Metrics,
    opts: ParseOptions,
}

/// One request from `peer` before the engine call: `evaluate`, then the
/// op's own [`Request`], whose store operations are pushed onto `ops`. A
/// signed request of an account that changes counts is accepted once: a
/// repeat of its (user, `Sig`) while the guard remembers it is answered
/// [`REPLAYED`] and changes nothing (docs/security.md, "Replay"). Then
/// `DistinctWindow` drops the writes its reporter already counted.
fn decide<'p>(
    p: &'p Parsed,
    peer: Option<SocketAddr>,
    ctx: &Context<'_>,
    scratch: &mut Vec<u8>,
    ops: &mut Vec<pyzor_store::Op<'p>>,
) -> Decision<'p> {
    let rules = ctx.rules;
    let accepted = match evaluate(p, &rules.accounts, &rules.acl, ctx.now, scratch) {
        Ok(a) => a,
        Err(f) => return Decision::Fail(f),
    };
    match Request::new(accepted.op, p, ctx.opts) {
        Ok(request) => {
            let start = ops.len();
            request.store_ops(ops);
            let ignored = request.ignored();
            if ignored > 0 {
                let m = &ctx.metrics.empty_digest_ignored;
                m.fetch_add(ignored as u64, Relaxed);
            }
            let (guard, now_us) = ctx.replay;
            let signed_write = ops.len() > start
                && matches!(request.op(), Op::Report | Op::Whitelist)
                // Anonymous requests are not signed: nothing to remember.
                && accepted.user != ANONYMOUS.as_bytes();
            if signed_write {
                let sig = p.get("Sig").unwrap_or_default();
                let now_us = u64::try_from(now_us).unwrap_or(0);
                if !guard.first_use(accepted.user, sig, now_us) {
                    ops.truncate(start);
                    ctx.metrics.replays.fetch_add(1, Relaxed);
                    return Decision::Fail(REPLAYED);
                }
            }
            if let Some(d) = ctx.distinct {
                keep_distinct(d, accepted.user, peer, ops, start, ctx.metrics);
            }
            Decision::Ok {
                user: accepted.user,
                request,
                ops: start..ops.len(),
            }
        }
        Err(f) => Decision::Fail(f),
    }
}

/// `DistinctWindow` on the operations `ops[start..]` of one request by
/// `user` from `peer`: the writes whose reporter already counted them
/// within the window are removed (the request is still answered 200, as
/// the reference would) and counted in `pyzord_distinct_repeats_total`.
fn keep_distinct(
    (table, now): (&DistinctReporters, u32),
    user: &[u8],
    peer: Option<SocketAddr>,
    ops: &mut Vec<pyzor_store::Op<'_>>,
    start: usize,
    metrics: &Metrics,
) {
    // reads (checks, infos) have nothing to keep out: no reporter to find
    if !ops[start..].iter().any(pyzor_store::Op::is_write) {
        return;
    }
    let reporter = table.reporter(user, peer.map(|a| a.ip()));
    let mut kept = start;
    for i in start..ops.len() {
        let op = ops[i];
        let whitelist = matches!(op, pyzor_store::Op::Whitelist(_));
        if !op.is_write() || table.counts(reporter, whitelist, op.digest(), now) {
            ops[kept] = op;
            kept += 1;
        }
    }
    let repeats = ops.len() - kept;
    if repeats > 0 {
        ops.truncate(kept);
        metrics.distinct_repeats.fetch_add(repeats as u64, Relaxed);
    }
}

/// One engine call, counted (`pyzord_engine_calls_total`,
/// `pyzord_engine_call_ops_total`).
fn call_engine(
    shared: &Shared,
    ops: &[pyzor_store::Op<'_>],
    now: Timestamp,
    records: &mut Vec<Option<Record>>,
) -> pyzor_store::Result<()> {
    shared.metrics.engine_calls.fetch_add(1, Relaxed);
    shared
        .metrics
        .engine_call_ops
        .fetch_add(ops.len() as u64, Relaxed);
    shared.engine.execute(ops, now, records)
}

/// Run the batch's operations (if any) as one engine call; the results go
/// to `records`, one per operation. `Some` is the failure of every request
/// with operations; `req_fail` holds per-request failures when some
/// operations failed ([`StoreError::Partial`]), or when the engine refused
/// the batch and it was re-run request by request.
fn execute(
    shared: &Shared,
    decisions: &[Decision<'_>],
    ops: &[pyzor_store::Op<'_>],
    now: Timestamp,
    records: &mut Vec<Option<Record>>,
    req_fail: &mut Vec<Option<Failure>>,
) -> Option<Failure> {
    records.clear();
    req_fail.clear();
    if ops.is_empty() {
        return None;
    }
    match call_engine(shared, ops, now, records) {
        Err(StoreError::Partial(failed))
            if records.len() == ops.len() && failed.iter().all(|(i, _)| *i < ops.len()) =>
        {
            shared.metrics.engine_errors.fetch_add(1, Relaxed);
            log::error!(
                "Engine {} failed {} of a batch's {} operations; answering their requests with 500",
                shared.engine.name(),
                failed.len(),
                ops.len()
            );
            fail_requests(decisions, failed, req_fail);
            None
        }
        Err(e) if splittable(&e) && decisions.len() > 1 => {
            log::warn!(
                "Engine {} refused a batch of {} operations ({e}); answering its requests one by one",
                shared.engine.name(),
                ops.len()
            );
            execute_one_by_one(shared, decisions, ops, now, records, req_fail);
            None
        }
        Err(e) => {
            shared.metrics.engine_errors.fetch_add(1, Relaxed);
            let name = shared.engine.name();
            shared.metrics.health.batch_failed(name, ops.len(), &e);
            Some(failure_of(e))
        }
        Ok(()) if records.len() != ops.len() => {
            shared.metrics.engine_errors.fetch_add(1, Relaxed);
            Some(Failure::internal(format!(
                "engine returned {} results for {} operations",
                records.len(),
                ops.len()
            )))
        }
        Ok(()) => {
            shared.metrics.health.batch_ok(shared.engine.name());
            None
        }
    }
}

/// The slow path after the engine refused a whole batch without writing
/// anything: run each request's operations as its own engine call, so that
/// only the offending request is answered 500 (the reference handles every
/// datagram on its own). `records` gets one entry per operation either way
/// (`None` for a failed request's); `req_fail[i]` says why request `i` failed.
fn execute_one_by_one(
    shared: &Shared,
    decisions: &[Decision<'_>],
    ops: &[pyzor_store::Op<'_>],
    now: Timestamp,
    records: &mut Vec<Option<Record>>,
    req_fail: &mut Vec<Option<Failure>>,
) {
    records.clear();
    req_fail.clear();
    req_fail.resize(decisions.len(), None);
    for (i, dec) in decisions.iter().enumerate() {
        let Decision::Ok { ops: mine, .. } = dec else {
            continue;
        };
        let ops_len = mine.len();
        if ops_len == 0 {
            continue;
        }
        let mine = &ops[mine.clone()];
        let before = records.len();
        let res = call_engine(shared, mine, now, records);
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
            let name = shared.engine.name();
            shared.metrics.health.request_failed(name, &f.diag);
            records.truncate(before);
            records.resize(before + ops_len, None);
            req_fail[i] = Some(f);
        }
    }
}

/// After a [`StoreError::Partial`] batch: `req_fail[i]` is the failure of
/// each request owning a failed operation (its first); the other requests'
/// operations were done.
fn fail_requests(
    decisions: &[Decision<'_>],
    failed: Vec<(usize, StoreError)>,
    req_fail: &mut Vec<Option<Failure>>,
) {
    req_fail.clear();
    req_fail.resize(decisions.len(), None);
    for (op, e) in failed {
        let owner = decisions
            .iter()
            .position(|d| matches!(d, Decision::Ok { ops, .. } if ops.contains(&op)));
        if let Some(slot) = owner.map(|i| &mut req_fail[i]) {
            if slot.is_none() {
                *slot = Some(failure_of(e));
            }
        }
    }
}

/// Whether a batch the engine refused can be re-run request by request:
/// only when the engine guarantees nothing of it was written — a
/// per-record error ([`StoreError::BadKey`], [`StoreError::Corrupt`];
/// documented on [`Engine::execute`]).
fn splittable(e: &StoreError) -> bool {
    matches!(e, StoreError::BadKey(_) | StoreError::Corrupt { .. })
}

/// The reference's answer to an engine error.
fn failure_of(e: StoreError) -> Failure {
    match e {
        StoreError::Unavailable(_) => Failure::DB_UNAVAILABLE,
        other => Failure::internal(other),
    }
}

/// Empty a vector of borrowed values and hand its allocation to another
/// lifetime (`A` and `B` are one type but for lifetimes): the in-place
/// `collect` of an empty `vec::IntoIter` keeps the buffer, so the
/// per-batch lists are allocated once per worker.
fn recycle<A, B>(mut v: Vec<A>) -> Vec<B> {
    const {
        assert!(std::mem::size_of::<A>() == std::mem::size_of::<B>());
        assert!(std::mem::align_of::<A>() == std::mem::align_of::<B>());
    }
    v.clear();
    v.into_iter()
        .map(|_| unreachable!("the vector is empty"))
        .collect()
}

/// Receive one batch on `sock` (waiting at most the socket's receive
/// timeout), answer it with `proc` (engine requests as `to` says) and send
/// the replies that are ready. Returns the batch's size (0: none came).
/// The worker's loop and its standby's (crate::own_calls).
pub(crate) fn serve_batch(
    shared: &Shared,
    sock: &std::net::UdpSocket,
    (io, proc): (&mut pyzor_udp::Batch, &mut Processor),
    to: Option<Handoff<'_>>,
    ready: &mut [bool; crate::net::BATCH],
) -> usize {
    let n = match io.recv(sock) {
        Ok(n) => n,
        Err(e) => {
            log::error!("receive failed: {e}");
            std::thread::sleep(std::time::Duration::from_millis(10));
            return 0;
        }
    };
    if n == 0 {
        return 0;
    }
    shared.metrics.batch(n);
    let mut replies = std::mem::take(&mut io.replies);
    {
        let io_ref = &*io;
        let datagram = |i| (io_ref.datagram(i), io_ref.peer(i));
        proc.process_batch(shared, n, datagram, &mut replies, to, &mut ready[..]);
    }
    io.replies = replies;
    let errors = io.send(sock, &ready[..]);
    if errors > 0 {
        shared.metrics.send_errors.fetch_add(errors as u64, Relaxed);
    }
    n
}

/// A worker's loop: receive a batch, process it, send the replies, until
/// `shared.stop` is set. The batch in hand is always answered. With an
/// engine that may block, the requests that need it go to the worker's
/// engine threads (`engine.1` of them, at most `engine.0` requests
/// waiting), whose queue is drained before this returns; they take turns
/// with other workers' engine threads through `engine.2`. With two engine
/// threads or more the worker makes its reads (and floods of writes)
/// itself, and a standby thread
/// receives in its stead while such a call is stuck (crate::own_calls).
pub(crate) fn run_worker(
    shared: Arc<Shared>,
    sock: std::net::UdpSocket,
    engine: (usize, usize, Option<Arc<crate::call_gate::CallGates>>),
    protection: Protection,
) {
    let mut io = crate::net::worker_batch();
    let mut proc = Processor::with_protection(&shared, &protection);
    let mut queue = None;
    let lanes = engine.1;
    if shared.engine.may_block() {
        let name = format!(
            "{}-engine",
            std::thread::current().name().unwrap_or("worker")
        );
        // The engine thread applies the same options and `DistinctWindow`
        // (the rate limit is the worker's).
        let engine_side = Protection {
            rate: pyzor_config::RateLimitConfig::off(),
            penalty: None,
            ..protection.clone()
        };
        match EngineQueue::start(&shared, &sock, engine, &name, &engine_side) {
            Ok(q) => queue = Some(Arc::new(Mutex::new(q))),
            Err(e) => log::error!(
                "cannot start an engine thread ({e}); this worker calls the engine itself"
            ),
        }
    }
    // Its own calls, and the standby thread that receives while one is
    // stuck; without a standby it makes no calls itself.
    let mut own_calls = None;
    let mut standby = None;
    if let (Some(q), true) = (&queue, lanes > 1) {
        let own = Arc::new(OwnCalls::default());
        let name = format!(
            "{}-standby",
            std::thread::current().name().unwrap_or("worker")
        );
        let spawned = sock.try_clone().and_then(|sock| {
            let s = Standby {
                shared: Arc::clone(&shared),
                sock,
                queue: Arc::clone(q),
                own: Arc::clone(&own),
                protection: protection.clone(),
            };
            std::thread::Builder::new()
                .name(name)
                .spawn(move || s.run())
        });
        match spawned {
            Ok(t) => {
                standby = Some(t);
                own_calls = Some(own);
            }
            Err(e) => log::error!(
                "cannot start a standby thread ({e}); this worker hands all its engine requests to its engine threads"
            ),
        }
    }
    // Which replies of the batch to send now (all, unless some went to the
    // engine thread or were dropped by the rate limit).
    let mut ready = [true; crate::net::BATCH];
    // The penalty worker yields the CPU to the others and lets networks
    // out of the box.
    let penalty_box = match &protection.penalty {
        Some((b, Role::PenaltyWorker)) => {
            crate::net::penalty::lower_this_thread();
            Some(Arc::clone(b))
        }
        _ => None,
    };
    while !shared.stop.load(Relaxed) {
        if let Some(b) = &penalty_box {
            // its turn ends with each batch
            crate::net::penalty::give_way();
            b.expire();
        }
        let to = queue.as_deref().map(|queue| Handoff {
            queue,
            own: own_calls.as_deref(),
        });
        serve_batch(&shared, &sock, (&mut io, &mut proc), to, &mut ready);
    }
    if let Some(t) = standby {
        if t.join().is_err() {
            log::error!("The standby thread of this worker panicked");
        }
    }
    if let Some(q) = queue {
        // the standby has ended: this is the last reference
        match Arc::try_unwrap(q) {
            Ok(q) => q
                .into_inner()
                .unwrap_or_else(PoisonError::into_inner)
                .finish(),
            Err(_) => log::error!("the engine queue of this worker is still shared at shutdown"),
        }
    }
}
