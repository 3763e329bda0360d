//! What the SQL engines (mysql, postgres) share: DSN handling, the
//! keyset-paginated scan, a batch run as one statement per kind
//! (`BatchPlan`), and bounded waits: their time limits (`Limits`), their
//! connection pool (`Pool`). Batches take their rows in digest order, so
//! the batches of several workers run side by side without deadlocking
//! each other.

use std::collections::{HashMap, HashSet};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use pyzor_protocol::Record;

use crate::backoff::Backoff;
use crate::{EngineOptions, Op, Result, StoreError};

/// How long an SQL engine waits for its database (docs/engines.md,
/// "Timeouts").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// `EngineTimeout`: each wait on the request path (connect, a free
    /// connection, this process's previous write, a lock, a statement).
    pub wait: Duration,
    /// The statement bound of bulk work (expiry, migration, scans).
    pub bulk: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits::of(&EngineOptions::new("", ""))
    }
}

impl Limits {
    pub fn of(o: &EngineOptions) -> Self {
        Limits {
            wait: o.engine_timeout.max(Duration::from_millis(1)),
            bulk: o.bulk_timeout().max(Duration::from_millis(1)),
        }
    }

    /// How long a database that says nothing at all is waited for when
    /// the statement may run for `statement`: twice as long, so that the
    /// database's own timeouts (a clean error, the session intact) always
    /// come first.
    pub(crate) fn silence(statement: Duration) -> Duration {
        statement.saturating_mul(2)
    }

    /// TCP keepalive: first probe after `wait` of silence, then one a
    /// second, three unanswered probes drop the connection.
    pub(crate) const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);
    pub(crate) const KEEPALIVE_RETRIES: u32 = 3;
}

/// The five fields `host,user,password,database,table`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SqlDsn {
    pub host: String,
    pub user: String,
    pub password: String,
    pub database: String,
    pub table: String,
}

/// Split `host,user,password,database,table` (the reference's MySQL form).
pub(crate) fn split_dsn(dsn: &str, engine: &str) -> Result<SqlDsn> {
    let f: Vec<&str> = dsn.split(',').collect();
    if f.len() != 5 {
        // not the DSN itself: it may hold a password
        return Err(StoreError::Config(format!(
            "{engine} DSN has {} comma-separated fields; it needs five: host,user,password,database,table",
            f.len()
        )));
    }
    check_table(f[4])?;
    Ok(SqlDsn {
        host: f[0].to_string(),
        user: f[1].to_string(),
        password: f[2].to_string(),
        database: f[3].to_string(),
        table: f[4].to_string(),
    })
}

/// Check a table name (optionally `database.table`) and return its parts:
/// it goes into SQL text, so only letters, digits, `_` and `$` pass.
pub(crate) fn check_table(t: &str) -> Result<Vec<&str>> {
    let parts: Vec<&str> = t.split('.').collect();
    let ok = parts.len() <= 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
        });
    if !ok {
        return Err(StoreError::Config(format!(
            "table name {t:?} must be letters, digits, _ or $ (optionally database.table)"
        )));
    }
    Ok(parts)
}

/// What an SQL engine's read answered for one key: the row's identity (the
/// stored digest, as the database returned it) and its record; `None` when
/// no row equals the key. Keys that differ only where the database's
/// collation does not look (case, trailing blanks on MySQL) have one row.
#[cfg_attr(not(feature = "mysql"), allow(dead_code))]
pub(crate) type Found = Option<(Vec<u8>, Record)>;

/// A batch of operations as an SQL engine runs it: one row per distinct
/// digest, with the batch's reports and whitelists of that digest added
/// together, so that a batch is one multi-row upsert and one multi-row read
/// whatever its size and however often it names a digest. The replies are
/// then assembled per operation ([`BatchPlan::assemble`]) as an engine that
/// runs the operations one after the other answers them (memory, lmdb):
/// each operation sees the operations before it in the batch and none
/// after it.
#[cfg_attr(not(feature = "mysql"), allow(dead_code))]
pub(crate) struct BatchPlan<'a> {
    /// The distinct keys, in order of first appearance.
    pub keys: Vec<&'a str>,
    /// Per key: the reports and whitelists to add.
    pub adds: Vec<(i64, i64)>,
    /// Per operation: its key, or why it failed before the database was asked.
    op_keys: Vec<std::result::Result<usize, &'static str>>,
}

