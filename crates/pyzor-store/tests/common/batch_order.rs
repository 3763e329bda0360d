//! The order semantics of a batch, one for every engine: `execute` answers
//! each operation as if the batch's operations ran one after the other —
//! an operation sees every count before it in the batch and none after it,
//! and a digest named twice counts twice. The memory engine, which does
//! exactly that, is the oracle; an engine whose batches are a few
//! statements (mysql: one upsert, one read) must agree with it reply for
//! reply.
#![allow(dead_code)]

use pyzor_protocol::{Record, Timestamp};
use pyzor_store::memory::MemoryEngine;
use pyzor_store::{Engine, Op};
use pyzor_testkit::XorShift;

/// Run `ops` at `now` on `e` and on a memory engine in the state
/// `oracle` holds; every reply must be the same.
pub fn same_replies(e: &dyn Engine, oracle: &MemoryEngine, ops: &[Op<'_>], now: Timestamp) {
    let (mut got, mut want) = (Vec::new(), Vec::new());
    e.execute(ops, now, &mut got).unwrap();
    oracle.execute(ops, now, &mut want).unwrap();
    assert_eq!(got.len(), ops.len(), "one reply per operation");
    let shown: Vec<String> = ops
        .iter()
        .map(|op| {
            let kind = match op {
                Op::Get(_) => "get",
                Op::Report(_) => "report",
                Op::Whitelist(_) => "whitelist",
            };
            format!("{kind} {}", String::from_utf8_lossy(op.digest()))
        })
        .collect();
    let reads = ops.iter().any(|op| !op.is_write());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        if !reads {
            // a batch of writes only: no record is read back (SQL engines)
            assert!(g.is_none() || g == w, "operation #{i} of {shown:#?}: {g:?}");
            continue;
        }
        assert_eq!(
            g, w,
            "operation #{i} ({}) of the batch {shown:#?}",
            shown[i]
        );
    }
}

/// Random batches over `keys`, batch by batch with the same clock (whole
/// seconds, sometimes the same second twice) on `e` and the memory engine:
/// reports only, whitelists and reports, reads only, or any mix, from a
/// few digests (many repeats in one batch) or many (large batches, more
/// distinct digests than one statement carries). Then every record must
/// be the same. `keys` must be new to `e`.
pub fn random_batches_agree_with_memory(
    e: &dyn Engine,
    keys: &[Vec<u8>],
    seed: u64,
    batches: usize,
) {
    let oracle = MemoryEngine::new();
    let mut rng = XorShift::new(seed);
    let mut now = 1_790_000_000i64;
    for _ in 0..batches {
        now += rng.below(3) as i64;
        let few = rng.chance(70);
        let pool = if few {
            &keys[..12.min(keys.len())]
        } else {
            keys
        };
        let len = if few {
            1 + rng.below(24)
        } else {
            1 + rng.below(3 * keys.len() / 2)
        };
        let mode = rng.below(4);
        let ops: Vec<Op<'_>> = (0..len)
            .map(|_| {
                let k = &pool[rng.below(pool.len())][..];
                match (mode, rng.below(3)) {
                    (0, _) => Op::Report(k),
                    (1, 0) => Op::Whitelist(k),
                    (1, _) => Op::Report(k),
                    (2, _) => Op::Get(k),
                    (_, 0) => Op::Get(k),
                    (_, 1) => Op::Report(k),
                    (_, _) => Op::Whitelist(k),
                }
            })
            .collect();
        same_replies(e, &oracle, &ops, Timestamp::from_secs(now));
    }
    for k in keys {
        assert_eq!(
            e.get(k).unwrap(),
            oracle.get(k).unwrap(),
            "final record of {:?}",
            String::from_utf8_lossy(k)
        );
    }
}

/// One digest, every kind of operation, in one batch, on a record that
/// already has both sides (`d`) and on one never seen (`fresh`): each
/// operation's reply, written out.
pub fn one_digest_every_kind_in_one_batch(e: &dyn Engine, d: &[u8], fresh: &[u8]) {
    let s = |x: i64| Some(Timestamp::from_secs(x));
    let old = Record {
        r_count: 5,
        wl_count: 2,
        r_entered: s(1_700_000_000),
        r_updated: s(1_700_000_100),
        wl_entered: s(1_700_000_200),
        wl_updated: s(1_700_000_300),
    };
    e.put_many(&[(d.to_vec(), old)]).unwrap();
    let now = 1_790_000_000;
    let ops = [
        Op::Get(d),       // check: before anything of the batch
        Op::Report(d),    // report
        Op::Get(d),       // info: sees the report, not the whitelist
        Op::Whitelist(d), // whitelist
        Op::Report(d),    // report again
        Op::Get(d),       // check: sees everything
    ];
    let mut out = Vec::new();
    e.execute(&ops, Timestamp::from_secs(now), &mut out)
        .unwrap();
    let reported = Record {
        r_count: 6,
        r_updated: s(now),
        ..old
    };
    let whitelisted = Record {
        wl_count: 3,
        wl_updated: s(now),
        ..reported
    };
    let last = Record {
        r_count: 7,
        ..whitelisted
    };
    assert_eq!(
        out,
        vec![
            Some(old),
            Some(reported),
            Some(reported),
            Some(whitelisted),
            Some(last),
            Some(last)
        ]
    );
    assert_eq!(e.get(d).unwrap(), Some(last));
    // the same on a digest never seen: a read before its first count finds
    // nothing; the side not counted yet stays "never"
    let ops = [
        Op::Get(fresh),
        Op::Whitelist(fresh),
        Op::Get(fresh),
        Op::Report(fresh),
        Op::Get(fresh),
    ];
    let mut out = Vec::new();
    e.execute(&ops, Timestamp::from_secs(now), &mut out)
        .unwrap();
    let w = Record {
        wl_count: 1,
        wl_entered: s(now),
        wl_updated: s(now),
        ..Record::default()
    };
    let both = Record {
        r_count: 1,
        r_entered: s(now),
        r_updated: s(now),
        ..w
    };
    assert_eq!(out, vec![None, Some(w), Some(w), Some(both), Some(both)]);
}
