//! Counters of the server, exported in the Prometheus text format on an
//! optional HTTP endpoint (`--metrics-address host:port`, config key
//! `MetricsAddress`). Every counter is a relaxed atomic: updating one costs
//! a few nanoseconds and never blocks.
//!
//! Exported series:
//! * `pyzord_requests_total{op,code}` — replies sent, by op (`ping` …
//!   `whitelist`, `other` for unknown/missing ops) and code;
//! * `pyzord_engine_errors_total` — failed engine batches;
//! * `pyzord_engine_up` — 0 while the engine fails every batch, else 1
//!   ([`crate::health`]);
//! * `pyzord_engine_queue_full_total` — requests answered 500 at once
//!   because their worker's engine queue was full (engines that may block);
//! * `pyzord_engine_queue_requests` — requests waiting for an engine thread
//!   now, the ones in its engine call included (gauge);
//! * `pyzord_dropped_total{what}` — log lines (`log`, `usage_log`) and
//!   forwarded digests (`forward`) dropped because a queue was full;
//! * `pyzord_log_queue_bytes` — bytes held by log lines waiting for the
//!   writer (at most 4 MiB, `logging::QUEUE_BYTES`);
//! * `pyzord_batches_total`, `pyzord_batch_requests_total`,
//!   `pyzord_batch_max` — receive batches, the datagrams in them, the
//!   largest batch;
//! * `pyzord_send_errors_total` — replies the kernel refused;
//! * `pyzord_worker_read_ops_total` — read operations a worker made itself
//!   instead of handing them to its engine threads,
//!   `pyzord_worker_write_ops_total` — the same for write operations, in
//!   floods of writes, `pyzord_standby_batches_total` — receive batches a standby thread
//!   answered while its worker's engine call was stuck
//!   (docs/server.md, "Concurrency");
//! * `pyzord_forwarded_total` — digests queued for the forward servers;
//! * `pyzord_reloads_total{result}` — SIGUSR1 reloads;
//! * `pyzord_rate_limited_total` — requests over their network's rate
//!   limit (in log mode too), `pyzord_rate_dropped_total` — those of them
//!   not answered, `pyzord_rate_allowlisted_total` — requests exempted by
//!   `RateLimitAllow` (docs/security.md);
//! * `pyzord_penalised_networks`, `pyzord_penalty_moves_total`,
//!   `pyzord_penalty_refused_total`, `pyzord_penalty_attach_errors_total` —
//!   the penalty box (docs/security.md, "The penalty box");
//! * `pyzord_replays_total` — signed writes refused as replays;
//! * `pyzord_distinct_repeats_total` — report/whitelist digests not counted
//!   under `DistinctWindow` (their reporter counted them in the window);
//! * `pyzord_empty_digest_ignored_total` — empty-body digests answered or
//!   not counted under `IgnoreEmptyDigest`.
//! * `pyzord_http_lookups_total{kind}` — records read by the HTTP listener:
//!   `digest` (`GET /v1/digests/…`), `explain` (`POST /v1/explain`),
//!   `page` (the whitelist-request page); `pyzord_http_rate_limited_total`
//!   — its requests over their network's limit;
//!   `pyzord_whitelist_requests_filed_total` — requests filed on the page.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

use pyzor_protocol::wire::Op;

use crate::health::EngineHealth;
use crate::http::{Answer, Router};
use crate::logging::Logs;

const CODES: [u16; 7] = [200, 400, 401, 403, 500, 501, 505];
const OPS: [&str; 7] = [
    "ping",
    "pong",
    "check",
    "info",
    "report",
    "whitelist",
    "other",
];

/// The kinds of `pyzord_http_lookups_total`, in the order of
/// [`Metrics::http_lookups`].
pub(crate) const HTTP_LOOKUPS: [&str; 3] = ["digest", "explain", "page"];

/// Reply counts of one batch, kept by a worker and added to [`Metrics`]
/// once per batch (`Metrics::add_tally`): one atomic add per distinct
/// (operation, code) of the batch instead of one per reply, so that the
/// workers do not pass the counters' cache line back and forth at every
/// reply.
#[derive(Debug, Default)]
pub struct Tally {
    counts: [[u32; 8]; 7],
}

