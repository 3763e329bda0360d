//! Being safe on the internet (docs/security.md): per-network rate limits
//! ([`RateLimiter`], one per worker), the refusal of replayed signed
//! writes ([`ReplayGuard`], one for all workers) and the distinct-reporters
//! policy ([`DistinctReporters`], one for all workers).
//!
//! The rate limiter keeps two token buckets per client network (IPv4 /24
//! and IPv6 /56 by default): one for report and whitelist, one for every
//! other request. All datagrams of one network reach the same worker
//! (`crate::net::steer`), so a worker's table is the whole truth about its
//! networks and needs no lock. The table has a fixed number of slots
//! ([`SETS`] × [`WAYS`]), found by a keyed hash: a flood of random spoofed
//! sources evicts the least recently seen network of a set, never grows
//! the table, and cannot choose which slot it hits.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Mutex;

use pyzor_config::RateLimitConfig;

/// Sets of the per-worker network table.
pub(crate) const SETS: usize = 4096;
/// Slots per set: a new network takes the least recently seen one.
pub(crate) const WAYS: usize = 4;
/// Every `SLIP`-th limited request of a network is answered with a short
/// error, the others get no reply (BIND's response-rate-limiting "slip"):
/// a real client learns why it gets no answers, and a spoofed flood gets
/// at most one small reply per `SLIP` datagrams back, and at most
/// [`SLIP_RATE`] a second.
pub(crate) const SLIP: u32 = 2;
/// The most limited requests of one network answered per second (and in a
/// burst). Measured (bench/RESULTS-attack.md, "Where a flooded worker's
/// time goes"): without it, half of a 75,000-datagram-a-second flood was
/// answered, and those replies took as much of the worker's CPU as
/// receiving the whole flood.
pub(crate) const SLIP_RATE: u32 = 10;

/// What to do with one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Within its network's limit (or limits are off).
    Allow,
    /// From a network of the allow list.
    Listed,
    /// Over the limit in log mode: counted and processed.
    Logged,
    /// Over the limit: not processed; answered with a short error when
    /// `answer` (the slip), else not answered at all. `over`: on the first
    /// limited request of a second, how many times its budget the network
    /// had limited in the second before (rounded down; 0 otherwise), for
    /// the penalty box (`crate::net::penalty`).
    Limited { answer: bool, over: u32 },
}

/// One token bucket: `tokens` at `at` (µs).
#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    tokens: f64,
    at: u64,
}

impl Bucket {
    /// A full bucket.
    fn full(rate: u32, now: u64) -> Self {
        Bucket {
            tokens: f64::from(rate),
            at: now,
        }
    }

    /// Refill at `rate` per second up to `rate` (the burst) and take one
    /// token if there is one.
    fn take(&mut self, rate: u32, now: u64) -> bool {
        self.take_within(rate, f64::from(rate), now)
    }

    /// [`Bucket::take`] with the bucket's size `burst`.
    fn take_within(&mut self, rate: u32, burst: f64, now: u64) -> bool {
        let rate = f64::from(rate);
        let elapsed = now.saturating_sub(self.at) as f64 / 1e6;
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.at = now.max(self.at);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A network of the table: `net` is the masked address (IPv4 in the low
/// 32 bits, tagged by `v6`), `used` whether the slot holds one.
#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    used: bool,
    v6: bool,
    net: u128,
    seen: u64,
    read: Bucket,
    write: Bucket,
    /// Limited requests so far, for the slip.
    limited: u32,
    /// Slip replies left ([`SLIP_RATE`]).
    slip: Bucket,
    /// Start (µs) of the current one-second window and the limited reads
    /// and writes in it ([`Slot::window`]).
    win_at: u64,
    win_read: u32,
    win_write: u32,
}

impl Slot {
    /// Count one limited request in the current one-second window. On the
    /// first of a new window: how many times its budget (the rate) the
    /// network had limited in the window just ended, when that window
    /// ended less than a second ago (else 0).
    fn window(&mut self, write: bool, (read_rate, write_rate): (u32, u32), now: u64) -> u32 {
        let mut over = 0;
        let age = now.saturating_sub(self.win_at);
        if age >= 1_000_000 {
            if age < 2_000_000 {
                let times = |n: u32, rate: u32| n.checked_div(rate).unwrap_or(0);
                over = times(self.win_read, read_rate).max(times(self.win_write, write_rate));
            }
            (self.win_at, self.win_read, self.win_write) = (now, 0, 0);
        }
        let n = if write {
            &mut self.win_write
        } else {
            &mut self.win_read
        };
        *n = n.saturating_add(1);
        over
    }
}

/// A network: masked address and family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Net {
    v6: bool,
    net: u128,
}

/// `ip` masked to `len` leading bits (IPv4-mapped IPv6 addresses are IPv4).
pub(crate) fn network(ip: IpAddr, v4_len: u8, v6_len: u8) -> Net {
    match ip {
        IpAddr::V4(a) => v4_net(u32::from(a), v4_len),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => v4_net(u32::from(v4), v4_len),
            None => {
                let len = u32::from(v6_len.min(128));
                let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
                Net {
                    v6: true,
                    net: u128::from(a) & mask,
                }
            }
        },
    }
}

