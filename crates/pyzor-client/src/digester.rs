//! The bridge to `pyzor_digest`: the client's input styles
//! (`msg`, `mbox`, `digests`, docs/protocol.md §7) turned into digests.

use std::io::{BufReader, Read};

use pyzor_digest::{digests_style_lines, DigestError, MboxReader};

/// Input could not be read or digested.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// Reading standard input failed (or, in style `digests`, it is not
    /// UTF-8: the reference raises UnicodeDecodeError).
    #[error("cannot read standard input: {0}")]
    Read(#[from] std::io::Error),
    /// `-s/--style` (or `Style` in the config) names no known style.
    #[error("Unknown input style {0:?}; use msg, mbox or digests")]
    UnknownStyle(String),
    /// A message the reference cannot digest either (it crashes there).
    #[error("message {index}: {source}")]
    Digest {
        /// 1-based number of the message in the input.
        index: usize,
        /// Why.
        source: DigestError,
    },
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

/// The digest of one message (`DataDigester(msg).value`), 40 hex digits.
pub fn digest_message(msg: &[u8], index: usize) -> Result<String, InputError> {
    // `hex_bytes` gives the 40 ASCII digits on the stack: one exact-size
    // allocation for the String, no formatting machinery (`to_string` goes
    // through `Display` and a growing buffer).
    pyzor_digest::digest_message(msg)
        .map(|d| {
            std::str::from_utf8(&d.hex_bytes())
                .unwrap_or_default()
                .to_owned()
        })
        .map_err(|source| InputError::Digest { index, source })
}

/// The normalised lines `predigest` prints for one message.
pub fn predigest_lines(msg: &[u8]) -> Result<Vec<Vec<u8>>, InputError> {
    pyzor_digest::predigest_lines(msg).map_err(|source| InputError::Digest { index: 1, source })
}

/// The digests of the input, in order, as far as the reference would get:
/// the digests before a failing message, and the failure (docs/digest-rules.md
/// §A: in mbox style the reference has handled every earlier message when
/// it raises). Blank lines of style `digests` are skipped.
pub(crate) fn read_digests(
    style: Style,
    input: &mut dyn Read,
) -> (Vec<String>, Option<InputError>) {
    let mut out = Vec::new();
    match style {
        Style::Digests => {
            for line in digests_style_lines(BufReader::new(input)) {
                match line {
                    Ok(d) => out.push(d),
                    Err(e) => return (out, Some(InputError::Read(e))),
                }
            }
        }
        Style::Msg => {
            let mut data = Vec::new();
            if let Err(e) = input.read_to_end(&mut data) {
                return (out, Some(InputError::Read(e)));
            }
            match digest_message(&data, 1) {
                Ok(d) => out.push(d),
                Err(e) => return (out, Some(e)),
            }
        }
        Style::Mbox => {
            // 64 KiB reads, as the example CLI: MboxReader copies the
            // complete lines of each buffer fill at once, and a message that
            // crosses a fill takes its slower line-by-line path, which the
            // default 8 KiB buffer makes common for typical 1–2 KB messages.
            let input = BufReader::with_capacity(1 << 16, input);
            for (i, msg) in MboxReader::new(input).enumerate() {
                let r = msg
                    .map_err(InputError::Read)
                    .and_then(|m| digest_message(&m, i + 1));
                match r {
                    Ok(d) => out.push(d),
                    Err(e) => return (out, Some(e)),
                }
            }
        }
    }
    (out, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn styles() {
        let (d, e) = read_digests(Style::Digests, &mut &b"a\n  b \r\n\nc\x1c\n"[..]);
        assert_eq!(d, vec!["a", "b", "c"]);
        assert!(e.is_none());
        let (d, e) = read_digests(Style::Digests, &mut &b"a\n\xff\nb\n"[..]);
        assert_eq!(d, vec!["a"]);
        assert!(matches!(e, Some(InputError::Read(_))));
        let (d, e) = read_digests(Style::Msg, &mut &b""[..]);
        assert_eq!(d, vec![pyzor_digest::EMPTY_DIGEST]);
        assert!(e.is_none());
        let mbox =
            b"From a\nSubject: 1\n\nhello world one\n\nFrom b\nSubject: 2\n\nhello world two\n";
        let (d, e) = read_digests(Style::Mbox, &mut &mbox[..]);
        assert_eq!(d.len(), 2);
        assert!(e.is_none());
        assert!(matches!(
            Style::parse("eml"),
            Err(InputError::UnknownStyle(_))
        ));
    }
}