#[cfg_attr(not(feature = "mysql"), allow(dead_code))]
impl<'a> BatchPlan<'a> {
    /// `key` gives an operation's key, or `Err` with the reason when the
    /// engine cannot send that digest at all (the operation fails alone,
    /// [`StoreError::BadKey`]).
    pub fn new(
        ops: &[Op<'a>],
        key: impl Fn(&'a [u8]) -> std::result::Result<&'a str, &'static str>,
    ) -> Self {
        let mut index: HashMap<&'a str, usize> = HashMap::with_capacity(ops.len());
        let mut plan = BatchPlan {
            keys: Vec::new(),
            adds: Vec::new(),
            op_keys: Vec::with_capacity(ops.len()),
        };
        for op in ops {
            let k = key(op.digest()).map(|k| {
                *index.entry(k).or_insert_with(|| {
                    plan.keys.push(k);
                    plan.adds.push((0, 0));
                    plan.keys.len() - 1
                })
            });
            if let Ok(k) = k {
                let a = &mut plan.adds[k];
                match op {
                    Op::Get(_) => {}
                    Op::Report(_) => a.0 = a.0.saturating_add(1),
                    Op::Whitelist(_) => a.1 = a.1.saturating_add(1),
                }
            }
            plan.op_keys.push(k);
        }
        plan
    }

    /// The keys the batch counts something for.
    pub fn write_keys(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.keys.len()).filter(|&k| self.adds[k] != (0, 0))
    }

    /// Whether some operation's reply needs a row as it was before the
    /// batch: an operation followed, later in the batch, by a count of a
    /// side (report, whitelist) it did not count itself, on a key that may
    /// be the same row. `class` tells which keys may share a row: keys whose
    /// classes are both `Some` share one only when the classes are equal;
    /// `None` may share a row with any key. Then the engine reads the rows
    /// before writing (one more statement); otherwise every reply follows
    /// from the rows after the batch.
    pub fn needs_before(&self, ops: &[Op<'_>], class: impl Fn(&str) -> Option<String>) -> bool {
        let classes: Vec<Option<String>> = self.keys.iter().map(|k| class(k)).collect();
        // per side (report, whitelist): the classes of the operations so far
        // that did not count that side, and whether one of them was `None`
        let mut seen: [HashSet<&str>; 2] = [HashSet::new(), HashSet::new()];
        let mut any = [false; 2];
        for (op, k) in ops.iter().zip(&self.op_keys) {
            let Ok(k) = *k else { continue };
            let c = classes[k].as_deref();
            let side = match op {
                Op::Get(_) => None,
                Op::Report(_) => Some(0),
                Op::Whitelist(_) => Some(1),
            };
            if let Some(s) = side {
                let earlier = match c {
                    None => !seen[s].is_empty(),
                    Some(c) => seen[s].contains(c),
                };
                if any[s] || earlier {
                    return true;
                }
            }
            for s in (0..2).filter(|&s| side != Some(s)) {
                match c {
                    None => any[s] = true,
                    Some(c) => {
                        seen[s].insert(c);
                    }
                }
            }
        }
        false
    }

    /// Push one reply per operation onto `out` and return the operations
    /// that failed. `after[k]` is key `k`'s row after the batch's writes,
    /// `before[k]` (if read) its row before them, and `refused[k]` says why
    /// the database refused key `k`'s write (its counts then failed and
    /// wrote nothing). Per operation, on the row its key found:
    /// * no count of the row before it in the batch, none after: the row
    ///   after the batch (it is the row before, too);
    /// * none before it, some after: the row before the batch;
    /// * otherwise the row after the batch less the counts that come after
    ///   the operation, with the dates of a side counted only after it
    ///   taken from the row before the batch.
    pub fn assemble(
        &self,
        ops: &[Op<'_>],
        before: Option<&[Option<Record>]>,
        after: &[Found],
        refused: &[Option<String>],
        out: &mut Vec<Option<Record>>,
    ) -> Vec<(usize, StoreError)> {
        let mut rows: HashMap<&[u8], usize> = HashMap::with_capacity(after.len());
        let row_of: Vec<Option<usize>> = after
            .iter()
            .map(|f| {
                let n = rows.len();
                f.as_ref()
                    .map(|(id, _)| *rows.entry(id.as_slice()).or_insert(n))
            })
            .collect();
        let counted = |k: usize, op: &Op<'_>| match op {
            Op::Get(_) => (0, 0),
            _ if refused[k].is_some() => (0, 0),
            Op::Report(_) => (1, 0),
            Op::Whitelist(_) => (0, 1),
        };
        let mut total = vec![(0i64, 0i64); rows.len()];
        for (op, k) in ops.iter().zip(&self.op_keys) {
            if let Ok(k) = *k {
                let Some(row) = row_of[k] else { continue };
                let (r, w) = counted(k, op);
                total[row].0 += r;
                total[row].1 += w;
            }
        }
        let mut done = vec![(0i64, 0i64); rows.len()];
        let mut failed = Vec::new();
        for (i, (op, k)) in ops.iter().zip(&self.op_keys).enumerate() {
            let k = match *k {
                Err(why) => {
                    failed.push((i, StoreError::BadKey(why.into())));
                    out.push(None);
                    continue;
                }
                Ok(k) => k,
            };
            if let (true, Some(why)) = (op.is_write(), &refused[k]) {
                failed.push((i, StoreError::BadKey(why.clone())));
                out.push(None);
                continue;
            }
            let (Some(row), Some((_, now))) = (row_of[k], &after[k]) else {
                out.push(None);
                continue;
            };
            let (r, w) = counted(k, op);
            let d = &mut done[row];
            d.0 += r;
            d.1 += w;
            let later = (total[row].0 - d.0, total[row].1 - d.1);
            let was = before.map(|b| b[k]);
            out.push(match (*d, was) {
                ((0, 0), _) if later == (0, 0) => Some(*now),
                ((0, 0), Some(was)) => was,
                (d, was) => {
                    let mut x = *now;
                    x.r_count = x.r_count.saturating_sub(later.0);
                    x.wl_count = x.wl_count.saturating_sub(later.1);
                    if let Some(was) = was {
                        let was = was.unwrap_or_default();
                        if d.0 == 0 && later.0 > 0 {
                            (x.r_entered, x.r_updated) = (was.r_entered, was.r_updated);
                        }
                        if d.1 == 0 && later.1 > 0 {
                            (x.wl_entered, x.wl_updated) = (was.wl_entered, was.wl_updated);
                        }
                    }
                    Some(x)
                }
            });
        }
        failed
    }
}

/// One item of a scan.
pub(crate) type ScanItem = Result<(Vec<u8>, Record)>;

/// A source of keyset pages (rows after the last key seen, in key order).
pub(crate) trait KeysetPages {
    /// The next page, and whether another may follow (a short page is the
    /// last).
    fn next_page(&mut self) -> Result<(Vec<ScanItem>, bool)>;
}

/// Turns pages into a record stream: constant memory, and an error ends the
/// stream after it is handed out.
pub(crate) struct Paged<S> {
    source: S,
    buf: std::vec::IntoIter<ScanItem>,
    done: bool,
}

impl<S> Paged<S> {
    pub fn new(source: S) -> Self {
        Paged {
            source,
            buf: Vec::new().into_iter(),
            done: false,
        }
    }
}

impl<S: KeysetPages> Iterator for Paged<S> {
    type Item = ScanItem;
    fn next(&mut self) -> Option<ScanItem> {
        loop {
            if let Some(x) = self.buf.next() {
                return Some(x);
            }
            if self.done {
                return None;
            }
            match self.source.next_page() {
                Ok((page, more)) => {
                    self.buf = page.into_iter();
                    self.done = !more;
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Run `attempt` (one transaction) again, a few times, when it failed on a
/// lock conflict with another process (deadlock, serialization failure):
/// an aborted transaction committed nothing, so running it again is safe.
/// `attempt` sets the flag it is given when its error was such a conflict.
/// No attempt starts after `limit` has passed (a lock *timeout* is not a
/// conflict: it has waited its time already).
pub(crate) fn retry_lock_conflicts<T>(
    engine: &str,
    limit: Duration,
    mut attempt: impl FnMut(&std::cell::Cell<bool>) -> Result<T>,
) -> Result<T> {
    const ATTEMPTS: u32 = 8;
    let start = Instant::now();
    let mut n = 1;
    loop {
        let conflict = std::cell::Cell::new(false);
        let r = attempt(&conflict);
        if r.is_err() && conflict.get() && n < ATTEMPTS && start.elapsed() < limit {
            log::debug!("{engine}: transaction aborted by a lock conflict; retrying ({n})");
            n += 1;
            continue;
        }
        return r;
    }
}

/// A database session the [`Pool`] keeps.
pub(crate) trait Session: Send {
    /// Whether a session idle for `idle` can still be used: a cheap round
    /// trip (bounded by the session's own timeouts) when it has been idle
    /// for a while, so that a session the server dropped (restart,
    /// `wait_timeout`) is replaced before a request fails on it.
    fn alive(&mut self, idle: Duration) -> bool;
}

/// Idle time after which [`Session::alive`] checks with the server.
pub(crate) const CHECK_AFTER_IDLE: Duration = Duration::from_secs(1);

/// Whether a session that returned `r` is in order: after a refused
/// digest or an undecodable row it is (the engine rolled back).
fn keeps<T>(r: &Result<T>) -> bool {
    matches!(
        r,
        Ok(_) | Err(StoreError::BadKey(_) | StoreError::Corrupt { .. })
    )
}

/// A configuration error met after the start, as the client sees it.
pub(crate) fn unavailable(e: StoreError) -> StoreError {
    match e {
        StoreError::Config(m) => StoreError::Unavailable(format!("bad engine configuration: {m}")),
        e => e,
    }
}

struct Slots<C> {
    idle: Vec<(C, Instant)>,
    live: usize,
}

/// A bounded pool of sessions: at most `max`, each handed to one caller at
/// a time; a caller waits at most [`Limits::wait`] for one. A session
/// that failed in any way other than a refused digest or an undecodable
/// row is discarded, never reused: after a timeout or a broken connection
/// its protocol state is unknown (late answers would be read as the
/// answers to later queries).
pub(crate) struct Pool<C> {
    what: &'static str,
    max: usize,
    wait: Duration,
    connect: Box<dyn Fn() -> Result<C> + Send + Sync>,
    slots: Mutex<Slots<C>>,
    freed: Condvar,
    backoff: Backoff,
}

impl<C: Session> Pool<C> {
    pub(crate) fn new(
        what: &'static str,
        max: usize,
        wait: Duration,
        connect: impl Fn() -> Result<C> + Send + Sync + 'static,
    ) -> Self {
        Pool {
            what,
            max: max.max(1),
            wait,
            connect: Box::new(connect),
            slots: Mutex::new(Slots {
                idle: Vec::new(),
                live: 0,
            }),
            freed: Condvar::new(),
            backoff: Backoff::new(what),
        }
    }

    fn slots(&self) -> MutexGuard<'_, Slots<C>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Connect now and run `f` (when the engine opens): errors come back
    /// as they are, so that a wrong password, a missing database or
    /// missing grants fail the start as a configuration error.
    pub(crate) fn first<T>(&self, f: impl FnOnce(&mut C) -> Result<T>) -> Result<T> {
        self.slots().live += 1;
        let mut c = match (self.connect)() {
            Ok(c) => c,
            Err(e) => {
                self.release(None);
                return Err(e);
            }
        };
        let r = f(&mut c);
        self.release(keeps(&r).then_some(c));
        r
    }

    /// Run `f` on a session. Waits at most [`Limits::wait`] for a free
    /// one; connection failures are backed off (see `backoff`). Every
    /// failure but a refused digest or an undecodable row is logged here,
    /// since the server's answer (500 "Database temporarily unavailable.")
    /// does not carry its cause; after the start a refused login or a
    /// missing grant is still the operator's to fix (the log says so), but
    /// to the client it is the database being unavailable, as for the
    /// reference.
    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut C) -> Result<T>) -> Result<T> {
        let mut c = match self.take()? {
            Some(c) => c,
            None => match self
                .backoff
                .attempt(|| (self.connect)().map_err(unavailable))
            {
                Ok(c) => c,
                Err(e) => {
                    self.release(None);
                    return Err(e);
                }
            },
        };
        let r = f(&mut c);
        self.release(keeps(&r).then_some(c));
        let r = r.map_err(unavailable);
        if let Err(StoreError::Unavailable(m)) = &r {
            log::error!("{m}");
        }
        r
    }

    /// A free session, or `None` with a slot reserved for a new one.
    fn take(&self) -> Result<Option<C>> {
        let deadline = Instant::now() + self.wait;
        let (mut c, since) = {
            let mut s = self.slots();
            loop {
                if let Some(x) = s.idle.pop() {
                    break x;
                }
                if s.live < self.max {
                    s.live += 1;
                    return Ok(None);
                }
                let now = Instant::now();
                if now >= deadline {
                    return Err(StoreError::Unavailable(format!(
                        "all {} {} connections stayed busy for {:?}",
                        self.max, self.what, self.wait
                    )));
                }
                s = self
                    .freed
                    .wait_timeout(s, deadline - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        };
        if c.alive(since.elapsed()) {
            Ok(Some(c))
        } else {
            // its slot goes to a new session
            Ok(None)
        }
    }

    fn release(&self, c: Option<C>) {
        let mut s = self.slots();
        match c {
            Some(c) => s.idle.push((c, Instant::now())),
            None => s.live -= 1,
        }
        drop(s);
        self.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    struct Fake {
        id: usize,
        ok: bool,
    }

    impl Session for Fake {
        fn alive(&mut self, _idle: Duration) -> bool {
            self.ok
        }
    }

    fn pool(made: Arc<AtomicUsize>) -> Pool<Fake> {
        Pool::new("Fake", 2, Duration::from_millis(200), move || {
            Ok(Fake {
                id: made.fetch_add(1, Ordering::SeqCst),
                ok: true,
            })
        })
    }

    #[test]
    fn a_session_that_failed_is_never_reused() {
        let made = Arc::new(AtomicUsize::new(0));
        let p = pool(made.clone());
        assert_eq!(p.with(|c| Ok(c.id)).unwrap(), 0);
        assert_eq!(p.with(|c| Ok(c.id)).unwrap(), 0, "a good session is reused");
        let r: Result<()> = p.with(|_| Err(StoreError::Unavailable("timed out".into())));
        assert!(r.is_err());
        assert_eq!(
            p.with(|c| Ok(c.id)).unwrap(),
            1,
            "the failed one was dropped"
        );
        // a refused digest leaves the session in order
        let r: Result<()> = p.with(|_| Err(StoreError::BadKey("long".into())));
        assert!(r.is_err());
        assert_eq!(p.with(|c| Ok(c.id)).unwrap(), 1);
        // a session found dead when taken is replaced
        p.with(|c| {
            c.ok = false;
            Ok(())
        })
        .unwrap();
        assert_eq!(p.with(|c| Ok(c.id)).unwrap(), 2);
        assert_eq!(p.slots().live, 1);
    }

    #[test]
    fn waits_for_a_session_are_bounded() {
        let p = pool(Arc::new(AtomicUsize::new(0)));
        let r: Result<()> = p.with(|_| {
            p.with(|_| {
                let t = Instant::now();
                let r = p.with(|_| Ok(()));
                assert!(t.elapsed() >= Duration::from_millis(200));
                assert!(
                    matches!(r, Err(StoreError::Unavailable(ref m)) if m.contains("busy")),
                    "{r:?}"
                );
                Ok(())
            })
        });
        r.unwrap();
        assert_eq!(p.slots().live, 2);
    }

    #[test]
    fn a_refused_login_after_the_start_is_unavailable_and_says_why() {
        let p: Pool<Fake> = Pool::new("Fake", 1, Duration::from_millis(50), || {
            Err(StoreError::Config("access denied".into()))
        });
        assert!(matches!(p.first(|_| Ok(())), Err(StoreError::Config(_))));
        let r = p.with(|_| Ok(()));
        assert!(
            matches!(r, Err(StoreError::Unavailable(ref m)) if m.contains("configuration") && m.contains("access denied")),
            "{r:?}"
        );
        assert_eq!(p.slots().live, 0);
    }

    fn ascii_class(k: &str) -> Option<String> {
        k.bytes()
            .all(|b| b.is_ascii_alphanumeric())
            .then(|| k.to_ascii_lowercase())
    }

    fn op_key(d: &[u8]) -> std::result::Result<&str, &'static str> {
        std::str::from_utf8(d).map_err(|_| "not UTF-8")
    }

    #[test]
    fn a_batch_reads_rows_before_writing_only_when_a_reply_needs_them() {
        let needs = |ops: &[Op<'_>]| BatchPlan::new(ops, op_key).needs_before(ops, ascii_class);
        // reports only, reads only, reads after the counts: the rows after
        // the batch tell every reply
        assert!(!needs(&[
            Op::Report(b"a"),
            Op::Report(b"b"),
            Op::Report(b"a")
        ]));
        assert!(!needs(&[Op::Get(b"a"), Op::Get(b"A")]));
        assert!(!needs(&[Op::Report(b"a"), Op::Get(b"a"), Op::Get(b"b")]));
        assert!(!needs(&[Op::Get(b"x"), Op::Report(b"y")]));
        // a read, or a count of the other side, before a count of one row
        assert!(needs(&[Op::Get(b"a"), Op::Report(b"a")]));
        assert!(
            needs(&[Op::Get(b"A"), Op::Report(b"a")]),
            "one row by collation"
        );
        assert!(needs(&[Op::Report(b"a"), Op::Whitelist(b"a")]));
        // keys that may be any row
        assert!(needs(&[Op::Get(b"a b"), Op::Report(b"x")]));
        assert!(needs(&[Op::Get(b"x"), Op::Whitelist(b"a b")]));
        // not UTF-8: fails alone, needs nothing
        assert!(!needs(&[Op::Get(b"\xff"), Op::Report(b"\xff")]));
    }

    #[test]
    fn replies_follow_the_batch_order_on_rows_the_database_merged() {
        // "abc" and "ABC" are one row for the database (case-insensitive
        // collation): its reports of both count on that row, and each
        // reply sees the counts before it in the batch
        let t = |s: i64| Some(pyzor_protocol::Timestamp::from_secs(s));
        let ops = [
            Op::Report(b"abc"),
            Op::Get(b"ABC"),
            Op::Report(b"ABC"),
            Op::Get(b"abc"),
            Op::Whitelist(b"nope\xff"),
            Op::Get(b"other"),
            Op::Report(b"long"),
        ];
        let plan = BatchPlan::new(&ops, op_key);
        assert_eq!(plan.keys, ["abc", "ABC", "other", "long"]);
        assert_eq!(plan.adds, [(1, 0), (1, 0), (0, 0), (1, 0)]);
        let was = Record {
            r_count: 5,
            r_entered: t(10),
            r_updated: t(20),
            ..Record::default()
        };
        let now = Record {
            r_count: 7,
            r_updated: t(99),
            ..was
        };
        let row = |r: Record| Some((b"abc".to_vec(), r));
        let after = [row(now), row(now), None, None];
        let before = [Some(was), Some(was), None, None];
        let refused = [None, None, None, Some("too long".to_string())];
        let mut out = vec![None];
        let failed = plan.assemble(&ops, Some(&before), &after, &refused, &mut out);
        let once = Record { r_count: 6, ..now };
        assert_eq!(
            out,
            [
                None,
                Some(once),
                Some(once),
                Some(now),
                Some(now),
                None,
                None,
                None
            ]
        );
        let failed: Vec<usize> = failed.iter().map(|(i, _)| *i).collect();
        assert_eq!(failed, [4, 6]);
    }
}
