//! Starting and stopping the server: worker threads (one `SO_REUSEPORT`
//! socket each, datagrams steered by client network, see [`crate::net`];
//! with two or more, the penalty worker for networks that flood),
//! the engine timers (flush every second, CleanupAge expiry
//! at start and hourly), the metrics endpoint, SIGUSR1 reloads and a clean
//! shutdown (in-flight batches and engine queues answered, engine flushed).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pyzor_store::Engine;

use crate::forward::ForwardQueue;
use crate::logging::Logs;
use crate::metrics::Metrics;
use crate::net::penalty::{PenaltyBox, Role};
use crate::net::{bind_workers, listen_addr, py_os_error, Steering};
use crate::rules::RuleSet;
use crate::worker::{run_worker, Shared};

/// How often the workers look at the stop flag while idle.
const POLL: Duration = Duration::from_millis(200);
/// Engine flush period.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// CleanupAge expiry period (also run once at start).
const EXPIRE_EVERY: Duration = Duration::from_secs(3600);
/// [`StartOptions::engine_queue`] of pyzord.
pub(crate) const DEFAULT_ENGINE_QUEUE: usize = 1024;

/// What [`Server::start`] needs besides the engine and rules.
#[derive(Clone, Debug)]
pub struct StartOptions {
    /// `ListenAddress` (an address with `:` is IPv6).
    pub address: String,
    /// `Port` (0 = any free port; see [`Server::local_addr`]).
    pub port: u16,
    /// Number of worker threads (≥ 1).
    pub workers: usize,
    /// `CleanupAge` in seconds; ≤ 0 disables expiry.
    pub cleanup_age: i64,
    /// The HTTP listener: its address (`HttpAddress`, alias
    /// `MetricsAddress`), the API and the whitelist-request page.
    pub http: pyzor_config::HttpConfig,
    /// Where whitelist requests are kept (`ServerConfig::data_dir`: beside
    /// the engine's data).
    pub data_dir: std::path::PathBuf,
    /// For an engine that may block (`Engine::may_block`): how many
    /// requests each worker lets wait for its engine thread, the one in
    /// the engine call included; beyond it they are answered 500 at once
    /// (docs/server.md, "Concurrency"). At least 1.
    pub engine_queue: usize,
    /// `EngineConcurrency`: for an engine that may block, how many engine
    /// threads each worker runs (batches in flight at once; one client
    /// network always on the same thread). At least 1.
    pub engine_concurrency: usize,
    /// The per-network rate limits (docs/security.md).
    pub rate_limit: pyzor_config::RateLimitConfig,
    /// `StrictDigests` (docs/security.md, "Strict digests").
    pub strict_digests: bool,
    /// `IgnoreEmptyDigest` (docs/security.md, "The empty-body digest").
    pub ignore_empty_digest: bool,
    /// `DistinctWindow` in seconds, 0 = off (docs/security.md, "Distinct
    /// reporters").
    pub distinct_window: u32,
}

