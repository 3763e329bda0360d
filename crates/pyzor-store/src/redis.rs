//! The reference's Redis engines.
//!
//! * `redis`: one hash per digest, key `pyzord.digest_v1.<digest>`, fields
//!   `r_count r_entered r_updated wl_count wl_entered wl_updated`, dates as
//!   epoch seconds with `0` for never, and a sliding `EXPIRE` of CleanupAge
//!   on every write — exactly what Python's `pyzor.engines.redis_` reads and
//!   writes, so both servers can share one Redis.
//! * `redis_v0`: the old layout, one string per digest under
//!   `pyzord.digest.<digest>`, `r_count,r_entered,r_updated,wl_count,
//!   wl_entered,wl_updated` with `%Y-%m-%d %H:%M:%S` local dates (`""` =
//!   never). A migration source: reads, `put_many` and `delete_many` work,
//!   counting into it does not.
//!
//! DSN `host,port,password,db` like the reference (empty fields take
//! `localhost`, `6379`, no password, `0`); a host containing `/` is a unix
//! socket path. Redis Cluster: put `cluster:` before a `;`-separated list
//! of seed nodes in the host field, e.g. `cluster:10.0.0.1:7000;10.0.0.2:7000,,secret,0`
//! (the port field is ignored and the db must be 0). Batches then go as a
//! cluster pipeline with the scripts sent as `EVAL`; scans and expiry walk
//! every master listed by `CLUSTER NODES`. Redis Sentinel:
//! `sentinel:<master name>@host:port;host:port,,password,db` (Sentinel
//! addresses; the password and db are the master's); every new connection
//! asks the Sentinels for the current master, so a failover is followed.
//!
//! Unlike the reference, each report/whitelist is one Lua script (atomic:
//! increment, first-entered, updated, TTL), and a batch is one pipeline.
//! A broken connection is dropped and re-made on the next request; while
//! Redis cannot be reached, new connections are attempted with exponential
//! backoff (50 ms … 2 s) and requests fail fast with
//! [`StoreError::Unavailable`] (the reference's 500).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use pyzor_protocol::{Record, Timestamp};
use redis::{
    Client, ConnectionAddr, ConnectionInfo, ConnectionLike, IntoConnectionInfo, RedisConnectionInfo,
};

use crate::pytime::{naive_local_to_ts, py_int, ts_to_naive_local};
use crate::{Engine, Op, RecordIter, Result, StoreError};

/// Key prefix of the current layout (`NAMESPACE` in the reference).
pub const PREFIX_V1: &[u8] = b"pyzord.digest_v1.";
/// Key prefix of the deprecated layout.
pub const PREFIX_V0: &[u8] = b"pyzord.digest.";

const CONNECT_TIMEOUT: Duration = Duration::from_millis(1500);
const IO_TIMEOUT: Duration = Duration::from_secs(3);
const SCAN_COUNT: usize = 1000;

/// Count one report or whitelist atomically and return the hash.
/// KEYS[1] key; ARGV[1] `r` or `wl`; ARGV[2] now (epoch s); ARGV[3] TTL (0 = none).
/// The count saturates at sys.maxsize (HINCRBY refuses to overflow; the
/// error is swallowed). Unlike the reference's HSETNX, an `*_entered` of
/// `0` (never, as the reference's `__setitem__` writes it) is also set.
const SCRIPT_COUNT: &str = r#"
redis.pcall('HINCRBY', KEYS[1], ARGV[1] .. '_count', 1)
local e = redis.call('HGET', KEYS[1], ARGV[1] .. '_entered')
if not e or e == '0' or e == '' then
  redis.call('HSET', KEYS[1], ARGV[1] .. '_entered', ARGV[2])
end
redis.call('HSET', KEYS[1], ARGV[1] .. '_updated', ARGV[2])
if tonumber(ARGV[3]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
return redis.call('HGETALL', KEYS[1])
"#;

/// Delete the hash if its last update (of either count) is before ARGV[1]
/// and known; re-checked inside Redis so a concurrent report wins.
const SCRIPT_EXPIRE: &str = r#"
local v = redis.call('HMGET', KEYS[1], 'r_updated', 'wl_updated')
local r = tonumber(v[1]) or 0
local w = tonumber(v[2]) or 0
local last = math.max(r, w)
if last > 0 and last < tonumber(ARGV[1]) then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

/// Which of the two layouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    V1,
    V0,
}

