//! Per-network rate limits of the HTTP listener, with the UDP side's
//! limiter ([`crate::protect::RateLimiter`]: a fixed table of token
//! buckets per client network, same prefixes, allow list and log mode as
//! `RateLimit…`). Two limiters, each behind its own lock (the listener's
//! handlers run on [`super::BLOCKING_THREADS`] threads): lookups (API
//! calls and page lookups, `HttpRateLimit` per second) and filed
//! whitelist requests (`WhitelistRequestRateLimit` per **minute**: that
//! limiter is handed a clock that runs 60 times slower, so its
//! "per second" is per minute). A limited request is answered 429 (a TCP
//! peer cannot be spoofed, so there is no reason to stay silent).

use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use pyzor_config::RateLimitConfig;

use super::Answer;
use crate::metrics::Metrics;
use crate::protect::{RateLimiter, Verdict};

/// The listener's limiters.
pub(crate) struct Guard {
    lookups: Option<Mutex<RateLimiter>>,
    filings: Option<Mutex<RateLimiter>>,
    start: Instant,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("lookups", &self.lookups.is_some())
            .field("filings", &self.filings.is_some())
            .finish()
    }
}

/// One limiter: `rate` per time unit, with `base`'s networks.
fn limiter(base: &RateLimitConfig, rate: u32) -> Option<Mutex<RateLimiter>> {
    let cfg = RateLimitConfig {
        read: rate,
        write: 0,
        ..base.clone()
    };
    RateLimiter::new(&cfg).map(Mutex::new)
}

impl Guard {
    /// Lookups at `lookups` per second, filings at `filings` per minute
    /// (0: unlimited), networks as in `base` (`RateLimit…` keys).
    pub(crate) fn new(base: &RateLimitConfig, lookups: u32, filings: u32) -> Self {
        Guard {
            lookups: limiter(base, lookups),
            filings: limiter(base, filings),
            start: Instant::now(),
        }
    }

    /// Whether `peer` may make one more lookup (else the 429 answer).
    pub(crate) fn lookup(&self, peer: IpAddr, metrics: &Metrics) -> Result<(), Answer> {
        let now = self.micros();
        Self::check(self.lookups.as_ref(), peer, now, metrics, 1)
    }

    /// Whether `peer` may file one more whitelist request.
    pub(crate) fn filing(&self, peer: IpAddr, metrics: &Metrics) -> Result<(), Answer> {
        // A clock 60 times slower: the limiter's rate per second becomes
        // a rate per minute.
        let now = self.micros() / 60;
        Self::check(self.filings.as_ref(), peer, now, metrics, 60)
    }

    fn micros(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn check(
        limiter: Option<&Mutex<RateLimiter>>,
        peer: IpAddr,
        now: u64,
        metrics: &Metrics,
        retry_after: u32,
    ) -> Result<(), Answer> {
        let Some(l) = limiter else { return Ok(()) };
        let verdict = l
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .check(peer, false, now);
        match verdict {
            Verdict::Allow | Verdict::Listed => Ok(()),
            Verdict::Logged => {
                metrics.http_rate_limited.fetch_add(1, Relaxed);
                Ok(())
            }
            Verdict::Limited { .. } => {
                metrics.http_rate_limited.fetch_add(1, Relaxed);
                Err(Answer::plain(
                    429,
                    "Too Many Requests: this network's rate limit is exceeded; try again later",
                )
                .with_header("retry-after", retry_after.to_string()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_and_filings_have_their_own_budgets() {
        let m = Metrics::default();
        let g = Guard::new(&RateLimitConfig::off(), 3, 1);
        let a: IpAddr = "192.0.2.7".parse().unwrap();
        assert!(g.filing(a, &m).is_ok());
        assert_eq!(g.filing(a, &m).unwrap_err().status, 429);
        for _ in 0..3 {
            assert!(g.lookup(a, &m).is_ok());
        }
        let e = g.lookup(a, &m).unwrap_err();
        assert_eq!(e.status, 429);
        assert!(e.headers.contains(&("retry-after", "1".into())));
        // Another network has its own buckets.
        assert!(g.lookup("198.51.100.1".parse().unwrap(), &m).is_ok());
        assert_eq!(m.http_rate_limited.load(Relaxed), 2);
        // 0: unlimited.
        let g = Guard::new(&RateLimitConfig::off(), 0, 0);
        for _ in 0..100 {
            assert!(g.lookup(a, &m).is_ok() && g.filing(a, &m).is_ok());
        }
    }

    #[test]
    fn the_allow_list_is_the_udp_sides() {
        let m = Metrics::default();
        let base = RateLimitConfig {
            allow: vec![("127.0.0.0".parse().unwrap(), 8)],
            ..RateLimitConfig::off()
        };
        let g = Guard::new(&base, 1, 1);
        for _ in 0..10 {
            assert!(g.lookup("127.0.0.1".parse().unwrap(), &m).is_ok());
        }
    }
}
