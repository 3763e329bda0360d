//! The robustness soak's load (scripts/soak, docs/security.md "Soak"):
//! random and mutated datagrams against a running pyzord on loopback,
//! with the server's resident memory (`VmRSS` of `/proc/<pid>/status`)
//! sampled at the start, the middle and the end, and a ping answered
//! every 10 000 datagrams (a server that stops answering or exits ends
//! the run with a failure). The load is sent without waiting for replies,
//! so the server's socket buffer may overflow and the kernel drop a ping:
//! a ping is tried up to [`PING_TRIES`] times, 5 s each, and the retries
//! are counted.
//!
//! ```text
//! cargo run -p pyzor-server --example soak -- --port P --pid PID [--count N] [--seconds S] [--seed X]
//! ```
//!
//! Stops after `--count` datagrams (default 10^7) or `--seconds`
//! (default 600), whichever comes first; prints one summary line per
//! sample and a final `soak:` line; exits 1 when the server crashed or
//! stopped answering.

#[path = "../tests/support/mutate.rs"]
mod mutate;
use mutate::mutate;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

/// Tries of each ping before the server counts as not answering.
const PING_TRIES: u32 = 3;

/// Well-formed requests of every op, mutated by [`mutate`].
const TEMPLATES: &[&[u8]] = &[
    b"Op: ping\nThread: 1234\nPV: 2.1\n\n",
    b"Op: check\nOp-Digest: 2aedaac999d71421c9ee49b9d81f627a7bc570aa\nThread: 1234\nPV: 2.1\n\n",
    b"Op: report\nOp-Digest: 2aedaac999d71421c9ee49b9d81f627a7bc570aa\nOp-Spec: 20,3,60,3\nThread: 1234\nPV: 2.1\nUser: anonymous\nTime: 1\nSig: x\n\n",
    b"Op: whitelist\nOp-Digest: s1\nThread: 1234\nPV: 2.1\n\n",
    b"Op: info\nOp-Digest: s1\nThread: 1234\nPV: 2.1\n\n",
    b"Op: pong\nOp-Digest: s1\nThread: 1234\nPV: 2.1\n\n",
    b"Op: report\nOp-Digest: s2\nThread: 1234\nPV: 2.1\nUser: mallory\nTime: 1700000000\nSig: 0123456789abcdef0123456789abcdef01234567\n\n",
];

const PING: &[u8] = b"Op: ping\nThread: 4242\nPV: 2.1\n\n";

/// `VmRSS` of `pid` in kB, `None` once the process is gone.
fn rss_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: Option<T>) -> T {
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name}: bad value")),
        None => default.unwrap_or_else(|| panic!("{name} is required")),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = arg(&args, "--port", None);
    let pid: u32 = arg(&args, "--pid", None);
    let count: u64 = arg(&args, "--count", Some(10_000_000));
    let seconds: f64 = arg(&args, "--seconds", Some(600.0));
    let seed: u64 = arg(&args, "--seed", Some(0x5eed));
    let limit = Duration::from_secs_f64(seconds);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_nonblocking(true).unwrap();
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    probe
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = vec![0u8; 70000];
    let t0 = Instant::now();
    let sample = |label: &'static str, sent: u64| -> bool {
        let Some(kb) = rss_kb(pid) else {
            return false;
        };
        let t = t0.elapsed().as_secs_f64();
        println!("rss {label}: {kb} kB after {sent} datagrams, {t:.1} s");
        true
    };
    let alive = sample("start", 0);
    let (mut sent, mut replies, mut pings, mut retries) = (0u64, 0u64, 0u64, 0u64);
    let mut middle_done = false;
    let mut failure: Option<String> = (!alive).then(|| "no server process".to_owned());
    while failure.is_none() && sent < count && t0.elapsed() < limit {
        let d = if sent % 4 == 0 {
            let n = rng.random_range(0..2000);
            (0..n).map(|_| rng.random::<u8>()).collect::<Vec<u8>>()
        } else {
            let t = TEMPLATES[rng.random_range(0..TEMPLATES.len())];
            mutate(&mut rng, t)
        };
        // A full socket buffer: wait for the server, send again.
        loop {
            match sock.send_to(&d, ("127.0.0.1", port)) {
                Ok(_) => break,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err(e) => panic!("send: {e}"),
            }
        }
        sent += 1;
        while sock.recv_from(&mut buf).is_ok() {
            replies += 1;
        }
        if sent % 10_000 == 0 {
            let mut answer = Err(String::new());
            for _ in 0..PING_TRIES {
                probe.send_to(PING, ("127.0.0.1", port)).unwrap();
                answer = match probe.recv_from(&mut buf) {
                    Ok((n, _)) => Ok(buf[..n].to_vec()),
                    Err(e) => Err(e.to_string()),
                };
                if answer.is_ok() {
                    break;
                }
                retries += 1;
            }
            match answer {
                Ok(r) if r.starts_with(b"Code: 200\n") => pings += 1,
                Ok(r) => {
                    failure = Some(format!(
                        "ping answered {:?}",
                        String::from_utf8_lossy(&r[..r.len().min(80)])
                    ))
                }
                Err(e) => failure = Some(format!("{PING_TRIES} pings in a row unanswered: {e}")),
            }
            let half = sent >= count / 2 || t0.elapsed() >= limit / 2;
            if half && !middle_done {
                middle_done = true;
                if !sample("middle", sent) {
                    failure = Some("server process gone".to_owned());
                }
            }
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    while sock.recv_from(&mut buf).is_ok() {
        replies += 1;
    }
    if failure.is_none() && !sample("end", sent) {
        failure = Some("server process gone".to_owned());
    }
    let t = t0.elapsed().as_secs_f64();
    println!(
        "soak: {sent} datagrams in {t:.1} s ({:.0}/s), {replies} replies, {pings} pings answered ({retries} tries lost), failures: {}",
        sent as f64 / t.max(1e-9),
        u8::from(failure.is_some())
    );
    if let Some(f) = failure {
        println!("soak: FAILED: {f}");
        std::process::exit(1);
    }
}
