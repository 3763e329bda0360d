//! tests/ref_digest.py: pyzor 1.1.2's digest of many messages in one
//! Python process of the reference virtualenv.

use std::path::Path;

/// Digest `msgs` with the reference: one answer line per message
/// (`OK <digest> <hex lines>` or `ERR <exception>`; with `mode` `mbox`,
/// each message is an mbox and the line is `MBOX <digest>,...`).
pub fn ref_digest(venv: &Path, msgs: &[Vec<u8>], mode: Option<&str>) -> Vec<String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ref_digest.py");
    let mut input = Vec::new();
    for m in msgs {
        input.extend_from_slice(format!("{}\n", m.len()).as_bytes());
        input.extend_from_slice(m);
    }
    let out = pyzor_testkit::Oracle::new(venv.join("bin/python"))
        .arg(script)
        .args(mode)
        .run(input);
    let answers: Vec<String> = String::from_utf8(out)
        .expect("ASCII answers")
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(answers.len(), msgs.len(), "one answer per message");
    answers
}
