//! The Lua scripts (one atomic step per report/whitelist, expiry check,
//! whole-record put) and how they are loaded and called.

use super::pool::{redis_err, Conn};
use super::PREFIX_V1;
use crate::Result;

/// Count one report or whitelist atomically and return the hash.
/// KEYS[1] key; ARGV[1] `r` or `wl`; ARGV[2] now (epoch s); ARGV[3] TTL (0 = none).
///
/// All or nothing: every check comes before the first write, so a script
/// that fails has written nothing (Redis does not undo a script's writes).
/// It fails — an error reply, the operation's 500 — when the key holds no
/// hash (`WRONGTYPE` from `HMGET`), or when one of the six fields is not an
/// integer of at most 64 bits written plainly (`-?[0-9]+`, what the
/// reference and we write): then the record could not be read back, and a
/// count that was written but answered 500 would be a lie. The count
/// saturates at sys.maxsize (`HINCRBY` refuses to overflow; it is not
/// called there). Unlike the reference's HSETNX, an `*_entered` of `0`
/// (never, as the reference's `__setitem__` writes it) is also set.
pub(super) const SCRIPT_COUNT: &str = r#"
local names = {'r_count', 'r_entered', 'r_updated', 'wl_count', 'wl_entered', 'wl_updated'}
local v = redis.call('HMGET', KEYS[1], unpack(names))
for i = 1, 6 do
  local x = v[i]
  if x then
    local digits = string.match(x, '^%-?(%d+)$')
    if not digits or #digits > 19 or (#digits == 19 and digits > '9223372036854775807') then
      return redis.error_reply('ERR field ' .. names[i] .. ' of the record is not an integer')
    end
  end
end
local c = (ARGV[1] == 'r') and 1 or 4
if v[c] ~= '9223372036854775807' then
  redis.call('HINCRBY', KEYS[1], names[c], 1)
end
if not v[c + 1] or tonumber(v[c + 1]) == 0 then
  redis.call('HSET', KEYS[1], names[c + 1], ARGV[2])
end
redis.call('HSET', KEYS[1], names[c + 2], ARGV[2])
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
