//! cargo-fuzz target over every digest entry point a client feeds with
//! untrusted bytes: `digest_message`, `predigest`, the mbox splitter and the
//! digests-style line reader. Run with `scripts/fuzz-digest` (bounded).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pyzor_digest::{self as digest, MboxReader};

fuzz_target!(|data: &[u8]| {
    let a = digest::digest_message(data);
    let b = digest::predigest(data);
    match (&a, &b) {
        (Ok(d), Ok(p)) => assert_eq!(*d, p.digest()),
        (Err(x), Err(y)) => assert_eq!(x, y),
        _ => panic!("digest_message and predigest disagree"),
    }
    for m in MboxReader::new(data).take(64) {
        if let Ok(m) = m {
            let _ = digest::digest_message(&m);
        }
    }
    for l in digest::digests_style_lines(data) {
        if l.is_err() {
            break;
        }
    }
});