impl Tally {
    /// Count one reply.
    #[inline]
    pub fn add(&mut self, op: Option<Op>, code: u16) {
        self.counts[op_index(op)][code_index(code)] += 1;
    }
}

/// All counters.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: [[AtomicU64; 8]; 7],
    pub engine_errors: AtomicU64,
    pub engine_queue_full: AtomicU64,
    pub engine_queued: AtomicU64,
    pub dropped_log: AtomicU64,
    pub dropped_usage: AtomicU64,
    pub dropped_forward: AtomicU64,
    pub forwarded: AtomicU64,
    pub batches: AtomicU64,
    pub batch_requests: AtomicU64,
    pub batch_max: AtomicU64,
    /// Engine calls with operations, and their operations: the mean is how
    /// many digests one database round trip carries (docs/scaling.md).
    pub engine_calls: AtomicU64,
    pub engine_call_ops: AtomicU64,
    pub send_errors: AtomicU64,
    /// Read operations the workers made themselves (crate::own_calls).
    pub worker_reads: AtomicU64,
    /// Write operations the workers made themselves, in floods of writes
    /// (crate::own_calls).
    pub worker_writes: AtomicU64,
    /// Batches the standby threads answered.
    pub standby_batches: AtomicU64,
    pub reloads_ok: AtomicU64,
    pub reloads_failed: AtomicU64,
    /// Requests over their network's rate limit (enforced or logged).
    pub rate_limited: AtomicU64,
    /// Limited requests that got no reply.
    pub rate_dropped: AtomicU64,
    /// Requests from a network of the allow list.
    pub rate_allowlisted: AtomicU64,
    /// Networks on the penalty socket now (docs/security.md, "The
    /// penalty box").
    pub penalised: AtomicU64,
    /// Networks moved to the penalty socket.
    pub penalty_moves: AtomicU64,
    /// Networks over the penalty threshold left where they were: the box
    /// was full of larger floods, or the program was changed too recently.
    pub penalty_refused: AtomicU64,
    /// Failed attachments of the steering program (the previous one stays).
    pub penalty_attach_errors: AtomicU64,
    /// Signed writes refused as replays.
    pub replays: AtomicU64,
    /// Digests not counted under `DistinctWindow`.
    pub distinct_repeats: AtomicU64,
    /// Empty-body digests left alone under `IgnoreEmptyDigest`.
    pub empty_digest_ignored: AtomicU64,
    /// Records read by the HTTP listener, by kind: digest, explain, page.
    pub http_lookups: [AtomicU64; 3],
    /// HTTP requests over their network's limit (enforced or logged).
    pub http_rate_limited: AtomicU64,
    /// Whitelist requests filed on the page.
    pub requests_filed: AtomicU64,
    /// The engine's up/down state and its log lines.
    pub health: EngineHealth,
    /// The logs whose queue and drops are exported ([`Metrics::watch_logs`]).
    logs: OnceLock<Logs>,
}

fn op_index(op: Option<Op>) -> usize {
    match op {
        Some(Op::Ping) => 0,
        Some(Op::Pong) => 1,
        Some(Op::Check) => 2,
        Some(Op::Info) => 3,
        Some(Op::Report) => 4,
        Some(Op::Whitelist) => 5,
        None => 6,
    }
}

fn code_index(code: u16) -> usize {
    CODES.iter().position(|&c| c == code).unwrap_or(7)
}

impl Metrics {
    /// Add a batch's [`Tally`] to the shared counters and empty it.
    pub(crate) fn add_tally(&self, t: &mut Tally) {
        for (shared, counts) in self.requests.iter().zip(t.counts.iter_mut()) {
            for (cell, n) in shared.iter().zip(counts.iter_mut()) {
                if *n != 0 {
                    cell.fetch_add(u64::from(std::mem::take(n)), Relaxed);
                }
            }
        }
    }

    /// Export the drops and queue of `logs` (once; later calls are
    /// ignored).
    pub fn watch_logs(&self, logs: &Logs) {
        let _ = self.logs.set(logs.clone());
    }

