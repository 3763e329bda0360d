//! The penalty box: a client network far over its rate limit is steered
//! to a socket of its own, so that its backlog no longer delays the other
//! networks that share its worker (docs/security.md, "The penalty box").
//!
//! With two or more workers, [`crate::net::bind_workers`] binds one more
//! socket into the `SO_REUSEPORT` group, after the workers: the penalty
//! socket, index `workers` of the group, with a small receive buffer, read
//! by the penalty worker (a lower-priority thread whose rate limiter gives
//! new networks no burst, [`crate::protect::RateLimiter::strict`]). The
//! steering program (`steer`) sends the networks of the box there; a
//! classic BPF program has no maps, so the box regenerates the program
//! with the networks as compare instructions and attaches it again, which
//! the kernel swaps in at once.
//!
//! - In: a worker's rate limiter reports a network that had limited at
//!   least [`PENALISE_AT`] times its budget in the last second (it sent
//!   more than 4 times what it may).
//! - Kept: the penalty worker reports it again while it still has at least
//!   [`KEEP_AT`] times its budget limited in a second.
//! - Out: [`HOLD`] after the last such report.
//! - Bounded: at most [`MAX_PENALISED`] networks. When the box is full, a
//!   new flood takes the place of the smallest one only if it is at least
//!   twice as large (in multiples of the budget, the largest second seen),
//!   and the program changes at most once per [`MIN_CHANGE`]: a spoofed
//!   flood from many networks can neither grow the program nor push a real
//!   flooder out without outdoing it, and an evicted flooder is only back
//!   on its worker's rate limit, from which it is moved again when it
//!   outdoes the smallest.

use std::net::{IpAddr, UdpSocket};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) use super::steer::MAX_PENALISED;
use super::steer::{self, Prefix};
use crate::metrics::Metrics;

/// A network is moved when it had limited this many times its budget in a
/// second (it sent at least 4 times its budget).
pub(crate) const PENALISE_AT: u32 = 3;
/// A penalised network stays while it still has this many times its
/// budget limited in a second.
pub(crate) const KEEP_AT: u32 = 1;
/// How long a network stays after its last report.
pub(crate) const HOLD: Duration = Duration::from_secs(10);
/// The least time between two changes of the program.
pub(crate) const MIN_CHANGE: Duration = Duration::from_millis(200);
/// Receive buffer of the penalty socket: a flood beyond what the penalty
/// worker reads is dropped by the kernel instead of waiting.
pub(crate) const PENALTY_RCVBUF: usize = 256 << 10;
/// Nice value of the penalty worker's thread when `SCHED_IDLE` is refused
/// (on a busy machine the other workers then get most of the CPU).
pub(crate) const PENALTY_NICE: libc::c_int = 10;

#[derive(Clone, Copy, Debug)]
struct Entry {
    prefix: Prefix,
    /// The largest second seen, in multiples of the budget.
    over: u32,
    /// Last report (µs of the box's clock).
    last: u64,
}

#[derive(Debug, Default)]
struct State {
    entries: Vec<Entry>,
    /// When the program last changed (µs), if it has.
    changed: Option<u64>,
}

/// Who reports a network to [`PenaltyBox::report`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// A worker: moves the network in when over [`PENALISE_AT`].
    Worker,
    /// The penalty worker: keeps a penalised network in when over
    /// [`KEEP_AT`].
    PenaltyWorker,
}

/// The networks on the penalty socket and the means to re-steer.
#[derive(Debug)]
pub(crate) struct PenaltyBox {
    workers: u32,
    /// A member of the reuseport group (a duplicate of a worker's socket).
    group: UdpSocket,
    metrics: Arc<Metrics>,
    state: Mutex<State>,
    clock0: Instant,
}

impl PenaltyBox {
    /// The box of a group of `workers` worker sockets plus the penalty
    /// socket; `group` is any socket of the group.
    pub(crate) fn new(workers: u32, group: UdpSocket, metrics: Arc<Metrics>) -> Self {
        PenaltyBox {
            workers,
            group,
            metrics,
            state: Mutex::default(),
            clock0: Instant::now(),
        }
    }

    fn now(&self) -> u64 {
        self.clock0.elapsed().as_micros() as u64
    }

