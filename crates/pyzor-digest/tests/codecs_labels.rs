//! Codec name resolution against the label table
//! (`testdata/digest-codec-aliases.tsv`: every name CPython 3.11 resolves,
//! its codec module, and whether `bytes.decode` accepts it as a text
//! encoding; docs/digest-rules.md §C.2) and against CPython 3.11 itself
//! (`codecs.lookup` + the text-encoding check of `bytes.decode`).

use pyzor_digest::codecs::lookup;
use pyzor_testkit::{Oracle, XorShift};

fn tsv() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/digest-codec-aliases.tsv"
    );
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn every_label_of_the_spec_table_resolves_as_listed() {
    let table = tsv();
    let mut n = 0;
    for line in table
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let cols: Vec<&str> = line.split('\t').collect();
        let (name, codec, usable) = (cols[0], cols[1], cols[2]);
        let got = lookup(name);
        if usable.starts_with("yes") {
            assert_eq!(got.map(|c| c.name()), Some(codec), "{name}");
        } else {
            assert_eq!(got, None, "{name} is not a text encoding");
        }
        n += 1;
    }
    assert!(n > 400, "only {n} rows read");
}

/// Variants of a label that exercise the normalisation.
fn mutate(rng: &mut XorShift, name: &str) -> String {
    const JUNK: &[&str] = &[
        "-", "_", " ", ".", "..", "\u{e9}", "\u{212a}", "\u{130}", "\u{3000}", "--", "/", "\t",
        "\u{2160}",
    ];
    let mut out = String::new();
    for c in name.chars() {
        match rng.below(12) {
            0 => out.push_str(rng.pick(JUNK)),
            1 => out.extend(c.to_uppercase()),
            2 if c == '_' || c == '-' => out.push_str(rng.pick(JUNK)),
            _ => {}
        }
        if !out.ends_with(c) || rng.below(2) == 0 {
            out.push(c);
        }
    }
    if rng.below(6) == 0 {
        out.insert_str(0, rng.pick(JUNK));
    }
    if rng.below(6) == 0 {
        out.push_str(rng.pick(JUNK));
    }
    out
}

#[test]
fn label_resolution_matches_cpython() {
    let Some(python) = pyzor_testkit::system_python("label_resolution_matches_cpython") else {
        return;
    };
    let table = tsv();
    let mut names: Vec<String> = table
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split('\t').next().unwrap_or("").to_owned())
        .collect();
    names.extend(
        [
            "x-sjis",
            "windows-874",
            "utf8mb4",
            "ucs-2",
            "unknown-8bit",
            "cp-1252",
            "latin.1",
            "utf.8",
            "iso8859.1",
            "mbcs",
            "dbcs",
            "oem",
            "aliases",
            "tactis",
            "cshproman8",
            "",
        ]
        .map(String::from),
    );
    let mut rng = XorShift::new(0x1234_5678_9ABC_DEF1);
    let mut labels = Vec::new();
    for name in &names {
        labels.push(name.clone());
        labels.push(name.replace('_', "."));
        for _ in 0..6 {
            labels.push(mutate(&mut rng, name));
        }
    }
    let script = r#"
import sys, codecs
for line in sys.stdin.buffer.read().split(b"\n")[:-1]:
    label = line.decode("utf-8")
    try:
        info = codecs.lookup(label)
        ans = info.name if info._is_text_encoding else "!"
    except LookupError:
        ans = "!"
    sys.stdout.write(ans + "\n")
"#;
    let answers = Oracle::new(python)
        .args(["-I", "-c", script])
        .answers(&labels);
    let mut bad = 0;
    for (label, want) in labels.iter().zip(answers) {
        let got = lookup(label).map_or("!", |c| c.name());
        if got != want {
            bad += 1;
            eprintln!("MISMATCH {label:?}: python {want}, ours {got}");
        }
    }
    println!("{} labels, {bad} mismatches", labels.len());
    assert_eq!(bad, 0);
}
