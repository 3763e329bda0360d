//! Redis Cluster specifics: the masters and the slots they serve (from
//! `CLUSTER NODES`), the hash slot of a key, and batches sent as one
//! pipeline per master, so that a master that is down fails only the
//! operations on its own slots.

use super::pool::{redis_err, Reply};
use crate::StoreError;

/// Number of hash slots of a Redis Cluster.
const SLOTS: u16 = 16384;

/// The hash slot of `key` (Redis Cluster specification, "Key distribution
/// model"): CRC16/XMODEM of the key, or of its hash tag — the bytes between
/// the first `{` and the next `}`, if not empty — modulo 16384.
pub(super) fn key_slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        let close = rest.iter().position(|&b| b == b'}')?;
        (close > 0).then(|| &rest[..close])
    });
    crc16_xmodem(tagged.unwrap_or(key)) % SLOTS
}

/// CRC-16/XMODEM: polynomial 0x1021, initial value 0, no reflection.
fn crc16_xmodem(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// One master line of `CLUSTER NODES`: its address and slot ranges.
struct Master {
    addr: (String, u16),
    slots: Vec<(u16, u16)>,
}

/// The masters listed by `CLUSTER NODES`, skipping failed ones.
fn parse_masters(text: &str) -> Vec<Master> {
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
        let Some((h, Ok(p))) = addr.rsplit_once(':').map(|(h, p)| (h, p.parse())) else {
            continue;
        };
        // Fields 9 on: `a-b` or `a`; `[…]` are slots being migrated.
        let slots = f
            .iter()
            .skip(8)
            .filter_map(|r| match r.split_once('-') {
                Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                None => r.parse().ok().map(|a| (a, a)),
            })
            .collect();
        out.push(Master {
            addr: (h.to_string(), p),
            slots,
        });
    }
    out
}

/// Masters (`host`, `port`) listed by `CLUSTER NODES`, skipping failed ones.
pub(super) fn cluster_masters(text: &str) -> Vec<(String, u16)> {
    parse_masters(text).into_iter().map(|m| m.addr).collect()
}

/// A cluster connection and the cluster's slot map as it was when the
/// connection was made. The map only groups a batch's commands by master;
/// the connection routes every command itself, so a stale map costs
/// isolation, never correctness.
pub(super) struct ClusterConn {
    pub(super) con: redis::cluster::ClusterConnection,
    /// Sorted slot ranges and the index of the master serving them.
    owners: Vec<(u16, u16, usize)>,
}

impl ClusterConn {
    /// Wrap `con`, reading the slot map through it (from a node chosen by
    /// the connection; up to three tries, since that node may be the one
    /// that is down). Without a map every batch is one pipeline.
    pub(super) fn new(mut con: redis::cluster::ClusterConnection) -> Self {
        let mut owners: Vec<(u16, u16, usize)> = Vec::new();
        for _ in 0..3 {
            let text: redis::RedisResult<String> =
                redis::cmd("CLUSTER").arg("NODES").query(&mut con);
            match text {
                Ok(text) => {
                    owners = parse_masters(&text)
                        .into_iter()
                        .enumerate()
                        .flat_map(|(i, m)| m.slots.into_iter().map(move |(a, b)| (a, b, i)))
                        .collect();
                    owners.sort_unstable();
                    break;
                }
                Err(e) => log::warn!("{}", redis_err("CLUSTER NODES", e)),
            }
        }
        ClusterConn { con, owners }
    }

    /// Run `cmds` (each with the key it touches), one cluster pipeline per
    /// master: a master that cannot be reached fails only its own group
    /// ([`Reply::Failed`]); an error reply fails its command only, and the
    /// other replies of its group, which the cluster pipeline drops, are
    /// [`Reply::Lost`] (those commands were run).
    pub(super) fn run_grouped(&mut self, cmds: Vec<(redis::Cmd, u16)>) -> Vec<Reply> {
        let mut groups: Vec<(Option<usize>, Vec<usize>, redis::cluster::ClusterPipeline)> =
            Vec::new();
        for (i, (cmd, slot)) in cmds.into_iter().enumerate() {
            let owner = owner_of(&self.owners, slot);
            let g = match groups.iter().position(|g| g.0 == owner) {
                Some(g) => g,
                None => {
                    groups.push((owner, Vec::new(), redis::cluster::cluster_pipe()));
                    groups.len() - 1
                }
            };
            groups[g].1.push(i);
            groups[g].2.add_command(cmd);
        }
        let n = groups.iter().map(|g| g.1.len()).sum();
        let mut out: Vec<Reply> = (0..n).map(|_| Reply::Lost).collect();
        for (_, idx, p) in groups {
            match p.query::<Vec<redis::Value>>(&mut self.con) {
                Ok(vals) => {
                    for (i, v) in idx.into_iter().zip(vals) {
                        out[i] = Reply::Done(v);
                    }
                }
                Err(e) => {
                    let text = e.to_string();
                    match e.into_server_errors() {
                        Some(errs) => {
                            for (k, se) in errs.iter() {
                                if let Some(&i) = idx.get(*k) {
                                    out[i] = Reply::Done(redis::Value::ServerError(se.clone()));
                                }
                            }
                        }
                        None => {
                            for i in idx {
                                out[i] = Reply::Failed(StoreError::Unavailable(format!(
                                    "Redis cluster pipeline: {text}"
                                )));
                            }
                        }
                    }
                }
            }
        }
        out
    }
}

/// The master serving `slot` in sorted `owners` ranges, if any.
fn owner_of(owners: &[(u16, u16, usize)], slot: u16) -> Option<usize> {
    let i = owners.partition_point(|r| r.0 <= slot);
    let r = owners.get(i.checked_sub(1)?)?;
    (slot <= r.1).then_some(r.2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_and_owners() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(crc16_xmodem(b"123456789"), 0x31c3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"somekey"), 11058);
        // An empty first tag: the whole key is hashed.
        assert_eq!(key_slot(b"foo{}{bar}"), crc16_xmodem(b"foo{}{bar}") % SLOTS);
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        let text = "a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460\n\
                    a2 127.0.0.1:7001@17001 master - 0 0 2 connected 5461-10922 [5462->-b]\n\
                    a3 127.0.0.1:7002@17002 master,fail - 0 0 3 connected 10923-16383\n\
                    a4 127.0.0.1:7003@17003 slave a1 0 0 1 connected\n";
        assert_eq!(
            cluster_masters(text),
            vec![
                ("127.0.0.1".to_string(), 7000),
                ("127.0.0.1".to_string(), 7001)
            ]
        );
        let owners = [(0, 5460, 0), (5461, 10922, 1)];
        let c = |slot| owner_of(&owners, slot);
        assert_eq!(
            (c(0), c(5460), c(5461), c(12000)),
            (Some(0), Some(0), Some(1), None)
        );
    }
}
