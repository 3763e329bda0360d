//! The Pyzor message digest, byte-identical to Pyzor 1.1.2 on CPython
//! 3.11.2 (`docs/digest-rules.md`; overview in `docs/digest.md`).
//!
//! ```text
//! raw bytes ─ mime::parse_leaves (compat32, walk order)  §B
//!           ─ per part: text/* → transfer::decode_payload → codec → (html) §C
//!                   other  → raw payload string                        §C.4
//!           ─ normalize::Lines (splitlines, normalize, ≥ 8 code points) §D
//!           ─ selection (atomic ≤ 4 lines, else 20 %/60 % pieces) + SHA-1 §E
//! ```
//!
//! # Library API
//!
//! * [`digest_message`]`(&[u8]) -> Result<Digest, DigestError>`: what
//!   `pyzor digest` prints for one message (style `msg`).
//! * [`predigest`]`(&[u8]) -> Result<Predigest, DigestError>`: the selected
//!   lines in hashing order ([`Predigest::iter`]); `pyzor predigest` prints
//!   each followed by `\n`. [`predigest_lines`] returns them owned.
//! * [`MboxReader`]: streams the messages of an mbox (style `mbox`) from any
//!   `BufRead`, one `Vec<u8>` at a time, with `mailbox.mbox` semantics.
//! * [`digests_style_lines`]: the lines style `digests` prints.
//!
//! An `Err` means the reference raises on this input (§H): it prints no
//! digest and exits 1; callers should do the same and print the error.
//!
//! ```
//! let d = pyzor_digest::digest_message(b"Subject: x\n\nHello there, this is a test message.\n").unwrap();
//! assert_eq!(d.to_string().len(), 40);
//! ```

pub mod explain;
pub mod mbox;
pub mod mime;
pub(crate) mod normalize;
pub mod text;
pub mod transfer;

pub mod codecs;
pub mod html;

pub use mbox::{digests_style_lines, MboxReader};

use std::borrow::Cow;
use std::fmt;

use sha1::{Digest as _, Sha1};

use self::mime::{ParamValue, PartRef};
use self::normalize::Lines;
use self::text::StandIns;

/// Text of one part and which of its characters stand for lone surrogates
/// (only text from a codec that emitted some has any, see [`text`]).
type PartText<'a> = (Cow<'a, str>, StandIns);

/// Why no digest can be produced. Every variant is an input on which the
/// reference Pyzor 1.1.2 raises an exception and prints nothing (§H);
/// report it and treat the message as undigestible (exit status 1 in the
/// CLI), exactly as the reference does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// An HTML part the reference's `html.parser` rejects (§H.1).
    #[error("HTML part not parseable ({0}); Pyzor 1.1.2 raises AttributeError here and prints no digest")]
    Html(String),
    /// Another input the reference crashes on (§H.2 and similar).
    #[error("{what}; Pyzor 1.1.2 raises here and prints no digest")]
    ReferenceCrash {
        /// What is wrong with the message.
        what: &'static str,
    },
    /// MIME nesting too deep (the reference raises RecursionError).
    #[error("MIME parts nested deeper than {limit} levels; Pyzor 1.1.2 raises RecursionError here and prints no digest")]
    TooDeep {
        /// The deepest nesting we parse.
        limit: usize,
    },
}

/// A message digest: SHA-1 of the selected lines. `Display` gives the 40
/// lowercase hex characters Pyzor prints and sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest(pub [u8; 20]);

/// The digest of a message with no kept line (SHA-1 of nothing).
pub const EMPTY_DIGEST: &str = "da39a3ee5e6b4b0d3255bfef95601890afd80709";

impl Digest {
    /// The 40 lowercase hex characters.
    pub fn hex(&self) -> String {
        self.to_string()
    }
}

impl Digest {
    /// The 40 lowercase hex digits, as ASCII bytes on the stack (what
    /// `Display` writes; no formatting machinery, no allocation).
    pub fn hex_bytes(&self) -> [u8; 40] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 40];
        for (pair, b) in out.chunks_exact_mut(2).zip(self.0) {
            pair[0] = HEX[usize::from(b >> 4)];
            pair[1] = HEX[usize::from(b & 0x0f)];
        }
        out
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One write of 40 digits instead of 20 `{:02x}` formats (about 6 %
        // of the mbox CLI's instructions before).
        let hex = self.hex_bytes();
        f.write_str(std::str::from_utf8(&hex).map_err(|_| fmt::Error)?)
    }
}

/// The digest of one message (`pyzor digest`, style `msg`).
pub fn digest_message(raw: &[u8]) -> Result<Digest, DigestError> {
    let p = predigest(raw)?;
    let d = p.digest();
    // Keep the line buffers for the next message on this thread, unless a
    // big message made them big (no lasting memory cost).
    if p.lines.capacity() <= SPARE_LINES_MAX {
        SPARE_LINES.with(|s| s.set(Some(p.lines)));
    }
    Ok(d)
}