fn v4_net(a: u32, len: u8) -> Net {
    let len = u32::from(len.min(32));
    let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
    Net {
        v6: false,
        net: u128::from(a & mask),
    }
}

/// A worker's per-network token buckets.
pub(crate) struct RateLimiter {
    read: u32,
    write: u32,
    v4_len: u8,
    v6_len: u8,
    allow: Vec<Net>,
    /// Prefix lengths of `allow`, in its order.
    allow_len: Vec<(u8, u8)>,
    log_only: bool,
    /// New networks start with empty buckets ([`RateLimiter::strict`]).
    strict: bool,
    hasher: RandomState,
    slots: Box<[Slot]>,
}

impl RateLimiter {
    /// A limiter for `cfg`, or `None` when both limits are off.
    pub(crate) fn new(cfg: &RateLimitConfig) -> Option<Self> {
        if !cfg.enabled() {
            return None;
        }
        let mut allow = Vec::new();
        let mut allow_len = Vec::new();
        for &(ip, len) in &cfg.allow {
            // A v4 entry is masked with its own length and matched with it.
            allow.push(network(ip, len, len));
            allow_len.push((len, len));
        }
        Some(RateLimiter {
            read: cfg.read,
            write: cfg.write,
            v4_len: cfg.v4_prefix,
            v6_len: cfg.v6_prefix,
            allow,
            allow_len,
            log_only: cfg.log_only,
            strict: false,
            hasher: RandomState::new(),
            slots: vec![Slot::default(); SETS * WAYS].into_boxed_slice(),
        })
    }

    /// This limiter, without bursts: new networks start with empty buckets
    /// and a bucket holds at most one token, so a network gets its rate and
    /// nothing more, however long it was away. The penalty worker's
    /// (`crate::net::penalty`): a network moved to it arrives with its
    /// burst spent on its old worker, and a network moved to it again later
    /// finds no refilled bucket there (measured: with refilling buckets, 5
    /// floods stored 1,275 reports against a budget of 1,201).
    pub(crate) fn strict(mut self) -> Self {
        self.strict = true;
        self
    }

    /// The verdict on one request from `ip` (a write: report or whitelist)
    /// at `now` (µs of a monotonic clock).
    pub(crate) fn check(&mut self, ip: IpAddr, write: bool, now: u64) -> Verdict {
        let rate = if write { self.write } else { self.read };
        if rate == 0 {
            return Verdict::Allow;
        }
        let listed = self
            .allow
            .iter()
            .zip(&self.allow_len)
            .any(|(n, &(l4, l6))| network(ip, l4, l6) == *n);
        if listed {
            return Verdict::Listed;
        }
        let net = network(ip, self.v4_len, self.v6_len);
        let (read, write_rate, log_only, strict) =
            (self.read, self.write, self.log_only, self.strict);
        let slot = self.slot(net, now);
        slot.seen = now;
        // A strict limiter's buckets hold one token: no burst, ever (a
        // network that comes back after a while gets none either).
        let burst = |rate: u32| if strict { 1.0 } else { f64::from(rate) };
        let ok = if write {
            slot.write.take_within(write_rate, burst(write_rate), now)
        } else {
            slot.read.take_within(read, burst(read), now)
        };
        if ok {
            return Verdict::Allow;
        }
        if log_only {
            return Verdict::Logged;
        }
        slot.limited = slot.limited.wrapping_add(1);
        Verdict::Limited {
            answer: slot.limited % SLIP == 0 && slot.slip.take(SLIP_RATE, now),
            over: slot.window(write, (read, write_rate), now),
        }
    }

