//! The digest is a crate another Rust mail program can depend on alone:
//! its normal dependencies are the pure protocol crate and a few pure
//! libraries, never an engine, a socket, a CLI or a config crate.

use std::path::Path;

#[test]
fn digest_depends_on_no_engine_socket_or_cli_crate() {
    let names = pyzor_testkit::manifest_dependencies(Path::new(env!("CARGO_MANIFEST_DIR")));
    assert!(names.iter().any(|n| n == "sha1"), "{names:?}");
    for n in &names {
        assert!(
            ["pyzor-protocol", "sha1", "regex", "thiserror", "memchr"].contains(&n.as_str()),
            "pyzor-digest gained the dependency {n:?}; keep the digest usable alone (no engine, socket, CLI or config crate)"
        );
    }
}

#[test]
fn a_mail_program_can_digest_a_message_with_the_crate_alone() {
    let msg =
        b"Subject: hello\n\nThis line is long enough to be digested.\nAnd so is this one, too.\n";
    let d = pyzor_digest::digest_message(msg).expect("a plain message has a digest");
    let hex = d.to_string();
    assert_eq!(hex.len(), 40);
    assert!(hex
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    // The predigest is the lines that were hashed, in order.
    let lines = pyzor_digest::predigest_lines(msg).unwrap();
    assert_eq!(lines.len(), 2, "{lines:?}");
}
