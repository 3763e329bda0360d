//! Prints the user-space cost of the server's per-request work (parse,
//! decide, engine batch on the memory engine, format) without sockets, for
//! anonymous checks as the reference client sends them, signed checks and
//! reports. Run with `cargo run --release -p pyzor-server --example hotpath`.
//! Times are this thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), so that a
//! busy machine inflates them less than wall time.

use std::sync::Arc;

use pyzor_protocol::auth::{parse_access, parse_passwd};
use pyzor_protocol::wire::client::{build_request, Credentials, Layout};
use pyzor_protocol::wire::Op;

use pyzor_server::rules::Rules;
use pyzor_server::worker::{Processor, Shared};
use pyzor_store::memory::MemoryEngine;

/// CPU time of the calling thread, in nanoseconds.
fn cpu_ns() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec.
    unsafe {
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts);
    }
    ts.tv_sec as f64 * 1e9 + ts.tv_nsec as f64
}

fn main() {
    let (accounts, _) = parse_passwd("bob : 0123456789abcdef\n");
    let (acl, _) = parse_access("all : bob : allow\nall : anonymous : allow\n", &accounts);
    let shared = Shared::standalone(Arc::new(MemoryEngine::new()), Rules { accounts, acl });
    // The parser alone, for scale.
    {
        let mut req = Vec::new();
        build_request(
            Op::Check,
            &["0123456789abcdef0123456789abcdef01234567"],
            4000,
            &Credentials::anonymous(),
            1,
            Layout::Single,
            &mut req,
        )
        .unwrap();
        let mut parsed = pyzor_protocol::wire::server::Parsed::new();
        let n = 2_000_000;
        let t0 = cpu_ns();
        for _ in 0..n {
            parsed.parse(std::hint::black_box(&req));
            std::hint::black_box(parsed.get("Thread"));
        }
        println!(
            "{:20} {:7.0} ns per request ({} bytes)",
            "parse only",
            (cpu_ns() - t0) / n as f64,
            req.len()
        );
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let anon = Credentials::anonymous();
    let bob = Credentials::new("bob", "0123456789abcdef");
    for (name, op, creds) in [
        ("check, anonymous", Op::Check, &anon),
        ("check, signed", Op::Check, &bob),
        ("report, anonymous", Op::Report, &anon),
    ] {
        let reqs: Vec<Vec<u8>> = (0..32)
            .map(|i| {
                let d = format!("{:040x}", i * 7919);
                let mut out = Vec::new();
                build_request(
                    op,
                    &[&d],
                    1024 + i as u32,
                    creds,
                    now,
                    Layout::Single,
                    &mut out,
                )
                .unwrap();
                out
            })
            .collect();
        let mut p = Processor::new(&shared);
        let mut replies: Vec<Vec<u8>> = (0..32).map(|_| Vec::with_capacity(512)).collect();
        let batches = 40_000;
        for _ in 0..1000 {
            p.process(&shared, 32, |i| (&reqs[i][..], None), &mut replies);
        }
        let t0 = cpu_ns();
        for _ in 0..batches {
            p.process(&shared, 32, |i| (&reqs[i][..], None), &mut replies);
        }
        let ns = (cpu_ns() - t0) / (batches * 32) as f64;
        assert!(replies[0].starts_with(b"Code: 200"));
        println!(
            "{name:20} {ns:7.0} ns per request ({:.2} M req/s per core, batches of 32)",
            1000.0 / ns
        );
    }
}
