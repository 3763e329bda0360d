//! Counters, latency histograms and the text/JSON result.

use crate::load::Mix;
use crate::proto::Op;
use crate::LoadArgs;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Latencies are recorded in nanoseconds, 1 ns … 120 s, 3 significant digits
/// (≤ 0.1 % quantisation error).
pub(crate) fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000_000, 3).expect("valid histogram bounds")
}

/// One worker's counters.
pub(crate) struct ThreadStats {
    pub sent: u64,
    pub sent_by_op: [u64; 6],
    pub responses: u64,
    pub lost: u64,
    pub late: u64,
    pub stray: u64,
    pub malformed: u64,
    pub unexpected: u64,
    pub send_errors: u64,
    pub recv_errors: u64,
    pub checks_answered: u64,
    pub check_hits: u64,
    pub codes: BTreeMap<u16, u64>,
    pub all: Histogram<u64>,
    pub by_op: Vec<Histogram<u64>>,
    pub send_stop: Option<Instant>,
    pub last_reply: Option<Instant>,
}

impl ThreadStats {
    pub fn new() -> ThreadStats {
        ThreadStats {
            sent: 0,
            sent_by_op: [0; 6],
            responses: 0,
            lost: 0,
            late: 0,
            stray: 0,
            malformed: 0,
            unexpected: 0,
            send_errors: 0,
            recv_errors: 0,
            checks_answered: 0,
            check_hits: 0,
            codes: BTreeMap::new(),
            all: new_hist(),
            by_op: Op::ALL.iter().map(|_| new_hist()).collect(),
            send_stop: None,
            last_reply: None,
        }
    }

    pub fn record(&mut self, op: Op, ns: u64) {
        // Values above the bound are clamped rather than dropped.
        let _ = self.all.record(ns.min(self.all.high()));
        let h = &mut self.by_op[op.index()];
        let _ = h.record(ns.min(h.high()));
    }

    pub fn merge(&mut self, o: &ThreadStats) {
        self.sent += o.sent;
        for i in 0..6 {
            self.sent_by_op[i] += o.sent_by_op[i];
        }
        self.responses += o.responses;
        self.lost += o.lost;
        self.late += o.late;
        self.stray += o.stray;
        self.malformed += o.malformed;
        self.unexpected += o.unexpected;
        self.send_errors += o.send_errors;
        self.recv_errors += o.recv_errors;
        self.checks_answered += o.checks_answered;
        self.check_hits += o.check_hits;
        for (c, n) in &o.codes {
            *self.codes.entry(*c).or_insert(0) += n;
        }
        let _ = self.all.add(&o.all);
        for (a, b) in self.by_op.iter_mut().zip(&o.by_op) {
            let _ = a.add(b);
        }
        self.send_stop = max_opt(self.send_stop, o.send_stop);
        self.last_reply = max_opt(self.last_reply, o.last_reply);
    }
}

impl Default for ThreadStats {
    fn default() -> Self {
        Self::new()
    }
}

