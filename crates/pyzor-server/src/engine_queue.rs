//! A worker's engine threads, for engines whose calls may block on a
//! network or on another database session ([`Engine::may_block`]: redis,
//! mysql, postgres). docs/server.md, "Concurrency".
//!
//! The worker decides every request of a receive batch and answers at once
//! those that need no engine (ping, pong, refusals, ops without
//! `Op-Digest`). It copies the datagrams of the others into a [`Job`] and
//! hands it to its engine threads through a queue bounded in requests
//! ([`EngineQueue`]); when the queue is full those requests are answered
//! 500 "Database temporarily unavailable." at once and counted
//! (`pyzord_engine_queue_full_total`).
//!
//! A worker has `EngineConcurrency` engine threads (lanes), so that one
//! batch's round trip to the database does not idle the worker: while one
//! lane waits for its reply, the others run their own batches on their own
//! pooled connections. The job is split by the sender's network (IPv4 /24,
//! IPv6 /56, as the socket steering and the rate limiter group clients):
//! every request of one network goes to the same lane. Each lane takes its
//! jobs in order — several waiting jobs become one engine call — and sends
//! their replies itself on a clone of the worker's socket. One client's
//! datagrams reach one worker (the steering, or `SO_REUSEPORT`'s hash of
//! the address pair) and one lane, so its engine requests are answered in
//! the order they arrived: a check sent after a report sees the report.
//! The queue bound counts the requests waiting on all lanes together.
//!
//! At shutdown the worker answers the batch in hand and closes the queue;
//! each lane answers every job still in it before it ends. Once an engine
//! call of a lane fails as unavailable after the stop, the rest of that
//! lane is answered 500 without calling the engine again, so that a dead
//! database does not hold the shutdown for one engine timeout per job.
//!
//! [`Engine::may_block`]: pyzor_store::Engine::may_block

use std::hash::{BuildHasher, RandomState};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use pyzor_protocol::wire::Op;

use crate::worker::{Processor, Protection, Shared};

/// The most requests the engine thread answers with one engine call when
/// several jobs wait (each job is one receive batch, up to 64 requests).
const MERGE: usize = 4 * crate::net::BATCH;

/// The network prefixes that keep clients on one lane: those of the
/// socket steering (`net::steer`) and of the rate limiter's defaults.
const LANE_V4_PREFIX: u8 = 24;
const LANE_V6_PREFIX: u8 = 56;

/// Requests handed from a worker to its engine thread: their datagrams and
/// users (for the usage log) back to back in one buffer. Jobs go back to
/// the worker once answered, so their buffers are reused.
#[derive(Debug, Default)]
pub(crate) struct Job {
    data: Vec<u8>,
    items: Vec<Item>,
}

#[derive(Debug)]
struct Item {
    /// `data[start..mid]` is the datagram, `data[mid..end]` the user.
    start: usize,
    mid: usize,
    end: usize,
    peer: Option<SocketAddr>,
    /// The op `evaluate` accepted.
    op: Op,
}

/// One request of a [`Job`].
pub(crate) struct Pending<'j> {
    pub(crate) datagram: &'j [u8],
    pub(crate) user: &'j [u8],
    pub(crate) peer: Option<SocketAddr>,
    pub(crate) op: Op,
}

