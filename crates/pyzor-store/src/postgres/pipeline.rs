//! The read connection every read-only batch shares, its statements
//! pipelined (docs/engines.md, "PostgreSQL").
//!
//! A batch of checks and infos is one `SELECT … WHERE digest = ANY($1)`.
//! On a pooled session the server's read threads each wait for their own
//! round trip, and between one answer and the next statement PostgreSQL
//! sits idle: the answer is decoded, the next thread wakes and builds its
//! statement, the statement crosses the socket. Here all read threads send
//! on one connection: a statement sent while another runs waits in the
//! connection's socket and PostgreSQL runs it as soon as the one before
//! ends (tokio-postgres answers requests in the order they were sent). One
//! backend does all reads one after the other, as it would with turns,
//! without the gaps between them.
//!
//! The connection is made on first use and dropped after any failure (its
//! protocol state is unknown after a timeout; a late answer would be read
//! as the answer to a later statement), as the [`Pool`](crate::sql::Pool)
//! does with its sessions; the next read makes a new one, backed off like
//! the pool's connections. A connection idle for a while is checked with a
//! round trip before it is used again. Every wait is bounded: a statement
//! by the session's `statement_timeout` and by the client's deadline, the
//! login by the pool's.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio_postgres::{Row, Statement};

use super::PgConn;
use crate::backoff::Backoff;
use crate::sql::unavailable;
use crate::{Result, StoreError};

/// A session that several threads use at once: each sends its statement
/// and waits for its own answer, and the connection is driven meanwhile by
/// whichever of them holds the session's runtime (a current-thread tokio
/// runtime lets several threads `block_on` it: one drives, the others
/// sleep until their answer has come or the runtime is free). So a
/// statement sent while another runs goes out at once, and no thread is
/// added between the callers and the socket (a thread of its own driving
/// the connection cost a wake-up per statement and was slower).
pub(super) struct Pipelined {
    conn: PgConn,
    read: Statement,
}

impl Pipelined {
    /// `conn` with `read` prepared, planned once.
    ///
    /// The pooled sessions plan every statement for its parameters
    /// (`force_custom_plan`, see `session_maker`), so that a plan made
    /// while the table was small never stays. For the read alone there is
    /// one right plan whatever the table's size: the primary key's index,
    /// one probe per digest (at most a few hundred per batch). So this
    /// session forbids sequential scans and plans the read once
    /// (`force_generic_plan`): planning each read cost PostgreSQL about a
    /// fifth of its CPU per check (6.4 against 5.2 µs; bench/RESULTS-sql.md,
    /// "Pipelined reads").
    pub(super) fn start(conn: PgConn, read: &str) -> Result<Pipelined> {
        conn.run(
            "session setup",
            None,
            conn.client.batch_execute(
                "SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off",
            ),
        )?;
        let read = conn.run("prepare", None, conn.client.prepare(read))?;
        Ok(Pipelined { conn, read })
    }

    fn query(&self, all: &[&[u8]]) -> Result<Vec<Row>> {
        let c = &self.conn;
        c.run("query", None, c.client.query(&self.read, &[&all]))
    }

    fn alive(&self, idle: Duration) -> bool {
        self.conn.answers(idle)
    }
}

/// The shared read connection: made on first use, replaced after a failure.
pub(super) struct ReadLine {
    /// The connection and when a statement last ended on it.
    slot: Mutex<Option<(Arc<Pipelined>, Instant)>>,
    connect: Box<dyn Fn() -> Result<Pipelined> + Send + Sync>,
    backoff: Backoff,
}

impl ReadLine {
    pub(super) fn new(connect: impl Fn() -> Result<Pipelined> + Send + Sync + 'static) -> Self {
        ReadLine {
            slot: Mutex::new(None),
            connect: Box::new(connect),
            backoff: Backoff::new("PostgreSQL"),
        }
    }

    fn slot(&self) -> MutexGuard<'_, Option<(Arc<Pipelined>, Instant)>> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The rows of the records of `all`, read on the shared connection. A
    /// failed read is logged here, as the pool does (the client's 500 does
    /// not carry its cause); a failed connection attempt is logged by the
    /// backoff.
    pub(super) fn read(&self, all: &[&[u8]]) -> Result<Vec<Row>> {
        let conn = self.current()?;
        let r = conn.query(all);
        let mut slot = self.slot();
        let same = matches!(&*slot, Some((c, _)) if Arc::ptr_eq(c, &conn));
        match (&r, same) {
            (Ok(_), true) => *slot = Some((conn, Instant::now())),
            // never reused after a failure (module doc)
            (Err(_), true) => *slot = None,
            _ => {}
        }
        drop(slot);
        let r = r.map_err(unavailable);
        if let Err(StoreError::Unavailable(m)) = &r {
            log::error!("{m}");
        }
        r
    }

    /// The connection, made (or checked after a while idle) under the
    /// lock: the other read threads wait for it, bounded by the login
    /// timeout, rather than each making one.
    fn current(&self) -> Result<Arc<Pipelined>> {
        let mut slot = self.slot();
        if let Some((c, last)) = &*slot {
            if c.alive(last.elapsed()) {
                return Ok(Arc::clone(c));
            }
            *slot = None;
        }
        let c = Arc::new(
            self.backoff
                .attempt(|| (self.connect)().map_err(unavailable))?,
        );
        *slot = Some((Arc::clone(&c), Instant::now()));
        Ok(c)
    }
}
