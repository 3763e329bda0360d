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
//! (the port field is ignored and the db must be 0). Batches then go as
//! one cluster pipeline per master, with the scripts sent as `EVAL`; scans
//! and expiry walk every master listed by `CLUSTER NODES`. Redis Sentinel:
//! `sentinel:<master name>@host:port;host:port,,password,db` (Sentinel
//! addresses; the password and db are the master's); every new connection
//! asks the Sentinels for the current master, so a failover is followed.
//!
//! Unlike the reference, each report/whitelist is one Lua script (atomic:
//! increment, first-entered, updated, TTL), and a batch is one pipeline —
//! no transaction: each command's reply says what became of its operation
//! ([`StoreError::Partial`] for the failed ones). A broken connection is
//! dropped with the idle ones and re-made on the next request; while Redis
//! cannot be reached, new connections are attempted with exponential
//! backoff (50 ms … 2 s; behind Sentinels, per master address) and
//! requests fail fast with [`StoreError::Unavailable`] (the reference's
//! 500).
//!
//! | module | concern |
//! | --- | --- |
//! | this one | the [`Engine`] impl: batches as pipelines, put/delete, expiry |
//! | `dsn` | the DSN forms |
//! | `pool` | connections (single, Sentinel, Cluster), idle pool, nodes, pipelines |
//! | `cluster` | hash slots, the masters' slot map, a batch as one pipeline per master |
//! | `codec` | v1 hash fields and v0 strings ↔ [`Record`] |
//! | `scripts` | the Lua scripts, loading and calling them |
//! | `scan` | `SCAN` over every node (export, migration) |

mod cluster;
mod codec;
mod dsn;
mod pool;
mod scan;
mod scripts;

use std::collections::HashMap;

use pyzor_protocol::{Record, Timestamp};

use crate::{Engine, Op, RecordIter, Result, StoreError};
use codec::{after_count, decode_hash, decode_v0, encode_v0, secs};
use dsn::{parse_dsn, Target};
use pool::{connect_target, reply_err, run, run_each, Pool, Reply};
use scan::{scan_round, RedisScan};
use scripts::{load_scripts, script_cmd, SCRIPT_COUNT, SCRIPT_EXPIRE, SCRIPT_PUT};

/// Key prefix of the current layout (`NAMESPACE` in the reference).
pub(crate) const PREFIX_V1: &[u8] = b"pyzord.digest_v1.";
/// Key prefix of the deprecated layout.
pub(crate) const PREFIX_V0: &[u8] = b"pyzord.digest.";

/// Which of the two layouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    V1,
    V0,
}

/// The `redis` and `redis_v0` engines.
pub struct RedisEngine {
    pool: Pool,
    layout: Layout,
    /// CleanupAge in seconds (0: no TTL).
    ttl: u64,
}

fn real_key(prefix: &[u8], digest: &[u8]) -> Vec<u8> {
    [prefix, digest].concat()
}

