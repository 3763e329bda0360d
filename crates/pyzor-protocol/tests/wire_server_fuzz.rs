//! Stable, bounded fuzzing of the server's request path
//! (`wire::server::{Parsed::parse, evaluate, format_reply, usage_line}`):
//! seed datagrams, random bytes and mutated seeds must never panic and
//! always give a well-formed reply (`wire_fuzz_support::check_reply`).
//! `PYZOR_FUZZ_SECS`, `PYZOR_FUZZ_ITERS`, `PYZOR_FUZZ_SEED` widen a run
//! (scripts/fuzz uses them); the default is 20,000 inputs, at most 20 s.

mod wire_fuzz_support;

use std::time::{Duration, Instant};

use pyzor_testkit::XorShift;
use wire_fuzz_support::{handle, seeds, Rules, Worker};

/// Fragments that steer mutations towards the parser's interesting paths.
const TOKENS: &[&[u8]] = &[
    b"\n",
    b"\n\n",
    b"\r\n",
    b"\r",
    b" ",
    b"\t",
    b":",
    b": ",
    b"Op: ",
    b"PV: ",
    b"2.1",
    b"Thread: ",
    b"User: ",
    b"Time: ",
    b"Sig: ",
    b"Op-Digest: ",
    b"check",
    b"report",
    b"info",
    b"pong",
    b"whitelist",
    b"ping",
    b"alice",
    b"bob",
    b"anonymous",
    b"\xff",
    b"\xc3\xa9",
    b"=?utf-8?b?w6k=?=",
    b"-1",
    b"1e309",
    b"nan",
    b"99999999999999999999",
    b"\x00",
    b"From ",
];

fn mutate(r: &mut XorShift, input: &mut Vec<u8>) {
    for _ in 0..(1 + r.below(6)) {
        let pos = r.below(input.len() + 1);
        match r.below(6) {
            0 if !input.is_empty() => {
                let p = pos.min(input.len() - 1);
                input[p] = r.byte();
            }
            1 if !input.is_empty() => {
                let end = (pos + r.below(16)).min(input.len());
                input.drain(pos.min(end)..end);
            }
            2 => {
                let t = r.pick(TOKENS);
                input.splice(pos..pos, t.iter().copied());
            }
            3 if !input.is_empty() => {
                // Duplicate a slice (repeated headers, long values).
                let start = r.below(input.len());
                let end = (start + r.below(64)).min(input.len());
                let piece = input[start..end].to_vec();
                input.splice(pos..pos, piece);
            }
            4 => input.extend((0..r.below(32)).map(|_| r.byte())),
            _ => {
                let n = r.below(3000);
                input.splice(pos..pos, std::iter::repeat_n(b'a', n));
            }
        }
    }
    input.truncate(20_000);
}

#[test]
fn server_request_path_never_panics_and_replies_well_formed() {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let iters = env("PYZOR_FUZZ_ITERS").unwrap_or(20_000);
    let budget = Duration::from_secs(env("PYZOR_FUZZ_SECS").unwrap_or(20));
    let seed = env("PYZOR_FUZZ_SEED").unwrap_or(0x77_1e5e_12e4);
    let rules = Rules::new();
    let mut w = Worker::default();
    let seeds = seeds();
    // `PYZOR_WIRE_SEEDS_OUT=dir` writes the seeds there (how
    // fuzz/seeds/wire_server was made).
    if let Some(dir) = std::env::var_os("PYZOR_WIRE_SEEDS_OUT") {
        std::fs::create_dir_all(&dir).expect("create the seed directory");
        for (i, s) in seeds.iter().enumerate() {
            let path = std::path::Path::new(&dir).join(format!("seed-{i:02}"));
            std::fs::write(path, s).expect("write a seed");
        }
    }
    let mut codes = std::collections::BTreeMap::new();
    for s in &seeds {
        let reply = handle(&mut w, &rules, s).to_vec();
        let code = reply
            .get(6..9)
            .map(|c| String::from_utf8_lossy(c).into_owned());
        *codes.entry(code.unwrap_or_default()).or_insert(0) += 1;
    }
    // The seeds reach accepted, unauthorised, forbidden and bad-request paths.
    for want in ["200", "400", "401", "403"] {
        assert!(codes.contains_key(want), "no seed gives {want}: {codes:?}");
    }
    let mut r = XorShift::new(seed | 1);
    let start = Instant::now();
    let mut n = 0u64;
    while n < iters && start.elapsed() < budget {
        let mut input = if r.below(5) == 0 {
            (0..r.below(600)).map(|_| r.byte()).collect()
        } else {
            seeds[r.below(seeds.len())].clone()
        };
        mutate(&mut r, &mut input);
        handle(&mut w, &rules, &input);
        n += 1;
    }
    eprintln!(
        "wire server fuzz: {} seeds ({codes:?}), {n} mutated inputs in {:.1} s, seed {seed:#x}",
        seeds.len(),
        start.elapsed().as_secs_f64()
    );
    assert!(n >= iters.min(500), "too few inputs ran: {n}");
}
