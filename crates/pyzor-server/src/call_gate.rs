//! Turns between the engine threads of all workers, so that their database
//! calls carry more requests each (docs/server.md, "Concurrency").
//!
//! A database call costs its server a fixed part (a wake-up, the statement,
//! the result's metadata) and a part per row: MariaDB here spends about
//! 50 µs of CPU per read statement and 3.2 µs per row (bench/RESULTS-sql.md,
//! "Turns"). Every worker has its own read thread, and an idle one calls the
//! engine as soon as its worker hands it a receive batch (a few requests),
//! so with two workers at window 64 a read call carried 16 requests: the
//! database spent as much CPU on calls as on rows.
//!
//! A [`CallGate`] lets at most half of the engine threads of one kind
//! (reads, writes) be in an engine call at once: a thread whose turn has not
//! come waits for a call of another to end, gathering what its worker hands
//! it meanwhile, and then runs it all as one call. So calls alternate
//! instead of overlapping: while one is in the database, the others gather
//! and answer the one before. A thread waits at most [`MAX_WAIT`], and not
//! at all when no other thread of its kind is in a call or when it already
//! holds enough requests ([`READ_FULL`], [`WRITE_FULL`]), so a slow
//! database or a stuck call delays the others by a bounded time, and a
//! lone request is never held back.
//!
//! Reads and writes differ (bench/RESULTS-sql.md, "Turns"). A read costs
//! the database CPU, so two read calls at once only compete for the same
//! cores: reads wait for their turn until they hold a whole window of 64.
//! A write mostly waits for the log flush, and two commits in flight share
//! one flush: a write call of 32 requests or more goes at once (16 on an
//! engine whose commits overlap well, [`WRITE_FULL_OVERLAPPING`]). And reads
//! take no turns while a write call runs: with commits in flight (a mix of
//! checks and reports) reads that waited for each other made the mix
//! slower on MariaDB (73k against 79k requests/s), not faster.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// The longest an engine thread waits for its turn.
pub(crate) const MAX_WAIT: Duration = Duration::from_millis(1);

/// A read thread holding this many requests calls the engine without
/// waiting: its call is already large enough that waiting gains little.
pub(crate) const READ_FULL: usize = 64;

/// The same for a write thread: commits of this size overlap.
pub(crate) const WRITE_FULL: usize = 32;

/// [`WRITE_FULL`] for an engine whose commits overlap well
/// ([`Kinds::overlapping_commits`]). PostgreSQL reports at window 64 came
/// in calls of about 30 requests, just under [`WRITE_FULL`], so each
/// waited for the commit before it and a third of the machine sat idle;
/// from 16 they overlap: 39–46k → 44–46k reports/s, the 90/10 mix no
/// slower (its write calls are smaller and still take turns). MariaDB's
/// reports were slower at 16 (its statement, not its commit's wait, is
/// the cost): bench/RESULTS-sql.md, "Write turns".
pub(crate) const WRITE_FULL_OVERLAPPING: usize = 16;

/// The turns of one kind of engine call (module doc).
#[derive(Debug)]
pub(crate) struct CallGate {
    /// Calls of this kind running now.
    running: Mutex<usize>,
    ended: Condvar,
    /// How many may run at once before a new one waits.
    limit: usize,
    /// A call of this many requests or more does not wait.
    full: usize,
    /// Calls waiting now (tests watch it).
    #[cfg(test)]
    waiting: std::sync::atomic::AtomicUsize,
}

/// Which kinds of call take turns.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Kinds {
    /// Reads, unless the engine pipelines them
    /// ([`Engine::pipelines_reads`](pyzor_store::Engine::pipelines_reads)):
    /// it already runs them one after the other, with no gap between them.
    pub(crate) reads: bool,
    /// Whether the engine's commits gain from running at once
    /// ([`Engine::overlaps_commits`](pyzor_store::Engine::overlaps_commits)):
    /// a write call goes without waiting from [`WRITE_FULL_OVERLAPPING`]
    /// requests instead of [`WRITE_FULL`].
    pub(crate) overlapping_commits: bool,
}

impl Kinds {
    /// What `engine` gains by.
    pub(crate) fn of(engine: &dyn pyzor_store::Engine) -> Kinds {
        Kinds {
            reads: !engine.pipelines_reads(),
            overlapping_commits: engine.overlaps_commits(),
        }
    }
}

/// The two kinds: reads (lane 0 of each worker) and writes (the others).
#[derive(Debug)]
pub(crate) struct CallGates {
    pub(crate) reads: CallGate,
    pub(crate) writes: CallGate,
}