/// The parsed DSN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Single {
        addr: ConnectionAddrSpec,
        password: Option<String>,
        db: i64,
    },
    Cluster {
        nodes: Vec<(String, u16)>,
        password: Option<String>,
    },
    /// The master named `master`, found through these Sentinels.
    Sentinel {
        sentinels: Vec<(String, u16)>,
        master: String,
        password: Option<String>,
        db: i64,
    },
}

/// Where a single Redis listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectionAddrSpec {
    Tcp(String, u16),
    Unix(String),
}

/// `host:port;host:port` (at least one).
fn host_ports(list: &str) -> Result<Vec<(String, u16)>> {
    let mut nodes = Vec::new();
    for n in list.split(';').filter(|s| !s.is_empty()) {
        let (h, p) = n
            .rsplit_once(':')
            .ok_or_else(|| StoreError::Config(format!("Redis node {n:?} must be host:port")))?;
        let p: u16 = p
            .parse()
            .map_err(|_| StoreError::Config(format!("Redis node {n:?}: bad port")))?;
        nodes.push((h.to_string(), p));
    }
    if nodes.is_empty() {
        return Err(StoreError::Config(
            "cluster:/sentinel: need at least one host:port".into(),
        ));
    }
    Ok(nodes)
}

/// Parse `host,port,password,db` (see the module documentation).
pub fn parse_dsn(dsn: &str) -> Result<Target> {
    let f: Vec<&str> = dsn.split(',').collect();
    if f.len() != 4 {
        return Err(StoreError::Config(format!(
            "Redis DSN {dsn:?} must have four comma-separated fields: host,port,password,db"
        )));
    }
    let password = (!f[2].is_empty()).then(|| f[2].to_string());
    let db: i64 = if f[3].is_empty() {
        0
    } else {
        f[3].trim().parse().map_err(|_| {
            StoreError::Config(format!("Redis DSN {dsn:?}: db {:?} is not a number", f[3]))
        })?
    };
    if let Some(rest) = f[0].strip_prefix("sentinel:") {
        let (master, list) = rest.split_once('@').ok_or_else(|| {
            StoreError::Config(format!(
                "Redis DSN {dsn:?}: write sentinel:<master name>@host:port;host:port"
            ))
        })?;
        let sentinels = host_ports(list)?;
        if master.is_empty() {
            return Err(StoreError::Config(
                "sentinel: needs the master's name before @".into(),
            ));
        }
        return Ok(Target::Sentinel {
            sentinels,
            master: master.to_string(),
            password,
            db,
        });
    }
    if let Some(list) = f[0].strip_prefix("cluster:") {
        if db != 0 {
            return Err(StoreError::Config("Redis Cluster has only db 0".into()));
        }
        let nodes = host_ports(list)?;
        return Ok(Target::Cluster { nodes, password });
    }
    let host = if f[0].is_empty() { "localhost" } else { f[0] };
    let addr = if host.contains('/') {
        ConnectionAddrSpec::Unix(host.to_string())
    } else {
        let port: u16 = if f[1].is_empty() {
            6379
        } else {
            f[1].trim().parse().map_err(|_| {
                StoreError::Config(format!(
                    "Redis DSN {dsn:?}: port {:?} is not a number",
                    f[1]
                ))
            })?
        };
        ConnectionAddrSpec::Tcp(host.to_string(), port)
    };
    Ok(Target::Single { addr, password, db })
}

fn redis_err(what: &str, e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("Redis {what}: {e}"))
}

/// A connection of either kind, with the script SHAs loaded on it.
enum Conn {
    Single(redis::Connection),
    Cluster(Box<redis::cluster::ClusterConnection>),
}

impl Conn {
    fn like(&mut self) -> &mut dyn ConnectionLike {
        match self {
            Conn::Single(c) => c,
            Conn::Cluster(c) => &mut **c,
        }
    }
}

