//! Connections: single Redis, Sentinel (the current master on every new
//! connection, every wait bounded) and Cluster; the pool of idle
//! connections with backoff; the nodes that hold keys; pipelines and what
//! became of each of their commands.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::{
    Client, ConnectionAddr, ConnectionInfo, ConnectionLike, IntoConnectionInfo, RedisConnectionInfo,
};

use super::cluster::ClusterConn;
use super::dsn::{ConnectionAddrSpec, Target};
use super::scripts::load_scripts;
use crate::{Result, StoreError};

const CONNECT_TIMEOUT: Duration = Duration::from_millis(1500);
const IO_TIMEOUT: Duration = Duration::from_secs(3);

pub(super) fn redis_err(what: &str, e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("Redis {what}: {e}"))
}

/// A connection of either kind, with the script SHAs loaded on it.
pub(super) enum Conn {
    Single(redis::Connection),
    Cluster(Box<ClusterConn>),
}

impl Conn {
    pub(super) fn like(&mut self) -> &mut dyn ConnectionLike {
        match self {
            Conn::Single(c) => c,
            Conn::Cluster(c) => &mut c.con,
        }
    }
}

/// What became of one command of a pipeline.
pub(super) enum Reply {
    /// Its reply, an error reply included (`Value::ServerError`).
    Done(redis::Value),
    /// It was run, but its reply was dropped (a cluster pipeline with an
    /// error reply returns only the errors).
    Lost,
    /// The exchange with its server failed: it may or may not have run.
    Failed(StoreError),
}

/// Redis settings: the db and, if any, the password.
fn redis_settings(password: Option<&String>, db: i64) -> RedisConnectionInfo {
    let rs = RedisConnectionInfo::default().set_db(db);
    match password {
        Some(pw) => rs.set_password(pw),
        None => rs,
    }
}

/// A connection to one server, with connect and I/O timeouts.
fn single_conn(
    addr: ConnectionAddr,
    rs: RedisConnectionInfo,
    timeout: (Duration, Duration),
) -> Result<redis::Connection> {
    let info: ConnectionInfo = addr
        .into_connection_info()
        .map_err(|e| redis_err("address", e))?
        .set_redis_settings(rs);
    let client = Client::open(info).map_err(|e| redis_err("client", e))?;
    let c = client
        .get_connection_with_timeout(timeout.0)
        .map_err(|e| redis_err("connect", e))?;
    c.set_read_timeout(Some(timeout.1))
        .map_err(|e| redis_err("set timeout", e))?;
    c.set_write_timeout(Some(timeout.1))
        .map_err(|e| redis_err("set timeout", e))?;
    Ok(c)
}

