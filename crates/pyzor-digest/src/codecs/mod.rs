//! Python 3.11's codecs, as far as `bytes.decode(charset, errors)` in the
//! Pyzor digest needs them (docs/digest-rules.md C.2, I #3 and #4).
//!
//! * [`lookup`] reproduces `codecs.lookup` name resolution: the C-level
//!   normalisation, the `encodings.aliases` table, the `.` → `_` retry and
//!   the module-name fallback.
//! * [`decode`] decodes with the `ignore` or `replace` error handler and
//!   gives exactly CPython's result, including the number of U+FFFD that
//!   `replace` emits, which is codec-specific.
//!
//! Tables are generated from the local CPython 3.11 by
//! `tools/gen-codec-tables.py` (see docs/codecs.md). Lone surrogates that a
//! codec produces (utf-7, unicode_escape, raw_unicode_escape; any codec
//! that goes through `Out::push_cp` is tracked) are returned as
//! stand-ins; `decode_text` says which block holds them
//! ([`super::text::StandIns`]).

mod escape;
#[rustfmt::skip]
mod generated;
mod names;
mod punycode;
mod stateful;
mod trie;
mod utf;

pub use generated::Codec;

use super::text::{StandIns, STAND_IN_AREA_START};

/// Python error handler names that the digest uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Errors {
    /// `"ignore"`: bytes the codec rejects are dropped.
    Ignore,
    /// `"replace"`: each rejected unit becomes one U+FFFD.
    Replace,
}

/// Why Python's `bytes.decode` would raise instead of returning text.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Python `LookupError`: the name is unknown, or names a non-text codec
    /// (`base64`, `quopri`, `rot13`, …). The digest then decodes as ascii.
    #[error("unknown encoding: {0} (Python raises LookupError; fall back to ascii)")]
    Lookup(String),
    /// Python `UnicodeError` raised by the codec itself (`undefined`, or
    /// `idna` with a non-strict error handler).
    #[error("decoding with {0} failed (Python raises UnicodeError)")]
    Unicode(String),
    /// Python `RuntimeError("internal codec error")`: CPython's
    /// iso2022_jp_2 decoder fails this way on `ESC N` after a G2
    /// designation it cannot single-shift (e.g. `ESC . J ESC N x`). The
    /// reference digest does not catch it, so that message gets no digest
    /// (like docs/digest-rules.md section H).
    #[error("{0} (Python raises RuntimeError; the reference digest fails)")]
    PythonRuntimeError(String),
    /// A codec this crate cannot decode exactly yet (see docs/codecs.md).
    /// This is a gap in pyzor-rs, not Python behaviour: the caller should
    /// treat the digest of this part as unavailable rather than guess.
    #[error("codec {0} is not implemented by pyzor-rs (see docs/codecs.md)")]
    Unsupported(String),
}

/// How a codec is implemented here.
#[derive(Clone, Copy)]
pub(crate) enum Imp {
    Trie(&'static trie::Trie),
    Utf8,
    Utf8Sig,
    Utf16,
    Utf16Le,
    Utf16Be,
    Utf32,
    Utf32Le,
    Utf32Be,
    Utf7,
    UnicodeEscape,
    RawUnicodeEscape,
    Punycode,
    Idna,
    Undefined,
    Hz,
    Iso2022,
}

/// Output sink shared by the decoders: collects text and applies the error
/// handler (`ignore` drops, `replace` emits one U+FFFD per error).
pub(crate) struct Out {
    pub(crate) s: String,
    errors: Errors,
    /// Where lone surrogates go.
    stand_ins: StandIns,
    /// A lone surrogate was pushed.
    surrogates: bool,
    /// Bit `i`: a genuine character of stand-in block `i` (U+F0000 +
    /// 2048·i ..) was pushed.
    blocks: u64,
}

impl Out {
    fn new(errors: Errors, capacity: usize, stand_ins: StandIns) -> Self {
        Out {
            s: String::with_capacity(capacity),
            errors,
            stand_ins,
            surrogates: false,
            blocks: 0,
        }
    }

