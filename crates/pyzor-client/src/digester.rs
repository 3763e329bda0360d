//! The bridge to `pyzor_core::digest`: the client's input styles
//! (`msg`, `mbox`, `digests`, wire-protocol.md §7) turned into digests.

use std::io::Read;

use pyzor_core::digest::text::py_strip;

/// Input could not be read or digested.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// Reading standard input failed.
    #[error("cannot read standard input: {0}")]
    Read(#[from] std::io::Error),
    /// `-s/--style` (or `Style` in the config) names no known style.
    #[error("Unknown input style {0:?}; use msg, mbox or digests")]
    UnknownStyle(String),
    /// The digest code is not available in this build.
    #[error("message digests are not available in this build of pyzor-core: {0}")]
    DigestUnavailable(&'static str),
}

/// An input style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// One RFC 5322 message on stdin.
    Msg,
    /// An mbox file on stdin.
    Mbox,
    /// One digest per line.
    Digests,
}

impl Style {
    /// Parse a `Style` value (exact, as the reference's dict lookup).
    pub fn parse(s: &str) -> Result<Style, InputError> {
        match s {
            "msg" => Ok(Style::Msg),
            "mbox" => Ok(Style::Mbox),
            "digests" => Ok(Style::Digests),
            other => Err(InputError::UnknownStyle(other.to_string())),
        }
    }
}

/// The digest of one message (`DataDigester(msg).value`).
pub fn digest_message(msg: &[u8]) -> Result<String, InputError> {
    let _ = msg;
    Err(InputError::DigestUnavailable("digest::digest_message"))
}

/// The normalised lines `predigest` prints for one message.
pub fn predigest_lines(msg: &[u8]) -> Result<Vec<String>, InputError> {
    let _ = msg;
    Err(InputError::DigestUnavailable("digest predigest lines"))
}

/// The messages of an mbox file, as the reference's `mailbox.mbox` splits
/// them.
pub fn mbox_messages(data: &[u8]) -> Result<Vec<Vec<u8>>, InputError> {
    let _ = data;
    Err(InputError::DigestUnavailable("digest mbox reader"))
}

/// Read all of `input` and return the digests in order. The `digests`
/// style yields every line stripped, empty ones included (callers skip
/// them, as the reference does).
pub fn read_digests(style: Style, input: &mut dyn Read) -> Result<Vec<String>, InputError> {
    let mut data = Vec::new();
    input.read_to_end(&mut data)?;
    match style {
        Style::Digests => Ok(digest_lines(&data)),
        Style::Msg => Ok(vec![digest_message(&data)?]),
        Style::Mbox => mbox_messages(&data)?
            .iter()
            .map(|m| digest_message(m))
            .collect(),
    }
}

/// `for line in sys.stdin: yield line.strip()` (digest-spec.md §A): on
/// POSIX Python's stdin uses `newline="\n"`, so lines end at LF only and a
/// lone CR stays inside a line; each line is stripped of Python whitespace.
/// Invalid UTF-8 is replaced rather than crashing (the reference raises
/// UnicodeDecodeError).
pub fn digest_lines(data: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(data);
    let mut out: Vec<String> = text.split('\n').map(|l| py_strip(l).to_string()).collect();
    if text.ends_with('\n') || text.is_empty() {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_lines_like_python() {
        assert_eq!(digest_lines(b"a\n  b \r\n\nc"), vec!["a", "b", "", "c"]);
        assert_eq!(digest_lines(b"a\rb\n"), vec!["a\rb"], "LF-only lines");
        assert!(digest_lines(b"").is_empty());
        assert_eq!(digest_lines(b"\n"), vec![""]);
        assert_eq!(digest_lines(b"x\x1c\n"), vec!["x"], "Python's isspace");
    }
}