impl CallGates {
    /// Gates for `workers` workers with `lanes` engine threads each; `None`
    /// with one worker, whose threads of a kind never wait for each other
    /// (one read thread; its write threads overlap their commits), and with
    /// one engine thread per worker (K = 1: reads and writes on one thread,
    /// not measured with turns). Each kind takes turns only when the engine
    /// gains by it ([`Kinds`]).
    pub(crate) fn for_workers(workers: usize, lanes: usize, kinds: Kinds) -> Option<CallGates> {
        if workers < 2 || lanes < 2 {
            return None;
        }
        let write_lanes = workers * lanes.saturating_sub(1);
        let read_limit = match kinds.reads {
            true => workers / 2,
            false => usize::MAX,
        };
        let write_full = match kinds.overlapping_commits {
            true => WRITE_FULL_OVERLAPPING,
            false => WRITE_FULL,
        };
        Some(CallGates {
            reads: CallGate::new(read_limit, READ_FULL),
            writes: CallGate::new(write_lanes / 2, write_full),
        })
    }

    /// The turn of a call of `n` requests by engine thread `lane` of its
    /// worker (lane 0 reads, the others write: crate::engine_queue), and
    /// whether it waited for it.
    pub(crate) fn enter(&self, lane: usize, n: usize) -> (Turn<'_>, bool) {
        match lane {
            // reads wait for their turn only while no commit runs
            0 if self.writes.running() == 0 => self.reads.enter(n, MAX_WAIT),
            0 => self.reads.enter(n, Duration::ZERO),
            _ => self.writes.enter(n, MAX_WAIT),
        }
    }
}

/// A call in progress ([`CallGate::enter`]); ends when dropped.
pub(crate) struct Turn<'g> {
    gate: &'g CallGate,
}