    /// The slot of `net`: its own, else an empty one of its set, else the
    /// least recently seen one (given full buckets).
    fn slot(&mut self, net: Net, now: u64) -> &mut Slot {
        let set = (self.hasher.hash_one(net) as usize % SETS) * WAYS;
        let ways = &mut self.slots[set..set + WAYS];
        let found = ways
            .iter()
            .position(|s| s.used && s.v6 == net.v6 && s.net == net.net);
        let i = match found {
            Some(i) => i,
            None => {
                let i = ways
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, s)| (s.used, s.seen))
                    .map_or(0, |(i, _)| i);
                let fill = |rate: u32| {
                    let mut b = Bucket::full(rate, now);
                    if self.strict {
                        b.tokens = 0.0;
                    }
                    b
                };
                ways[i] = Slot {
                    used: true,
                    v6: net.v6,
                    net: net.net,
                    seen: now,
                    read: fill(self.read),
                    write: fill(self.write),
                    limited: 0,
                    slip: Bucket::full(SLIP_RATE, now),
                    win_at: now,
                    win_read: 0,
                    win_write: 0,
                };
                i
            }
        };
        &mut ways[i]
    }

    /// Networks in the table now (tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.used).count()
    }
}

/// How long a signed write is remembered, in µs: twice the ±300 s window
/// in which its `Time` is accepted.
pub(crate) const REPLAY_TTL_US: u64 = 600_000_000;
/// Signed writes remembered at most; beyond it the oldest is forgotten.
pub(crate) const REPLAY_CAPACITY: usize = 65_536;

/// The signed writes (user, `Sig`) accepted in the last [`REPLAY_TTL_US`],
/// shared by all workers; in memory only (lost on restart).
#[derive(Debug, Default)]
pub(crate) struct ReplayGuard {
    inner: Mutex<Seen>,
}

/// A signed write: (user, `Sig`).
type SignedKey = (Box<[u8]>, Box<[u8]>);

#[derive(Debug, Default)]
struct Seen {
    /// Each remembered key and when it expires.
    expiry: HashMap<SignedKey, u64>,
    /// Keys in the order they were added (= the order they expire).
    order: VecDeque<(SignedKey, u64)>,
}

impl ReplayGuard {
    /// Whether this (user, sig) is new at `now` (µs since the epoch); it is
    /// remembered either way.
    pub(crate) fn first_use(&self, user: &[u8], sig: &[u8], now: u64) -> bool {
        let mut seen = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while let Some((_, exp)) = seen.order.front() {
            if *exp > now && seen.order.len() < REPLAY_CAPACITY {
                break;
            }
            if let Some((k, exp)) = seen.order.pop_front() {
                if seen.expiry.get(&k) == Some(&exp) {
                    seen.expiry.remove(&k);
                }
            }
        }
        let key: SignedKey = (user.into(), sig.into());
        if seen.expiry.get(&key).is_some_and(|&e| e > now) {
            return false;
        }
        let exp = now + REPLAY_TTL_US;
        seen.expiry.insert(key.clone(), exp);
        seen.order.push_back((key, exp));
        true
    }

    /// Entries remembered now (tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().unwrap().expiry.len()
    }
}

/// Entries of the distinct-reporters table: 1,048,576 (16 MiB).
pub(crate) const DISTINCT_ENTRIES: usize = 1 << 20;
/// Shards of the table, each behind its own lock.
pub(crate) const DISTINCT_SHARDS: usize = 64;
/// Entries per set: a new (reporter, digest) takes an empty or expired
/// one, else the one counted longest ago.
pub(crate) const DISTINCT_WAYS: usize = 8;
/// Sets per shard.
pub(crate) const DISTINCT_SETS: usize = DISTINCT_ENTRIES / (DISTINCT_SHARDS * DISTINCT_WAYS);

/// One remembered count: the keyed hash of (kind, reporter, digest) and
/// when it was counted (seconds of the table's clock + 1; 0 = empty).
#[derive(Clone, Copy, Debug, Default)]
struct Counted {
    tag: u64,
    at: u32,
}

/// Who reports: a signed account, or the sender's network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Reporter<'a> {
    Account(&'a [u8]),
    Network { v6: bool, net: u128 },
}