impl Job {
    /// Add a request that `evaluate` accepted for `op` as `user`.
    pub(crate) fn push(&mut self, datagram: &[u8], user: &[u8], peer: Option<SocketAddr>, op: Op) {
        let start = self.data.len();
        self.data.extend_from_slice(datagram);
        let mid = self.data.len();
        self.data.extend_from_slice(user);
        self.items.push(Item {
            start,
            mid,
            end: self.data.len(),
            peer,
            op,
        });
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    pub(crate) fn requests(&self) -> impl Iterator<Item = Pending<'_>> + '_ {
        self.items.iter().map(|it| Pending {
            datagram: &self.data[it.start..it.mid],
            user: &self.data[it.mid..it.end],
            peer: it.peer,
            op: it.op,
        })
    }

    /// Empty it; a buffer grown far beyond a usual batch by large datagrams
    /// is given back, so that idle jobs stay small.
    fn clear(&mut self) {
        self.data.clear();
        self.items.clear();
        if self.data.capacity() > 64 * 1024 {
            self.data = Vec::new();
        }
    }
}

/// A worker's end of its engine threads.
pub(crate) struct EngineQueue {
    lanes: Vec<Lane>,
    /// Which lane serves a network: the same for the process's lifetime,
    /// not predictable from outside (a client cannot pick its lane).
    hasher: RandomState,
    /// Answered jobs, back for reuse.
    back: Receiver<Job>,
    spare: Vec<Job>,
    /// One job per lane while a job is split.
    parts: Vec<Job>,
    /// Requests handed over and not yet answered, on all lanes.
    waiting: Arc<AtomicUsize>,
    capacity: usize,
    /// Whether the last refusal was logged (one line per episode).
    full_logged: bool,
}

/// One engine thread and its queue; `tx` is `None` once it has ended.
struct Lane {
    tx: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl EngineQueue {
    /// Start `lanes` engine threads (at least one) named `name-<i>`; they
    /// reply on clones of `sock`. At most `capacity` requests (at least
    /// one) wait for them together. They read the requests again with the
    /// worker's `protection` options. Fails when no thread could start
    /// (the worker then calls the engine itself); lanes beyond the first
    /// that cannot start are logged and left out.
    pub(crate) fn start(
        shared: &Arc<Shared>,
        sock: &UdpSocket,
        (capacity, lanes): (usize, usize),
        name: &str,
        protection: &Protection,
    ) -> io::Result<EngineQueue> {
        let (back_tx, back) = mpsc::channel();
        let waiting = Arc::new(AtomicUsize::new(0));
        let mut started = Vec::with_capacity(lanes.max(1));
        for i in 0..lanes.max(1) {
            let (tx, rx) = mpsc::channel();
            let shared = Arc::clone(shared);
            let waiting = Arc::clone(&waiting);
            let back_tx = back_tx.clone();
            let proc = Processor::with_protection(&shared, protection);
            let spawned = sock.try_clone().and_then(|sock| {
                std::thread::Builder::new()
                    .name(format!("{name}-{i}"))
                    .spawn(move || run(&shared, proc, &sock, &rx, &back_tx, &waiting))
            });
            match spawned {
                Ok(t) => started.push(Lane {
                    tx: Some(tx),
                    thread: Some(t),
                }),
                Err(e) if i == 0 => return Err(e),
                Err(e) => {
                    log::error!(
                        "cannot start engine thread {name}-{i} ({e}); this worker runs {i} engine threads"
                    );
                    break;
                }
            }
        }
        Ok(EngineQueue {
            lanes: started,
            hasher: RandomState::new(),
            back,
            spare: Vec::new(),
            parts: Vec::new(),
            waiting,
            capacity: capacity.max(1),
            full_logged: false,
        })
    }

    /// Whether `k` more requests may wait. When not, the caller answers
    /// them 500; the refusals are counted here.
    pub(crate) fn admit(&mut self, k: usize, shared: &Shared) -> bool {
        let waiting = self.waiting.load(Relaxed);
        if waiting + k <= self.capacity {
            self.full_logged = false;
            return true;
        }
        shared
            .metrics
            .engine_queue_full
            .fetch_add(k as u64, Relaxed);
        if !self.full_logged {
            self.full_logged = true;
            log::warn!(
                "Engine {} is not keeping up: {waiting} requests wait for it on this worker (the most allowed is {}); new ones are answered 500 until it catches up",
                shared.engine.name(),
                self.capacity
            );
        }
        false
    }

    /// An empty job to fill.
    pub(crate) fn job(&mut self) -> Job {
        self.spare.extend(self.back.try_iter());
        self.spare.pop().unwrap_or_default()
    }

    /// The lane of a request from `peer`: by its network, so that one
    /// client's requests are always answered by the same lane, in order.
    fn lane_of(&self, peer: Option<SocketAddr>) -> usize {
        match (self.lanes.len(), peer) {
            (1, _) | (_, None) => 0,
            (n, Some(p)) => {
                let net = crate::protect::network(p.ip(), LANE_V4_PREFIX, LANE_V6_PREFIX);
                (self.hasher.hash_one(net) % n as u64) as usize
            }
        }
    }

    /// Hand `job` to the engine threads, each request to the lane of its
    /// network. A lane that has ended passes its share to the next lane
    /// still running. `Err` gives the job back when no engine thread is
    /// left (they panicked): the caller answers it 500. Shares already
    /// sent then went to lanes that ended too, which answer nothing.
    pub(crate) fn submit(&mut self, job: Job, shared: &Shared) -> Result<(), Job> {
        let n = job.len();
        self.waiting.fetch_add(n, Relaxed);
        shared.metrics.engine_queued.fetch_add(n as u64, Relaxed);
        let sent = if self.lanes.len() == 1 {
            self.send(0, job)
        } else {
            self.split_and_send(job)
        };
        sent.inspect_err(|_| {
            self.waiting.fetch_sub(n, Relaxed);
            shared.metrics.engine_queued.fetch_sub(n as u64, Relaxed);
        })
    }

    /// [`Self::submit`] over several lanes.
    fn split_and_send(&mut self, job: Job) -> Result<(), Job> {
        let mut parts = std::mem::take(&mut self.parts);
        while parts.len() < self.lanes.len() {
            let part = self.job();
            parts.push(part);
        }
        for r in job.requests() {
            parts[self.lane_of(r.peer)].push(r.datagram, r.user, r.peer, r.op);
        }
        let mut failed = false;
        for (i, part) in parts.iter_mut().enumerate() {
            if part.len() == 0 {
                continue;
            }
            let fresh = self.job();
            let part = std::mem::replace(part, fresh);
            if let Err(mut part) = self.send(i, part) {
                failed = true;
                part.clear();
                self.spare.push(part);
            }
        }
        self.parts = parts;
        if failed {
            return Err(job);
        }
        let mut job = job;
        job.clear();
        self.spare.push(job);
        Ok(())
    }

    /// Send `job` to lane `i`, or to the next lane still running when it
    /// has ended. `Err` when none is left.
    fn send(&mut self, i: usize, mut job: Job) -> Result<(), Job> {
        let n = self.lanes.len();
        if self.lanes.iter().all(|l| l.tx.is_none()) {
            return Err(job);
        }
        for j in (i..n).chain(0..i) {
            let Some(tx) = &self.lanes[j].tx else {
                continue;
            };
            match tx.send(job) {
                Ok(()) => return Ok(()),
                Err(mpsc::SendError(back)) => {
                    log::error!(
                        "an engine thread of this worker has ended; its clients are served by another"
                    );
                    self.lanes[j].tx = None;
                    job = back;
                }
            }
        }
        log::error!(
            "The engine threads of this worker have ended; engine requests are answered 500"
        );
        Err(job)
    }

    /// Close the queue and wait until the engine threads have answered
    /// every job in it.
    pub(crate) fn finish(mut self) {
        for lane in &mut self.lanes {
            lane.tx = None;
        }
        for lane in &mut self.lanes {
            if let Some(t) = lane.thread.take() {
                if t.join().is_err() {
                    log::error!("An engine thread of this worker panicked");
                }
            }
        }
    }
}

/// An engine thread (lane): answer its jobs in order until the worker
/// closes the queue and it is empty.
fn run(
    shared: &Shared,
    mut proc: Processor,
    sock: &UdpSocket,
    rx: &Receiver<Job>,
    back: &Sender<Job>,
    waiting: &AtomicUsize,
) {
    let mut jobs: Vec<Job> = Vec::new();
    let mut replies: Vec<Vec<u8>> = Vec::new();
    let mut out = pyzor_udp::SendTo::default();
    let mut give_up = false;
    while let Ok(first) = rx.recv() {
        let mut n = first.len();
        jobs.push(first);
        while n < MERGE {
            match rx.try_recv() {
                Ok(job) => {
                    n += job.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        if replies.len() < n {
            replies.resize_with(n, || Vec::with_capacity(512));
        }
        let unavailable = proc.process_jobs(shared, &jobs, &mut replies, give_up);
        give_up = give_up || (unavailable && shared.stop.load(Relaxed));
        let peers = jobs.iter().flat_map(|j| j.requests().map(|r| r.peer));
        let errors = out.send(sock, peers.zip(replies.iter().map(Vec::as_slice)));
        if errors > 0 {
            shared.metrics.send_errors.fetch_add(errors as u64, Relaxed);
        }
        waiting.fetch_sub(n, Relaxed);
        shared.metrics.engine_queued.fetch_sub(n as u64, Relaxed);
        for mut job in jobs.drain(..) {
            job.clear();
            let _ = back.send(job);
        }
    }
}