    /// One call of the Python error handler.
    #[inline]
    pub(crate) fn error(&mut self) {
        if self.errors == Errors::Replace {
            self.s.push('\u{FFFD}');
        }
    }

    /// A code point as Python would hold it: surrogates become stand-ins.
    #[inline]
    pub(crate) fn push_cp(&mut self, cp: u32) {
        match char::from_u32(cp) {
            Some(c) => {
                if cp >= STAND_IN_AREA_START {
                    self.blocks |= 1 << ((cp - STAND_IN_AREA_START) >> 11);
                }
                self.s.push(c)
            }
            None => {
                debug_assert!((0xD800..=0xDFFF).contains(&cp));
                self.surrogates = true;
                self.s.push(self.stand_ins.stand_in((cp & 0xFFFF) as u16));
            }
        }
    }

    /// Whether the handler is `replace`.
    pub(crate) fn replaces(&self) -> bool {
        self.errors == Errors::Replace
    }

    /// Latin-1 byte as a code point.
    #[inline]
    pub(crate) fn push_byte(&mut self, b: u8) {
        self.s.push(char::from(b));
    }
}

/// Length of the ASCII prefix of `s` (index of the first byte >= 0x80),
/// eight bytes at a time: the decoders' fast path over ASCII runs.
#[inline]
pub(crate) fn ascii_prefix_len(s: &[u8]) -> usize {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut chunks = s.chunks_exact(8);
    let mut n = 0;
    for c in chunks.by_ref() {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) & HIGH;
        if w != 0 {
            return n + (w.trailing_zeros() / 8) as usize;
        }
        n += 8;
    }
    n + chunks
        .remainder()
        .iter()
        .position(|&b| b >= 0x80)
        .unwrap_or(chunks.remainder().len())
}

/// `codecs.lookup(label)` as seen through `bytes.decode`: `None` when Python
/// raises LookupError (unknown name, non-text codec, or a module that does
/// not import on Linux such as `mbcs`).
///
/// Python quirk (docs/digest-rules.md C.2 steps 1–3): the name is first
/// normalised by C code (`_Py_normalize_encoding`, Python/codecs.c) that
/// works on the UTF-8 bytes: ASCII letters, digits and `.` are kept
/// (lower-cased), and every run of other bytes — any non-ASCII character
/// included — becomes one `_`, with none at either end. Then
/// `encodings.search_function` looks the name up in the aliases, retries
/// with `.` → `_`, and finally tries it as a module name (dotted names never
/// import). An alias, once found, is final even if its module fails.
pub fn lookup(label: &str) -> Option<Codec> {
    let norm = normalize(label);
    if let Some(hit) = find_alias(&norm) {
        return hit;
    }
    if norm.contains('.') {
        if let Some(hit) = find_alias(&norm.replace('.', "_")) {
            return hit;
        }
        return None;
    }
    generated::MODULES
        .binary_search_by(|(k, _)| (*k).cmp(norm.as_str()))
        .ok()
        .map(|i| generated::MODULES[i].1)
}

fn find_alias(name: &str) -> Option<Option<Codec>> {
    generated::ALIASES
        .binary_search_by(|(k, _)| (*k).cmp(name))
        .ok()
        .map(|i| generated::ALIASES[i].1)
}

/// `_Py_normalize_encoding` of CPython 3.11 (see [`lookup`]).
fn normalize(label: &str) -> String {
    let mut out = String::with_capacity(label.len());
    let mut punct = false;
    for &b in label.as_bytes() {
        if b.is_ascii_alphanumeric() || b == b'.' {
            if punct && !out.is_empty() {
                out.push('_');
            }
            punct = false;
            out.push(char::from(b.to_ascii_lowercase()));
        } else {
            punct = true;
        }
    }
    out
}

/// `bytes.decode(label, errors)` of CPython 3.11.
///
/// A label holding NUL is treated like any other punctuation here; Python
/// raises ValueError for it before any lookup, which the caller must handle
/// (docs/digest-rules.md H.2).
///
/// Python quirk: an empty input decodes to `""` whatever the label, even an
/// unknown one (CPython returns the empty string before looking the codec
/// up), so `decode("no-such", b"", _)` is `Ok("")`.
pub fn decode(label: &str, bytes: &[u8], errors: Errors) -> Result<String, CodecError> {
    if bytes.is_empty() {
        return Ok(String::new());
    }
    let codec = lookup(label).ok_or_else(|| CodecError::Lookup(label.to_owned()))?;
    decode_with(codec, bytes, errors)
}