/// Why [`Server::start`] failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The UDP address cannot be resolved or bound (e.g. another server
    /// holds it: `[Errno 98] Address already in use`, as the reference).
    #[error("cannot listen on {addr}: {}", py_os_error(.source))]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// The HTTP listener (metrics, API, page) cannot be bound.
    #[error("cannot serve HTTP (metrics, API, page) on {addr} (--http-address / HttpAddress, or its alias MetricsAddress): {source}")]
    Metrics {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// A thread could not be started.
    #[error("cannot start a thread: {0}")]
    Thread(#[source] std::io::Error),
    /// The step run between binding and serving failed (pyzord: the
    /// privilege drop of `--user`/`--group`).
    #[error("{0}")]
    BeforeServing(String),
}

/// A running server.
pub struct Server {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    timers: Option<JoinHandle<()>>,
    metrics_thread: Option<JoinHandle<()>>,
    local_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    penalty: Option<Arc<PenaltyBox>>,
}

impl Server {
    /// Bind the sockets and start every thread.
    pub fn start(
        opts: &StartOptions,
        engine: Arc<dyn Engine>,
        rules: Arc<RuleSet>,
        logs: Option<Logs>,
        forward: Option<ForwardQueue>,
    ) -> Result<Server, StartError> {
        Self::start_then(opts, engine, rules, logs, forward, || Ok(()))
    }

    /// [`Server::start`], running `before_serving` once every socket (UDP
    /// and metrics) is bound and before any worker receives a datagram:
    /// pyzord drops root there. When it fails, nothing has served and the
    /// error is [`StartError::BeforeServing`].
    pub fn start_then(
        opts: &StartOptions,
        engine: Arc<dyn Engine>,
        rules: Arc<RuleSet>,
        logs: Option<Logs>,
        forward: Option<ForwardQueue>,
        before_serving: impl FnOnce() -> Result<(), String>,
    ) -> Result<Server, StartError> {
        let metrics = Arc::new(Metrics::default());
        if let Some(l) = &logs {
            metrics.watch_logs(l);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let n = opts.workers.max(1);
        let listen = |source| StartError::Listen {
            addr: format!("{}:{}", opts.address, opts.port),
            source,
        };
        let bound = bind_workers(
            listen_addr(&opts.address, opts.port).map_err(listen)?,
            n,
            POLL,
        )
        .map_err(listen)?;
        let (sockets, addr) = (bound.sockets, bound.addr);
        // The penalty box: with two workers or more and the steering
        // program attached (docs/security.md, "The penalty box"); it can
        // only act when rate limits are on.
        let penalty = match (bound.penalty, sockets.first()) {
            (Some(p), Some(first)) if opts.rate_limit.enabled() => {
                let group = first.try_clone().map_err(listen)?;
                let b = crate::net::penalty::PenaltyBox::new(n as u32, group, Arc::clone(&metrics));
                Some((Arc::new(b), p))
            }
            _ => None,
        };
        if let Steering::KernelHash(e) = &bound.steering {
            log::warn!(
                "Cannot steer datagrams by client network ({e}); the kernel spreads them over the {n} workers, so one client's requests may be answered out of order (docs/server.md)"
            );
        }
        if let Some(s) = sockets.first() {
            // The kernel reports twice the usable size and caps the request
            // at net.core.rmem_max.
            let got = socket2::SockRef::from(s).recv_buffer_size().unwrap_or(0);
            if got < crate::net::RCVBUF {
                log::info!(
                    "UDP receive buffer is {got} bytes per worker (asked for {}); raise net.core.rmem_max to absorb larger bursts",
                    crate::net::RCVBUF
                );
            }
        }
        let shared = Arc::new(Shared {
            engine,
            rules,
            metrics: Arc::clone(&metrics),
            logs,
            forward,
            stop: Arc::clone(&stop),
        });
        let protection = crate::worker::Protection {
            rate: opts.rate_limit.clone(),
            replay: Arc::default(),
            strict_digests: opts.strict_digests,
            ignore_empty_digest: opts.ignore_empty_digest,
            distinct: crate::protect::DistinctReporters::new(
                opts.distinct_window,
                &opts.rate_limit,
            )
            .map(Arc::new),
            penalty: penalty.as_ref().map(|(b, _)| (Arc::clone(b), Role::Worker)),
        };
        let (metrics_addr, metrics_thread) = match &opts.http.address {
            Some(a) => {
                let router = http_router(opts, &shared);
                let (la, h) =
                    crate::http::serve(a, router, Arc::clone(&stop)).map_err(|source| {
                        StartError::Metrics {
                            addr: a.clone(),
                            source,
                        }
                    })?;
                (Some(la), Some(h))
            }
            None => (None, None),
        };
        if let Err(e) = before_serving() {
            stop.store(true, Relaxed);
            if let Some(t) = metrics_thread {
                let _ = t.join();
            }
            return Err(StartError::BeforeServing(e));
        }
        if let Some(d) = &protection.distinct {
            log::info!(
                "DistinctWindow = {} s: a digest's report and whitelist counts rise at most once per client network or account in that time ({} KiB table, in memory only)",
                opts.distinct_window,
                d.bytes() / 1024
            );
        }
        let mut workers = Vec::with_capacity(n + 1);
        let mut penalty_box = None;
        // The workers' engine threads take turns (crate::call_gate).
        let gates = crate::call_gate::CallGates::for_workers(
            n,
            opts.engine_concurrency,
            crate::call_gate::Kinds::of(shared.engine.as_ref()),
        )
        .map(Arc::new);
        for (i, s) in sockets.into_iter().enumerate() {
            let sh = Arc::clone(&shared);
            let queue = (opts.engine_queue, opts.engine_concurrency, gates.clone());
            let protection = protection.clone();
            workers.push(
                std::thread::Builder::new()
                    .name(format!("worker-{i}"))
                    .spawn(move || run_worker(sh, s, queue, protection))
                    .map_err(StartError::Thread)?,
            );
        }
        if let Some((b, sock)) = penalty {
            let sh = Arc::clone(&shared);
            // One engine thread: the penalty worker answers a flood's
            // few admitted requests, it needs no parallel engine calls; it
            // takes no turns with the others.
            let queue = (opts.engine_queue, 1, None);
            let protection = crate::worker::Protection {
                penalty: Some((Arc::clone(&b), Role::PenaltyWorker)),
                ..protection.clone()
            };
            workers.push(
                std::thread::Builder::new()
                    .name("worker-penalty".into())
                    .spawn(move || run_worker(sh, sock, queue, protection))
                    .map_err(StartError::Thread)?,
            );
            penalty_box = Some(b);
        }
        let timers = {
            let sh = Arc::clone(&shared);
            let age = opts.cleanup_age;
            Some(
                std::thread::Builder::new()
                    .name("engine-timers".into())
                    .spawn(move || timers(sh, age))
                    .map_err(StartError::Thread)?,
            )
        };
        log::debug!("Listening on {addr} with {n} workers");
        Ok(Server {
            shared,
            workers,
            timers,
            metrics_thread,
            local_addr: addr,
            metrics_addr,
            penalty: penalty_box,
        })
    }

    /// The bound address (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The client networks on the penalty socket now, as `a.b.c.0/24` or
    /// `x:x:x:xx00::/56` (docs/security.md, "The penalty box"); empty
    /// with one worker or without rate limits.
    pub fn penalised_networks(&self) -> Vec<String> {
        self.penalty
            .as_ref()
            .map(|b| b.penalised().iter().map(ToString::to_string).collect())
            .unwrap_or_default()
    }

    /// Where the HTTP listener listens.
    pub(crate) fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.shared.metrics
    }

    /// SIGUSR1: re-read pyzord.passwd and pyzord.access; on failure the old
    /// rules stay in force and the reason is logged.
    pub fn reload(&self) {
        match self.shared.rules.reload() {
            Ok(()) => {
                self.shared.metrics.reloads_ok.fetch_add(1, Relaxed);
            }
            Err(e) => {
                self.shared.metrics.reloads_failed.fetch_add(1, Relaxed);
                log::error!("Reload failed, the previous accounts and ACL stay in force: {e}");
            }
        }
    }

    /// Stop: workers finish (and answer) the batch in hand, their engine
    /// threads answer what waits for them, the engine is flushed, the
    /// forwarder sends what it holds.
    pub fn shutdown(mut self) {
        self.shared.stop.store(true, Relaxed);
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        if let Some(t) = self.timers.take() {
            let _ = t.join();
        }
        if let Some(t) = self.metrics_thread.take() {
            let _ = t.join();
        }
        if let Err(e) = self.shared.engine.flush() {
            log::error!("Engine flush at shutdown failed: {e}");
        }
        if let Some(f) = &self.shared.forward {
            f.shutdown();
        }
        if let Some(l) = &self.shared.logs {
            let (m, u) = l.dropped();
            if m + u > 0 {
                log::warn!("{m} log lines and {u} usage-log lines were dropped (queue full)");
            }
        }
    }
}

/// The HTTP listener's routes: `/metrics`, and the API and the page when
/// turned on. They read the engine directly (a read, on the listener's
/// own threads), never through a worker.
fn http_router(opts: &StartOptions, shared: &Shared) -> crate::http::Router {
    use crate::http::{api, page, Guard, Router};
    let mut router = crate::metrics::route(Router::new(), Arc::clone(&shared.metrics));
    if !(opts.http.api || opts.http.requests) {
        return router;
    }
    let lookup = Arc::new(api::Lookup {
        engine: Arc::clone(&shared.engine),
        metrics: Arc::clone(&shared.metrics),
        guard: Guard::new(&opts.rate_limit, opts.http.read_rate, opts.http.file_rate),
    });
    if opts.http.api {
        router = api::route(router, Arc::clone(&lookup));
    }
    if opts.http.requests {
        let p = page::Page {
            lookup,
            csrf: crate::http::Csrf::new(),
            requests: crate::requests::RequestLog::in_dir(&opts.data_dir),
        };
        router = page::route(router, Arc::new(p));
    }
    router
}

fn timers(sh: Arc<Shared>, cleanup_age: i64) {
    let mut last_flush = Instant::now();
    let mut next_expire = Instant::now();
    while !sh.stop.load(Relaxed) {
        let now = Instant::now();
        if now >= next_expire {
            let cutoff = pyzor_protocol::record::expiry_cutoff(pyzor_store::now(), cleanup_age);
            if let Some(cutoff) = cutoff {
                match sh.engine.expire(cutoff) {
                    Ok(n) if n > 0 => {
                        log::info!("Expired {n} records not updated for {cleanup_age} s")
                    }
                    Ok(_) => {}
                    Err(e) => log::error!("Expiry failed: {e}"),
                }
            }
            next_expire = now + EXPIRE_EVERY;
        }
        if now.duration_since(last_flush) >= FLUSH_EVERY {
            if let Err(e) = sh.engine.flush() {
                sh.metrics.engine_errors.fetch_add(1, Relaxed);
                log::error!("Engine flush failed: {e}");
            }
            last_flush = now;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