/// `DistinctWindow` (docs/security.md, "Distinct reporters"): a digest's
/// report count, and its whitelist count, rise at most once per reporter
/// per `window` seconds. A reporter is a signed account (not anonymous),
/// else the sender's network with the rate limiter's masks. Shared by all
/// workers (one account may send from several networks); in memory only,
/// lost on restart.
///
/// The table has a fixed number of entries ([`DISTINCT_ENTRIES`]), found
/// by a hash keyed at start, so that senders can neither grow it nor aim
/// at a chosen entry. A set that is full of entries still in their window
/// forgets the one counted longest ago: a reporter may then count again
/// early. That happens when more than a set's worth of new (reporter,
/// digest) pairs arrive within one window: with 500,000 pairs in a window
/// 96 % were still recognised (bench/distinct.py).
#[derive(Debug)]
pub(crate) struct DistinctReporters {
    window: u32,
    v4_len: u8,
    v6_len: u8,
    hasher: RandomState,
    /// Sets per shard ([`DISTINCT_SETS`]).
    sets: usize,
    shards: Box<[Mutex<Box<[Counted]>>]>,
    clock0: std::time::Instant,
}

impl DistinctReporters {
    /// A table for `window` seconds (at most `MAX_DISTINCT_WINDOW`),
    /// reporters' networks masked as `rate` says; `None` when `window` is 0.
    pub(crate) fn new(window: u32, rate: &RateLimitConfig) -> Option<Self> {
        Self::sized(window, rate, DISTINCT_SETS)
    }

    /// [`Self::new`] with `sets` sets per shard (tests use small tables).
    fn sized(window: u32, rate: &RateLimitConfig, sets: usize) -> Option<Self> {
        (window > 0).then(|| DistinctReporters {
            window: window.min(pyzor_config::server::MAX_DISTINCT_WINDOW),
            v4_len: rate.v4_prefix,
            v6_len: rate.v6_prefix,
            hasher: RandomState::new(),
            sets,
            shards: (0..DISTINCT_SHARDS)
                .map(|_| Mutex::new(vec![Counted::default(); sets * DISTINCT_WAYS].into()))
                .collect(),
            clock0: std::time::Instant::now(),
        })
    }

