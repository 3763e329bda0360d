//! The repository stands alone: no tracked file cites a folder beside the
//! checkout or an absolute path of a development machine. Test data lives
//! in `testdata/`, defaults are relative to the checkout, and the reference
//! docs are under `docs/`. Mail bodies in the digest corpus (`*.eml`,
//! `*.mbox`) are message content and may say anything.

use std::process::Command;

/// What no tracked file may contain (this file spells them in pieces).
fn forbidden() -> Vec<String> {
    let shared = ["..", "/shared"].concat();
    vec![
        shared,
        ["shared/", "specs"].concat(),
        ["shared/", "digest-corpus"].concat(),
        ["/wo", "rk/"].concat(),
        ["/ho", "me/"].concat(),
        ["/ro", "ot/"].concat(),
    ]
}

#[test]
fn no_tracked_file_cites_outside_the_checkout() {
    let root = pyzor_testkit::workspace_root();
    let Ok(out) = Command::new("git")
        .arg("-C")
        .arg(&root)
        .args(["ls-files", "-z"])
        .output()
    else {
        pyzor_testkit::skip(
            "no_tracked_file_cites_outside_the_checkout",
            "git is not installed",
        );
        return;
    };
    if !out.status.success() {
        pyzor_testkit::skip(
            "no_tracked_file_cites_outside_the_checkout",
            "not a git checkout",
        );
        return;
    }
    let words = forbidden();
    let mut hits = Vec::new();
    let mut files = 0;
    for name in out.stdout.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name = String::from_utf8_lossy(name);
        if name.ends_with(".eml") || name.ends_with(".mbox") {
            continue;
        }
        let Ok(bytes) = std::fs::read(root.join(&*name)) else {
            continue;
        };
        files += 1;
        let text = String::from_utf8_lossy(&bytes);
        for (n, line) in text.lines().enumerate() {
            for w in &words {
                if line.contains(w.as_str()) {
                    hits.push(format!("{name}:{}: {w}", n + 1));
                }
            }
        }
    }
    assert!(files > 100, "read only {files} tracked files");
    assert!(
        hits.is_empty(),
        "tracked files cite paths outside the checkout (copy the data into testdata/, write the doc under docs/, make the default relative):\n{}",
        hits.join("\n")
    );
}
