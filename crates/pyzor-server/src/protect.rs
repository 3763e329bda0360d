//! Being safe on the internet (docs/security.md): per-network rate limits
//! ([`RateLimiter`], one per worker) and the refusal of replayed signed
//! writes ([`ReplayGuard`], one for all workers).
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
/// at most one small reply per `SLIP` datagrams back.
pub(crate) const SLIP: u32 = 2;

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
    /// `answer` (the slip), else not answered at all.
    Limited { answer: bool },
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
        let rate = f64::from(rate);
        let elapsed = now.saturating_sub(self.at) as f64 / 1e6;
        self.tokens = (self.tokens + elapsed * rate).min(rate);
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
}

/// A network: masked address and family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Net {
    v6: bool,
    net: u128,
}

/// `ip` masked to `len` leading bits (IPv4-mapped IPv6 addresses are IPv4).
fn network(ip: IpAddr, v4_len: u8, v6_len: u8) -> Net {
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
            hasher: RandomState::new(),
            slots: vec![Slot::default(); SETS * WAYS].into_boxed_slice(),
        })
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
        let (read, write_rate, log_only) = (self.read, self.write, self.log_only);
        let slot = self.slot(net, now);
        slot.seen = now;
        let ok = if write {
            slot.write.take(write_rate, now)
        } else {
            slot.read.take(read, now)
        };
        if ok {
            return Verdict::Allow;
        }
        if log_only {
            return Verdict::Logged;
        }
        slot.limited = slot.limited.wrapping_add(1);
        Verdict::Limited {
            answer: slot.limited % SLIP == 0,
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
                ways[i] = Slot {
                    used: true,
                    v6: net.v6,
                    net: net.net,
                    seen: now,
                    read: Bucket::full(self.read, now),
                    write: Bucket::full(self.write, now),
                    limited: 0,
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
            .filter(|v| **v == Verdict::Limited { answer: true })
            .count();
        assert_eq!(answered, 3, "{answers:?}");
        // Same /56, other /64: the same network.
        let b: IpAddr = "2001:db8:1:ff::9".parse().unwrap();
        assert!(matches!(l.check(b, false, 0), Verdict::Limited { .. }));
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

    /// Through a worker's `Processor`: the burst is answered, then every
    /// second limited request gets the short 503, the others an empty
    /// reply that the worker loop does not send.
    #[test]
    fn a_worker_drops_and_slips_limited_requests() {
        use std::sync::atomic::Ordering::Relaxed;
        use std::sync::Arc;

        use pyzor_protocol::auth::{parse_access, Accounts};
        use pyzor_store::memory::MemoryEngine;

        use crate::rules::Rules;
        use crate::worker::{Processor, Protection, Shared};

        let accounts = Accounts::default();
        let (acl, _) = parse_access("all : anonymous : allow\n", &accounts);
        let sh = Shared::standalone(Arc::new(MemoryEngine::new()), Rules { accounts, acl });
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
