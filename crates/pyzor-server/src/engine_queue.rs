//! A worker's engine thread, for engines whose calls may block on a
//! network or on another database session ([`Engine::may_block`]: redis,
//! mysql, postgres). docs/server.md, "Concurrency".
//!
//! The worker decides every request of a receive batch and answers at once
//! those that need no engine (ping, pong, refusals, ops without
//! `Op-Digest`). It copies the datagrams of the others into a [`Job`] and
//! hands it to its engine thread through a queue bounded in requests
//! ([`EngineQueue`]); when the queue is full those requests are answered
//! 500 "Database temporarily unavailable." at once and counted
//! (`pyzord_engine_queue_full_total`). The engine thread takes the jobs in
//! order — several waiting jobs become one engine call — and sends their
//! replies itself on a clone of the worker's socket. One client's
//! datagrams reach one worker (`SO_REUSEPORT` hashes the address pair), so
//! its engine requests are answered in the order they arrived: a check
//! sent after a report sees the report.
//!
//! At shutdown the worker answers the batch in hand and closes the queue;
//! the engine thread answers every job still in it before it ends. Once an
//! engine call fails as unavailable after the stop, the rest is answered
//! 500 without calling the engine again, so that a dead database does not
//! hold the shutdown for one engine timeout per job.
//!
//! [`Engine::may_block`]: pyzor_store::Engine::may_block

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

/// A worker's end of its engine thread.
pub(crate) struct EngineQueue {
    tx: Option<Sender<Job>>,
    /// Answered jobs, back for reuse.
    back: Receiver<Job>,
    spare: Vec<Job>,
    /// Requests handed over and not yet answered.
    waiting: Arc<AtomicUsize>,
    capacity: usize,
    /// Whether the last refusal was logged (one line per episode).
    full_logged: bool,
    thread: Option<JoinHandle<()>>,
}

impl EngineQueue {
    /// Start the engine thread `name`; it replies on a clone of `sock`.
    /// At most `capacity` requests (at least one) wait for it. It reads
    /// the requests again with the worker's `protection` options.
    pub(crate) fn start(
        shared: &Arc<Shared>,
        sock: &UdpSocket,
        capacity: usize,
        name: String,
        protection: &Protection,
    ) -> io::Result<EngineQueue> {
        let (tx, rx) = mpsc::channel();
        let (back_tx, back) = mpsc::channel();
        let waiting = Arc::new(AtomicUsize::new(0));
        let thread = {
            let shared = Arc::clone(shared);
            let sock = sock.try_clone()?;
            let waiting = Arc::clone(&waiting);
            let proc = Processor::with_protection(&shared, protection);
            std::thread::Builder::new()
                .name(name)
                .spawn(move || run(&shared, proc, &sock, &rx, &back_tx, &waiting))?
        };
        Ok(EngineQueue {
            tx: Some(tx),
            back,
            spare: Vec::new(),
            waiting,
            capacity: capacity.max(1),
            full_logged: false,
            thread: Some(thread),
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

    /// Hand `job` to the engine thread. `Err` gives it back when the
    /// engine thread has ended (it panicked): the caller answers it.
    pub(crate) fn submit(&mut self, job: Job, shared: &Shared) -> Result<(), Job> {
        let n = job.len();
        let Some(tx) = &self.tx else {
            return Err(job);
        };
        self.waiting.fetch_add(n, Relaxed);
        shared.metrics.engine_queued.fetch_add(n as u64, Relaxed);
        match tx.send(job) {
            Ok(()) => Ok(()),
            Err(mpsc::SendError(job)) => {
                self.waiting.fetch_sub(n, Relaxed);
                shared.metrics.engine_queued.fetch_sub(n as u64, Relaxed);
                log::error!(
                    "The engine thread of this worker has ended; engine requests are answered 500"
                );
                self.tx = None;
                Err(job)
            }
        }
    }

    /// Close the queue and wait until the engine thread has answered every
    /// job in it.
    pub(crate) fn finish(mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                log::error!("The engine thread of this worker panicked");
            }
        }
    }
}

/// The engine thread: answer jobs in order until the worker closes the
/// queue and it is empty.
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