    /// Count one receive batch of `n` datagrams.
    #[inline]
    pub fn batch(&self, n: usize) {
        self.batches.fetch_add(1, Relaxed);
        self.batch_requests.fetch_add(n as u64, Relaxed);
        self.batch_max.fetch_max(n as u64, Relaxed);
    }

    /// Replies counted for `op` and `code` so far.
    pub fn requests_for(&self, op: Option<Op>, code: u16) -> u64 {
        self.requests[op_index(op)][code_index(code)].load(Relaxed)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut s = String::new();
        s.push_str("# HELP pyzord_requests_total Replies sent, by operation and code.\n# TYPE pyzord_requests_total counter\n");
        for (oi, op) in OPS.iter().enumerate() {
            for (ci, code) in CODES
                .iter()
                .map(|c| c.to_string())
                .chain(["other".to_string()])
                .enumerate()
            {
                let v = self.requests[oi][ci].load(Relaxed);
                if v > 0 {
                    s.push_str(&format!(
                        "pyzord_requests_total{{op=\"{op}\",code=\"{code}\"}} {v}\n"
                    ));
                }
            }
        }
        let simple = |s: &mut String, name: &str, help: &str, kind: &str, v: u64| {
            s.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
            ));
        };
        simple(
            &mut s,
            "pyzord_engine_errors_total",
            "Engine batches that failed.",
            "counter",
            self.engine_errors.load(Relaxed),
        );
        simple(
            &mut s,
            "pyzord_engine_up",
            "0 while every engine batch fails, else 1.",
            "gauge",
            u64::from(self.health.is_up()),
        );
        simple(
            &mut s,
            "pyzord_engine_queue_full_total",
            "Requests answered 500 at once because the engine queue of their worker was full.",
            "counter",
            self.engine_queue_full.load(Relaxed),
        );
        simple(
            &mut s,
            "pyzord_engine_queue_requests",
            "Requests waiting for an engine thread, including those in its engine call.",
            "gauge",
            self.engine_queued.load(Relaxed),
        );
        s.push_str("# HELP pyzord_dropped_total Items dropped because a queue was full.\n# TYPE pyzord_dropped_total counter\n");
        let ((log_main, log_usage), log_queued) = self
            .logs
            .get()
            .map_or(((0, 0), 0), |l| (l.dropped(), l.queued_bytes()));
        for (what, v) in [
            ("log", self.dropped_log.load(Relaxed) + log_main),
            ("usage_log", self.dropped_usage.load(Relaxed) + log_usage),
            ("forward", self.dropped_forward.load(Relaxed)),
        ] {
            s.push_str(&format!("pyzord_dropped_total{{what=\"{what}\"}} {v}\n"));
        }
        simple(
            &mut s,
            "pyzord_log_queue_bytes",
            "Bytes held by log lines waiting to be written.",
            "gauge",
            log_queued as u64,
        );
        simple(
            &mut s,
            "pyzord_forwarded_total",
            "Digests sent to forward servers.",
            "counter",
            self.forwarded.load(Relaxed),
        );
        simple(
            &mut s,
            "pyzord_batches_total",
            "Receive batches.",
            "counter",
            self.batches.load(Relaxed),
        );
        simple(
            &mut s,
            "pyzord_batch_requests_total",
            "Datagrams received in batches.",
            "counter",
            self.batch_requests.load(Relaxed),
        );
        simple(
            &mut s,
            "pyzord_batch_max",
            "Largest receive batch.",
            "gauge",
            self.batch_max.load(Relaxed),
        );
        simple(
            &mut s,
            "pyzord_engine_calls_total",
            "Engine calls (batches of operations sent to the engine).",
            "counter",
            self.engine_calls.load(Relaxed),
        );
        simple(
            &mut s,
            "pyzord_engine_call_ops_total",
            "Operations in engine calls; divided by pyzord_engine_calls_total, the mean batch an engine sees.",
            "counter",
            self.engine_call_ops.load(Relaxed),
        );
        simple(
            &mut s,
            "pyzord_penalised_networks",
            "Client networks on the penalty socket now.",
            "gauge",
            self.penalised.load(Relaxed),
        );
        simple(
            &mut s,
            "pyzord_send_errors_total",
            "Replies the kernel refused to send.",
            "counter",
            self.send_errors.load(Relaxed),
        );
        simple(
            &mut s,
            "pyzord_worker_read_ops_total",
            "Read operations a worker made itself instead of handing them to its engine threads.",
            "counter",
            self.worker_reads.load(Relaxed),
        );
        simple(
            &mut s,
            "pyzord_worker_write_ops_total",
            "Write operations a worker made itself in a flood of writes instead of handing them to its engine threads.",
            "counter",
            self.worker_writes.load(Relaxed),
        );
        simple(
            &mut s,
            "pyzord_standby_batches_total",
            "Receive batches a standby thread answered while its worker's engine call was stuck.",
            "counter",
            self.standby_batches.load(Relaxed),
        );
        for (name, help, v) in [
            (
                "pyzord_rate_limited_total",
                "Requests over their network's rate limit (enforced or logged).",
                &self.rate_limited,
            ),
            (
                "pyzord_rate_dropped_total",
                "Rate-limited requests that got no reply.",
                &self.rate_dropped,
            ),
            (
                "pyzord_rate_allowlisted_total",
                "Requests exempted from rate limits by RateLimitAllow.",
                &self.rate_allowlisted,
            ),
            (
                "pyzord_penalty_moves_total",
                "Client networks moved to the penalty socket (flooding over 4x their rate limit).",
                &self.penalty_moves,
            ),
            (
                "pyzord_penalty_refused_total",
                "Flooding networks not moved: the penalty box was full of larger floods or had just changed.",
                &self.penalty_refused,
            ),
            (
                "pyzord_penalty_attach_errors_total",
                "Steering programs the kernel refused (the previous one stayed in force).",
                &self.penalty_attach_errors,
            ),
            (
                "pyzord_replays_total",
                "Signed writes refused as replays.",
                &self.replays,
            ),
            (
                "pyzord_distinct_repeats_total",
                "Report/whitelist digests not counted: their reporter counted them within DistinctWindow.",
                &self.distinct_repeats,
            ),
            (
                "pyzord_empty_digest_ignored_total",
                "Empty-body digests answered as unknown or not counted (IgnoreEmptyDigest).",
                &self.empty_digest_ignored,
            ),
        ] {
            simple(&mut s, name, help, "counter", v.load(Relaxed));
        }
        s.push_str("# HELP pyzord_http_lookups_total Records read by the HTTP listener.\n# TYPE pyzord_http_lookups_total counter\n");
        for (kind, v) in HTTP_LOOKUPS.iter().zip(&self.http_lookups) {
            s.push_str(&format!(
                "pyzord_http_lookups_total{{kind=\"{kind}\"}} {}\n",
                v.load(Relaxed)
            ));
        }
        for (name, help, v) in [
            (
                "pyzord_http_rate_limited_total",
                "HTTP requests over their network's rate limit (enforced or logged).",
                &self.http_rate_limited,
            ),
            (
                "pyzord_whitelist_requests_filed_total",
                "Whitelist requests filed on the page.",
                &self.requests_filed,
            ),
        ] {
            simple(&mut s, name, help, "counter", v.load(Relaxed));
        }
        s.push_str("# HELP pyzord_reloads_total SIGUSR1 reloads of passwd/access.\n# TYPE pyzord_reloads_total counter\n");
        s.push_str(&format!(
            "pyzord_reloads_total{{result=\"ok\"}} {}\n",
            self.reloads_ok.load(Relaxed)
        ));
        s.push_str(&format!(
            "pyzord_reloads_total{{result=\"failed\"}} {}\n",
            self.reloads_failed.load(Relaxed)
        ));
        s
    }
}

/// The Prometheus text format's content type.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics` on `router` (the `http` module: 404 on other paths,
/// 405 for other methods, idle and slow clients cut off).
pub(crate) fn route(router: Router, metrics: Arc<Metrics>) -> Router {
    router.get(
        "/metrics",
        Box::new(move |_| Answer::ok(CONTENT_TYPE, metrics.render())),
    )
}
