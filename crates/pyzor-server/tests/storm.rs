//! Bad input: thousands of random and mutated datagrams against a running
//! server. Every one gets a reply (possibly the reference's empty one),
//! the server keeps answering correctly, and the database holds exactly
//! what the one authorised user reported.

mod common;
#[path = "support/mutate.rs"]
mod mutate;
use common::*;
use mutate::mutate;

use pyzor_protocol::wire::client::{build_request, Credentials, Layout};
use pyzor_protocol::wire::Op;
use rand::{Rng, SeedableRng};
use std::time::Duration;

const BOB_KEY: &str = "0123456789abcdef0123456789abcdef01234567";

fn templates() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = vec![
        b"Op: ping\nThread: 1234\nPV: 2.1\n\n".to_vec(),
        b"Op: check\nOp-Digest: s0\nThread: 1234\nPV: 2.1\n\n".to_vec(),
        b"Op: report\nOp-Digest: s0\nOp-Spec: 20,3,60,3\nThread: 1234\nPV: 2.1\nUser: anonymous\nTime: 1\nSig: x\n\n".to_vec(),
        b"Op: whitelist\nOp-Digest: s1\nThread: 1234\nPV: 2.1\n\n".to_vec(),
        b"Op: info\nOp-Digest: s1\nThread: 1234\nPV: 2.1\n\n".to_vec(),
        b"Op: report\nOp-Digest: s2\nThread: 1234\nPV: 2.1\nUser: mallory\nTime: 1\nSig: x\n\n".to_vec(),
    ];
    // A signed report by bob with a stale timestamp: any mutation of it is
    // refused (401) whatever the signature becomes.
    let mut stale = Vec::new();
    build_request(
        Op::Report,
        &["s3"],
        999,
        &Credentials::new("bob", BOB_KEY),
        1_000_000,
        Layout::Single,
        &mut stale,
    )
    .unwrap();
    v.push(stale);
    v
}

#[test]
fn random_and_mutated_datagrams() {
    let home = pyzor_testkit::temp_home();
    std::fs::write(
        home.path().join("pyzord.passwd"),
        format!("bob : {BOB_KEY}\n"),
    )
    .unwrap();
    std::fs::write(
        home.path().join("pyzord.access"),
        "ping check info pong : anonymous : allow\nall : bob : allow\n",
    )
    .unwrap();
    let srv = start_ours(home.path(), &["-e", "lmdb"]);
    // bob's legitimate reports.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let creds = Credentials::new("bob", BOB_KEY);
    let mut expected = std::collections::BTreeMap::new();
    for i in 0..30 {
        let d = format!("good{}", i % 7);
        let mut dg = Vec::new();
        build_request(
            Op::Report,
            &[&d],
            2000 + i,
            &creds,
            now,
            Layout::Single,
            &mut dg,
        )
        .unwrap();
        assert!(raw(srv.port, &dg).starts_with(b"Code: 200"));
        *expected.entry(d).or_insert(0i64) += 1;
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let templates = templates();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut buf = vec![0u8; 70000];
    let total = 3000;
    let mut replies = 0;
    for i in 0..total {
        let d = if i % 4 == 0 {
            let n = rng.random_range(0..2000);
            (0..n).map(|_| rng.random::<u8>()).collect::<Vec<u8>>()
        } else {
            let t = &templates[rng.random_range(0..templates.len())];
            mutate(&mut rng, t)
        };
        let d = if d.len() > 65000 {
            d[..65000].to_vec()
        } else {
            d
        };
        sock.send_to(&d, ("127.0.0.1", srv.port)).unwrap();
        if sock.recv_from(&mut buf).is_ok() {
            replies += 1;
        }
    }
    assert_eq!(replies, total, "every datagram gets a reply");
    // Still answering correctly.
    assert_eq!(
        raw(srv.port, PING),
        b"Code: 200\nDiag: OK\nPV: 2.1\nThread: 1111\n\n"
    );
    let c = raw(
        srv.port,
        b"Op: check\nOp-Digest: good0\nThread: 7\nPV: 2.1\n\n",
    );
    assert_eq!(
        c,
        format!(
            "Code: 200\nDiag: OK\nPV: 2.1\nThread: 7\nCount: {}\nWL-Count: 0\n\n",
            expected["good0"]
        )
        .as_bytes()
    );
    assert_eq!(srv.stop(), Some(0));
    // The database holds exactly bob's reports.
    let engine = pyzor_store::open(&pyzor_store::EngineOptions::new("lmdb", home.path())).unwrap();
    let mut stored = std::collections::BTreeMap::new();
    for r in engine.scan().unwrap() {
        let (k, rec) = r.unwrap();
        assert_eq!(rec.wl_count, 0);
        stored.insert(String::from_utf8(k).unwrap(), rec.r_count);
    }
    assert_eq!(stored, expected);
}
