//! The Lua scripts (one atomic step per report/whitelist, expiry check,
//! whole-record put) and how they are loaded and called.

use super::pool::{redis_err, Conn};
use super::PREFIX_V1;
use crate::Result;

/// Count one report or whitelist atomically (the reference's
/// `RedisDBHandle.report`/`whitelist`: `HINCRBY` the count, `HSETNX` the
/// first-entered date, `HSET` the updated date, `EXPIRE` CleanupAge) and
/// return the six fields as they were **before** (`HMGET` order of
/// [`FIELDS`], nil for a missing one): the caller derives the record after
/// the write ([`super::codec::after_count`]) instead of reading it back, as
/// a report's reply carries no counts.
/// KEYS[1] key; ARGV[1] `r` or `wl`; ARGV[2] now (epoch s); ARGV[3] TTL (0 = none).
///
/// All or nothing: every check comes before the first write, so a script
/// that fails has written nothing (Redis does not undo a script's writes).
/// It fails — an error reply, the operation's 500 — when the key holds no
/// hash (`WRONGTYPE` from `HMGET`), or when one of the six fields is not an
/// integer of at most 64 bits written plainly (`-?[0-9]+`, what the
/// reference and we write): then the record could not be read, and a
/// count that was written but answered 500 would be a lie. The count
/// saturates at sys.maxsize (`HINCRBY` refuses to overflow; it is not
/// called there). Unlike the reference's HSETNX, an `*_entered` of `0`
/// (never, as the reference's `__setitem__` writes it) is also set.
///
/// Cost (bench/RESULTS-sql.md, "redis report script"): one `HMGET`, one
/// `HSET` of the count and dates, one `EXPIRE`, and no read-back. The
/// count is computed here while it has at most 15 digits and is written
/// canonically (exact in Lua's doubles, and what `HINCRBY` would accept);
/// larger or non-canonical counts go through `HINCRBY`, which refuses what
/// it cannot parse before anything is written.
pub(super) const SCRIPT_COUNT: &str = r#"
local names = {'r_count', 'r_entered', 'r_updated', 'wl_count', 'wl_entered', 'wl_updated'}
local v = redis.call('HMGET', KEYS[1], unpack(names))
for i = 1, 6 do
  local x = v[i]
  if x then
    if not string.find(x, '^%-?%d+$') then
      return redis.error_reply('ERR field ' .. names[i] .. ' of the record is not an integer')
    end
    if #x > 18 then
      local d = string.match(x, '%d+')
      if #d > 19 or (#d == 19 and d > '9223372036854775807') then
        return redis.error_reply('ERR field ' .. names[i] .. ' of the record is not an integer')
      end
    end
  end
end
local c = (ARGV[1] == 'r') and 1 or 4
local n = v[c]
local count
if not n then
  count = '1'
elseif #n <= 15 and (n == '0' or string.find(n, '^%-?[1-9]%d*$')) then
  count = string.format('%d', tonumber(n) + 1)
elseif n ~= '9223372036854775807' then
  redis.call('HINCRBY', KEYS[1], names[c], 1)
end
local now = ARGV[2]
if not count then
  if not v[c + 1] or tonumber(v[c + 1]) == 0 then
    redis.call('HSET', KEYS[1], names[c + 1], now, names[c + 2], now)
  else
    redis.call('HSET', KEYS[1], names[c + 2], now)
  end
elseif not v[c + 1] or tonumber(v[c + 1]) == 0 then
  redis.call('HSET', KEYS[1], names[c], count, names[c + 1], now, names[c + 2], now)
else
  redis.call('HSET', KEYS[1], names[c], count, names[c + 2], now)
end
if tonumber(ARGV[3]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
return v
"#;

/// The v1 hash fields, in the order [`SCRIPT_COUNT`] returns them.
pub(super) const FIELDS: [&str; 6] = [
    "r_count",
    "r_entered",
    "r_updated",
    "wl_count",
    "wl_entered",
    "wl_updated",
];

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
                .query(&mut con.con)
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