    /// The reporter of a request by `user` (signed unless anonymous) from
    /// `ip`.
    pub(crate) fn reporter<'u>(&self, user: &'u [u8], ip: Option<IpAddr>) -> Reporter<'u> {
        match ip {
            Some(ip) if user == pyzor_protocol::auth::ANONYMOUS.as_bytes() => {
                let n = network(ip, self.v4_len, self.v6_len);
                Reporter::Network {
                    v6: n.v6,
                    net: n.net,
                }
            }
            // An account, or (tests, no sender) the anonymous user itself.
            _ => Reporter::Account(user),
        }
    }

    /// Seconds since the table was made (its clock).
    pub(crate) fn now(&self) -> u32 {
        u32::try_from(self.clock0.elapsed().as_secs()).unwrap_or(u32::MAX - 1)
    }

    /// Whether `reporter`'s report (`whitelist`: whitelisting) of `digest`
    /// at `now` (seconds of [`Self::now`]) counts: not when the same
    /// reporter's same kind of count of that digest was counted less than
    /// the window ago. A counted one starts its window; a repeat does not
    /// extend it.
    pub(crate) fn counts(
        &self,
        reporter: Reporter<'_>,
        whitelist: bool,
        digest: &[u8],
        now: u32,
    ) -> bool {
        let (h, shard, set) = self.locate(reporter, whitelist, digest);
        let mut table = self.shards[shard]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let ways = &mut table[set..set + DISTINCT_WAYS];
        let at = now.saturating_add(1);
        let fresh = |c: &Counted| c.at != 0 && at.saturating_sub(c.at) < self.window;
        if let Some(c) = ways.iter_mut().find(|c| c.at != 0 && c.tag == h) {
            if fresh(c) {
                return false;
            }
            c.at = at;
            return true;
        }
        // An empty or expired entry, else the one counted longest ago.
        let victim = ways
            .iter_mut()
            .min_by_key(|c| (fresh(c), c.at))
            .expect("DISTINCT_WAYS > 0");
        *victim = Counted { tag: h, at };
        true
    }

    /// The keyed hash of a count, its shard and the first entry of its set.
    fn locate(
        &self,
        reporter: Reporter<'_>,
        whitelist: bool,
        digest: &[u8],
    ) -> (u64, usize, usize) {
        let h = self.hasher.hash_one((whitelist, reporter, digest));
        let shard = (h >> 58) as usize % DISTINCT_SHARDS;
        (h, shard, (h as usize % self.sets) * DISTINCT_WAYS)
    }

    /// Entries in use (tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .map_or(0, |t| t.iter().filter(|c| c.at != 0).count())
            })
            .sum()
    }

    /// Bytes of the table (fixed).
    pub(crate) fn bytes(&self) -> usize {
        DISTINCT_SHARDS * self.sets * DISTINCT_WAYS * std::mem::size_of::<Counted>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(read: u32, write: u32) -> RateLimitConfig {
        RateLimitConfig {
            read,
            write,
            ..RateLimitConfig::off()
        }
    }

    #[test]
    fn off_is_none() {
        assert!(RateLimiter::new(&cfg(0, 0)).is_none());
    }

    #[test]
    fn burst_then_rate_per_network_and_kind() {
        let mut l = RateLimiter::new(&cfg(5, 2)).unwrap();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let same_net: IpAddr = "192.0.2.200".parse().unwrap();
        let other: IpAddr = "192.0.3.1".parse().unwrap();
        assert_eq!(l.check(a, true, 0), Verdict::Allow);
        assert_eq!(l.check(same_net, true, 0), Verdict::Allow);
        assert!(matches!(l.check(a, true, 0), Verdict::Limited { .. }));
        // Reads have their own bucket, other networks theirs.
        for _ in 0..5 {
            assert_eq!(l.check(a, false, 0), Verdict::Allow);
        }
        assert!(matches!(l.check(a, false, 0), Verdict::Limited { .. }));
        assert_eq!(l.check(other, true, 0), Verdict::Allow);
        // Half a second later one write token is back (rate 2/s).
        assert_eq!(l.check(a, true, 500_000), Verdict::Allow);
        assert!(matches!(l.check(a, true, 500_000), Verdict::Limited { .. }));
    }

    #[test]
    fn slip_answers_every_second_limited_request() {
        let mut l = RateLimiter::new(&cfg(1, 1)).unwrap();
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        assert_eq!(l.check(a, false, 0), Verdict::Allow);
        let answers: Vec<_> = (0..6).map(|_| l.check(a, false, 0)).collect();
        let answered = answers
            .iter()
            .filter(|v| matches!(v, Verdict::Limited { answer: true, .. }))
            .count();
        assert_eq!(answered, 3, "{answers:?}");
        // Same /56, other /64: the same network.
        let b: IpAddr = "2001:db8:1:ff::9".parse().unwrap();
        assert!(matches!(l.check(b, false, 0), Verdict::Limited { .. }));
    }

    /// A flood gets at most `SLIP_RATE` short replies a second.
    #[test]
    fn slip_replies_are_capped_per_second() {
        let mut l = RateLimiter::new(&cfg(1, 1)).unwrap();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let answered = |l: &mut RateLimiter, t: u64| {
            (0..1000)
                .filter(|_| matches!(l.check(a, false, t), Verdict::Limited { answer: true, .. }))
                .count()
        };
        assert_eq!(answered(&mut l, 0), SLIP_RATE as usize);
        assert_eq!(answered(&mut l, 100_000), 1);
        assert_eq!(answered(&mut l, 2_000_000), SLIP_RATE as usize);
    }

    /// The first limited request of a second says how many times its
    /// budget the network had limited in the second before (the penalty
    /// box's measure), per kind; a pause forgets it.
    #[test]
    fn limited_seconds_are_measured_in_budgets() {
        let mut l = RateLimiter::new(&cfg(10, 4)).unwrap();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let over = |v: Verdict| match v {
            Verdict::Limited { over, .. } => over,
            v => panic!("{v:?}"),
        };
        // Second 0: the burst (4 writes), then 13 limited writes.
        for _ in 0..4 {
            assert_eq!(l.check(a, true, 0), Verdict::Allow);
        }
        let first: Vec<u32> = (0..13).map(|_| over(l.check(a, true, 10))).collect();
        assert!(first.iter().all(|&o| o == 0), "{first:?}");
        // Second 1: its 4 writes, then the first limited one says
        // 13 / 4 = 3 budgets, the next nothing.
        for _ in 0..4 {
            assert_eq!(l.check(a, true, 1_000_050), Verdict::Allow);
        }
        assert_eq!(over(l.check(a, true, 1_000_100)), 3);
        assert_eq!(over(l.check(a, true, 1_000_200)), 0);
        // Reads are measured against the read budget: 25 limited reads in
        // that second (after its 10) = 2 budgets of 10.
        for _ in 0..10 {
            assert_eq!(l.check(a, false, 1_000_300), Verdict::Allow);
        }
        for _ in 0..25 {
            over(l.check(a, false, 1_000_400));
        }
        for _ in 0..4 {
            assert_eq!(l.check(a, true, 2_000_450), Verdict::Allow);
        }
        assert_eq!(over(l.check(a, true, 2_000_500)), 2);
        assert_eq!(over(l.check(a, true, 2_000_600)), 0);
        // 20 limited writes, then a pause of over a second: forgotten.
        for _ in 0..20 {
            over(l.check(a, true, 2_000_700));
        }
        for _ in 0..4 {
            assert_eq!(l.check(a, true, 4_500_000), Verdict::Allow);
        }
        assert_eq!(over(l.check(a, true, 4_500_001)), 0);
    }

    /// The penalty worker's limiter gives a new network no burst.
    #[test]
    fn a_strict_limiter_has_no_burst() {
        let mut l = RateLimiter::new(&cfg(10, 4)).unwrap().strict();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(matches!(l.check(a, true, 0), Verdict::Limited { .. }));
        assert!(matches!(l.check(a, false, 0), Verdict::Limited { .. }));
        // The rate still applies: a quarter of a second gives one write.
        assert_eq!(l.check(a, true, 250_000), Verdict::Allow);
        assert!(matches!(l.check(a, true, 250_000), Verdict::Limited { .. }));
        // A minute away refills one token, not a burst.
        assert_eq!(l.check(a, true, 60_250_000), Verdict::Allow);
        assert!(matches!(
            l.check(a, true, 60_250_000),
            Verdict::Limited { .. }
        ));
    }

    #[test]
    fn allow_list_and_log_mode() {
        let mut c = cfg(1, 1);
        c.allow = vec![("10.1.0.0".parse().unwrap(), 16)];
        let mut l = RateLimiter::new(&c).unwrap();
        for _ in 0..10 {
            assert_eq!(
                l.check("10.1.200.3".parse().unwrap(), true, 0),
                Verdict::Listed
            );
        }
        // IPv4-mapped IPv6 senders (a dual-stack socket) are IPv4.
        assert_eq!(
            l.check("::ffff:10.1.2.3".parse().unwrap(), true, 0),
            Verdict::Listed
        );
        c.log_only = true;
        let mut l = RateLimiter::new(&c).unwrap();
        let a: IpAddr = "10.2.0.1".parse().unwrap();
        assert_eq!(l.check(a, true, 0), Verdict::Allow);
        assert_eq!(l.check(a, true, 0), Verdict::Logged);
    }

    #[test]
    fn table_stays_bounded_under_random_spoofed_sources() {
        let mut l = RateLimiter::new(&cfg(10, 10)).unwrap();
        let flooder: IpAddr = "198.51.100.7".parse().unwrap();
        for _ in 0..10 {
            l.check(flooder, true, 0);
        }
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for i in 0..100_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let ip = if i % 2 == 0 {
                IpAddr::from((x as u32).to_be_bytes())
            } else {
                IpAddr::from((u128::from(x) << 64 | u128::from(i)).to_be_bytes())
            };
            l.check(ip, i % 3 == 0, i);
            // The flooder keeps sending: it stays in the table, limited.
            if i % 64 == 0 {
                assert!(
                    matches!(l.check(flooder, true, i), Verdict::Limited { .. }),
                    "the flooder was evicted at {i}"
                );
            }
        }
        assert!(l.len() <= SETS * WAYS);
        assert!(l.len() > SETS * WAYS / 2, "{}", l.len());
    }

    /// A memory engine; anonymous may do everything.
    fn anyone_may_do_everything() -> crate::worker::Shared {
        use pyzor_protocol::auth::{parse_access, Accounts};
        use pyzor_store::memory::MemoryEngine;

        use crate::rules::Rules;

        let accounts = Accounts::default();
        let (acl, _) = parse_access("all : anonymous : allow\n", &accounts);
        let engine = std::sync::Arc::new(MemoryEngine::new());
        crate::worker::Shared::standalone(engine, Rules { accounts, acl })
    }

    /// Through a worker's `Processor`: the burst is answered, then every
    /// second limited request gets the short 503, the others an empty
    /// reply that the worker loop does not send.
    #[test]
    fn a_worker_drops_and_slips_limited_requests() {
        use std::sync::atomic::Ordering::Relaxed;

        use crate::worker::{Processor, Protection};

        let sh = anyone_may_do_everything();
        let protection = Protection {
            rate: cfg(0, 2),
            ..Protection::default()
        };
        let mut p = Processor::with_protection(&sh, &protection);
        let req: &[u8] = b"Op: report\nOp-Digest: d\nThread: 7\nPV: 2.1\n\n";
        let peer = Some("192.0.2.9:4000".parse().unwrap());
        let mut replies = vec![b"stale".to_vec(); 6];
        let mut ready = [true; 6];
        p.process_batch(&sh, 6, |_| (req, peer), &mut replies, None, &mut ready);
        assert_eq!(ready, [true, true, false, true, false, true]);
        assert!(replies[0].starts_with(b"Code: 200\n"));
        assert!(replies[2].is_empty());
        let slip =
            "Code: 503\nDiag: Service Unavailable: rate limit exceeded\nPV: 2.1\nThread: 7\n\n";
        assert_eq!(String::from_utf8_lossy(&replies[3]), slip);
        assert_eq!(sh.metrics.rate_limited.load(Relaxed), 4);
        assert_eq!(sh.metrics.rate_dropped.load(Relaxed), 2);
        assert_eq!(sh.engine.get(b"d").unwrap().unwrap().r_count, 2);
    }

    fn distinct(window: u32) -> DistinctReporters {
        DistinctReporters::new(window, &RateLimitConfig::off()).unwrap()
    }

    #[test]
    fn distinct_off_is_none_and_the_table_is_fixed() {
        assert!(DistinctReporters::new(0, &RateLimitConfig::off()).is_none());
        let d = distinct(60);
        assert_eq!(d.bytes(), DISTINCT_ENTRIES * 16);
        assert_eq!(d.bytes(), 16 << 20);
    }

    #[test]
    fn distinct_counts_once_per_window() {
        let d = distinct(60);
        let r = d.reporter(b"anonymous", Some("192.0.2.1".parse().unwrap()));
        assert!(d.counts(r, false, b"x", 100));
        assert!(!d.counts(r, false, b"x", 100));
        assert!(!d.counts(r, false, b"x", 159));
        // A repeat does not extend the window: 60 s after the count.
        assert!(d.counts(r, false, b"x", 160));
        assert!(!d.counts(r, false, b"x", 161));
        // Other digests, and whitelisting the same digest, count apart.
        assert!(d.counts(r, false, b"y", 161));
        assert!(d.counts(r, true, b"x", 161));
        assert!(!d.counts(r, true, b"x", 162));
    }

    #[test]
    fn distinct_reporters_are_networks_or_accounts() {
        let rate = RateLimitConfig {
            v4_prefix: 24,
            v6_prefix: 56,
            ..RateLimitConfig::off()
        };
        let d = DistinctReporters::new(600, &rate).unwrap();
        let anon = |ip: &str| d.reporter(b"anonymous", Some(ip.parse().unwrap()));
        assert!(d.counts(anon("192.0.2.1"), false, b"x", 0));
        // Same /24 (and the same /24 through a dual-stack socket).
        assert!(!d.counts(anon("192.0.2.200"), false, b"x", 1));
        assert!(!d.counts(anon("::ffff:192.0.2.9"), false, b"x", 1));
        assert!(d.counts(anon("192.0.3.1"), false, b"x", 1));
        // IPv6: one /56.
        assert!(d.counts(anon("2001:db8:0:100::1"), false, b"x", 1));
        assert!(!d.counts(anon("2001:db8:0:1ff::2"), false, b"x", 1));
        assert!(d.counts(anon("2001:db8:0:200::1"), false, b"x", 1));
        // An account is one reporter wherever it sends from, and not the
        // network it sends from.
        let alice = |ip: &str| d.reporter(b"alice", Some(ip.parse().unwrap()));
        assert!(d.counts(alice("192.0.2.1"), false, b"x", 2));
        assert!(!d.counts(alice("198.51.100.1"), false, b"x", 3));
        assert!(d.counts(d.reporter(b"bob", None), false, b"x", 3));
    }

    /// `count` digests that land in the set of `first` (a digest of `r`).
    fn same_set(
        d: &DistinctReporters,
        r: Reporter<'_>,
        first: &[u8],
        count: usize,
    ) -> Vec<Vec<u8>> {
        let (_, shard, set) = d.locate(r, false, first);
        (0u32..)
            .map(|i| format!("d{i}").into_bytes())
            .filter(|k| {
                let (_, s2, set2) = d.locate(r, false, k);
                (s2, set2) == (shard, set)
            })
            .filter(|k| k != first)
            .take(count)
            .collect()
    }

    #[test]
    fn distinct_eviction_takes_expired_then_the_oldest() {
        let d = DistinctReporters::sized(100, &RateLimitConfig::off(), 1).unwrap();
        let r = d.reporter(b"alice", None);
        let others = same_set(&d, r, b"e", DISTINCT_WAYS + 1);
        // The set: `e` counted first, then seven others.
        assert!(d.counts(r, false, b"e", 0));
        for (t, k) in (1..).zip(&others[..DISTINCT_WAYS - 1]) {
            assert!(d.counts(r, false, k, t));
        }
        // All eight in their window: a new one evicts the oldest, `e`,
        // which may then count again early (the documented cost).
        assert!(d.counts(r, false, &others[DISTINCT_WAYS - 1], 50));
        assert!(
            !d.counts(r, false, &others[0], 50),
            "a newer entry was evicted"
        );
        assert!(d.counts(r, false, b"e", 51));
        // Once the old ones expire, a new one takes an expired entry and
        // the fresh ones stay.
        assert!(d.counts(r, false, &others[DISTINCT_WAYS], 130));
        assert!(!d.counts(r, false, b"e", 131));
        assert!(!d.counts(r, false, &others[DISTINCT_WAYS - 1], 131));
    }

    /// A flood of reports from random spoofed networks, each of a new
    /// digest, fills the fixed table and never grows it.
    #[test]
    fn distinct_table_stays_bounded_under_a_spoofed_flood() {
        let d = DistinctReporters::sized(3600, &RateLimitConfig::off(), 16).unwrap();
        let capacity = DISTINCT_SHARDS * 16 * DISTINCT_WAYS;
        let bytes = d.bytes();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for i in 0..(4 * capacity as u64) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let ip = IpAddr::from((x as u32).to_be_bytes());
            let r = d.reporter(b"anonymous", Some(ip));
            assert!(d.counts(r, i % 2 == 0, &x.to_le_bytes(), (i / 1000) as u32));
        }
        assert_eq!(d.bytes(), bytes);
        assert_eq!(d.len(), capacity);
    }

    /// Through a worker's `Processor`: every report is answered 200; one
    /// /24 counts once, another /24 once more; a digest named twice in one
    /// request counts once; repeats are counted in the metrics.
    #[test]
    fn a_worker_counts_each_reporter_once() {
        use std::sync::atomic::Ordering::Relaxed;
        use std::sync::Arc;

        use crate::worker::{Processor, Protection};

        let sh = anyone_may_do_everything();
        let protection = Protection {
            distinct: DistinctReporters::new(60, &RateLimitConfig::off()).map(Arc::new),
            ..Protection::default()
        };
        let mut p = Processor::with_protection(&sh, &protection);
        let req: &[u8] = b"Op: report\nOp-Digest: d\nOp-Digest: d\nThread: 7\nPV: 2.1\n\n";
        let peers = ["192.0.2.9:1", "192.0.2.10:2", "192.0.3.1:3", "192.0.2.9:1"];
        let mut replies = vec![Vec::new(); 4];
        let mut ready = [false; 4];
        p.process_batch(
            &sh,
            4,
            |i| (req, Some(peers[i].parse().unwrap())),
            &mut replies,
            None,
            &mut ready,
        );
        assert_eq!(ready, [true; 4]);
        for r in &replies {
            assert!(
                r.starts_with(b"Code: 200\n"),
                "{}",
                String::from_utf8_lossy(r)
            );
        }
        assert_eq!(sh.engine.get(b"d").unwrap().unwrap().r_count, 2);
        assert_eq!(sh.metrics.distinct_repeats.load(Relaxed), 6);
    }

    #[test]
    fn replay_guard_once_per_window_and_bounded() {
        let g = ReplayGuard::default();
        assert!(g.first_use(b"alice", b"s1", 0));
        assert!(!g.first_use(b"alice", b"s1", 1_000_000));
        assert!(g.first_use(b"bob", b"s1", 1_000_000));
        assert!(g.first_use(b"alice", b"s2", 1_000_000));
        // Forgotten once expired.
        assert!(g.first_use(b"alice", b"s1", REPLAY_TTL_US + 1));
        for i in 0..(REPLAY_CAPACITY + 100) {
            g.first_use(b"alice", i.to_string().as_bytes(), REPLAY_TTL_US + 2);
        }
        assert!(g.len() <= REPLAY_CAPACITY);
    }
}