impl RedisEngine {
    /// Connect (once, to fail early on a wrong DSN or password) and load
    /// the scripts.
    pub fn open(dsn: &str, layout: Layout, cleanup_age: u64, connections: usize) -> Result<Self> {
        let target = parse_dsn(dsn)?;
        let e = RedisEngine {
            pool: Pool::new(target, connections),
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
        let found = self.pool.nodes().and_then(|nodes| {
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

    /// The command reading the record under `key`.
    fn read_cmd(&self, key: Vec<u8>) -> redis::Cmd {
        let mut c = redis::cmd(match self.layout {
            Layout::V1 => "HGETALL",
            Layout::V0 => "GET",
        });
        c.arg(key);
        c
    }

    /// One operation's record: from the count script's reply (the fields
    /// before its write) for a report/whitelist, else from a read's
    /// (`HGETALL` for v1, `GET` for v0; also the re-read of a write whose
    /// reply was lost).
    fn decode_op(
        &self,
        op: &Op<'_>,
        reread: bool,
        now: Timestamp,
        v: Reply,
    ) -> Result<Option<Record>> {
        let digest = op.digest();
        if reread || !op.is_write() {
            return self.decode_reply(digest, v);
        }
        let before: Vec<Option<Vec<u8>>> = redis::from_redis_value(server_value(digest, v)?)
            .map_err(|e| {
                codec::corrupt(digest, format!("unexpected reply to the count script: {e}"))
            })?;
        after_count(digest, before, matches!(op, Op::Report(_)), now).map(Some)
    }

    /// One read's reply: `HGETALL` (v1) or `GET` (v0).
    fn decode_reply(&self, digest: &[u8], v: Reply) -> Result<Option<Record>> {
        let v = server_value(digest, v)?;
        let unexpected =
            |e: redis::ParsingError| codec::corrupt(digest, format!("unexpected Redis reply: {e}"));
        match self.layout {
            Layout::V1 => {
                let h: HashMap<Vec<u8>, Vec<u8>> =
                    redis::from_redis_value(v).map_err(unexpected)?;
                decode_hash(digest, &h)
            }
            Layout::V0 => {
                let v: Option<Vec<u8>> = redis::from_redis_value(v).map_err(unexpected)?;
                v.as_deref().map(|v| decode_v0(digest, v)).transpose()
            }
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

/// A reply's value, or the error it stands for (lost, failed, an error reply).
fn server_value(digest: &[u8], v: Reply) -> Result<redis::Value> {
    let v = match v {
        Reply::Done(v) => v,
        Reply::Lost => {
            return Err(StoreError::Unavailable(
                "Redis Cluster: the reply to a command was lost".into(),
            ))
        }
        Reply::Failed(e) => return Err(e),
    };
    if let redis::Value::ServerError(e) = &v {
        return Err(reply_err(digest, e));
    }
    Ok(v)
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
        let slot = |key: &[u8]| if cluster { cluster::key_slot(key) } else { 0 };
        let cmds: Vec<(redis::Cmd, u16)> = ops
            .iter()
            .map(|op| {
                let key = real_key(self.prefix(), op.digest());
                let slot = slot(&key);
                let cmd = match *op {
                    Op::Get(_) => self.read_cmd(key),
                    Op::Report(_) | Op::Whitelist(_) => {
                        let side = if matches!(op, Op::Report(_)) {
                            "r"
                        } else {
                            "wl"
                        };
                        let mut c = script_cmd(cluster, SCRIPT_COUNT, &key);
                        c.arg(side).arg(now.secs()).arg(self.ttl);
                        c
                    }
                };
                (cmd, slot)
            })
            .collect();
        let start = out.len();
        // A pipeline is no transaction: each command's reply says what
        // became of its operation, and a failed one (which wrote nothing:
        // see SCRIPT_COUNT) fails only its own operation.
        let r = self.pool.with(|c| {
            let mut replies = run_each(c, cmds)?;
            let lost: Vec<usize> = (0..replies.len())
                .filter(|&i| matches!(replies[i], Reply::Lost))
                .collect();
            let mut reread = vec![false; replies.len()];
            if !lost.is_empty() {
                // A cluster pipeline with an error reply drops the other
                // replies, but those commands were run: read their records.
                let reads = lost
                    .iter()
                    .filter_map(|&i| ops.get(i))
                    .map(|op| {
                        let key = real_key(self.prefix(), op.digest());
                        let slot = slot(&key);
                        (self.read_cmd(key), slot)
                    })
                    .collect();
                for (i, v) in lost.into_iter().zip(run_each(c, reads)?) {
                    replies[i] = v;
                    reread[i] = true;
                }
            }
            if replies.len() != ops.len() {
                return Err(StoreError::Other(format!(
                    "Redis answered {} replies to {} commands",
                    replies.len(),
                    ops.len()
                )));
            }
            let mut failed = Vec::new();
            for (i, (op, v)) in ops.iter().zip(replies).enumerate() {
                match self.decode_op(op, reread[i], now, v) {
                    Ok(rec) => out.push(rec),
                    Err(e) => {
                        out.push(None);
                        failed.push((i, e));
                    }
                }
            }
            crate::batch_outcome(failed, ops.len(), out, start)
        });
        if matches!(&r, Err(e) if !matches!(e, StoreError::Partial(_))) {
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
        Ok(Box::new(RedisScan::new(self, self.pool.nodes()?)))
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
        for node in self.pool.nodes()? {
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
        for node in self.pool.nodes().ok()? {
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
