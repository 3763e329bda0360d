//! The digest golden corpus (crates/pyzor-digest/testdata/digest-corpus,
//! made with the reference) through our `pyzor` command line: `-s
//! msg|mbox|digests digest`, `predigest`, and the inputs on which the
//! reference crashes. Checks the CLI plumbing around `pyzor_digest`; the
//! msg/mbox parts skip loudly if the binary cannot digest at all.

mod common;

use std::path::{Path, PathBuf};

use common::run_client;

/// The repository's copy of the corpus (`PYZOR_DIGEST_CORPUS` overrides).
fn corpus() -> PathBuf {
    let dir = std::env::var_os("PYZOR_DIGEST_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            pyzor_testkit::workspace_root().join("crates/pyzor-digest/testdata/digest-corpus")
        });
    assert!(
        dir.join("cases.tsv").is_file(),
        "digest corpus missing at {}",
        dir.display()
    );
    dir
}

fn cases(dir: &Path) -> Vec<(String, String, String)> {
    std::fs::read_to_string(dir.join("cases.tsv"))
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.splitn(3, '\t');
            Some((
                f.next()?.into(),
                f.next()?.into(),
                f.next().unwrap_or("").into(),
            ))
        })
        .collect()
}

fn digest_available(home: &Path) -> bool {
    let out = run_client(
        &pyzor_testkit::our_bin("pyzor"),
        home,
        &["digest"],
        b"Subject: x\n\nhello world line\n",
    );
    out.code == 0
}

#[test]
fn corpus_digest_styles_and_predigest() {
    let dir = corpus();
    let ours = pyzor_testkit::our_bin("pyzor");
    let home = pyzor_testkit::temp_home();
    let h = home.path();
    let all = cases(&dir);
    // -s digests works without the digest code.
    let mut n = 0;
    for (file, style, expected) in all.iter().filter(|c| c.1 == "digests") {
        let input = std::fs::read(dir.join(file)).unwrap();
        let out = run_client(&ours, h, &["-s", style, "digest"], &input);
        assert_eq!(out.code, 0, "{file}");
        assert_eq!(
            out.stdout.lines().collect::<Vec<_>>().join(","),
            *expected,
            "{file}"
        );
        n += 1;
    }
    assert!(n > 0, "the corpus has a digests case");
    if !digest_available(h) {
        pyzor_testkit::skip(
            "corpus_digest_styles_and_predigest",
            "pyzor_digest is not available yet: msg/mbox/predigest cases not run",
        );
        return;
    }
    let mut failures = Vec::new();
    for (file, style, expected) in all.iter().filter(|c| c.1 != "digests") {
        let input = std::fs::read(dir.join(file)).unwrap();
        let out = run_client(&ours, h, &["-s", style, "digest"], &input);
        let got = out.stdout.lines().collect::<Vec<_>>().join(",");
        if out.code != 0 || got != *expected {
            failures.push(format!("{file} ({style}): got {got:?} exit {}", out.code));
        }
        if style == "msg" {
            let pre = dir.join(file.replace(".eml", ".predigest"));
            if let Ok(want) = std::fs::read(&pre) {
                let out = run_client(&ours, h, &["predigest"], &input);
                if out.stdout.as_bytes() != want.as_slice() {
                    failures.push(format!("{file}: predigest differs"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Inputs on which the reference crashes: no crash here, exit 1 and no
    // digest, or a digest and exit 0 (corpus README).
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.starts_with("error-") && name.ends_with(".eml")) {
            continue;
        }
        let out = run_client(&ours, h, &["digest"], &std::fs::read(&p).unwrap());
        assert!(
            (out.code == 1 && out.stdout.is_empty() && out.stderr.starts_with("pyzor: error: "))
                || (out.code == 0 && out.stdout.len() == 41),
            "{name}: exit {} stdout {:?} stderr {:?}",
            out.code,
            out.stdout,
            out.stderr
        );
    }
}
