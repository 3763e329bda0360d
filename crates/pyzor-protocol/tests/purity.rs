//! The protocol crate is pure: bytes in, bytes out, time passed in. This
//! test reads the crate's own sources and fails if any of them reaches for
//! the file system, the network, the environment, threads or the clock, so
//! that a change which would make the crate do I/O is caught in review.

use std::path::{Path, PathBuf};

/// What the crate must never name. Tests (`#[cfg(test)]` modules) are part
/// of the sources too and obey the same rule.
const FORBIDDEN: &[&str] = &[
    "std::fs",
    "std::net",
    "std::env",
    "std::thread",
    "std::process",
    "SystemTime::now",
    "Instant::now",
    "std::io::stdin",
    "std::io::stdout",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src/") {
        let p = entry.expect("dir entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn protocol_sources_do_no_io_and_read_no_clock() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() >= 5, "found only {files:?}");
    let mut hits = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for word in FORBIDDEN {
                if code.contains(word) {
                    hits.push(format!("{}:{}: {word}", f.display(), n + 1));
                }
            }
        }
    }
    assert!(
        hits.is_empty(),
        "pyzor-protocol must stay pure (move I/O to pyzor-config, the server or the client; pass time in):\n{}",
        hits.join("\n")
    );
}

#[test]
fn protocol_depends_on_no_io_crate() {
    let names = pyzor_testkit::manifest_dependencies(Path::new(env!("CARGO_MANIFEST_DIR")));
    for n in &names {
        assert!(
            ["sha1", "thiserror", "memchr"].contains(&n.as_str()),
            "pyzor-protocol gained the dependency {n:?}: the protocol crate depends only on pure crates"
        );
    }
}
