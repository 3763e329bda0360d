//! A worker's own engine calls, and its standby thread (docs/server.md,
//! "Concurrency").
//!
//! With a network engine a worker hands its requests to its engine threads
//! (`crate::engine_queue`). That costs a thread switch per batch each way,
//! which on a small machine was the largest share of pyzord's CPU per
//! check (bench/RESULTS-sql.md, "Reads in the worker"). So a worker with
//! two engine threads or more makes its batch's reads itself — checks and
//! infos whose digests no earlier request still waiting for the engine
//! names — as one engine call, and sends their replies; the rest of the
//! batch goes to the engine threads as before. In a flood of writes, with
//! no read among them ([`WRITE_FLOOD`]), it makes its writes itself too:
//! no check then waits behind its commit (bench/RESULTS-sql.md, "Writes in
//! the worker"). While its call runs, datagrams wait in its socket's
//! buffer, so the next batch is larger: fewer, larger engine calls.
//!
//! A worker in an engine call does not receive. So that a stuck database
//! (a locked table, a partition) cannot leave its clients without an
//! answer, each such worker has a **standby** thread: it sleeps, and once
//! the worker's call has run for [`STUCK_AFTER`] it receives on the
//! worker's socket in its stead, handing every engine request to the
//! engine threads (where the queue bound answers 500 at once when they are
//! stuck too), until the call returns. A call that ran that long, or found
//! the database unavailable, makes the worker hand all its requests over
//! for [`HAND_OVER_FOR`]; then it tries again.
//!
//! [`OwnCalls`] is what the worker and its standby share: whether a call
//! runs and since when, and until when requests are handed over.
//!
//! [`WRITE_FLOOD`]: crate::engine_queue::WRITE_FLOOD

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pyzor_protocol::wire::server::Failure;

use crate::engine_queue::EngineQueue;
use crate::worker::{serve_batch, Handoff, Processor, Protection, Shared};

/// How long a worker's own engine call may run before its standby receives
/// in its stead. A read of a whole batch takes well under a millisecond
/// (bench/RESULTS-sql.md).
pub(crate) const STUCK_AFTER: Duration = Duration::from_millis(20);

/// How long a worker hands all its requests over after a call that ran
/// [`STUCK_AFTER`] or longer, or failed as unavailable.
pub(crate) const HAND_OVER_FOR: Duration = Duration::from_secs(5);

/// How often the standby looks at its worker: a stuck call is noticed
/// within `STUCK_AFTER + LOOK`. Looking every 5 ms made checks on MariaDB
/// 8 % slower than looking every 100 ms (each look wakes a thread on the
/// cores that serve; bench/RESULTS-sql.md, "Reads in the worker").
const LOOK: Duration = Duration::from_millis(50);

/// The state a worker and its standby share.
#[derive(Debug)]
pub(crate) struct OwnCalls {
    epoch: Instant,
    /// µs of `epoch` + 1 when the running call started; 0: none runs.
    since: AtomicU64,
    /// µs of `epoch` until which requests are handed over.
    hand_over_until: AtomicU64,
    /// Whether the last call was long (one warning per episode: a remote
    /// database slower than [`STUCK_AFTER`] is logged once, not every
    /// [`HAND_OVER_FOR`]).
    long: AtomicBool,
}

impl Default for OwnCalls {
    fn default() -> Self {
        OwnCalls {
            epoch: Instant::now(),
            since: AtomicU64::new(0),
            hand_over_until: AtomicU64::new(0),
            long: AtomicBool::new(false),
        }
    }
}

impl OwnCalls {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// Whether the worker makes calls itself now (not after a stuck or
    /// failed call, for [`HAND_OVER_FOR`]).
    pub(crate) fn allowed(&self) -> bool {
        self.now() >= self.hand_over_until.load(Relaxed)
    }

    /// Run the worker's engine call `call`, which returns the batch's
    /// failure, if any.
    pub(crate) fn call(&self, call: impl FnOnce() -> Option<Failure>) -> Option<Failure> {
        let start = self.now();
        self.since.store(start + 1, Relaxed);
        let out = call();
        self.since.store(0, Relaxed);
        let end = self.now();
        let long = end.saturating_sub(start) >= STUCK_AFTER.as_micros() as u64;
        if long || out == Some(Failure::DB_UNAVAILABLE) {
            let until = end + HAND_OVER_FOR.as_micros() as u64;
            self.hand_over_until.store(until, Relaxed);
        }
        let name = || {
            std::thread::current()
                .name()
                .unwrap_or("a worker")
                .to_owned()
        };
        match (long, self.long.swap(long, Relaxed)) {
            (true, false) => log::warn!(
                "An engine call of {} took {} ms (its standby thread answers its clients while such a call runs); it hands its requests to its engine threads, trying again every {} s",
                name(),
                (end - start) / 1000,
                HAND_OVER_FOR.as_secs()
            ),
            (false, true) => log::info!(
                "The engine calls of {} are quick again; it makes its reads (and floods of writes) itself",
                name()
            ),
            _ => {}
        }
        out
    }

    /// Whether a call has run for [`STUCK_AFTER`] or longer.
    fn stuck(&self) -> bool {
        match self.since.load(Relaxed) {
            0 => false,
            s => self.now().saturating_sub(s - 1) >= STUCK_AFTER.as_micros() as u64,
        }
    }
}

/// What a standby thread needs: its worker's socket (a clone), engine
/// queue and shared state.
pub(crate) struct Standby {
    pub(crate) shared: Arc<Shared>,
    pub(crate) sock: std::net::UdpSocket,
    pub(crate) queue: Arc<Mutex<EngineQueue>>,
    pub(crate) own: Arc<OwnCalls>,
    pub(crate) protection: Protection,
}

impl Standby {
    /// The standby's loop (module doc), until `shared.stop`.
    pub(crate) fn run(self) {
        let Standby {
            shared,
            sock,
            queue,
            own,
            protection,
        } = self;
        let mut io = crate::net::worker_batch();
        let mut proc = Processor::with_protection(&shared, &protection);
        let mut ready = [true; crate::net::BATCH];
        while !shared.stop.load(Relaxed) {
            // the worker logs the episode when its call returns
            if !own.stuck() {
                std::thread::sleep(LOOK);
                continue;
            }
            // up to the socket's receive timeout, so stop and the worker's
            // return are noticed
            let to = Handoff {
                queue: &queue,
                own: None,
            };
            if serve_batch(&shared, &sock, (&mut io, &mut proc), Some(to), &mut ready) > 0 {
                shared.metrics.standby_batches.fetch_add(1, Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_call_hands_requests_over_and_a_short_one_does_not() {
        let r = OwnCalls::default();
        assert!(r.allowed());
        assert!(!r.stuck());
        r.call(|| None);
        assert!(r.allowed(), "a quick call changes nothing");
        r.call(|| {
            std::thread::sleep(STUCK_AFTER + Duration::from_millis(5));
            assert!(r.stuck(), "seen as stuck while it runs");
            None
        });
        assert!(!r.stuck());
        assert!(!r.allowed(), "requests are handed over after a long call");
    }

    #[test]
    fn an_unavailable_engine_hands_requests_over() {
        let r = OwnCalls::default();
        r.call(|| Some(Failure::DB_UNAVAILABLE));
        assert!(!r.allowed());
    }
}