/// Largest line buffer (bytes) kept for reuse.
const SPARE_LINES_MAX: usize = 1 << 20;

thread_local! {
    /// Line buffers of the previous `digest_message` on this thread, reused
    /// so that a stream of messages does not allocate them each time.
    static SPARE_LINES: std::cell::Cell<Option<Lines>> = const { std::cell::Cell::new(None) };
}

/// The kept lines of a message and the selection over them.
#[derive(Debug, Clone)]
pub struct Predigest {
    lines: Lines,
    selected: Selection,
}

impl Predigest {
    /// The selected lines in hashing order (duplicates repeat, §E).
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.selected.as_slice().iter().map(|&i| self.lines.get(i))
    }

    /// SHA-1 over the selected lines, each `bytes.rstrip()`ped (a no-op on
    /// normalised lines, kept literal, J.9).
    pub fn digest(&self) -> Digest {
        let mut h = Sha1::new();
        for l in self.iter() {
            let end = l
                .iter()
                .rposition(|b| !b" \t\n\r\x0b\x0c".contains(b))
                .map_or(0, |p| p + 1);
            h.update(&l[..end]);
        }
        let mut out = [0u8; 20];
        out.copy_from_slice(&h.finalize());
        Digest(out)
    }
}

/// The selected lines of one message, for `pyzor predigest`.
pub fn predigest(raw: &[u8]) -> Result<Predigest, DigestError> {
    let lines = message_lines(raw)?;
    let selected = Selection::new(lines.len());
    Ok(Predigest { lines, selected })
}

/// The selected lines, owned (what `pyzor predigest` prints, one per line).
pub fn predigest_lines(raw: &[u8]) -> Result<Vec<Vec<u8>>, DigestError> {
    Ok(predigest(raw)?.iter().map(<[u8]>::to_vec).collect())
}

/// Line indexes hashed for `n` kept lines (§E): all when `n <= 4`, else
/// `offset * n // 100 + i` for `(offset, length)` in `[(20, 3), (60, 3)]`,
/// skipping indexes past the end.
#[cfg(test)]
pub(crate) fn selection(n: usize) -> Vec<usize> {
    Selection::new(n).as_slice().to_vec()
}

/// The selection of §E without a heap allocation: it never has more than 6
/// indexes.
#[derive(Debug, Clone, Copy)]
struct Selection {
    idx: [usize; 6],
    len: usize,
}

impl Selection {
    fn new(n: usize) -> Selection {
        let mut s = Selection {
            idx: [0; 6],
            len: 0,
        };
        if n <= 4 {
            for (i, slot) in s.idx.iter_mut().take(n).enumerate() {
                *slot = i;
            }
            s.len = n;
            return s;
        }
        for (offset, length) in [(20usize, 3usize), (60, 3)] {
            for i in 0..length {
                let k = offset * n / 100 + i;
                if k < n {
                    s.idx[s.len] = k;
                    s.len += 1;
                }
            }
        }
        s
    }

    fn as_slice(&self) -> &[usize] {
        &self.idx[..self.len]
    }
}

// ---------------------------------------------------------------------------
// Codec access (§C.2)

/// Python's codec error classes as the digest needs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CodecFailure {
    Lookup,
    Unicode,
    /// The codec raised something other than LookupError/UnicodeError
    /// (iso2022_jp_2's "internal codec error" RuntimeError): no `except`
    /// clause of the reference catches it, so it never digests the message.
    Runtime,
}

pub(crate) use codecs::Errors;

pub(crate) fn decode_codec(
    label: &str,
    bytes: &[u8],
    errors: Errors,
) -> Result<(String, StandIns), CodecFailure> {
    codecs::decode_text(label, bytes, errors).map_err(|e| match e {
        codecs::CodecError::Lookup(..) => CodecFailure::Lookup,
        codecs::CodecError::Unicode(..) => CodecFailure::Unicode,
        codecs::CodecError::PythonRuntimeError(..) => CodecFailure::Runtime,
        // A Python codec the codecs module does not implement (yet):
        // decoded as after a LookupError, and flagged (the result may
        // differ from the reference).
        codecs::CodecError::Unsupported(..) => {
            mark_approximate();
            CodecFailure::Lookup
        }
    })
}

