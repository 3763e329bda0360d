//! Every link in the repository's markdown files points to a file that
//! exists: inline links `[text](path)` and reference definitions
//! `[name]: path` (outside fenced code blocks; web, mail and in-page `#`
//! links are not checked), and every path-like mention of a markdown file
//! (`docs/server.md`, `../bench/RESULTS.md`: a name ending in `.md` with a
//! `/` in it), resolved from the file's folder or the repository root.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The tracked markdown files, or `None` (skipped loudly) without git.
fn markdown_files(root: &Path) -> Option<Vec<PathBuf>> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["ls-files", "-z", "*.md"])
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    Some(
        out.stdout
            .split(|&b| b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| root.join(String::from_utf8_lossy(p).as_ref()))
            .collect(),
    )
}

/// Link targets of one line: `](target)` and `[name]: target`.
fn link_targets(line: &str) -> Vec<&str> {
    let mut v = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("](") {
        let after = &rest[i + 2..];
        let end = after.find(')').unwrap_or(after.len());
        let target = after[..end].split_whitespace().next().unwrap_or("");
        v.push(target.trim_matches(['<', '>']));
        rest = &after[end..];
    }
    let t = line.trim_start();
    if t.starts_with('[') {
        if let Some(i) = t.find("]: ") {
            if let Some(target) = t[i + 3..].split_whitespace().next() {
                v.push(target);
            }
        }
    }
    v
}

/// Path-like mentions of markdown files: `a/b.md` (a word with a `/`,
/// ending in `.md`). An absolute path (`/tmp/r4.md` in a benchmark's
/// command line) names a file of the machine that ran the command, not of
/// the repository: it is not a mention (checking it made the test pass or
/// fail with the contents of this machine's /tmp).
fn md_mentions(line: &str) -> Vec<&str> {
    line.split(|c: char| !(c.is_ascii_alphanumeric() || "._/-".contains(c)))
        .map(|w| w.trim_end_matches('.'))
        .filter(|w| w.ends_with(".md") && w.contains('/') && !w.starts_with('/'))
        .collect()
}

fn is_external(target: &str) -> bool {
    target.is_empty()
        || target.starts_with('#')
        || target
            .split_once(':')
            .is_some_and(|(scheme, _)| scheme.chars().all(|c| c.is_ascii_alphabetic()))
}

#[test]
fn every_markdown_link_points_to_a_file_that_exists() {
    let root = pyzor_testkit::workspace_root();
    let Some(files) = markdown_files(&root) else {
        pyzor_testkit::skip(
            "every_markdown_link_points_to_a_file_that_exists",
            "git is not installed or this is not a checkout",
        );
        return;
    };
    assert!(files.len() > 5, "only {} markdown files found", files.len());
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let dir = file.parent().unwrap();
        let mut fenced = false;
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("```") {
                fenced = !fenced;
                continue;
            }
            if fenced {
                continue;
            }
            let links = link_targets(line).into_iter().filter(|t| !is_external(t));
            for target in links.chain(md_mentions(line)) {
                let path = target.split('#').next().unwrap_or(target);
                checked += 1;
                if !dir.join(path).exists() && !root.join(path).exists() {
                    broken.push(format!(
                        "{}:{}: {target}",
                        file.strip_prefix(&root).unwrap_or(file).display(),
                        n + 1
                    ));
                }
            }
        }
    }
    broken.dedup();
    assert!(
        checked > 20,
        "only {checked} links found: is the parser blind?"
    );
    assert!(
        broken.is_empty(),
        "links to missing files:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_link_parser_sees_what_it_should() {
    assert_eq!(
        link_targets("see [a](docs/a.md#x) and [b](<b c.md>), [w](https://x.org)"),
        vec!["docs/a.md#x", "b", "https://x.org"]
    );
    assert_eq!(
        link_targets("[ref]: ../bench/R.md \"title\""),
        vec!["../bench/R.md"]
    );
    assert!(is_external("https://x.org") && is_external("#anchor") && is_external("mailto:a@b"));
    assert!(!is_external("docs/server.md"));
    assert_eq!(
        md_mentions("read docs/server.md. Or `bench/RESULTS.md`, not README.md"),
        vec!["docs/server.md", "bench/RESULTS.md"]
    );
    assert_eq!(
        md_mentions("`bench/run.py --out /tmp/r4.md`, then ../bench/R.md"),
        vec!["../bench/R.md"]
    );
}
