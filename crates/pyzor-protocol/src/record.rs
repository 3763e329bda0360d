//! The record every engine stores for a digest: the reference's model
//! (`r_count`, `wl_count` and four timestamps, each possibly never set).

/// A point in time, in microseconds since the Unix epoch (UTC).
///
/// Microseconds because the reference's GDBM format keeps them; engines that
/// store whole seconds (Redis, MySQL) truncate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// A wall-clock reading (the caller reads the clock: this crate never
    /// does). Times before the epoch become 0.
    pub fn from_system_time(t: std::time::SystemTime) -> Self {
        let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Timestamp(d.as_micros() as i64)
    }
    /// From whole seconds since the epoch.
    pub const fn from_secs(secs: i64) -> Self {
        Timestamp(secs.saturating_mul(1_000_000))
    }
    /// Whole seconds since the epoch, rounded towards minus infinity.
    pub const fn secs(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }
    /// The sub-second part in microseconds (0..1_000_000).
    pub const fn subsec_micros(self) -> u32 {
        self.0.rem_euclid(1_000_000) as u32
    }
}

/// The largest count the reference stores (`sys.maxsize` on 64-bit CPython);
/// increments saturate there.
pub const MAX_COUNT: i64 = i64::MAX;

/// The expiry cutoff at `now` for `CleanupAge` seconds: records whose last
/// update is before it go ([`Record::expired`]). `None` when the age is 0 or
/// less (expiry disabled), as the reference's `cleanup_age` check.
pub fn expiry_cutoff(now: Timestamp, cleanup_age_secs: i64) -> Option<Timestamp> {
    (cleanup_age_secs > 0).then(|| {
        Timestamp(
            now.0
                .saturating_sub(cleanup_age_secs.saturating_mul(1_000_000)),
        )
    })
}

/// What Pyzor knows about one digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Record {
    pub r_count: i64,
    pub wl_count: i64,
    pub r_entered: Option<Timestamp>,
    pub r_updated: Option<Timestamp>,
    pub wl_entered: Option<Timestamp>,
    pub wl_updated: Option<Timestamp>,
}

impl Record {
    /// Count one spam report at `now` (the reference's `r_increment`).
    pub fn report(&mut self, now: Timestamp) {
        self.r_count = self.r_count.saturating_add(1);
        if self.r_entered.is_none() {
            self.r_entered = Some(now);
        }
        self.r_updated = Some(now);
    }

    /// Count one whitelist request at `now` (the reference's `wl_increment`).
    pub fn whitelist(&mut self, now: Timestamp) {
        self.wl_count = self.wl_count.saturating_add(1);
        if self.wl_entered.is_none() {
            self.wl_entered = Some(now);
        }
        self.wl_updated = Some(now);
    }

    /// The last time either count changed: the one expiry rule every engine
    /// applies (CleanupAge is measured from this). A record with no update
    /// time at all (a legacy or hand-made record) has none and never expires.
    pub fn last_update(&self) -> Option<Timestamp> {
        match (self.r_updated, self.wl_updated) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether CleanupAge expiry removes this record at `cutoff`
    /// (records last updated strictly before `cutoff` go).
    pub fn expired(&self, cutoff: Timestamp) -> bool {
        matches!(self.last_update(), Some(t) if t < cutoff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_sets_entered_once_and_updated_each_time() {
        let mut r = Record::default();
        r.report(Timestamp::from_secs(10));
        r.report(Timestamp::from_secs(20));
        assert_eq!(r.r_count, 2);
        assert_eq!(r.r_entered, Some(Timestamp::from_secs(10)));
        assert_eq!(r.r_updated, Some(Timestamp::from_secs(20)));
        assert_eq!(r.wl_count, 0);
        assert_eq!(r.wl_entered, None);
    }

    #[test]
    fn counts_saturate_at_sys_maxsize() {
        let mut r = Record {
            r_count: MAX_COUNT,
            ..Record::default()
        };
        r.report(Timestamp::from_secs(1));
        assert_eq!(r.r_count, MAX_COUNT);
    }

    #[test]
    fn expiry_uses_last_update_of_either_side() {
        let mut r = Record::default();
        r.whitelist(Timestamp::from_secs(100));
        assert!(r.expired(Timestamp::from_secs(101)));
        assert!(!r.expired(Timestamp::from_secs(100)));
        r.report(Timestamp::from_secs(50));
        assert_eq!(r.last_update(), Some(Timestamp::from_secs(100)));
        assert!(!Record::default().expired(Timestamp::from_secs(i64::MAX / 2_000_000)));
    }

    #[test]
    fn timestamp_parts() {
        let t = Timestamp(-1);
        assert_eq!(t.secs(), -1);
        assert_eq!(t.subsec_micros(), 999_999);
    }
}