/// The address of master `name` as the first Sentinel that answers names
/// it (`SENTINEL get-master-addr-by-name`; every wait bounded).
fn sentinel_master(sentinels: &[(String, u16)], name: &str) -> Result<(String, u16)> {
    let mut last = StoreError::Unavailable("no Redis Sentinel answered".into());
    for (h, p) in sentinels {
        let named = single_conn(
            ConnectionAddr::Tcp(h.clone(), *p),
            RedisConnectionInfo::default(),
            (SENTINEL_TIMEOUT, SENTINEL_TIMEOUT),
        )
        .and_then(|mut c| {
            redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(name)
                .query::<Option<(String, u16)>>(&mut c)
                .map_err(|e| redis_err("SENTINEL get-master-addr-by-name", e))
        });
        match named {
            Ok(Some(a)) => return Ok(a),
            Ok(None) => {
                last = StoreError::Unavailable(format!(
                    "Redis Sentinel {h}:{p} knows no master named {name:?}"
                ))
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// A connection to the master a Sentinel named, after checking with `ROLE`
/// that it is one (a demoted master answers `slave` until the Sentinels
/// name its successor).
fn master_conn(addr: &(String, u16), password: Option<&String>, db: i64) -> Result<Conn> {
    let mut c = single_conn(
        ConnectionAddr::Tcp(addr.0.clone(), addr.1),
        redis_settings(password, db),
        (CONNECT_TIMEOUT, IO_TIMEOUT),
    )?;
    let role: Vec<redis::Value> = redis::cmd("ROLE")
        .query(&mut c)
        .map_err(|e| redis_err("ROLE", e))?;
    let role: Option<String> = role
        .into_iter()
        .next()
        .and_then(|v| redis::from_redis_value(v).ok());
    if role.as_deref() != Some("master") {
        return Err(StoreError::Unavailable(format!(
            "Redis {}:{} named master by the Sentinels is a {} (failover in progress)",
            addr.0,
            addr.1,
            role.as_deref().unwrap_or("server of unknown role")
        )));
    }
    Ok(Conn::Single(c))
}

/// A new connection to `target`.
pub(super) fn connect_target(target: &Target) -> Result<Conn> {
    match target {
        Target::Single { addr, password, db } => {
            let a = match addr {
                ConnectionAddrSpec::Tcp(h, p) => ConnectionAddr::Tcp(h.clone(), *p),
                ConnectionAddrSpec::Unix(p) => ConnectionAddr::Unix(p.into()),
            };
            Ok(Conn::Single(single_conn(
                a,
                redis_settings(password.as_ref(), *db),
                (CONNECT_TIMEOUT, IO_TIMEOUT),
            )?))
        }
        Target::Sentinel {
            sentinels,
            master,
            password,
            db,
        } => master_conn(&sentinel_master(sentinels, master)?, password.as_ref(), *db),
        Target::Cluster { nodes, password } => {
            let mut b = redis::cluster::ClusterClientBuilder::new(nodes.iter().map(|(h, p)| {
                ConnectionAddr::Tcp(h.clone(), *p)
                    .into_connection_info()
                    .expect("tcp address")
            }))
            .connection_timeout(CONNECT_TIMEOUT)
            .response_timeout(IO_TIMEOUT);
            if let Some(pw) = password {
                b = b.password(pw.clone());
            }
            let client = b.build().map_err(|e| redis_err("cluster client", e))?;
            let c = client
                .get_connection()
                .map_err(|e| redis_err("cluster connect", e))?;
            Ok(Conn::Cluster(Box::new(ClusterConn::new(c))))
        }
    }
}

/// What the pool last learnt from the Sentinels.
#[derive(Default)]
struct SentinelSeen {
    /// When they were last asked.
    asked: Option<Instant>,
    /// The master they named then (`None`: none of them answered).
    named: Option<(String, u16)>,
    /// The master address whose connection attempt failed last.
    failed: Option<(String, u16)>,
}

/// How long an answer of the Sentinels (or their silence) is reused while
/// no master connection can be made: they are asked at most this often.
const SENTINEL_RECHECK: Duration = Duration::from_millis(100);
/// Connect and I/O timeout of a question to a Sentinel.
const SENTINEL_TIMEOUT: Duration = Duration::from_secs(1);

/// A bounded set of idle connections, re-made on demand with backoff.
pub(super) struct Pool {
    pub(super) target: Target,
    idle: Mutex<Vec<Conn>>,
    max_idle: usize,
    backoff: crate::backoff::Backoff,
    sentinel: Mutex<SentinelSeen>,
}

impl Pool {
    /// No connection yet; at most `connections` idle ones are kept (16 for 0).
    pub(super) fn new(target: Target, connections: usize) -> Pool {
        Pool {
            target,
            idle: Mutex::new(Vec::new()),
            max_idle: if connections == 0 { 16 } else { connections },
            backoff: crate::backoff::Backoff::new("Redis"),
            sentinel: Mutex::new(SentinelSeen::default()),
        }
    }

    /// A new connection, unless the backoff after a failure says to fail
    /// fast. Behind Sentinels the backoff is the master address's: asking
    /// the Sentinels is cheap and never touches the failed master, so they
    /// are asked on every attempt (at most every [`SENTINEL_RECHECK`]), and
    /// a new master named after a failover is tried at once instead of
    /// after the rest of the backoff.
    fn connect(&self) -> Result<Conn> {
        let Target::Sentinel {
            sentinels,
            master,
            password,
            db,
        } = &self.target
        else {
            return self.backoff.attempt(|| connect_target(&self.target));
        };
        let recent = {
            let s = self.seen();
            s.asked
                .is_some_and(|t| t.elapsed() < SENTINEL_RECHECK)
                .then(|| s.named.clone())
        };
        let addr = match recent {
            Some(named) => named.ok_or_else(|| {
                StoreError::Unavailable("no Redis Sentinel answered; asking again shortly".into())
            })?,
            None => {
                let r = sentinel_master(sentinels, master);
                let mut s = self.seen();
                s.asked = Some(Instant::now());
                s.named = r.as_ref().ok().cloned();
                r?
            }
        };
        let changed = self.seen().failed.as_ref().is_some_and(|f| *f != addr);
        if changed {
            self.backoff.reset();
        }
        let r = self
            .backoff
            .attempt(|| master_conn(&addr, password.as_ref(), *db));
        self.seen().failed = r.is_err().then_some(addr);
        r
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, SentinelSeen> {
        self.sentinel.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Run `f` on a connection. A connection that failed is dropped with
    /// every idle one (they lead to the same server, or hold the same
    /// cluster map: after a master died or was demoted each would fail one
    /// more request), so the next call makes a new one.
    pub(super) fn with<T>(&self, f: impl FnOnce(&mut Conn) -> Result<T>) -> Result<T> {
        let popped = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut c = match popped {
            Some(c) => c,
            None => self.connect()?,
        };
        let r = f(&mut c);
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if r.as_ref().err().is_none_or(record_level) {
            if idle.len() < self.max_idle {
                idle.push(c);
            }
        } else {
            idle.clear();
        }
        r
    }

    /// The nodes that hold keys: the server itself, or every master of a
    /// cluster (from `CLUSTER NODES` of the first seed that answers).
    pub(super) fn nodes(&self) -> Result<Vec<Target>> {
        match &self.target {
            t @ (Target::Single { .. } | Target::Sentinel { .. }) => Ok(vec![t.clone()]),
            Target::Cluster { nodes, password } => {
                let mut last = StoreError::Unavailable("no cluster seed node answered".into());
                for (h, p) in nodes {
                    let seed = Target::Single {
                        addr: ConnectionAddrSpec::Tcp(h.clone(), *p),
                        password: password.clone(),
                        db: 0,
                    };
                    let text: Result<String> = connect_target(&seed).and_then(|mut c| {
                        redis::cmd("CLUSTER")
                            .arg("NODES")
                            .query(c.like())
                            .map_err(|e| redis_err("CLUSTER NODES", e))
                    });
                    match text {
                        Ok(t) => {
                            return Ok(super::cluster::cluster_masters(&t)
                                .into_iter()
                                .map(|(h, p)| Target::Single {
                                    addr: ConnectionAddrSpec::Tcp(h, p),
                                    password: password.clone(),
                                    db: 0,
                                })
                                .collect())
                        }
                        Err(e) => last = e,
                    }
                }
                Err(last)
            }
        }
    }
}

/// Whether an error is a record's own (the connection is fine): a record
/// that does not decode, a key the engine refuses, a batch whose failed
/// operations all failed that way.
fn record_level(e: &StoreError) -> bool {
    match e {
        StoreError::Corrupt { .. } | StoreError::BadKey(_) => true,
        StoreError::Partial(failed) => failed.iter().all(|(_, e)| record_level(e)),
        _ => false,
    }
}

/// A command's error reply as a [`StoreError`]: `WRONGTYPE` and `ERR`
/// (a count that is not an integer, a record the count script refuses)
/// are the record's own ([`StoreError::Corrupt`]); anything else (a
/// replica's `READONLY` after a failover, `LOADING`, `MASTERDOWN`,
/// `CLUSTERDOWN`, `OOM`, `MISCONF`, `BUSY`, a `NOSCRIPT` that survived a
/// reload) is the server's: [`StoreError::Unavailable`].
pub(super) fn reply_err(digest: &[u8], e: &redis::ServerError) -> StoreError {
    let own = match e.kind() {
        Some(k) => k == redis::ServerErrorKind::ResponseError,
        None => e.code() == "WRONGTYPE",
    };
    if own {
        super::codec::corrupt(digest, format!("Redis: {e}"))
    } else {
        StoreError::Unavailable(format!("Redis: {e}"))
    }
}

/// Send `cmds` (each with its key's hash slot, used in a cluster only) as
/// one pipeline — in a cluster one per master — and return what became of
/// every command: a pipeline is no transaction, and the commands before and
/// after a failed one were run. `Err` only when the exchange with a single
/// server failed (then some commands may have run). Commands answered
/// `NOSCRIPT` (Redis restarted or its scripts flushed) are run again, once,
/// after the scripts are reloaded.
pub(super) fn run_each(c: &mut Conn, cmds: Vec<(redis::Cmd, u16)>) -> Result<Vec<Reply>> {
    let noscript = |v: &redis::Value| {
        matches!(v, redis::Value::ServerError(e)
            if e.kind() == Some(redis::ServerErrorKind::NoScript))
    };
    match c {
        Conn::Single(con) => {
            let mut p = redis::pipe();
            p.ignore_errors();
            for (cmd, _) in cmds {
                p.add_command(cmd);
            }
            let mut vals: Vec<redis::Value> = p.query(con).map_err(|e| redis_err("pipeline", e))?;
            let again: Vec<usize> = (0..vals.len()).filter(|&i| noscript(&vals[i])).collect();
            if !again.is_empty() {
                load_scripts(c)?;
                let Conn::Single(con) = c else {
                    unreachable!("checked above")
                };
                let mut redo = redis::pipe();
                redo.ignore_errors();
                for (i, cmd) in p.cmd_iter().enumerate() {
                    if again.contains(&i) {
                        redo.add_command(cmd.clone());
                    }
                }
                let redo: Vec<redis::Value> =
                    redo.query(con).map_err(|e| redis_err("pipeline", e))?;
                for (i, v) in again.into_iter().zip(redo) {
                    vals[i] = v;
                }
            }
            Ok(vals.into_iter().map(Reply::Done).collect())
        }
        Conn::Cluster(cc) => Ok(cc.run_grouped(cmds)),
    }
}

/// Send `cmds` as one pipeline (a cluster pipeline routes each command to
/// its node). A NOSCRIPT reply (Redis restarted or scripts flushed) reloads
/// the scripts and retries once.
pub(super) fn run<T: redis::FromRedisValue>(c: &mut Conn, cmds: Vec<redis::Cmd>) -> Result<T> {
    match c {
        Conn::Single(con) => {
            let mut p = redis::pipe();
            for cmd in cmds {
                p.add_command(cmd);
            }
            match p.query::<T>(con) {
                Ok(v) => Ok(v),
                Err(e)
                    if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                {
                    load_scripts(c)?;
                    let Conn::Single(con) = c else {
                        unreachable!("checked above")
                    };
                    p.query::<T>(con).map_err(|e| redis_err("pipeline", e))
                }
                Err(e) => Err(redis_err("pipeline", e)),
            }
        }
        Conn::Cluster(con) => {
            let mut p = redis::cluster::cluster_pipe();
            for cmd in cmds {
                p.add_command(cmd);
            }
            p.query::<T>(&mut con.con)
                .map_err(|e| redis_err("cluster pipeline", e))
        }
    }
}
