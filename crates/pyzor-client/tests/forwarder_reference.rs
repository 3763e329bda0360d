//! The forwarder's batches are accepted and counted by the reference
//! pyzord: anonymous and signed, full and partial batches.

mod common;

use std::time::Duration;

use common::*;
use pyzor_client::forwarder::{ForwardOp, Forwarder, ForwarderConfig};
use pyzor_core::config::client::{Account, Accounts, ServerAddr};

#[test]
fn forwarded_batches_are_counted_by_the_reference_server() {
    let Some(c) = Clients::get("forwarded_batches_are_counted_by_the_reference_server") else {
        return;
    };
    let server = start_server(&c.pyzord(), &[], true).expect("reference pyzord");
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
    let home = ClientHome::new(&[format!("127.0.0.1:{}", server.port)], &[]);
    let out = run_client(
        &c.ours,
        home.path(),
        &["-s", "digests", "check"],
        &digest_input(&reports),
    );
    assert_eq!(
        out.stdout.matches("(200, 'OK')\t1\t0\n").count(),
        23,
        "{}",
        out.stdout
    );
    let out = run_client(
        &c.ours,
        home.path(),
        &["-s", "digests", "check"],
        &digest_input(&wls),
    );
    assert_eq!(
        out.stdout.matches("(200, 'OK')\t0\t1\n").count(),
        3,
        "{}",
        out.stdout
    );
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
