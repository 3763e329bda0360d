//! TEMPORARY stand-ins for `digest::codecs` and `digest::html`, which two
//! other engineers are writing. They have the agreed signatures so the
//! switch is a two-line change in `digest/mod.rs`; remove this file then.
//!
//! * [`decode`] is exact for `ascii`, latin-1 and UTF-8 labels only; any
//!   other label is decoded as ascii/ignore and flagged as *approximate*.
//! * [`strip_html`] is a crude tag remover, always flagged approximate.
//!
//! Guesses are flagged through `super::mark_approximate` so the corpus test
//! can tell exact results from shim guesses.

/// Python `errors=` mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Errors {
    /// `errors="ignore"`
    Ignore,
    /// `errors="replace"`
    Replace,
}

/// Python's `LookupError` / `UnicodeError`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[allow(dead_code)] // the stand-in never reports these two
pub enum CodecError {
    /// Unknown encoding.
    #[error("unknown encoding: {0}")]
    Lookup(String),
    /// The codec raised UnicodeError.
    #[error("codec error: {0}")]
    Unicode(String),
    /// A Python codec not implemented (yet).
    #[error("codec not implemented: {0}")]
    Unsupported(String),
}

/// Error of the HTML stand-in (never produced).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("html parse error")]
pub struct HtmlError;

fn norm_label(label: &str) -> String {
    let l = label.to_lowercase().replace(' ', "_");
    let mut out = String::new();
    let mut pend = false;
    for c in l.chars() {
        if c.is_alphanumeric() || c == '.' {
            if pend && !out.is_empty() {
                out.push('_');
            }
            pend = false;
            out.push(c);
        } else {
            pend = true;
        }
    }
    out
}

/// `bytes.decode(label, errors)` for the few codecs the stand-in knows.
pub fn decode(label: &str, bytes: &[u8], errors: Errors) -> Result<String, CodecError> {
    let n = norm_label(label);
    match n.as_str() {
        "ascii" | "us_ascii" | "646" | "us" | "ansi_x3.4_1968" | "ansi_x3_4_1968" | "cp367"
        | "csascii" | "ibm367" | "iso646_us" | "iso_ir_6" => Ok(bytes
            .iter()
            .filter_map(|&b| {
                if b < 0x80 {
                    Some(b as char)
                } else if errors == Errors::Replace {
                    Some('\u{FFFD}')
                } else {
                    None
                }
            })
            .collect()),
        "latin_1" | "latin1" | "iso_8859_1" | "iso8859_1" | "8859" | "cp819" | "l1" | "latin"
        | "iso_ir_100" | "csisolatin1" | "ibm819" | "iso8859.1" | "iso_8859_1_1987" => {
            Ok(bytes.iter().map(|&b| b as char).collect())
        }
        "utf_8" | "utf8" | "u8" | "utf" | "cp65001" | "utf8_ucs2" | "utf8_ucs4" => {
            let mut out = String::with_capacity(bytes.len());
            for chunk in bytes.utf8_chunks() {
                out.push_str(chunk.valid());
                if !chunk.invalid().is_empty() && errors == Errors::Replace {
                    out.push('\u{FFFD}');
                }
            }
            Ok(out)
        }
        _ => Err(CodecError::Unsupported(label.to_string())),
    }
}

/// Crude HTML text extraction (approximate).
pub fn strip_html(text: &str) -> Result<String, HtmlError> {
    super::mark_approximate();
    let mut chunks = Vec::new();
    let mut cur = String::new();
    let mut in_tag = false;
    for c in text.chars() {
        match (in_tag, c) {
            (false, '<') => {
                let t = super::text::py_strip(&cur);
                if !t.is_empty() {
                    chunks.push(t.to_string());
                }
                cur.clear();
                in_tag = true;
            }
            (true, '>') => in_tag = false,
            (false, c) => cur.push(c),
            _ => {}
        }
    }
    let t = super::text::py_strip(&cur);
    if !t.is_empty() {
        chunks.push(t.to_string());
    }
    Ok(chunks.join(" "))
}