/// A new connection to `target`.
fn connect_target(target: &Target) -> Result<Conn> {
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
struct Pool {
    target: Target,
    idle: Mutex<Vec<Conn>>,
    max_idle: usize,
    backoff: crate::backoff::Backoff,
}

impl Pool {
    fn connect(&self) -> Result<Conn> {
        self.backoff.attempt(|| self.connect_now())
    }

    fn connect_now(&self) -> Result<Conn> {
        connect_target(&self.target)
    }

    /// Run `f` on a connection; a connection that failed is dropped, so the
    /// next call makes a new one.
    fn with<T>(&self, f: impl FnOnce(&mut Conn) -> Result<T>) -> Result<T> {
        let popped = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut c = match popped {
            Some(c) => c,
            None => self.connect()?,
        };
        let r = f(&mut c);
        let healthy = match &r {
            Ok(_) => true,
            Err(StoreError::Corrupt { .. }) | Err(StoreError::BadKey(_)) => true,
            Err(_) => false,
        };
        if healthy {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < self.max_idle {
                idle.push(c);
            }
        }
        r
    }
}

/// The `redis` and `redis_v0` engines.
pub struct RedisEngine {
    pool: Pool,
    layout: Layout,
    /// CleanupAge in seconds (0: no TTL).
    ttl: u64,
}

fn sha1_hex(s: &str) -> String {
    use sha1::{Digest, Sha1};
    Sha1::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn real_key(prefix: &[u8], digest: &[u8]) -> Vec<u8> {
    [prefix, digest].concat()
}

fn corrupt(d: &[u8], reason: String) -> StoreError {
    StoreError::Corrupt {
        digest: String::from_utf8_lossy(d).into_owned(),
        reason,
    }
}

/// Decode a v1 hash the way the reference's `_decode_record` does (missing
/// fields are 0; a date of 0 is never). An empty hash is no record.
pub fn decode_hash(d: &[u8], h: &HashMap<Vec<u8>, Vec<u8>>) -> Result<Option<Record>> {
    if h.is_empty() {
        return Ok(None);
    }
    let int = |f: &str| -> Result<i64> {
        match h.get(f.as_bytes()) {
            None => Ok(0),
            Some(v) => std::str::from_utf8(v).ok().and_then(py_int).ok_or_else(|| {
                corrupt(d, format!("field {f} is {:?}", String::from_utf8_lossy(v)))
            }),
        }
    };
    let date = |f: &str| -> Result<Option<Timestamp>> {
        let v = int(f)?;
        Ok((v != 0).then(|| Timestamp::from_secs(v)))
    };
    Ok(Some(Record {
        r_count: int("r_count")?,
        wl_count: int("wl_count")?,
        r_entered: date("r_entered")?,
        r_updated: date("r_updated")?,
        wl_entered: date("wl_entered")?,
        wl_updated: date("wl_updated")?,
    }))
}

fn secs(t: Option<Timestamp>) -> i64 {
    t.map(|t| t.secs()).unwrap_or(0)
}

/// The reference v0 value (`redis_v0._encode_record`).
pub fn encode_v0(r: &Record) -> String {
    let d = |t: Option<Timestamp>| {
        t.and_then(ts_to_naive_local)
            .map(|n| n.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default()
    };
    format!(
        "{},{},{},{},{},{}",
        r.r_count,
        d(r.r_entered),
        d(r.r_updated),
        r.wl_count,
        d(r.wl_entered),
        d(r.wl_updated)
    )
}

/// The reference v0 decoder (`redis_v0._decode_record`).
pub fn decode_v0(d: &[u8], v: &[u8]) -> Result<Record> {
    let bad = || corrupt(d, format!("v0 value {:?}", String::from_utf8_lossy(v)));
    let s = std::str::from_utf8(v).map_err(|_| bad())?;
    let f: Vec<&str> = s.split(',').collect();
    if f.len() < 6 {
        return Err(bad());
    }
    let n = |x: &str| py_int(x).ok_or_else(bad);
    let t = |x: &str| -> Result<Option<Timestamp>> {
        if x.is_empty() {
            return Ok(None);
        }
        chrono::NaiveDateTime::parse_from_str(x, "%Y-%m-%d %H:%M:%S")
            .map(|n| Some(naive_local_to_ts(n)))
            .map_err(|_| bad())
    };
    Ok(Record {
        r_count: n(f[0])?,
        r_entered: t(f[1])?,
        r_updated: t(f[2])?,
        wl_count: n(f[3])?,
        wl_entered: t(f[4])?,
        wl_updated: t(f[5])?,
    })
}

/// Replace a whole v1 record (migration, import): atomic per record, so it
/// also works in a cluster where a MULTI cannot span slots.
/// KEYS[1] key; ARGV[1..6] the six fields; ARGV[7] TTL (0 = none).
const SCRIPT_PUT: &str = r#"
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'r_count', ARGV[1], 'r_entered', ARGV[2], 'r_updated', ARGV[3],
  'wl_count', ARGV[4], 'wl_entered', ARGV[5], 'wl_updated', ARGV[6])
if tonumber(ARGV[7]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[7]) end
return 1
"#;

const SCRIPTS: [&str; 3] = [SCRIPT_COUNT, SCRIPT_EXPIRE, SCRIPT_PUT];

impl RedisEngine {
    /// Connect (once, to fail early on a wrong DSN or password) and load
    /// the scripts.
    pub fn open(dsn: &str, layout: Layout, cleanup_age: u64, connections: usize) -> Result<Self> {
        let target = parse_dsn(dsn)?;
        let e = RedisEngine {
            pool: Pool {
                target,
                idle: Mutex::new(Vec::new()),
                max_idle: if connections == 0 { 16 } else { connections },
                backoff: crate::backoff::Backoff::new("Redis"),
            },
            layout,
            ttl: cleanup_age,
        };
        // Fail on a wrong password or an unreachable server at start-up, as
        // the reference does; later outages are survived.
        e.pool.with(load_scripts)?;
        if layout == Layout::V1 {
            e.warn_v0_records();
        }
        Ok(e)
    }

    /// The reference's `_check_version`: point at pyzor-migrate when old
    /// records are present.
    fn warn_v0_records(&self) {
        let found = self.nodes().and_then(|nodes| {
            for n in &nodes {
                let mut c = connect_target(n)?;
                let (_, keys) = scan_round(&mut c, 0, PREFIX_V0)?;
                if !keys.is_empty() {
                    return Ok(true);
                }
            }
            Ok(false)
        });
        if let Ok(true) = found {
            log::error!(
                "This Redis holds records in the deprecated layout (pyzord.digest.*); migrate them with \
                 pyzor-migrate --delete --se redis_v0 --sd <dsn> --de redis --dd <dsn>"
            );
        }
    }

    fn prefix(&self) -> &'static [u8] {
        match self.layout {
            Layout::V1 => PREFIX_V1,
            Layout::V0 => PREFIX_V0,
        }
    }

    fn ttl_for(&self, r: &Record, now: Timestamp) -> Option<i64> {
        if self.ttl == 0 {
            return None;
        }
        let last = r.last_update()?;
        let left = self.ttl as i64 - (now.secs() - last.secs());
        Some(left.max(1))
    }

    /// The nodes that hold keys: the server itself, or every master of a
    /// cluster (from `CLUSTER NODES` of the first seed that answers).
    fn nodes(&self) -> Result<Vec<Target>> {
        match &self.pool.target {
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

/// Masters (`host`, `port`) listed by `CLUSTER NODES`, skipping failed ones.
pub fn cluster_masters(text: &str) -> Vec<(String, u16)> {
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

/// Load the scripts (single Redis; in a cluster the scripts go as EVAL)
/// and, either way, prove the connection works.
fn load_scripts(c: &mut Conn) -> Result<()> {
    match c {
        Conn::Single(con) => {
            for s in SCRIPTS {
                let _: String = redis::cmd("SCRIPT")
                    .arg("LOAD")
                    .arg(s)
                    .query(con)
                    .map_err(|e| redis_err("SCRIPT LOAD", e))?;
            }
        }
        Conn::Cluster(con) => {
            let _: i64 = redis::cmd("EXISTS")
                .arg(PREFIX_V1)
                .query(&mut **con)
                .map_err(|e| redis_err("EXISTS", e))?;
        }
    }
    Ok(())
}

/// A script call for key `key`: EVALSHA on a single Redis, EVAL of the text
/// in a cluster (scripts would have to be loaded on every node).
fn script_cmd(cluster: bool, script: &str, key: &[u8]) -> redis::Cmd {
    let mut c = if cluster {
        redis::cmd("EVAL")
    } else {
        redis::cmd("EVALSHA")
    };
    if cluster {
        c.arg(script);
    } else {
        c.arg(sha1_hex(script));
    }
    c.arg(1).arg(key);
    c
}

/// Send `cmds` as one pipeline (a cluster pipeline routes each command to
/// its node). A NOSCRIPT reply (Redis restarted or scripts flushed) reloads
/// the scripts and retries once.
fn run<T: redis::FromRedisValue>(c: &mut Conn, cmds: Vec<redis::Cmd>) -> Result<T> {
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

impl Engine for RedisEngine {
    fn name(&self) -> &'static str {
        match self.layout {
            Layout::V1 => "redis",
            Layout::V0 => "redis_v0",
        }
    }

    fn execute(&self, ops: &[Op<'_>], now: Timestamp, out: &mut Vec<Option<Record>>) -> Result<()> {
        if self.layout == Layout::V0 && ops.iter().any(Op::is_write) {
            return Err(StoreError::Config(
                "redis_v0 is a migration source; move its records with pyzor-migrate --se redis_v0 --de redis".into(),
            ));
        }
        if ops.is_empty() {
            return Ok(());
        }
        let cluster = matches!(self.pool.target, Target::Cluster { .. });
        let cmds: Vec<redis::Cmd> = ops
            .iter()
            .map(|op| {
                let key = real_key(self.prefix(), op.digest());
                match (*op, self.layout) {
                    (Op::Get(_), Layout::V1) => {
                        let mut c = redis::cmd("HGETALL");
                        c.arg(key);
                        c
                    }
                    (Op::Get(_), Layout::V0) => {
                        let mut c = redis::cmd("GET");
                        c.arg(key);
                        c
                    }
                    (Op::Report(_) | Op::Whitelist(_), _) => {
                        let side = if matches!(op, Op::Report(_)) {
                            "r"
                        } else {
                            "wl"
                        };
                        let mut c = script_cmd(cluster, SCRIPT_COUNT, &key);
                        c.arg(side).arg(now.secs()).arg(self.ttl);
                        c
                    }
                }
            })
            .collect();
        let start = out.len();
        let r = self.pool.with(|c| {
            match self.layout {
                Layout::V1 => {
                    let hashes: Vec<HashMap<Vec<u8>, Vec<u8>>> = run(c, cmds)?;
                    for (op, h) in ops.iter().zip(&hashes) {
                        out.push(decode_hash(op.digest(), h)?);
                    }
                }
                Layout::V0 => {
                    let vals: Vec<Option<Vec<u8>>> = run(c, cmds)?;
                    for (op, v) in ops.iter().zip(&vals) {
                        out.push(
                            v.as_deref()
                                .map(|v| decode_v0(op.digest(), v))
                                .transpose()?,
                        );
                    }
                }
            }
            Ok(())
        });
        if r.is_err() {
            out.truncate(start);
        }
        r
    }

    fn put_many(&self, records: &[(Vec<u8>, Record)]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let now = crate::now();
        let cluster = matches!(self.pool.target, Target::Cluster { .. });
        let mut cmds = Vec::with_capacity(records.len() * 2);
        for (d, r) in records {
            let key = real_key(self.prefix(), d);
            let ttl = self.ttl_for(r, now).unwrap_or(0);
            match self.layout {
                Layout::V1 => {
                    let mut c = script_cmd(cluster, SCRIPT_PUT, &key);
                    c.arg(r.r_count)
                        .arg(secs(r.r_entered))
                        .arg(secs(r.r_updated))
                        .arg(r.wl_count)
                        .arg(secs(r.wl_entered))
                        .arg(secs(r.wl_updated))
                        .arg(ttl);
                    cmds.push(c);
                }
                Layout::V0 => {
                    let mut c = redis::cmd("SET");
                    c.arg(&key).arg(encode_v0(r));
                    if ttl > 0 {
                        c.arg("EX").arg(ttl);
                    }
                    cmds.push(c);
                }
            }
        }
        self.pool.with(|c| run::<redis::Value>(c, cmds).map(|_| ()))
    }

    fn delete_many(&self, digests: &[Vec<u8>]) -> Result<()> {
        if digests.is_empty() {
            return Ok(());
        }
        let cmds = digests
            .iter()
            .map(|d| {
                let mut c = redis::cmd("DEL");
                c.arg(real_key(self.prefix(), d));
                c
            })
            .collect();
        self.pool.with(|c| run::<redis::Value>(c, cmds).map(|_| ()))
    }

    /// SCAN with MATCH over the layout's prefix on every node that holds
    /// keys (each master of a cluster), 1000 keys per round trip,
    /// then one pipelined read per round: constant memory.
    fn scan(&self) -> Result<RecordIter<'_>> {
        let nodes = self.nodes()?;
        Ok(Box::new(RedisScan {
            e: self,
            nodes,
            node: 0,
            conn: None,
            cursor: 0,
            buf: Vec::new().into_iter(),
            failed: false,
        }))
    }

    fn expire(&self, cutoff: Timestamp) -> Result<u64> {
        if self.layout == Layout::V0 {
            return Ok(0);
        }
        // Records with a TTL expire by themselves; this catches the ones
        // without (written by the reference's migration, or with
        // CleanupAge 0 at the time). Stored whole seconds s expire when
        // s*1e6 < cutoff, i.e. s < ceil(cutoff in seconds).
        let cutoff_secs =
            cutoff.0.div_euclid(1_000_000) + i64::from(cutoff.0.rem_euclid(1_000_000) != 0);
        let mut removed = 0u64;
        for node in self.nodes()? {
            let mut c = connect_target(&node)?;
            let mut cursor = 0u64;
            loop {
                let (next, keys) = scan_round(&mut c, cursor, PREFIX_V1)?;
                if !keys.is_empty() {
                    let cmds = keys
                        .iter()
                        .map(|k| {
                            let mut x = script_cmd(true, SCRIPT_EXPIRE, k);
                            x.arg(cutoff_secs);
                            x
                        })
                        .collect();
                    let n: Vec<i64> = run(&mut c, cmds)?;
                    removed += n.iter().filter(|&&x| x > 0).count() as u64;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(removed)
    }

    /// `DBSIZE` summed over the nodes: counts every key of the database,
    /// not only Pyzor's.
    fn approx_len(&self) -> Option<u64> {
        let mut n = 0u64;
        for node in self.nodes().ok()? {
            let mut c = connect_target(&node).ok()?;
            let k: u64 = redis::cmd("DBSIZE").query(c.like()).ok()?;
            n += k;
        }
        Some(n)
    }

    /// Redis persists by its own configuration (`appendfsync`).
    fn flush(&self) -> Result<()> {
        Ok(())
    }
}

fn scan_round(c: &mut Conn, cursor: u64, prefix: &[u8]) -> Result<(u64, Vec<Vec<u8>>)> {
    redis::cmd("SCAN")
        .arg(cursor)
        .arg("MATCH")
        .arg([prefix, b"*"].concat())
        .arg("COUNT")
        .arg(SCAN_COUNT)
        .query(c.like())
        .map_err(|e| redis_err("SCAN", e))
}

/// One scanned record (or why it could not be read).
type Item = Result<(Vec<u8>, Record)>;

struct RedisScan<'a> {
    e: &'a RedisEngine,
    nodes: Vec<Target>,
    node: usize,
    /// A connection of its own to the node being scanned.
    conn: Option<Conn>,
    cursor: u64,
    buf: std::vec::IntoIter<Item>,
    failed: bool,
}

impl RedisScan<'_> {
    fn round(&mut self) -> Result<Vec<Item>> {
        let e = self.e;
        let prefix = e.prefix();
        if self.conn.is_none() {
            self.conn = Some(connect_target(&self.nodes[self.node])?);
        }
        let c = self.conn.as_mut().expect("connected above");
        let (next, keys) = scan_round(c, self.cursor, prefix)?;
        self.cursor = next;
        if next == 0 {
            // this node is done; the next round starts on the next one
            self.node += 1;
        }
        let mut out = Vec::with_capacity(keys.len());
        if !keys.is_empty() {
            let read = if e.layout == Layout::V1 {
                "HGETALL"
            } else {
                "GET"
            };
            let cmds: Vec<redis::Cmd> = keys
                .iter()
                .map(|k| {
                    let mut x = redis::cmd(read);
                    x.arg(k);
                    x
                })
                .collect();
            match e.layout {
                Layout::V1 => {
                    let hs: Vec<HashMap<Vec<u8>, Vec<u8>>> = run(c, cmds)?;
                    for (k, h) in keys.iter().zip(hs) {
                        let d = k[prefix.len()..].to_vec();
                        match decode_hash(&d, &h) {
                            Ok(Some(r)) => out.push(Ok((d, r))),
                            Ok(None) => {} // expired between SCAN and HGETALL
                            Err(err) => out.push(Err(err)),
                        }
                    }
                }
                Layout::V0 => {
                    let vs: Vec<Option<Vec<u8>>> = run(c, cmds)?;
                    for (k, v) in keys.iter().zip(vs) {
                        let d = k[prefix.len()..].to_vec();
                        if let Some(v) = v {
                            out.push(decode_v0(&d, &v).map(|r| (d, r)));
                        }
                    }
                }
            }
        }
        if next == 0 {
            self.conn = None;
        }
        Ok(out)
    }
}

impl Iterator for RedisScan<'_> {
    type Item = Item;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(x) = self.buf.next() {
                return Some(x);
            }
            if self.failed || self.node >= self.nodes.len() {
                return None;
            }
            match self.round() {
                Ok(v) => self.buf = v.into_iter(),
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dsn_forms() {
        assert_eq!(
            parse_dsn(",,,").unwrap(),
            Target::Single {
                addr: ConnectionAddrSpec::Tcp("localhost".into(), 6379),
                password: None,
                db: 0
            }
        );
        assert_eq!(
            parse_dsn("/run/redis.sock,,pw,3").unwrap(),
            Target::Single {
                addr: ConnectionAddrSpec::Unix("/run/redis.sock".into()),
                password: Some("pw".into()),
                db: 3
            }
        );
        assert_eq!(
            parse_dsn("cluster:a:7000;b:7001,,pw,").unwrap(),
            Target::Cluster {
                nodes: vec![("a".into(), 7000), ("b".into(), 7001)],
                password: Some("pw".into())
            }
        );
        assert_eq!(
            parse_dsn("sentinel:mymaster@s1:26379;s2:26380,,pw,2").unwrap(),
            Target::Sentinel {
                sentinels: vec![("s1".into(), 26379), ("s2".into(), 26380)],
                master: "mymaster".into(),
                password: Some("pw".into()),
                db: 2
            }
        );
        for bad in [
            "sentinel:s1:26379,,,",
            "sentinel:@s1:1,,,",
            "sentinel:m@,,,",
            "pyzord.db",
            "h,notaport,,0",
            "h,1,,x",
            "cluster:,,,",
            "cluster:a:1,,,2",
        ] {
            assert!(
                matches!(parse_dsn(bad), Err(StoreError::Config(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn v0_values() {
        let r = decode_v0(b"k", b"3,2026-01-02 03:04:05,2026-01-02 03:04:06,0,,").unwrap();
        assert_eq!(r.r_count, 3);
        assert_eq!(
            encode_v0(&r),
            "3,2026-01-02 03:04:05,2026-01-02 03:04:06,0,,"
        );
        assert!(decode_v0(b"k", b"x,,,0,,").is_err());
        assert!(decode_v0(b"k", b"1,2").is_err());
    }
}