/// Like [`decode`], and also says which characters of the text stand for
/// lone surrogates: [`StandIns::NONE`] when the codec produced none (the
/// text is then exactly Python's), else the block they were put in, which
/// holds no genuine character of the text (see [`super::text`]; the one
/// inexact case is a text using all 64 candidate blocks).
pub(crate) fn decode_text(
    label: &str,
    bytes: &[u8],
    errors: Errors,
) -> Result<(String, StandIns), CodecError> {
    if bytes.is_empty() {
        return Ok((String::new(), StandIns::NONE));
    }
    let codec = lookup(label).ok_or_else(|| CodecError::Lookup(label.to_owned()))?;
    let out = decode_into(codec, bytes, errors, StandIns::DEFAULT)?;
    if !out.surrogates {
        return Ok((out.s, StandIns::NONE));
    }
    let default_block = (super::text::SURROGATE_STAND_IN_BASE - STAND_IN_AREA_START) >> 11;
    if out.blocks & (1 << default_block) == 0 {
        return Ok((out.s, StandIns::DEFAULT));
    }
    // Rare: lone surrogates and genuine U+10F800.. characters in one text.
    // Decode again with the highest block the text does not use.
    match (0..64u32).rev().find(|&i| out.blocks & (1 << i) == 0) {
        Some(free) => {
            let stand_ins = StandIns::block(free);
            let again = decode_into(codec, bytes, errors, stand_ins)?;
            Ok((again.s, stand_ins))
        }
        None => Ok((out.s, StandIns::DEFAULT)),
    }
}

/// Decode with an already looked-up codec.
pub(crate) fn decode_with(
    codec: Codec,
    bytes: &[u8],
    errors: Errors,
) -> Result<String, CodecError> {
    if bytes.is_empty() {
        return Ok(String::new());
    }
    Ok(decode_into(codec, bytes, errors, StandIns::DEFAULT)?.s)
}

fn decode_into(
    codec: Codec,
    bytes: &[u8],
    errors: Errors,
    stand_ins: StandIns,
) -> Result<Out, CodecError> {
    let mut out = Out::new(errors, bytes.len(), stand_ins);
    match codec.imp() {
        Imp::Trie(t) => t.decode(bytes, &mut out),
        Imp::Utf8 => utf::utf8(bytes, &mut out),
        Imp::Utf8Sig => utf::utf8(
            bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes),
            &mut out,
        ),
        Imp::Utf16 => utf::utf16(bytes, None, &mut out),
        Imp::Utf16Le => utf::utf16(bytes, Some(false), &mut out),
        Imp::Utf16Be => utf::utf16(bytes, Some(true), &mut out),
        Imp::Utf32 => utf::utf32(bytes, None, &mut out),
        Imp::Utf32Le => utf::utf32(bytes, Some(false), &mut out),
        Imp::Utf32Be => utf::utf32(bytes, Some(true), &mut out),
        Imp::Utf7 => utf::utf7(bytes, &mut out),
        Imp::UnicodeEscape => escape::unicode_escape(bytes, &mut out)?,
        Imp::RawUnicodeEscape => escape::raw_unicode_escape(bytes, &mut out),
        Imp::Punycode => punycode::decode(bytes, &mut out)?,
        // Python quirk: encodings/idna.py raises "Unsupported error
        // handling" for any handler but strict (docs/digest-rules.md C.2 step 6).
        Imp::Idna => return Err(CodecError::Unicode("idna".into())),
        // encodings/undefined.py always raises (docs/digest-rules.md C.2 step 5).
        Imp::Undefined => return Err(CodecError::Unicode("undefined".into())),
        Imp::Hz => stateful::hz(bytes, &mut out),
        Imp::Iso2022 => stateful::iso2022(codec, bytes, &mut out)?,
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
