//! Every HTML part of the golden digest corpus: the reference pyzor
//! (from `PYZOR_REF_VENV`) parses each message and records the text it hands
//! to `normalize_html_part` and what `HTMLStripper` makes of it (or the
//! exception); `strip_html` must agree on all of them. Skips loudly without
//! /usr/bin/python3, the venv or the corpus (`PYZOR_DIGEST_CORPUS`, else
//! this crate's `testdata/digest-corpus`).

use std::path::{Path, PathBuf};

use pyzor_digest::html::{strip_html, HtmlError};
use pyzor_digest::text::surrogate_stand_in;

const TEST: &str = "html_corpus";

/// Walks the corpus with pyzor's own `DataDigester.digest_payloads`, its
/// `normalize_html_part` wrapped to capture input and result. Text is
/// written as UTF-32-LE hex so that lone surrogates survive.
const DRIVER: &str = r#"
import sys, os, email
sys.path.insert(0, sys.argv[1])
import pyzor.digest as d
from pyzor.digest import HTMLStripper
def u32(s):
    return s.encode("utf-32-le", "surrogatepass").hex()
captured = []
def capture(s):
    data = []
    try:
        HTMLStripper(data).feed(s)
        captured.append("%s OK %s" % (u32(s), u32(" ".join(data))))
    except Exception as e:
        captured.append("%s ERR %s" % (u32(s), type(e).__name__))
    return " ".join(data)
d.DataDigester.normalize_html_part = staticmethod(capture)
corpus = sys.argv[2]
for name in sorted(os.listdir(corpus)):
    if not name.endswith(".eml"):
        continue
    with open(os.path.join(corpus, name), "rb") as f:
        msg = email.message_from_bytes(f.read())
    try:
        for _ in d.DataDigester.digest_payloads(msg):
            pass
    except Exception:
        pass  # non-HTML failures (docs/digest-rules.md H.2) are not ours
    for line in captured:
        print(name, line)
    captured.clear()
"#;

fn corpus_dir() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PYZOR_DIGEST_CORPUS") {
        return Some(PathBuf::from(p));
    }
    // The project's copy of the golden corpus.
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/digest-corpus");
    p.join("cases.tsv").is_file().then_some(p)
}

/// UTF-32-LE hex to a Rust string, lone surrogates as stand-ins.
fn from_u32_hex(h: &str) -> String {
    let bytes: Vec<u8> = (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).expect("hex"))
        .collect();
    bytes
        .chunks(4)
        .map(|c| {
            let v = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            if (0xD800..=0xDFFF).contains(&v) {
                surrogate_stand_in(v as u16)
            } else {
                char::from_u32(v).expect("scalar value")
            }
        })
        .collect()
}

/// The Python exception class behind each error.
fn python_exception(e: &HtmlError) -> &'static str {
    match e {
        HtmlError::MarkedSection { .. } | HtmlError::MarkedSectionName { .. } => "AssertionError",
        HtmlError::CharrefTooLong { .. } => "ValueError",
    }
}

#[test]
fn strip_html_matches_reference_on_corpus_html_parts() {
    let Some(python) = pyzor_testkit::system_python(TEST) else {
        return;
    };
    let Some(venv) = pyzor_testkit::ref_venv(TEST) else {
        return;
    };
    let site = venv.join("lib/python3.11/site-packages");
    if !site.join("pyzor/digest.py").is_file() {
        pyzor_testkit::skip(
            TEST,
            &format!("reference pyzor missing under {}", site.display()),
        );
        return;
    }
    let Some(corpus) = corpus_dir() else {
        pyzor_testkit::skip(
            TEST,
            "digest corpus not found in testdata/digest-corpus (or set PYZOR_DIGEST_CORPUS)",
        );
        return;
    };
    let out = pyzor_testkit::Oracle::new(python)
        .arg("-c")
        .arg(DRIVER)
        .arg(&site)
        .arg(&corpus)
        .run(Vec::new());
    let text = String::from_utf8(out).expect("ASCII output");
    let (mut parts, mut errors, mut failures) = (0, 0, Vec::new());
    for line in text.lines() {
        let mut f = line.split(' ');
        let (file, input, status) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
        let want = f.next().unwrap_or("");
        let input = from_u32_hex(input);
        parts += 1;
        let ok = match (status, strip_html(&input)) {
            ("OK", Ok(got)) => got == from_u32_hex(want),
            ("ERR", Err(e)) => {
                errors += 1;
                want == python_exception(&e)
            }
            _ => false,
        };
        if !ok {
            failures.push(format!("{file}: python {status} {want:.80}"));
        }
    }
    eprintln!("{TEST}: {parts} HTML parts compared, {errors} raise in both");
    assert!(
        parts > 100,
        "expected the corpus to hold HTML parts, found {parts}"
    );
    assert!(failures.is_empty(), "mismatches:\n{}", failures.join("\n"));
}
