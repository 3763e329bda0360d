//! The forwarder's batches are accepted and counted by the reference
//! pyzord: anonymous and signed, full and partial batches.

mod common;

use std::time::Duration;

use common::*;
use pyzor_config::client::{Account, Accounts, ServerAddr};
use pyzor_server::forward::client::{ForwardOp, Forwarder, ForwarderConfig};

const BOB_KEY: &str = "cf88277c5d4abdc0a3f56f416011966d04a3f462";

/// `n` distinct 40-hex digests, different in every run (`tag` keeps the
/// sets of one run apart).
fn fresh_digests(tag: &str, n: usize) -> Vec<String> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let seed = tag
        .bytes()
        .fold(nanos ^ u64::from(std::process::id()), |h, b| {
            h.rotate_left(5) ^ u64::from(b)
        });
    let mut rng = pyzor_testkit::XorShift::new(seed | 1);
    (0..n)
        .map(|_| {
            format!(
                "{:016x}{:016x}{:08x}",
                rng.next(),
                rng.next(),
                rng.next() as u32
            )
        })
        .collect()
}

fn digest_input(d: &[String]) -> Vec<u8> {
    let mut s = d.join("\n");
    s.push('\n');
    s.into_bytes()
}

#[test]
fn forwarded_batches_are_counted_by_the_reference_server() {
    let Some(venv) = venv("forwarded_batches_are_counted_by_the_reference_server") else {
        return;
    };
    let home = pyzor_testkit::temp_home();
    std::fs::write(
        home.path().join("pyzord.passwd"),
        format!("bob : {BOB_KEY}\n"),
    )
    .unwrap();
    std::fs::write(
        home.path().join("pyzord.access"),
        "all : bob : allow\ncheck report ping pong info : anonymous : allow\n",
    )
    .unwrap();
    let server = start_reference(&venv, home.path(), &[]);
    let mut accounts = Accounts::new();
    accounts.insert(
        ("127.0.0.1".to_string(), server.port),
        Account {
            username: "bob".into(),
            salt: String::new(),
            key: BOB_KEY.into(),
        },
    );
    let fwd = Forwarder::start(
        vec![ServerAddr::new("127.0.0.1", server.port)],
        accounts,
        ForwarderConfig {
            flush_interval: Duration::from_millis(200),
            ..Default::default()
        },
    )
    .unwrap();
    let reports = fresh_digests("fwd-r", 23);
    let wls = fresh_digests("fwd-w", 3);
    for d in &reports {
        assert!(fwd.submit(ForwardOp::Report, d));
    }
    // The 23rd digest travels in a partial batch, sent by the timer.
    for d in &wls {
        assert!(fwd.submit(ForwardOp::Whitelist, d));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let stats = fwd.stats();
    assert_eq!(
        stats.requests_sent, 4,
        "3 report batches and 1 whitelist batch"
    );
    assert_eq!(stats.error_replies, 0, "the signed batches were accepted");
    let client = client_home(&home.path().join("client"), server.port, &[]);
    let (out, _) = ref_pyzor(
        &venv,
        &client,
        &["-s", "digests", "check"],
        &digest_input(&reports),
    );
    assert_eq!(out.matches("(200, 'OK')\t1\t0\n").count(), 23, "{out}");
    let (out, _) = ref_pyzor(
        &venv,
        &client,
        &["-s", "digests", "check"],
        &digest_input(&wls),
    );
    assert_eq!(out.matches("(200, 'OK')\t0\t1\n").count(), 3, "{out}");
    drop(fwd);

    // Anonymous whitelists are refused (403) by the default ACL: counted.
    let fwd = Forwarder::start(
        vec![ServerAddr::new("127.0.0.1", server.port)],
        Accounts::new(),
        ForwarderConfig::default(),
    )
    .unwrap();
    fwd.submit(ForwardOp::Whitelist, &fresh_digests("anon-w", 1)[0]);
    // Sent by the timer (1 s), the 403 reply read on the next wake-up.
    let t0 = std::time::Instant::now();
    while fwd.stats().error_replies == 0 && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let st = fwd.stats();
    assert_eq!((st.requests_sent, st.error_replies), (1, 1));
}
