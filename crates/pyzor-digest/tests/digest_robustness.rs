//! Robustness of the digest entry points on hostile input: a bounded
//! mutation fuzzer on stable Rust (the same entry points as the cargo-fuzz
//! target in `fuzz/`, seeded from the corpus), and hand-made pathological
//! messages. Nothing may panic or hang; results are not compared here (the
//! corpus and differential tests do that).
//!
//! Bounds: `PYZOR_FUZZ_ITERS` iterations (default 3000) and at most
//! `PYZOR_FUZZ_SECS` seconds (default 20), whichever ends first.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use pyzor_digest::{self as digest, MboxReader};
use pyzor_testkit::XorShift;

/// Everything a client can call on untrusted bytes.
fn exercise(data: &[u8]) {
    let a = digest::digest_message(data);
    let b = digest::predigest(data);
    match (&a, &b) {
        (Ok(d), Ok(p)) => assert_eq!(*d, p.digest()),
        (Err(e1), Err(e2)) => assert_eq!(e1, e2),
        _ => panic!("digest_message and predigest disagree"),
    }
    // An Err item (non-ASCII From_ line) is skipped: iteration goes on.
    for m in MboxReader::new(data).take(64).flatten() {
        let _ = digest::digest_message(&m);
    }
    for l in digest::digests_style_lines(data) {
        if l.is_err() {
            break;
        }
    }
}

const TOKENS: &[&[u8]] = &[
    b"\r",
    b"\n",
    b"\r\n",
    b"--",
    b"=",
    b"=\r",
    b"==",
    b";",
    b"\"",
    b"'",
    b"%",
    b"*",
    b":",
    b"@",
    b"\0",
    b"\xff",
    b"\xe9",
    b"<",
    b">",
    b"&",
    b"&#",
    b"<![",
    b"<!--",
    b"</",
    b"<script>",
    b"begin 644 x\n",
    b"end\n",
    b"From ",
    b"\nFrom x\n",
    b"Content-Type: multipart/mixed; boundary=b\n\n--b\n",
    b"Content-Type: message/rfc822\n\n",
    b"Content-Type: message/delivery-status\n\n",
    b"Content-Type: text/html; charset=utf-7\n\n",
    b"Content-Transfer-Encoding: base64\n",
    b"Content-Transfer-Encoding: quoted-printable\n",
    b"Content-Transfer-Encoding: x-uuencode\n",
    b"; charset*0*=utf-8''%e9; charset*=x",
    b"; boundary*=''b",
    b"\n--b--\n",
    b"\n--b\n",
    b"\x1c",
    b"\x85",
    b"\xe2\x80\xa8",
    b"\t",
    b" ",
];

fn mutate(r: &mut XorShift, data: &mut Vec<u8>) {
    for _ in 0..1 + r.below(8) {
        let pos = r.below(data.len() + 1);
        match r.below(6) {
            0 if !data.is_empty() => {
                let p = pos.min(data.len() - 1);
                data[p] ^= 1 << r.below(8);
            }
            1 => {
                let t = r.pick(TOKENS);
                data.splice(pos..pos, t.iter().copied());
            }
            2 if !data.is_empty() => {
                let end = (pos + r.below(64)).min(data.len());
                data.drain(pos.min(end)..end);
            }
            3 if !data.is_empty() => {
                // duplicate a slice
                let s = r.below(data.len());
                let e = (s + r.below(256)).min(data.len());
                let chunk = data[s..e].to_vec();
                data.splice(pos..pos, chunk);
            }
            4 => data.insert(pos, r.below(256) as u8),
            _ => {
                let t = r.pick(TOKENS);
                data.splice(pos..pos, t.iter().copied());
            }
        }
    }
}

fn seeds() -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/digest-corpus");
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .expect("corpus")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            matches!(
                p.extension().and_then(|x| x.to_str()),
                Some("eml" | "mbox" | "txt")
            )
        })
        .collect();
    v.sort();
    v.into_iter()
        .map(|p| std::fs::read(p).unwrap())
        .filter(|d| d.len() < 64 * 1024)
        .collect()
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn mutation_fuzz_never_panics() {
    let iters = env_num("PYZOR_FUZZ_ITERS", 3000);
    let budget = Duration::from_secs(env_num("PYZOR_FUZZ_SECS", 20));
    let seeds = seeds();
    assert!(!seeds.is_empty());
    let mut r = XorShift::new(env_num("PYZOR_FUZZ_SEED", 0x00c0_ffee_d00d_1234));
    let start = Instant::now();
    let mut done = 0;
    for _ in 0..iters {
        if start.elapsed() > budget {
            break;
        }
        let mut d = seeds[r.below(seeds.len())].clone();
        mutate(&mut r, &mut d);
        exercise(&d);
        done += 1;
    }
    eprintln!("mutation fuzz: {done} inputs in {:.1?}", start.elapsed());
}

#[test]
fn pathological_messages() {
    // Nesting beyond the limit: an error, not a stack overflow.
    let deep = b"Content-Type: message/rfc822\n\n".repeat(5000);
    assert!(matches!(
        digest::digest_message(&deep),
        Err(digest::DigestError::TooDeep { .. })
    ));
    // Deep multipart nesting within the limit, then many lines.
    let mut m = Vec::new();
    for i in 0..900 {
        m.extend_from_slice(
            format!("Content-Type: multipart/mixed; boundary=b{i}\n\n--b{i}\n").as_bytes(),
        );
    }
    m.extend_from_slice(&b"-- a line of text that is long enough\n".repeat(20_000));
    exercise(&m);
    // A huge parameter list with an odd quote (quadratic in Python).
    let mut h = b"Content-Type: multipart/mixed; a=\"".to_vec();
    h.extend_from_slice(&b"x;".repeat(200_000));
    h.extend_from_slice(b"\n\nbody\n");
    exercise(&h);
    // Many tiny parts.
    let mut p = b"Content-Type: multipart/mixed; boundary=b\n\n".to_vec();
    p.extend_from_slice(&b"--b\n\nsome text here!\n".repeat(100_000));
    exercise(&p);
    // Many headers, a long line, a lone CR body, NULs.
    let mut q = b"X: y\n".repeat(100_000);
    q.extend_from_slice(b"\n");
    q.extend_from_slice(&b"a".repeat(1 << 20));
    q.extend_from_slice(&b"\rab cd ef gh".repeat(10_000));
    q.extend_from_slice(&[0u8; 10_000]);
    exercise(&q);
    // Empty and tiny inputs.
    for s in [&b""[..], b"\n", b"\r", b"From ", b":", b" ", b"--", b"\xff"] {
        exercise(s);
    }
}