fn max_opt(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// Latency summary in milliseconds.
#[derive(Serialize, Debug, Clone)]
pub(crate) struct Latency {
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub(crate) fn of(h: &Histogram<u64>) -> Latency {
        let ms = |ns: u64| ns as f64 / 1e6;
        Latency {
            mean_ms: h.mean() / 1e6,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

/// Per-op part of the result (only for ops that were sent).
#[derive(Serialize, Debug, Clone)]
pub(crate) struct OpResult {
    pub op: &'static str,
    pub sent: u64,
    pub responses: u64,
    pub latency: Latency,
}

/// The result of a load run, printed as text or JSON.
#[derive(Serialize, Debug, Clone)]
pub(crate) struct Stats {
    pub target: String,
    pub ops: String,
    pub window: u32,
    pub threads: usize,
    pub sockets_per_thread: usize,
    /// Source networks the sockets were bound to (1: the system's choice).
    pub sources: usize,
    pub mode: &'static str,
    pub pool: u64,
    pub user: String,
    pub sent: u64,
    pub responses: u64,
    pub lost: u64,
    pub late: u64,
    pub stray: u64,
    pub malformed: u64,
    pub unexpected_code: u64,
    pub send_errors: u64,
    pub recv_errors: u64,
    pub codes: BTreeMap<String, u64>,
    pub check_hits: u64,
    pub check_hit_pct: Option<f64>,
    pub elapsed_s: f64,
    pub req_per_s: f64,
    pub latency: Latency,
    pub per_op: Vec<OpResult>,
    pub generator_cpu_s: f64,
    pub generator_cpu_us_per_req: f64,
    /// `sent == responses + lost`, something answered, no stray, no
    /// malformed answer, every code as expected (else the exit status is 1).
    pub ok: bool,
}

/// How the generator's sockets were laid out.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shape {
    pub threads: usize,
    pub sockets_per_thread: usize,
    /// Source networks in use (1: the system's choice of address).
    pub sources: usize,
}

impl Stats {
    pub fn finish(
        t: ThreadStats,
        args: &LoadArgs,
        mix: &Mix,
        shape: Shape,
        measure_start: Instant,
        cpu: Duration,
    ) -> Stats {
        let end = max_opt(t.send_stop, t.last_reply).unwrap_or(measure_start);
        let elapsed = end.saturating_duration_since(measure_start).as_secs_f64();
        let req_per_s = if elapsed > 0.0 {
            t.responses as f64 / elapsed
        } else {
            0.0
        };
        let per_op = Op::ALL
            .iter()
            .filter(|op| t.sent_by_op[op.index()] > 0)
            .map(|&op| OpResult {
                op: op.name(),
                sent: t.sent_by_op[op.index()],
                responses: t.by_op[op.index()].len(),
                latency: Latency::of(&t.by_op[op.index()]),
            })
            .collect();
        let ok = t.sent == t.responses + t.lost
            && t.responses > 0
            && t.stray == 0
            && t.malformed == 0
            && t.unexpected == 0;
        Stats {
            target: format!("{}:{}", args.host, args.port),
            ops: mix.describe(),
            window: args.window,
            threads: shape.threads,
            sockets_per_thread: shape.sockets_per_thread,
            sources: shape.sources,
            mode: args.mode.name(),
            pool: args.pool,
            user: args.user.clone(),
            sent: t.sent,
            responses: t.responses,
            lost: t.lost,
            late: t.late,
            stray: t.stray,
            malformed: t.malformed,
            unexpected_code: t.unexpected,
            send_errors: t.send_errors,
            recv_errors: t.recv_errors,
            codes: t.codes.iter().map(|(c, n)| (c.to_string(), *n)).collect(),
            check_hits: t.check_hits,
            check_hit_pct: (t.checks_answered > 0)
                .then(|| 100.0 * t.check_hits as f64 / t.checks_answered as f64),
            elapsed_s: elapsed,
            req_per_s,
            latency: Latency::of(&t.all),
            per_op,
            generator_cpu_s: cpu.as_secs_f64(),
            generator_cpu_us_per_req: if t.responses > 0 {
                cpu.as_secs_f64() * 1e6 / t.responses as f64
            } else {
                0.0
            },
            ok,
        }
    }

    pub fn text(&self) -> String {
        let mut s = String::new();
        let l = &self.latency;
        let codes: Vec<String> = self.codes.iter().map(|(c, n)| format!("{c}={n}")).collect();
        s += &format!(
            "====== pyzor-bench {} -> {} ======\n  window {} over {} thread(s) x {} socket(s) from {} source network(s), digests {} (pool {}), user {}\n",
            self.ops, self.target, self.window, self.threads, self.sockets_per_thread, self.sources, self.mode, self.pool, self.user
        );
        s += &format!(
            "  sent {}  answered {}  lost {}  late {}  stray {}  malformed {}  send_err {}  recv_err {}\n",
            self.sent, self.responses, self.lost, self.late, self.stray, self.malformed, self.send_errors, self.recv_errors
        );
        s += &format!(
            "  codes: {}\n",
            if codes.is_empty() {
                "-".into()
            } else {
                codes.join(" ")
            }
        );
        if let Some(h) = self.check_hit_pct {
            s += &format!("  check hits (Count > 0): {} ({h:.1} %)\n", self.check_hits);
        }
        s += &format!(
            "  throughput: {:.0} requests per second over {:.3} s\n",
            self.req_per_s, self.elapsed_s
        );
        s += &format!(
            "  latency ms: mean {:.3}  p50 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}\n",
            l.mean_ms, l.p50_ms, l.p99_ms, l.p999_ms, l.max_ms
        );
        if self.per_op.len() > 1 {
            for o in &self.per_op {
                let l = &o.latency;
                s += &format!(
                    "    {:<9} sent {:>9} answered {:>9}  p50 {:.3}  p99 {:.3}  p99.9 {:.3}\n",
                    o.op, o.sent, o.responses, l.p50_ms, l.p99_ms, l.p999_ms
                );
            }
        }
        s += &format!(
            "  generator CPU: {:.2} s ({:.2} us per answered request)\n",
            self.generator_cpu_s, self.generator_cpu_us_per_req
        );
        if !self.ok {
            s +=
                "  NOT OK: no answers, stray/malformed answers, unexpected codes, or sent != answered + lost\n";
        }
        s
    }
}

/// CPU time (user + system) used by this process so far.
pub(crate) fn self_cpu() -> Duration {
    // SAFETY: rusage is a plain C struct; all-zero bytes are a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage only writes into the struct we pass.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, (t.tv_usec as u32) * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}