impl CallGate {
    /// At most `limit` calls at once (at least one), but a call of `full`
    /// requests or more never waits.
    pub(crate) fn new(limit: usize, full: usize) -> CallGate {
        CallGate {
            running: Mutex::new(0),
            ended: Condvar::new(),
            limit: limit.max(1),
            full,
            #[cfg(test)]
            waiting: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, usize> {
        // a count stays right whatever panicked while holding it
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Start a call of `n` requests: at once when fewer than the limit run
    /// or `n` is full, else when one ends or after `max_wait`. Whether it
    /// waited is the second value (the caller then gathers again).
    pub(crate) fn enter(&self, n: usize, max_wait: Duration) -> (Turn<'_>, bool) {
        let mut running = self.lock();
        let mut waited = false;
        if n < self.full && *running >= self.limit && !max_wait.is_zero() {
            waited = true;
            #[cfg(test)]
            self.waiting
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let deadline = Instant::now() + max_wait;
            while *running >= self.limit {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                running = self
                    .ended
                    .wait_timeout(running, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            #[cfg(test)]
            self.waiting
                .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
        *running += 1;
        (Turn { gate: self }, waited)
    }

    /// Calls running now.
    fn running(&self) -> usize {
        *self.lock()
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut running = self.gate.lock();
        *running = running.saturating_sub(1);
        drop(running);
        self.gate.ended.notify_one();
    }
}

/// An engine that neither pipelines its reads nor overlaps its commits
/// (MariaDB, Redis): both kinds take turns, writes waiting below
/// [`WRITE_FULL`].
#[cfg(test)]
const PLAIN: Kinds = Kinds {
    reads: true,
    overlapping_commits: false,
};

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// One worker needs no turns; two workers with two threads each take
    /// turns one read call and one write call at a time.
    #[test]
    fn gates_only_between_workers() {
        assert!(CallGates::for_workers(1, 4, PLAIN).is_none());
        let g = CallGates::for_workers(2, 2, PLAIN).unwrap();
        assert_eq!((g.reads.limit, g.writes.limit), (1, 1));
        let g = CallGates::for_workers(8, 3, PLAIN).unwrap();
        assert_eq!((g.reads.limit, g.writes.limit), (4, 8));
        // one thread per worker does reads and writes: no turns
        assert!(CallGates::for_workers(2, 1, PLAIN).is_none());
    }

    /// An engine that pipelines its reads: reads never wait for each
    /// other, writes still take turns.
    #[test]
    fn pipelined_reads_take_no_turns() {
        let g = CallGates::for_workers(
            2,
            2,
            Kinds {
                reads: false,
                overlapping_commits: false,
            },
        )
        .unwrap();
        let (_first, _) = g.enter(0, 1);
        let start = Instant::now();
        let (_second, waited) = g.enter(0, 1);
        assert!(!waited, "a read waited for another read");
        assert_eq!(g.reads.running(), 2);
        let (_write, _) = g.enter(1, 1);
        let (_, waited) = g.enter(1, 1);
        assert!(waited, "writes take turns as before");
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    /// An engine whose commits overlap: a write call of
    /// [`WRITE_FULL_OVERLAPPING`] requests goes without waiting, a smaller
    /// one still takes its turn; reads take turns as before.
    #[test]
    fn overlapping_commits_wait_only_below_a_smaller_call() {
        let g = CallGates::for_workers(
            2,
            2,
            Kinds {
                reads: true,
                overlapping_commits: true,
            },
        )
        .unwrap();
        let start = Instant::now();
        let (first, _) = g.enter(1, 1);
        let (second, waited) = g.enter(1, WRITE_FULL_OVERLAPPING);
        assert!(!waited, "a call of {WRITE_FULL_OVERLAPPING} writes waited");
        assert_eq!(g.writes.running(), 2);
        drop(second);
        let (_, waited) = g.enter(1, WRITE_FULL_OVERLAPPING - 1);
        assert!(waited, "a smaller write call takes its turn");
        drop(first);
        let (_read, _) = g.enter(0, 1);
        let (_, waited) = g.enter(0, 1);
        assert!(waited, "reads take turns as before");
        assert!(start.elapsed() < Duration::from_secs(10));
        // without overlapping commits a call that size waits
        let g = CallGates::for_workers(2, 2, PLAIN).unwrap();
        let (_first, _) = g.enter(1, 1);
        let (_, waited) = g.enter(1, WRITE_FULL_OVERLAPPING);
        assert!(waited);
    }

    /// A call waits while another runs, and starts as soon as it ends.
    #[test]
    fn a_call_waits_for_the_running_one() {
        use std::sync::atomic::Ordering::SeqCst;
        let gate = Arc::new(CallGate::new(1, READ_FULL));
        let (first, waited) = gate.enter(1, Duration::from_secs(60));
        assert!(!waited);
        let g = Arc::clone(&gate);
        let t = std::thread::spawn(move || g.enter(1, Duration::from_secs(60)).1);
        // bounded: the second call is waiting (a loaded machine may start
        // the thread late)
        let t0 = Instant::now();
        while gate.waiting.load(SeqCst) == 0 && t0.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(gate.waiting.load(SeqCst), 1, "the second call must wait");
        assert_eq!(gate.running(), 1, "only the first call runs");
        let ended = Instant::now();
        drop(first);
        assert!(t.join().unwrap(), "the second call waited");
        assert!(
            ended.elapsed() < Duration::from_secs(30),
            "woken when the first ended, not at its 60 s bound"
        );
        assert_eq!(gate.running(), 0);
    }

    /// A call that never ends delays another by at most the wait given; a
    /// full call does not wait at all.
    #[test]
    fn waits_are_bounded() {
        let gate = CallGate::new(1, READ_FULL);
        let (_stuck, _) = gate.enter(1, MAX_WAIT);
        let start = Instant::now();
        let (second, waited) = gate.enter(1, Duration::from_millis(20));
        assert!(waited);
        assert!(start.elapsed() >= Duration::from_millis(20));
        assert!(start.elapsed() < Duration::from_secs(10));
        assert_eq!(gate.running(), 2);
        drop(second);
        let start = Instant::now();
        let (_full, waited) = gate.enter(READ_FULL, Duration::from_secs(60));
        assert!(!waited);
        assert!(start.elapsed() < Duration::from_secs(10));
    }
}

#[cfg(test)]
mod kinds {
    use super::*;

    /// Reads wait for a read call, but not while a write call runs; a
    /// write call of [`WRITE_FULL`] requests does not wait for another.
    #[test]
    fn reads_and_writes_take_turns_their_own_way() {
        let g = CallGates::for_workers(2, 2, PLAIN).unwrap();
        let wait = Duration::from_millis(30);
        let (read, _) = g.enter(0, 1);
        let t0 = Instant::now();
        let (second, waited) = g.reads.enter(1, wait);
        assert!(waited && t0.elapsed() >= wait, "a read waits for a read");
        drop(second);
        let (write, _) = g.enter(1, 1);
        let t0 = Instant::now();
        let (_second, waited) = g.enter(0, 1);
        assert!(!waited, "a read does not wait while a commit runs");
        assert!(t0.elapsed() < Duration::from_secs(10));
        drop(read);
        let (_full, waited) = g.enter(1, WRITE_FULL);
        assert!(!waited, "a full write call does not wait");
        drop(write);
    }
}
