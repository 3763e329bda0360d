//! What the SQL engines (mysql, postgres) share: DSN handling, the
//! keyset-paginated scan, and bounded waits: their time limits
//! (`Limits`), their connection pool (`Pool`) and their one write
//! transaction at a time (`WriteTurn`).

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use pyzor_protocol::Record;

use crate::backoff::Backoff;
use crate::{EngineOptions, Result, StoreError};

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
fn unavailable(e: StoreError) -> StoreError {
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

/// One write transaction at a time in this process: batches of different
/// workers touching the same rows in different orders would otherwise
/// deadlock each other in the database. Waiting for the turn is bounded
/// too: behind a write that is stuck on a lock, the others fail after
/// [`Limits::wait`] instead of queueing for its whole time each.
pub(crate) struct WriteTurn {
    busy: Mutex<bool>,
    done: Condvar,
}

pub(crate) struct Turn<'a>(&'a WriteTurn);

impl WriteTurn {
    pub(crate) fn new() -> Self {
        WriteTurn {
            busy: Mutex::new(false),
            done: Condvar::new(),
        }
    }

    pub(crate) fn take(&self, wait: Duration, what: &str) -> Result<Turn<'_>> {
        let deadline = Instant::now() + wait;
        let mut busy = self.busy.lock().unwrap_or_else(PoisonError::into_inner);
        while *busy {
            let now = Instant::now();
            if now >= deadline {
                return Err(StoreError::Unavailable(format!(
                    "{what}: the previous write transaction of this process has been waiting for the database for over {wait:?}"
                )));
            }
            busy = self
                .done
                .wait_timeout(busy, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        *busy = true;
        Ok(Turn(self))
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        *self.0.busy.lock().unwrap_or_else(PoisonError::into_inner) = false;
        self.0.done.notify_one();
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
        let t = WriteTurn::new();
        let held = t.take(Duration::from_millis(10), "X").unwrap();
        assert!(t.take(Duration::from_millis(100), "X").is_err());
        drop(held);
        assert!(t.take(Duration::from_millis(10), "X").is_ok());
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
}