    /// The networks in the box now.
    pub(crate) fn penalised(&self) -> Vec<Prefix> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.entries.iter().map(|e| e.prefix).collect()
    }

    /// A rate limiter says the network of `ip` had limited `over` times its
    /// budget in the last second.
    pub(crate) fn report(&self, ip: IpAddr, over: u32, by: Role) {
        let need = match by {
            Role::Worker => PENALISE_AT,
            Role::PenaltyWorker => KEEP_AT,
        };
        if over < need {
            return;
        }
        let prefix = Prefix::of(ip);
        let now = self.now();
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = st.entries.iter_mut().find(|e| e.prefix == prefix) {
            e.last = now;
            e.over = e.over.max(over);
            return;
        }
        if by == Role::PenaltyWorker {
            // A datagram that was queued before the network was let out.
            return;
        }
        let recent = st
            .changed
            .is_some_and(|t| now.saturating_sub(t) < MIN_CHANGE.as_micros() as u64);
        let entry = Entry {
            prefix,
            over,
            last: now,
        };
        let mut next = st.entries.clone();
        let evicted = if recent {
            None
        } else if next.len() < MAX_PENALISED {
            next.push(entry);
            Some(None)
        } else {
            let (i, smallest) = next
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.over)
                .map(|(i, e)| (i, *e))
                .expect("the box is full");
            (over >= smallest.over.saturating_mul(2)).then(|| {
                next[i] = entry;
                Some(smallest.prefix)
            })
        };
        let Some(evicted) = evicted else {
            self.metrics.penalty_refused.fetch_add(1, Relaxed);
            return;
        };
        if self.apply(&mut st, next, now) {
            self.metrics.penalty_moves.fetch_add(1, Relaxed);
            log::warn!(
                "{prefix} sends over {} times its rate limit: moved to the penalty socket for at least {} s{} (pyzord_penalised_networks)",
                over + 1,
                HOLD.as_secs(),
                match evicted {
                    Some(p) => format!(", in place of the smaller flood of {p}"),
                    None => String::new(),
                }
            );
        }
    }

    /// Let out the networks not reported for [`HOLD`] (the penalty worker
    /// calls this after each batch and each idle wait).
    pub(crate) fn expire(&self) {
        self.expire_at(self.now());
    }

    fn expire_at(&self, now: u64) {
        let hold = HOLD.as_micros() as u64;
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (next, gone): (Vec<Entry>, Vec<Entry>) = st
            .entries
            .iter()
            .partition(|e| now.saturating_sub(e.last) < hold);
        if !gone.is_empty() && self.apply(&mut st, next, now) {
            for e in gone {
                log::info!(
                    "{} is back on its worker: no flood for {} s",
                    e.prefix,
                    HOLD.as_secs()
                );
            }
        }
    }

    /// Attach the program for `next` and make it the box's state. On
    /// failure the previous program stays in force (the kernel keeps it)
    /// and so does the state; the error is logged and counted, and the
    /// next report or expiry tries again after [`MIN_CHANGE`].
    fn apply(&self, st: &mut State, next: Vec<Entry>, now: u64) -> bool {
        st.changed = Some(now);
        let prefixes: Vec<Prefix> = next.iter().map(|e| e.prefix).collect();
        match steer::attach(&self.group, self.workers, &prefixes) {
            Ok(()) => {
                self.metrics.penalised.store(prefixes.len() as u64, Relaxed);
                st.entries = next;
                true
            }
            Err(e) => {
                self.metrics.penalty_attach_errors.fetch_add(1, Relaxed);
                log::error!(
                    "Cannot re-attach the steering program ({e}); the previous one stays in force"
                );
                false
            }
        }
    }
}

/// Lower the calling thread's priority: `SCHED_IDLE`, or [`PENALTY_NICE`]
/// if the kernel refuses it (best effort: a failure is logged; the
/// penalty worker then runs at normal priority).
///
/// Why `SCHED_IDLE` and not only a nice value: at nice 10 the penalty
/// worker still gets about a tenth of a busy CPU, in slices of
/// milliseconds, and a waking thread may wait for its slice; under a
/// flood at the machine's full rate a neighbour's check waited for the
/// CPU behind it (p99 12× its unloaded value, bench/RESULTS-attack.md). A `SCHED_IDLE` thread runs
/// only on CPU time no normal thread wants, and any normal thread that
/// wakes preempts it at once. The price is deliberate: while the machine
/// is busy a penalised network is starved (its datagrams wait in the
/// penalty socket's small buffer, where the kernel drops the excess);
/// that network is the one flooding. Any thread may lower itself to
/// `SCHED_IDLE` without privilege (Linux 2.6.39 on), and systemd's
/// `RestrictRealtime=` does not forbid it (only the real-time policies).
/// It applies to the calling thread only (pid 0); the penalty worker's
/// engine thread (network engines only) was started before and keeps
/// normal priority: it mostly waits on the engine, for the few requests
/// the rate limit lets through.
pub(crate) fn lower_this_thread() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param that outlives the call; pid 0
    // is the calling thread.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } == 0 {
        return;
    }
    let idle_err = std::io::Error::last_os_error();
    // SAFETY: gettid and setpriority take and return plain integers.
    let r = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, PENALTY_NICE)
    };
    if r == 0 {
        log::info!(
            "Cannot make the penalty worker SCHED_IDLE ({idle_err}): it runs at nice {PENALTY_NICE} instead"
        );
    } else {
        log::info!(
            "Cannot lower the penalty worker's priority (SCHED_IDLE: {idle_err}; nice {PENALTY_NICE}: {})",
            std::io::Error::last_os_error()
        );
    }
}

