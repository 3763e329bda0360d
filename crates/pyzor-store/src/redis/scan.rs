//! Reading every record: `SCAN` over the layout's prefix on every node,
//! one pipelined read per round.

use std::collections::HashMap;

use pyzor_protocol::Record;

use super::codec::{decode_hash, decode_v0};
use super::dsn::Target;
use super::pool::{connect_target, redis_err, run, Conn};
use super::{Layout, RedisEngine};
use crate::Result;

const SCAN_COUNT: usize = 1000;

pub(super) fn scan_round(c: &mut Conn, cursor: u64, prefix: &[u8]) -> Result<(u64, Vec<Vec<u8>>)> {
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

pub(super) struct RedisScan<'a> {
    e: &'a RedisEngine,
    nodes: Vec<Target>,
    node: usize,
    /// A connection of its own to the node being scanned.
    conn: Option<Conn>,
    cursor: u64,
    buf: std::vec::IntoIter<Item>,
    failed: bool,
}

impl<'a> RedisScan<'a> {
    /// A scan of `nodes`, starting on the first.
    pub(super) fn new(e: &'a RedisEngine, nodes: Vec<Target>) -> Self {
        RedisScan {
            e,
            nodes,
            node: 0,
            conn: None,
            cursor: 0,
            buf: Vec::new().into_iter(),
            failed: false,
        }
    }

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
