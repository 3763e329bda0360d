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
//! (the port field is ignored and the db must be 0).
//!
//! Unlike the reference, each report/whitelist is one Lua script (atomic:
//! increment, first-entered, updated, TTL), and a batch is one pipeline.
//! A broken connection is dropped and re-made on the next request; while
//! Redis cannot be reached, new connections are attempted with exponential
//! backoff (50 ms … 2 s) and requests fail fast with
//! [`StoreError::Unavailable`] (the reference's 500).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pyzor_core::{Record, Timestamp};
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
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
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
}

/// Where a single Redis listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectionAddrSpec {
    Tcp(String, u16),
    Unix(String),
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
    if let Some(list) = f[0].strip_prefix("cluster:") {
        if db != 0 {
            return Err(StoreError::Config("Redis Cluster has only db 0".into()));
        }
        let mut nodes = Vec::new();
        for n in list.split(';').filter(|s| !s.is_empty()) {
            let (h, p) = n.rsplit_once(':').ok_or_else(|| {
                StoreError::Config(format!("cluster node {n:?} must be host:port"))
            })?;
            let p: u16 = p
                .parse()
                .map_err(|_| StoreError::Config(format!("cluster node {n:?}: bad port")))?;
            nodes.push((h.to_string(), p));
        }
        if nodes.is_empty() {
            return Err(StoreError::Config(
                "cluster: needs at least one host:port".into(),
            ));
        }
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

struct Backoff {
    next_try: Option<Instant>,
    delay: Duration,
}

/// A bounded set of idle connections, re-made on demand with backoff.
struct Pool {
    target: Target,
    idle: Mutex<Vec<Conn>>,
    max_idle: usize,
    backoff: Mutex<Backoff>,
}

impl Pool {
    fn connect(&self) -> Result<Conn> {
        {
            let b = self.backoff.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(t) = b.next_try {
                if Instant::now() < t {
                    return Err(StoreError::Unavailable(
                        "Redis is unreachable; retrying shortly".into(),
                    ));
                }
            }
        }
        let r = self.connect_now();
        let mut b = self.backoff.lock().unwrap_or_else(|p| p.into_inner());
        match &r {
            Ok(_) => {
                b.next_try = None;
                b.delay = BACKOFF_MIN;
            }
            Err(e) => {
                log::error!("{e}");
                b.next_try = Some(Instant::now() + b.delay);
                b.delay = (b.delay * 2).min(BACKOFF_MAX);
            }
        }
        r
    }

    fn connect_now(&self) -> Result<Conn> {
        match &self.target {
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
            Target::Cluster { nodes, password } => {
                let mut b =
                    redis::cluster::ClusterClientBuilder::new(nodes.iter().map(|(h, p)| {
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
    count_sha: String,
    expire_sha: String,
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
                backoff: Mutex::new(Backoff {
                    next_try: None,
                    delay: BACKOFF_MIN,
                }),
            },
            layout,
            ttl: cleanup_age,
            count_sha: sha1_hex(SCRIPT_COUNT),
            expire_sha: sha1_hex(SCRIPT_EXPIRE),
        };
        // Fail on a wrong password or an unreachable server at start-up, as
        // the reference does; later outages are survived.
        e.pool.with(|c| e.load_scripts(c))?;
        if layout == Layout::V1 {
            e.warn_v0_records();
        }
        Ok(e)
    }

    fn load_scripts(&self, c: &mut Conn) -> Result<()> {
        for s in [SCRIPT_COUNT, SCRIPT_EXPIRE] {
            let _: String = redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(s)
                .query(c.like())
                .map_err(|e| redis_err("SCRIPT LOAD", e))?;
        }
        Ok(())
    }

    /// The reference's `_check_version`: point at pyzor-migrate when old
    /// records are present.
    fn warn_v0_records(&self) {
        let found = self.pool.with(|c| {
            let (_, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(0)
                .arg("MATCH")
                .arg([PREFIX_V0, b"*"].concat())
                .arg("COUNT")
                .arg(1000)
                .query(c.like())
                .map_err(|e| redis_err("SCAN", e))?;
            Ok(!keys.is_empty())
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

    /// Run a pipeline; a NOSCRIPT reply (scripts flushed or a failover)
    /// reloads the scripts and retries once.
    fn query_pipe<T: redis::FromRedisValue>(&self, c: &mut Conn, p: &redis::Pipeline) -> Result<T> {
        match p.query::<T>(c.like()) {
            Ok(v) => Ok(v),
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                self.load_scripts(c)?;
                p.query::<T>(c.like()).map_err(|e| redis_err("pipeline", e))
            }
            Err(e) => Err(redis_err("pipeline", e)),
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
        let mut p = redis::pipe();
        for op in ops {
            let key = real_key(self.prefix(), op.digest());
            match (*op, self.layout) {
                (Op::Get(_), Layout::V1) => {
                    p.cmd("HGETALL").arg(key);
                }
                (Op::Get(_), Layout::V0) => {
                    p.cmd("GET").arg(key);
                }
                (Op::Report(_) | Op::Whitelist(_), _) => {
                    let side = if matches!(op, Op::Report(_)) {
                        "r"
                    } else {
                        "wl"
                    };
                    p.cmd("EVALSHA")
                        .arg(&self.count_sha)
                        .arg(1)
                        .arg(key)
                        .arg(side)
                        .arg(now.secs())
                        .arg(self.ttl);
                }
            }
        }
        self.pool.with(|c| {
            let start = out.len();
            let r = (|| {
                match self.layout {
                    Layout::V1 => {
                        let hashes: Vec<HashMap<Vec<u8>, Vec<u8>>> = self.query_pipe(c, &p)?;
                        for (op, h) in ops.iter().zip(&hashes) {
                            out.push(decode_hash(op.digest(), h)?);
                        }
                    }
                    Layout::V0 => {
                        let vals: Vec<Option<Vec<u8>>> = self.query_pipe(c, &p)?;
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
            })();
            if r.is_err() {
                out.truncate(start);
            }
            r
        })
    }

    fn put_many(&self, records: &[(Vec<u8>, Record)]) -> Result<()> {
        let now = Timestamp::now();
        let mut p = redis::pipe();
        for (d, r) in records {
            let key = real_key(self.prefix(), d);
            p.cmd("DEL").arg(&key).ignore();
            match self.layout {
                Layout::V1 => {
                    p.cmd("HSET")
                        .arg(&key)
                        .arg("r_count")
                        .arg(r.r_count)
                        .arg("r_entered")
                        .arg(secs(r.r_entered))
                        .arg("r_updated")
                        .arg(secs(r.r_updated))
                        .arg("wl_count")
                        .arg(r.wl_count)
                        .arg("wl_entered")
                        .arg(secs(r.wl_entered))
                        .arg("wl_updated")
                        .arg(secs(r.wl_updated))
                        .ignore();
                }
                Layout::V0 => {
                    p.cmd("SET").arg(&key).arg(encode_v0(r)).ignore();
                }
            }
            // A migrated record keeps the rest of its CleanupAge lifetime.
            if let Some(ttl) = self.ttl_for(r, now) {
                p.cmd("EXPIRE").arg(&key).arg(ttl).ignore();
            }
        }
        p.atomic();
        self.pool.with(|c| self.query_pipe::<()>(c, &p))
    }

    fn delete_many(&self, digests: &[Vec<u8>]) -> Result<()> {
        if digests.is_empty() {
            return Ok(());
        }
        let mut p = redis::pipe();
        for d in digests {
            p.cmd("DEL").arg(real_key(self.prefix(), d)).ignore();
        }
        self.pool.with(|c| self.query_pipe::<()>(c, &p))
    }

    /// SCAN with MATCH over the layout's prefix, [`SCAN_COUNT`] keys per
    /// round trip, then one pipelined read per round: constant memory.
    fn scan(&self) -> Result<RecordIter<'_>> {
        if matches!(self.pool.target, Target::Cluster { .. }) {
            return Err(StoreError::Config(
                "scanning a Redis Cluster is not supported; migrate from each master node with its own host,port DSN"
                    .into(),
            ));
        }
        Ok(Box::new(RedisScan {
            e: self,
            cursor: 0,
            started: false,
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
        // CleanupAge 0 at the time).
        let cutoff_secs =
            cutoff.0.div_euclid(1_000_000) + i64::from(cutoff.0.rem_euclid(1_000_000) != 0);
        let mut removed = 0u64;
        let mut cursor = 0u64;
        loop {
            let (next, keys) = self.pool.with(|c| scan_round(c, cursor, PREFIX_V1))?;
            if !keys.is_empty() {
                let mut p = redis::pipe();
                for k in &keys {
                    p.cmd("EVALSHA")
                        .arg(&self.expire_sha)
                        .arg(1)
                        .arg(k)
                        .arg(cutoff_secs);
                }
                let n: Vec<i64> = self.pool.with(|c| self.query_pipe(c, &p))?;
                removed += n.iter().filter(|&&x| x > 0).count() as u64;
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
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
    cursor: u64,
    started: bool,
    buf: std::vec::IntoIter<Item>,
    failed: bool,
}

impl RedisScan<'_> {
    fn round(&mut self) -> Result<Vec<Item>> {
        let e = self.e;
        let prefix = e.prefix();
        let (next, keys) = e.pool.with(|c| scan_round(c, self.cursor, prefix))?;
        self.cursor = next;
        self.started = true;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut p = redis::pipe();
        for k in &keys {
            match e.layout {
                Layout::V1 => p.cmd("HGETALL").arg(k),
                Layout::V0 => p.cmd("GET").arg(k),
            };
        }
        let mut out = Vec::with_capacity(keys.len());
        match e.layout {
            Layout::V1 => {
                // A key of another type under our prefix fails the whole
                // pipeline; it is reported as a failed round.
                let hs: Vec<HashMap<Vec<u8>, Vec<u8>>> = e.pool.with(|c| e.query_pipe(c, &p))?;
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
                let vs: Vec<Option<Vec<u8>>> = e.pool.with(|c| e.query_pipe(c, &p))?;
                for (k, v) in keys.iter().zip(vs) {
                    let d = k[prefix.len()..].to_vec();
                    if let Some(v) = v {
                        out.push(decode_v0(&d, &v).map(|r| (d, r)));
                    }
                }
            }
        }
        Ok(out)
    }
}

impl Iterator for RedisScan<'_> {
    type Item = Result<(Vec<u8>, Record)>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(x) = self.buf.next() {
                return Some(x);
            }
            if self.failed || (self.started && self.cursor == 0) {
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
        for bad in [
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
