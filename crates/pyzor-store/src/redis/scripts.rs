//! The Lua scripts (one atomic step per report/whitelist, expiry check,
//! whole-record put) and how they are loaded and called.

use super::pool::{redis_err, Conn};
use super::PREFIX_V1;
use crate::Result;

/// Count one report or whitelist atomically and return the hash.
/// KEYS[1] key; ARGV[1] `r` or `wl`; ARGV[2] now (epoch s); ARGV[3] TTL (0 = none).
/// The count saturates at sys.maxsize (HINCRBY refuses to overflow; the
/// error is swallowed). Unlike the reference's HSETNX, an `*_entered` of
/// `0` (never, as the reference's `__setitem__` writes it) is also set.
pub(super) const SCRIPT_COUNT: &str = r#"
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
pub(super) const SCRIPT_EXPIRE: &str = r#"
local v = redis.call('HMGET', KEYS[1], 'r_updated', 'wl_updated')
local r = tonumber(v[1]) or 0
local w = tonumber(v[2]) or 0
local last = math.max(r, w)
if last > 0 and last < tonumber(ARGV[1]) then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

/// Replace a whole v1 record (migration, import): atomic per record, so it
/// also works in a cluster where a MULTI cannot span slots.
/// KEYS[1] key; ARGV[1..6] the six fields; ARGV[7] TTL (0 = none).
pub(super) const SCRIPT_PUT: &str = r#"
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'r_count', ARGV[1], 'r_entered', ARGV[2], 'r_updated', ARGV[3],
  'wl_count', ARGV[4], 'wl_entered', ARGV[5], 'wl_updated', ARGV[6])
if tonumber(ARGV[7]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[7]) end
return 1
"#;

const SCRIPTS: [&str; 3] = [SCRIPT_COUNT, SCRIPT_EXPIRE, SCRIPT_PUT];

fn sha1_hex(s: &str) -> String {
    use sha1::{Digest, Sha1};
    Sha1::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Load the scripts (single Redis; in a cluster the scripts go as EVAL)
/// and, either way, prove the connection works.
pub(super) fn load_scripts(c: &mut Conn) -> Result<()> {
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
pub(super) fn script_cmd(cluster: bool, script: &str, key: &[u8]) -> redis::Cmd {
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
