//! Forwarding between two of our servers: reports and whitelists accepted
//! by A reach B in signed batches (partial batches flushed within seconds),
//! checks are never forwarded, and a refused report is not forwarded.

mod common;
use common::*;

use std::time::{Duration, Instant};

fn send(port: u16, op: &str, digest: &str) -> Vec<u8> {
    raw(
        port,
        format!("Op: {op}\nOp-Digest: {digest}\nThread: 4321\nPV: 2.1\n\n").as_bytes(),
    )
}

fn count(port: u16, digest: &str) -> (i64, i64) {
    let r = String::from_utf8(send(port, "check", digest)).unwrap();
    let f = |n: &str| {
        r.lines()
            .find_map(|l| l.strip_prefix(n))
            .map_or(-1, |v| v.parse().unwrap())
    };
    (f("Count: "), f("WL-Count: "))
}

#[test]
fn reports_and_whitelists_are_forwarded_signed() {
    // B: only the forwarding account may write; anonymous may check.
    let b_home = pyzor_testkit::temp_home();
    std::fs::write(
        b_home.path().join("pyzord.passwd"),
        "fwd : 00112233445566778899aabbccddeeff00112233\n",
    )
    .unwrap();
    std::fs::write(
        b_home.path().join("pyzord.access"),
        "all : fwd : allow\ncheck ping : anonymous : allow\n",
    )
    .unwrap();
    let b = start_ours(b_home.path(), &["-e", "memory"]);
    // The client home A forwards to.
    let a_home = pyzor_testkit::temp_home();
    let fwd_dir = client_home(
        &a_home.path().join("fwd"),
        b.port,
        &[("fwd", "00112233445566778899aabbccddeeff00112233")],
    );
    std::fs::write(
        a_home.path().join("pyzord.access"),
        "check report whitelist ping : anonymous : allow\n",
    )
    .unwrap();
    let fwd_arg = fwd_dir.to_string_lossy().into_owned();
    let a = start_ours(
        a_home.path(),
        &["-e", "memory", "--forward-client-homedir", &fwd_arg],
    );

    for i in 0..13 {
        assert!(send(a.port, "report", &format!("r{}", i % 5)).starts_with(b"Code: 200"));
    }
    assert!(send(a.port, "whitelist", "w1").starts_with(b"Code: 200"));
    assert!(send(a.port, "check", "c1").starts_with(b"Code: 200"));
    assert!(raw(
        a.port,
        b"Op: report\nOp-Digest: refused\nThread: 1\nPV: 3.0\n\n"
    )
    .starts_with(b"Code: 505"));
    let t0 = Instant::now();
    loop {
        let got: Vec<(i64, i64)> = (0..5).map(|i| count(b.port, &format!("r{i}"))).collect();
        let wl = count(b.port, "w1");
        if got == vec![(3, 0), (3, 0), (3, 0), (2, 0), (2, 0)] && wl == (0, 1) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "forwarded counts on B: {got:?} {wl:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(count(b.port, "c1"), (0, 0), "checks are never forwarded");
    assert_eq!(
        count(b.port, "refused"),
        (0, 0),
        "refused reports are not forwarded"
    );
    assert_eq!(a.stop(), Some(0));
    assert_eq!(b.stop(), Some(0));
}
