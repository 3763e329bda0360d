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
//! lane waits for its commit, the others run their own batches on their own
//! pooled connections, and the database makes one disk flush of their
//! commits (group commit). Each lane takes its jobs in order — several
//! waiting jobs become one engine call — and sends their replies itself on
//! a clone of the worker's socket. With several lanes a job is split
//! request by request ([`EngineQueue::submit`]):
//! * a request naming a digest that a request still waiting or running on
//!   some lane names too goes to that lane, behind it: requests that share
//!   a digest are answered in the order they arrived, so a check sent
//!   after a report sees the report (one client's datagrams reach one
//!   worker: the steering, or `SO_REUSEPORT`'s hash of the address pair);
//! * any other read (check, info) goes to lane 0, so that reads are merged
//!   into few engine calls (a read costs the database CPU per call, not a
//!   disk flush) and never wait behind a commit; with several lanes the
//!   worker keeps such reads and makes them itself instead
//!   ([`EngineQueue::makes_itself`], `crate::own_calls`), and lane 0
//!   gets them only while the worker hands its reads over, and from the
//!   worker's standby thread;
//! * any other write (report, whitelist) goes to the lane, other than 0,
//!   with the fewest requests waiting: the commits of a flood of reports
//!   overlap instead of queueing behind each other; in a flood of writes
//!   with no read among them ([`WRITE_FLOOD`]) the worker makes them
//!   itself too.
//!
//! The digests in flight are kept per worker, keyed by a keyed hash, one
//! entry per digest of a request waiting for the engine: bounded by the
//! queue bound (a hash collision only orders two requests that did not
//! need it). The queue bound counts the requests waiting on all lanes
//! together.
//!
//! At shutdown the worker answers the batch in hand and closes the queue;
//! each lane answers every job still in it before it ends. Once an engine
//! call of a lane fails as unavailable after the stop, the rest of that
//! lane is answered 500 without calling the engine again, so that a dead
//! database does not hold the shutdown for one engine timeout per job.
//!
//! [`Engine::may_block`]: pyzor_store::Engine::may_block

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use pyzor_protocol::wire::Op;

use crate::call_gate::CallGates;
use crate::worker::{Processor, Protection, Shared};

/// The most requests the engine thread answers with one engine call when
/// several jobs wait (each job is one receive batch, up to 64 requests).
const MERGE: usize = 4 * crate::net::BATCH;

/// After this many engine requests in a row without a read, a worker makes
/// its writes itself (crate::own_calls) until the next read: under a flood
/// of reports no check waits behind the worker's commit, and the two
/// thread switches of a hand-over are saved. 256 is four full receive
/// batches; a mix with one check in a hundred requests stays below it.
pub(crate) const WRITE_FLOOD: usize = 256;

/// Requests handed from a worker to its engine thread: their datagrams and
/// users (for the usage log) back to back in one buffer. Jobs go back to
/// the worker once answered, so their buffers are reused.
#[derive(Debug, Default)]
pub(crate) struct Job {
    data: Vec<u8>,
    items: Vec<Item>,
    /// The keys of the requests' digests ([`EngineQueue::push`]), back to
    /// back; empty with one lane.
    keys: Vec<u64>,
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
    /// `keys[keys]` are its digests' keys.
    keys: Range<usize>,
    /// Whether it counts (report, whitelist).
    writes: bool,
}

/// One request of a [`Job`].
pub(crate) struct Pending<'j> {
    pub(crate) datagram: &'j [u8],
    pub(crate) user: &'j [u8],
    pub(crate) peer: Option<SocketAddr>,
    pub(crate) op: Op,
    /// Its digests' keys ([`EngineQueue::push`]; none with one lane).
    keys: &'j [u64],
    /// Whether it counts (report, whitelist).
    writes: bool,
}

impl Job {
    /// Add a request that `evaluate` accepted for `op` as `user`; `keys`
    /// are its digests' keys, `writes` whether it counts.
    fn push(
        &mut self,
        datagram: &[u8],
        user: &[u8],
        peer: Option<SocketAddr>,
        op: Op,
        (keys, writes): (&[u64], bool),
    ) {
        let start = self.data.len();
        self.data.extend_from_slice(datagram);
        let mid = self.data.len();
        self.data.extend_from_slice(user);
        let k = self.keys.len();
        self.keys.extend_from_slice(keys);
        self.items.push(Item {
            start,
            mid,
            end: self.data.len(),
            peer,
            op,
            keys: k..self.keys.len(),
            writes,
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
            keys: &self.keys[it.keys.clone()],
            writes: it.writes,
        })
    }