/// The penalty worker's turn is over after each receive batch: let any
/// other runnable thread of the CPU go first (`sched_yield`).
///
/// `SCHED_IDLE` alone does not keep the penalty worker out of a normal
/// thread's way while a flood keeps its socket full. A thread that *wakes*
/// preempts it, but one that is already runnable (a neighbour's client or
/// worker preempted a moment before) waits until the scheduler picks it
/// again, and a thread that never blocks is only switched out at the next
/// scheduler tick (4 ms at HZ 250) on a kernel without preemption: traces
/// of a flood whose receive work ran on the server's CPU showed the
/// penalty worker holding it 2.5 ms and more at a stretch while a
/// neighbour's client waited (bench/RESULTS-attack.md, "Housekeeping
/// kernel threads off the server's CPU", and "The penalty worker yields"
/// for the effect of this call).
/// Yielding after each batch (at most [`crate::net::BATCH`] datagrams)
/// bounds that wait to one batch. With nothing else runnable the call
/// returns at once.
pub(crate) fn give_way() {
    std::thread::yield_now();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn boxed() -> (PenaltyBox, Vec<UdpSocket>) {
        let w = crate::net::bind_workers(
            crate::net::listen_addr("127.0.0.1", 0).unwrap(),
            2,
            Duration::from_millis(100),
        )
        .unwrap();
        let group = w.sockets[0].try_clone().unwrap();
        let pen = w.penalty.expect("a penalty socket with two workers");
        let mut socks = w.sockets;
        socks.push(pen);
        (PenaltyBox::new(2, group, Arc::default()), socks)
    }

    /// The penalty worker's thread is SCHED_IDLE after the call, and only
    /// that thread (its own spawned thread here: the test harness's
    /// threads keep their policy).
    #[test]
    fn lower_this_thread_makes_it_sched_idle() {
        // SAFETY: sched_getscheduler takes and returns plain integers.
        let policy = || unsafe { libc::sched_getscheduler(0) };
        let before = policy();
        let after = std::thread::spawn(move || {
            lower_this_thread();
            policy()
        })
        .join()
        .unwrap();
        assert_eq!(after, libc::SCHED_IDLE);
        assert_eq!(policy(), before);
    }

    fn ip(i: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (i << 8) | 1))
    }

    #[test]
    fn in_when_over_kept_while_over_then_out() {
        let (b, _s) = boxed();
        b.report(ip(1), PENALISE_AT - 1, Role::Worker);
        assert!(b.penalised().is_empty());
        b.report(ip(1), PENALISE_AT, Role::Worker);
        assert_eq!(b.penalised(), vec![Prefix::of(ip(1))]);
        assert_eq!(b.metrics.penalised.load(Relaxed), 1);
        // The penalty worker does not bring in a network that is not in.
        std::thread::sleep(MIN_CHANGE);
        b.report(ip(2), 100, Role::PenaltyWorker);
        assert_eq!(b.penalised().len(), 1);
        // Expiry keeps what was reported within HOLD.
        b.expire();
        assert_eq!(b.penalised().len(), 1);
        // HOLD after the last report it is let out.
        let last = b.state.lock().unwrap().entries[0].last;
        b.expire_at(last + HOLD.as_micros() as u64 - 1);
        assert_eq!(b.penalised().len(), 1);
        b.expire_at(last + HOLD.as_micros() as u64);
        assert!(b.penalised().is_empty());
        assert_eq!(b.metrics.penalised.load(Relaxed), 0);
        assert_eq!(b.metrics.penalty_moves.load(Relaxed), 1);
    }

    /// Hostile: floods from a thousand networks (e.g. spoofed), each over
    /// the threshold, never put more than MAX_PENALISED in the program, and
    /// cannot push out a large real flood with floods no larger than it.
    #[test]
    fn many_flooding_networks_cannot_grow_the_program() {
        let (b, _s) = boxed();
        let real = ip(9999);
        // Floods of 3, then 603, then 1203 budgets, each from 1000 new networks.
        b.report(real, 1000, Role::Worker);
        for round in 0..3 {
            for i in 0..1000 {
                // Spread the reports over time so that MIN_CHANGE lets
                // some through.
                if i % 100 == 0 {
                    std::thread::sleep(MIN_CHANGE);
                }
                b.report(
                    ip(round * 1000 + i),
                    PENALISE_AT + round * 600,
                    Role::Worker,
                );
                assert!(b.penalised().len() <= MAX_PENALISED);
            }
        }
        let now = b.penalised();
        assert_eq!(now.len(), MAX_PENALISED);
        assert!(now.contains(&Prefix::of(real)), "{now:?}");
        assert!(b.metrics.penalty_refused.load(Relaxed) > 2000);
        // The program attached is bounded too.
        assert!(steer::program(2, &now).len() <= 20 + 5 * MAX_PENALISED);
        // A flood twice as large does take the place of the smallest.
        std::thread::sleep(MIN_CHANGE);
        b.report(ip(5000), 2 * 603, Role::Worker);
        let after = b.penalised();
        assert!(after.contains(&Prefix::of(ip(5000))), "{after:?}");
        assert!(after.contains(&Prefix::of(real)));
        assert_eq!(after.len(), MAX_PENALISED);
    }
}
