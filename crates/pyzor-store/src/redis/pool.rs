//! Connections: single Redis, Sentinel (the current master on every new
//! connection) and Cluster; the pool of idle connections with backoff; the
//! nodes that hold keys; pipelines.

use std::sync::Mutex;
use std::time::Duration;

use redis::{
    Client, ConnectionAddr, ConnectionInfo, ConnectionLike, IntoConnectionInfo, RedisConnectionInfo,
};

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
    Cluster(Box<redis::cluster::ClusterConnection>),
}

impl Conn {
    pub(super) fn like(&mut self) -> &mut dyn ConnectionLike {
        match self {
            Conn::Single(c) => c,
            Conn::Cluster(c) => &mut **c,
        }
    }
}

/// A new connection to `target`.
pub(super) fn connect_target(target: &Target) -> Result<Conn> {
    match target {
        Target::Single { addr, password, db } => {
            let a = match addr {
                ConnectionAddrSpec::Tcp(h, p) => ConnectionAddr::Tcp(h.clone(), *p),
                ConnectionAddrSpec::Unix(p) => ConnectionAddr::Unix(p.into()),
            };
            let mut rs = RedisConnectionInfo::default().set_db(*db);
            if let Some(pw) = password {
                rs = rs.set_password(pw);
            }
            let info: ConnectionInfo = a
                .into_connection_info()
                .map_err(|e| redis_err("address", e))?
                .set_redis_settings(rs);
            let client = Client::open(info).map_err(|e| redis_err("client", e))?;
            let c = client
                .get_connection_with_timeout(CONNECT_TIMEOUT)
                .map_err(|e| redis_err("connect", e))?;
            c.set_read_timeout(Some(IO_TIMEOUT))
                .map_err(|e| redis_err("set timeout", e))?;
            c.set_write_timeout(Some(IO_TIMEOUT))
                .map_err(|e| redis_err("set timeout", e))?;
            Ok(Conn::Single(c))
        }
        Target::Sentinel {
            sentinels,
            master,
            password,
            db,
        } => {
            let mut rs = RedisConnectionInfo::default().set_db(*db);
            if let Some(pw) = password {
                rs = rs.set_password(pw);
            }
            let node = redis::sentinel::SentinelNodeConnectionInfo::default()
                .set_redis_connection_info(rs);
            let mut client = redis::sentinel::SentinelClient::build(
                sentinels
                    .iter()
                    .map(|(h, p)| ConnectionAddr::Tcp(h.clone(), *p))
                    .collect(),
                master.clone(),
                Some(node),
                redis::sentinel::SentinelServerType::Master,
            )
            .map_err(|e| redis_err("sentinel client", e))?;
            let c = client
                .get_connection()
                .map_err(|e| redis_err("connect through sentinel", e))?;
            c.set_read_timeout(Some(IO_TIMEOUT))
                .map_err(|e| redis_err("set timeout", e))?;
            c.set_write_timeout(Some(IO_TIMEOUT))
                .map_err(|e| redis_err("set timeout", e))?;
            Ok(Conn::Single(c))
        }
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
            Ok(Conn::Cluster(Box::new(c)))
        }
    }
}

/// A bounded set of idle connections, re-made on demand with backoff.
pub(super) struct Pool {
    pub(super) target: Target,
    idle: Mutex<Vec<Conn>>,
    max_idle: usize,
    backoff: crate::backoff::Backoff,
}

impl Pool {
    /// No connection yet; at most `connections` idle ones are kept (16 for 0).
    pub(super) fn new(target: Target, connections: usize) -> Pool {
        Pool {
            target,
            idle: Mutex::new(Vec::new()),
            max_idle: if connections == 0 { 16 } else { connections },
            backoff: crate::backoff::Backoff::new("Redis"),
        }
    }

    fn connect(&self) -> Result<Conn> {
        self.backoff.attempt(|| self.connect_now())
    }

    fn connect_now(&self) -> Result<Conn> {
        connect_target(&self.target)
    }

    /// Run `f` on a connection; a connection that failed is dropped, so the
    /// next call makes a new one.
    pub(super) fn with<T>(&self, f: impl FnOnce(&mut Conn) -> Result<T>) -> Result<T> {
        let popped = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut c = match popped {
            Some(c) => c,
            None => self.connect()?,
        };
        let r = f(&mut c);
        if r.as_ref().err().is_none_or(record_level) {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < self.max_idle {
                idle.push(c);
            }
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
                            return Ok(cluster_masters(&t)
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

/// Masters (`host`, `port`) listed by `CLUSTER NODES`, skipping failed ones.
fn cluster_masters(text: &str) -> Vec<(String, u16)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 3 {
            continue;
        }
        let flags: Vec<&str> = f[2].split(',').collect();
        if !flags.contains(&"master")
            || flags
                .iter()
                .any(|x| x.starts_with("fail") || *x == "noaddr")
        {
            continue;
        }
        // ip:port@cport[,hostname]
        let addr = f[1].split(['@', ',']).next().unwrap_or("");
        if let Some((h, p)) = addr.rsplit_once(':') {
            if let Ok(p) = p.parse() {
                out.push((h.to_string(), p));
            }
        }
    }
    out
}

/// Send `cmds` as one pipeline and return every command's reply, an error
/// reply included (`Value::ServerError`): a pipeline is no transaction, and
/// the commands before and after a failed one were run. `None` is a
/// command that succeeded but whose reply is lost: a cluster pipeline with
/// an error reply returns only the errors. `Err` only when the exchange
/// itself failed (then some commands may have run). Commands answered
/// `NOSCRIPT` (Redis restarted or its scripts flushed) are run again, once,
/// after the scripts are reloaded.
pub(super) fn run_each(c: &mut Conn, cmds: Vec<redis::Cmd>) -> Result<Vec<Option<redis::Value>>> {
    let noscript = |v: &redis::Value| {
        matches!(v, redis::Value::ServerError(e)
            if e.kind() == Some(redis::ServerErrorKind::NoScript))
    };
    match c {
        Conn::Single(con) => {
            let mut p = redis::pipe();
            p.ignore_errors();
            for cmd in cmds {
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
            Ok(vals.into_iter().map(Some).collect())
        }
        Conn::Cluster(con) => {
            let n = cmds.len();
            let mut p = redis::cluster::cluster_pipe();
            for cmd in cmds {
                p.add_command(cmd);
            }
            match p.query::<Vec<redis::Value>>(con) {
                Ok(vals) => Ok(vals.into_iter().map(Some).collect()),
                Err(e) => {
                    let text = e.to_string();
                    let errs = e.into_server_errors().ok_or_else(|| {
                        StoreError::Unavailable(format!("Redis cluster pipeline: {text}"))
                    })?;
                    let mut vals = vec![None; n];
                    for (i, se) in errs.iter() {
                        if let Some(slot) = vals.get_mut(*i) {
                            *slot = Some(redis::Value::ServerError(se.clone()));
                        }
                    }
                    Ok(vals)
                }
            }
        }
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
            p.query::<T>(con)
                .map_err(|e| redis_err("cluster pipeline", e))
        }
    }
}