thread_local! {
    static APPROXIMATE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Record that the current digest used a not-yet-exact code path (a codec
/// the codecs module does not implement).
pub(crate) fn mark_approximate() {
    APPROXIMATE.with(|a| a.set(true));
}

/// `str(bytes, label)` with `errors="strict"` (only used by
/// `get_content_charset` for RFC 2231 charsets). The codecs interface has
/// ignore/replace only: a decode is error-free exactly when both agree,
/// because every error makes `replace` insert a U+FFFD that `ignore` lacks.
pub(crate) fn decode_strict(label: &str, bytes: &[u8]) -> Result<String, CodecFailure> {
    let a = decode_codec(label, bytes, Errors::Ignore)?;
    let b = decode_codec(label, bytes, Errors::Replace)?;
    if a == b {
        Ok(a.0)
    } else {
        Err(CodecFailure::Unicode)
    }
}

/// `bytes.decode("ascii", errors)`: 8-bit bytes dropped (`ignore`) or one
/// U+FFFD each (`replace`).
fn ascii_decode(b: &[u8], replace: bool) -> String {
    b.iter()
        .filter_map(|&c| match (c < 0x80, replace) {
            (true, _) => Some(c as char),
            (false, true) => Some('\u{FFFD}'),
            (false, false) => None,
        })
        .collect()
}

/// Bytes as text without a copy when they are pure ASCII (every codec on
/// the fast paths maps ASCII to itself).
fn cow_ascii(b: Cow<'_, [u8]>) -> Result<Cow<'_, str>, Cow<'_, [u8]>> {
    if !b.is_ascii() {
        return Err(b);
    }
    Ok(match b {
        Cow::Borrowed(x) => Cow::Borrowed(std::str::from_utf8(x).unwrap_or_default()),
        Cow::Owned(x) => Cow::Owned(String::from_utf8(x).unwrap_or_default()),
    })
}

/// Labels that decode pure-ASCII bytes to the same text (fast path only).
fn ascii_transparent(label: &str) -> bool {
    matches!(
        label,
        "ascii"
            | "us-ascii"
            | "utf-8"
            | "utf8"
            | "iso-8859-1"
            | "latin1"
            | "latin-1"
            | "windows-1252"
    )
}

// ---------------------------------------------------------------------------
// digest_payloads (§C)

/// `payload.decode(charset, "ignore")`, ascii/ignore after LookupError or
/// UnicodeError (§C); a RuntimeError escapes the reference's `except`.
fn decode_or_ascii_ignore<'a>(charset: &str, bytes: &[u8]) -> Result<PartText<'a>, DigestError> {
    match decode_codec(charset, bytes, Errors::Ignore) {
        Ok((s, stand_ins)) => Ok((Cow::Owned(s), stand_ins)),
        Err(CodecFailure::Lookup | CodecFailure::Unicode) => {
            Ok((Cow::Owned(ascii_decode(bytes, false)), StandIns::NONE))
        }
        Err(CodecFailure::Runtime) => Err(DigestError::ReferenceCrash {
            what: "text part: its codec raises RuntimeError (uncaught in the reference)",
        }),
    }
}

fn message_lines(raw: &[u8]) -> Result<Lines, DigestError> {
    let mut lines = SPARE_LINES.with(|s| s.take()).unwrap_or_default();
    lines.clear();
    // Parts with a list payload are not visited: `elif part.is_multipart(): pass`.
    mime::parse_leaves(raw, &mut |part| {
        let (text, stand_ins) = if part.maintype() == "text" {
            text_part(&part)?
        } else {
            non_text_part(&part)?
        };
        lines.add_payload_with(&text, stand_ins);
        Ok(())
    })?;
    Ok(lines)
}

/// A `text/*` part (§C.1–C.3): transfer-decode, decode with the
/// charset (NUL removed, `ascii` when absent or empty, `errors="ignore"`,
/// falling back to ascii/ignore on LookupError/UnicodeError), strip HTML
/// for subtype `html`.
///
/// Pyzor's `errors = "strict"` branch for quopri-like charset names is dead
/// code (the codecs module reports those non-text codecs as LookupError
/// whatever the errors mode, §C.2 item 5, J.4), so it is not modelled.
fn text_part<'a>(part: &PartRef<'_, 'a>) -> Result<PartText<'a>, DigestError> {
    let payload = part.payload_bytes();
    // `str(get('content-transfer-encoding', '')).lower()`: ASCII + U+FFFD,
    // so ASCII lowering is Python's lower(); never stripped (J.8).
    let cte = part
        .get("content-transfer-encoding")
        .map(transfer::Cte::from_header);
    let bytes = transfer::decode_payload(cte, payload);
    let charset = mime::content_charset(part)?.map(|c| {
        if c.contains('\0') {
            Cow::Owned(c.replace('\0', ""))
        } else {
            c
        }
    });
    let charset = match charset.as_deref() {
        Some(c) if !c.is_empty() => c,
        _ => "ascii",
    };
    let (text, stand_ins): PartText<'a> = if matches!(charset, "utf-8" | "utf8" | "utf_8") {
        // Valid UTF-8 decodes to itself with Python's utf-8 codec (both
        // reject surrogate encodings): no copy, no stand-ins.
        match bytes {
            Cow::Borrowed(b) => match std::str::from_utf8(b) {
                Ok(t) => (Cow::Borrowed(t), StandIns::NONE),
                Err(_) => decode_or_ascii_ignore(charset, b)?,
            },
            Cow::Owned(v) => match String::from_utf8(v) {
                Ok(t) => (Cow::Owned(t), StandIns::NONE),
                Err(e) => decode_or_ascii_ignore(charset, e.as_bytes())?,
            },
        }
    } else if ascii_transparent(charset) {
        match cow_ascii(bytes) {
            Ok(t) => (t, StandIns::NONE),
            Err(bytes) => decode_or_ascii_ignore(charset, &bytes)?,
        }
    } else {
        decode_or_ascii_ignore(charset, &bytes)?
    };
    if part.subtype() == "html" {
        // `HTMLParser.HTMLParseError` does not exist in Python 3: any parser
        // exception becomes AttributeError (§H.1, J.1). The stripper
        // keeps characters as they are (its `unescape` turns `&#xD800;`
        // into U+FFFD, never a surrogate), so the stand-ins stay valid.
        return html::strip_html(&text)
            .map(|t| (Cow::Owned(t), stand_ins))
            .map_err(|e| DigestError::Html(e.to_string()));
    }
    Ok((text, stand_ins))
}

/// A non-text, non-multipart part (§C.4): `get_payload()` without
/// decoding: the still transfer-encoded text; with 8-bit bytes, decoded
/// with the **raw** `charset` parameter (default `ascii`) and
/// `errors="replace"`, ascii/replace on LookupError. The reference raises on
/// a NUL in that parameter (ValueError), on an RFC 2231 tuple (TypeError)
/// and when the codec raises UnicodeError (§H.2, J.7).
fn non_text_part<'a>(part: &PartRef<'_, 'a>) -> Result<PartText<'a>, DigestError> {
    let p = match cow_ascii(part.payload_bytes()) {
        Ok(text) => return Ok((text, StandIns::NONE)),
        Err(p) => p,
    };
    let label = match part.get_param("charset")? {
        None => "ascii".to_string(),
        Some(ParamValue::Str(s)) => s,
        Some(ParamValue::Tuple(..)) => {
            return Err(DigestError::ReferenceCrash {
                what: "non-text part with 8-bit bytes has an RFC 2231 charset parameter (TypeError in the reference)",
            })
        }
    };
    if label.contains('\0') {
        return Err(DigestError::ReferenceCrash {
            what: "non-text part with 8-bit bytes has a NUL in its charset parameter (ValueError in the reference)",
        });
    }
    match decode_codec(&label, &p, Errors::Replace) {
        Ok((s, stand_ins)) => Ok((Cow::Owned(s), stand_ins)),
        Err(CodecFailure::Lookup) => Ok((Cow::Owned(ascii_decode(&p, true)), StandIns::NONE)),
        Err(CodecFailure::Unicode | CodecFailure::Runtime) => Err(DigestError::ReferenceCrash {
            what: "non-text part with 8-bit bytes: its charset codec raises UnicodeError (uncaught in the reference)",
        }),
    }
}

/// Testing aid: digest `raw` and report whether a not-yet-exact path was
/// taken (a codec the codecs module does not implement); the result may
/// then differ from the reference.
#[doc(hidden)]
pub fn __predigest_flagging_unimplemented_codecs(
    raw: &[u8],
) -> (Result<Predigest, DigestError>, bool) {
    APPROXIMATE.with(|a| a.set(false));
    let r = predigest(raw);
    (r, APPROXIMATE.with(|a| a.get()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_matches_spec_table() {
        assert_eq!(selection(5), [1, 2, 3, 3, 4]);
        assert_eq!(selection(6), [1, 2, 3, 3, 4, 5]);
        assert_eq!(selection(7), [1, 2, 3, 4, 5, 6]);
        assert_eq!(selection(10), [2, 3, 4, 6, 7, 8]);
        assert_eq!(selection(100), [20, 21, 22, 60, 61, 62]);
        assert_eq!(selection(3), [0, 1, 2]);
    }

    #[test]
    fn empty_message_has_empty_digest() {
        assert_eq!(digest_message(b"").unwrap().to_string(), EMPTY_DIGEST);
    }

    #[test]
    fn non_text_8bit_with_nul_charset_is_an_error() {
        let raw = b"Content-Type: application/x; charset=\"a\0b\"\n\n\xe9\xe9 body\n";
        assert!(matches!(
            digest_message(raw),
            Err(DigestError::ReferenceCrash { .. })
        ));
    }
}