    /// Empty it; a buffer grown far beyond a usual batch by large datagrams
    /// is given back, so that idle jobs stay small.
    fn clear(&mut self) {
        self.data.clear();
        self.items.clear();
        self.keys.clear();
        if self.data.capacity() > 64 * 1024 {
            self.data = Vec::new();
        }
    }
}

/// A worker's end of its engine threads.
pub(crate) struct EngineQueue {
    lanes: Vec<Lane>,
    /// Keys digests ([`Self::push`]): not predictable from outside, so a
    /// client cannot make its digests collide with others'.
    hasher: RandomState,
    /// With several lanes: per digest key of a request handed over and
    /// not yet back, the lane that has it and how many such requests.
    in_flight: HashMap<u64, (usize, u32)>,
    /// Scratch for one request's keys ([`Self::push`]).
    keys: Vec<u64>,
    /// The keys of the writes of the batch being decided that go to the
    /// engine threads ([`Self::makes_itself`]); at most a batch's digests.
    batch_writes: HashSet<u64>,
    /// Engine requests decided since the last read, up to
    /// [`WRITE_FLOOD`] ([`Self::makes_itself`]).
    since_read: usize,
    /// Whether the batch being decided is part of a flood of writes: the
    /// worker makes its writes itself too.
    flood: bool,
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
    /// Requests sent to it and not yet answered.
    waiting: Arc<AtomicUsize>,
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
        (capacity, lanes, gates): (usize, usize, Option<Arc<CallGates>>),
        name: &str,
        protection: &Protection,
    ) -> io::Result<EngineQueue> {
        let (back_tx, back) = mpsc::channel();
        let waiting = Arc::new(AtomicUsize::new(0));
        let mut started = Vec::with_capacity(lanes.max(1));
        for i in 0..lanes.max(1) {
            let (tx, rx) = mpsc::channel();
            let shared = Arc::clone(shared);
            let counts = [Arc::clone(&waiting), Arc::new(AtomicUsize::new(0))];
            let lane_waiting = Arc::clone(&counts[1]);
            let back_tx = back_tx.clone();
            let proc = Processor::with_protection(&shared, protection);
            let gates = gates.clone();
            let spawned = sock.try_clone().and_then(|sock| {
                std::thread::Builder::new()
                    .name(format!("{name}-{i}"))
                    .spawn(move || {
                        let gate = gates.as_deref().map(|g| (g, i));
                        run(&shared, proc, (&sock, gate), &rx, &back_tx, &counts);
                    })
            });
            match spawned {
                Ok(t) => started.push(Lane {
                    tx: Some(tx),
                    thread: Some(t),
                    waiting: lane_waiting,
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
            in_flight: HashMap::new(),
            keys: Vec::new(),
            batch_writes: HashSet::new(),
            since_read: 0,
            flood: false,
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

    /// Count `k` requests the worker makes itself (crate::own_calls)
    /// as waiting for the engine, admitted by [`Self::admit`]: the bound
    /// and the `pyzord_engine_queue_requests` gauge count them until
    /// [`Self::unhold`].
    pub(crate) fn hold(&self, k: usize, shared: &Shared) {
        self.waiting.fetch_add(k, Relaxed);
        shared.metrics.engine_queued.fetch_add(k as u64, Relaxed);
    }

    /// The `k` requests of [`Self::hold`] are answered.
    pub(crate) fn unhold(&self, k: usize, shared: &Shared) {
        self.waiting.fetch_sub(k, Relaxed);
        shared.metrics.engine_queued.fetch_sub(k as u64, Relaxed);
    }

    /// An empty job to fill ([`Self::reclaim`] first).
    pub(crate) fn job(&mut self) -> Job {
        self.reclaim();
        self.spare.pop().unwrap_or_default()
    }

    /// The jobs answered since the last call come back, and their digests
    /// leave [`Self::in_flight`].
    fn reclaim(&mut self) {
        while let Ok(mut job) = self.back.try_recv() {
            self.release(&job.keys);
            job.clear();
            self.spare.push(job);
        }
        if self.in_flight.is_empty() && self.in_flight.capacity() > 4096 {
            self.in_flight = HashMap::new();
        }
    }

    /// Start deciding which requests of a receive batch the worker makes
    /// itself ([`Self::makes_itself`]).
    pub(crate) fn begin_batch(&mut self) {
        self.reclaim();
        self.flood = self.since_read >= WRITE_FLOOD;
        self.batch_writes.clear();
        if self.batch_writes.capacity() > 4096 {
            self.batch_writes = HashSet::new();
        }
    }

    /// Whether the worker may make the request with store operations `ops`
    /// itself (crate::own_calls), in the batch begun by
    /// [`Self::begin_batch`], requests in arrival order. Only with two
    /// engine threads or more (which keep the digests in flight), and only
    /// when no request still waiting for the engine names one of its
    /// digests, nor a write of this batch that goes to the engine threads:
    /// so a check sent after a report of the same digest still waits for
    /// the report. Reads qualify always; writes only in a flood of writes
    /// ([`WRITE_FLOOD`]), where no read waits behind the worker's commit.
    /// The digests of a write that goes to the engine threads are noted
    /// here for the requests after it; a write the worker makes is in the
    /// same engine call as the requests after it, which the engine answers
    /// in order.
    pub(crate) fn makes_itself(&mut self, ops: &[pyzor_store::Op<'_>]) -> bool {
        if self.lanes.len() < 2 {
            return false;
        }
        let writes = ops.iter().any(pyzor_store::Op::is_write);
        self.since_read = match writes {
            true => (self.since_read + 1).min(WRITE_FLOOD),
            false => 0,
        };
        let h = &self.hasher;
        // a write outside a flood goes to the engine threads whatever
        // waits: its digests are not looked up
        let mine = (!writes || self.flood)
            && !ops.iter().any(|o| {
                let k = h.hash_one(o.digest());
                self.in_flight.contains_key(&k) || self.batch_writes.contains(&k)
            });
        if writes && !mine {
            self.batch_writes
                .extend(ops.iter().map(|o| h.hash_one(o.digest())));
        }
        mine
    }

    /// The requests naming `keys` are no longer in flight.
    fn release(&mut self, keys: &[u64]) {
        for k in keys {
            if let Some(e) = self.in_flight.get_mut(k) {
                e.1 -= 1;
                if e.1 == 0 {
                    self.in_flight.remove(k);
                }
            }
        }
    }

    /// Add to `job` a request that `evaluate` accepted for `op` as `user`,
    /// with its store operations `ops`: with several lanes, keyed by its
    /// digests for [`Self::submit`].
    pub(crate) fn push(
        &mut self,
        job: &mut Job,
        (datagram, user, peer): (&[u8], &[u8], Option<SocketAddr>),
        op: Op,
        ops: &[pyzor_store::Op<'_>],
    ) {
        self.keys.clear();
        if self.lanes.len() > 1 {
            let h = &self.hasher;
            self.keys.extend(ops.iter().map(|o| h.hash_one(o.digest())));
        }
        let writes = ops.iter().any(pyzor_store::Op::is_write);
        job.push(datagram, user, peer, op, (&self.keys, writes));
    }

    /// The lane of a request ([`Self::submit`]): behind an earlier request
    /// that shares a digest, else lane 0 for a read, `write_lane` for a
    /// write.
    fn lane_of(&self, keys: &[u64], writes: bool, write_lane: usize) -> usize {
        keys.iter()
            .find_map(|k| self.in_flight.get(k).map(|e| e.0))
            .unwrap_or(if writes { write_lane } else { 0 })
    }

    /// The lane other than 0 with the fewest requests waiting (lane 0 with
    /// one lane).
    fn least_busy(&self) -> usize {
        (1..self.lanes.len())
            .filter(|&i| self.lanes[i].tx.is_some())
            .min_by_key(|&i| self.lanes[i].waiting.load(Relaxed))
            .unwrap_or(0)
    }

    /// Hand `job` to the engine threads, each request to its lane (the
    /// module's doc). A lane that has ended passes its share to the next
    /// lane still running. `Err` gives the job back when no engine thread is
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
        let write_lane = self.least_busy();
        for r in job.requests() {
            let lane = self.lane_of(r.keys, r.writes, write_lane);
            parts[lane].push(r.datagram, r.user, r.peer, r.op, (r.keys, r.writes));
            for &k in r.keys {
                // the latest request naming the digest decides where the
                // next one goes
                let e = self.in_flight.entry(k).or_insert((lane, 0));
                *e = (lane, e.1 + 1);
            }
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
                // never answered by a lane: not in flight
                self.release(&part.keys);
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
            let n = job.len();
            self.lanes[j].waiting.fetch_add(n, Relaxed);
            match tx.send(job) {
                Ok(()) => return Ok(()),
                Err(mpsc::SendError(back)) => {
                    self.lanes[j].waiting.fetch_sub(n, Relaxed);
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
    // and its turns: the workers' gates and this thread's lane
    (sock, gate): (&UdpSocket, Option<(&CallGates, usize)>),
    rx: &Receiver<Job>,
    back: &Sender<Job>,
    // the worker's requests waiting on all lanes, and on this one
    [waiting, lane_waiting]: &[Arc<AtomicUsize>; 2],
) {
    let mut jobs: Vec<Job> = Vec::new();
    let mut replies: Vec<Vec<u8>> = Vec::new();
    let mut out = pyzor_udp::SendTo::default();
    let mut give_up = false;
    // Take the jobs waiting behind those in hand, up to MERGE requests.
    let gather = |jobs: &mut Vec<Job>, n: &mut usize| {
        while *n < MERGE {
            match rx.try_recv() {
                Ok(job) => {
                    *n += job.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
    };
    while let Ok(first) = rx.recv() {
        let mut n = first.len();
        jobs.push(first);
        gather(&mut jobs, &mut n);
        // Wait for this kind's turn (crate::call_gate), taking in what the
        // worker hands over meanwhile; the turn ends with the engine call,
        // before the replies are made and sent.
        let turn = gate.map(|(g, lane)| {
            let (turn, waited) = g.enter(lane, n);
            if waited {
                gather(&mut jobs, &mut n);
            }
            turn
        });
        if replies.len() < n {
            replies.resize_with(n, || Vec::with_capacity(512));
        }
        let unavailable = proc.process_jobs(shared, &jobs, &mut replies, (give_up, turn));
        give_up = give_up || (unavailable && shared.stop.load(Relaxed));
        let peers = jobs.iter().flat_map(|j| j.requests().map(|r| r.peer));
        let errors = out.send(sock, peers.zip(replies.iter().map(Vec::as_slice)));
        if errors > 0 {
            shared.metrics.send_errors.fetch_add(errors as u64, Relaxed);
        }
        waiting.fetch_sub(n, Relaxed);
        lane_waiting.fetch_sub(n, Relaxed);
        shared.metrics.engine_queued.fetch_sub(n as u64, Relaxed);
        // back to the worker, which clears them once their digests have
        // left its requests in flight
        for job in jobs.drain(..) {
            let _ = back.send(job);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use pyzor_protocol::auth::{parse_access, Accounts};
    use pyzor_store::memory::MemoryEngine;

    use super::*;
    use crate::rules::Rules;

    /// The digests in flight are only those of requests not yet answered:
    /// a worker that hands over many requests, each naming many digests,
    /// holds at most their keys while they wait and none once they are
    /// answered, so the table cannot grow with what clients send.
    #[test]
    fn digests_in_flight_leave_with_their_answers() {
        let accounts = Accounts::default();
        let (acl, _) = parse_access("all : anonymous : allow\n", &accounts);
        let shared = Arc::new(Shared::standalone(
            Arc::new(MemoryEngine::new()),
            Rules { accounts, acl },
        ));
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let peer = Some(sock.local_addr().unwrap());
        let mut q = EngineQueue::start(
            &shared,
            &sock,
            (1 << 20, 3, None),
            "t",
            &Protection::default(),
        )
        .unwrap();
        assert!(q.lanes.len() > 1);
        let (jobs, per_job, digests) = (40, 8, 50);
        let mut most = 0;
        for j in 0..jobs {
            let mut job = q.job();
            for r in 0..per_job {
                let names: Vec<String> = (0..digests)
                    .map(|d| format!("{j:08x}{r:08x}{d:024x}"))
                    .collect();
                let mut datagram = String::from("Op: report\n");
                for n in &names {
                    datagram.push_str(&format!("Op-Digest: {n}\n"));
                }
                datagram.push_str("Thread: 1\nPV: 2.1\n\n");
                let ops: Vec<pyzor_store::Op<'_>> = names
                    .iter()
                    .map(|n| pyzor_store::Op::Report(n.as_bytes()))
                    .collect();
                q.push(
                    &mut job,
                    (datagram.as_bytes(), b"anonymous", peer),
                    Op::Report,
                    &ops,
                );
            }
            assert!(q.admit(job.len(), &shared));
            q.submit(job, &shared).unwrap();
            most = most.max(q.in_flight.len());
            assert!(q.in_flight.len() <= (j + 1) * per_job * digests);
        }
        assert!(most > 0);
        let t0 = Instant::now();
        while q.waiting.load(Relaxed) > 0 && t0.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(q.waiting.load(Relaxed), 0, "requests still waiting");
        // the answered jobs come back with the next job taken
        drop(q.job());
        assert_eq!(
            q.in_flight.len(),
            0,
            "keys of answered requests left behind"
        );
        let first = format!("{:08x}{:08x}{:024x}", 0, 0, 0);
        assert_eq!(
            shared
                .engine
                .get(first.as_bytes())
                .unwrap()
                .unwrap()
                .r_count,
            1
        );
        q.finish();
    }
}
