//! Text of an HTML part exactly as pyzor 1.1.2's `HTMLStripper` extracts it
//! (docs/digest-rules.md C.3, H.1, I #10, J 1–3; docs/html.md).
//!
//! `HTMLStripper` subclasses `html.parser.HTMLParser` of **CPython 3.11.2 as
//! built by Debian bookworm (3.11.2-6+deb12u6)**: the `html.parser` from
//! before the 2025 upstream rewrite (python/cpython#135661: comment
//! termination with `--!>`, CDATA, bogus comments, `</ script>`, ...). This
//! module pins that older behaviour; a newer Python gives different text on
//! some inputs, and the reference does not.
//!
//! * [`strip_html`]: `HTMLStripper(data).feed(text)` (never `close()`d),
//!   then `" ".join(data)`.
//! * [`unescape`] (and the parser's `try_unescape`): `html.unescape` (HTML5 rules).
//!
//! The parser is a hand-written linear-time port of the regex-driven
//! Python code (`parser.rs`); the HTML5 entity table (`entities.rs`) is
//! generated from the reference Python by `tools/gen-html-entities.py`.

mod entities;
mod parser;
mod unescape;

pub use unescape::unescape;
#[cfg(test)]
use unescape::PY_INT_MAX_STR_DIGITS;

/// `memchr::memchr(c, hay)`, with the first eight bytes tested inline
/// (one word compare, or a byte loop when fewer are left): many searches
/// here (`<` after a tag, `&` in a short text run, a closing quote) end
/// within a few bytes, where memchr's fixed cost (a call through its
/// dispatch pointer and vector set-up, about 50 instructions) was most of
/// the work. Measured: 8 inline bytes beat 16 and 32.
#[inline]
pub(crate) fn find_byte(c: u8, hay: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let pat = ONES * u64::from(c);
    let mut i = 0;
    while i < 8 {
        let Some(&[a, b, c2, d, e, f, g, h]) = hay.get(i..i + 8) else {
            // Under 8 bytes left.
            return hay.get(i..)?.iter().position(|&x| x == c).map(|p| i + p);
        };
        let w = u64::from_le_bytes([a, b, c2, d, e, f, g, h]) ^ pat;
        // Zero bytes of `w` (bytes equal to `c`); the lowest one is exact.
        let z = w.wrapping_sub(ONES) & !w & HIGH;
        if z != 0 {
            return Some(i + (z.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    memchr::memchr(c, hay.get(i..)?).map(|p| i + p)
}

/// `memchr::memchr2(a, b, hay)`, with the first eight bytes tested inline
/// (see [`find_byte`]).
#[inline]
pub(crate) fn find_either(a: u8, b: u8, hay: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let Some(&[b0, b1, b2, b3, b4, b5, b6, b7]) = hay.get(..8) else {
        return hay.iter().position(|&x| x == a || x == b);
    };
    let w = u64::from_le_bytes([b0, b1, b2, b3, b4, b5, b6, b7]);
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    // Each test's lowest hit is exact, so the lowest of both is.
    let z = zero(w ^ (ONES * u64::from(a))) | zero(w ^ (ONES * u64::from(b)));
    if z != 0 {
        return Some((z.trailing_zeros() / 8) as usize);
    }
    memchr::memchr2(a, b, &hay[8..]).map(|p| 8 + p)
}

/// Inputs on which the reference's `HTMLParser.feed()` raises. In pyzor any
/// exception there turns into `AttributeError` (its `except` clause names
/// the non-existent `HTMLParser.HTMLParseError`, docs/digest-rules.md H.1, J.1):
/// the message then has **no digest**. Offsets are byte offsets into the
/// text given to [`strip_html`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HtmlError {
    /// `<![` not followed by a keyword (`<![ CDATA[`, `<![123[`): Python's
    /// `_markupbase._scan_name` raises `AssertionError("expected name token")`.
    #[error(
        "HTML marked section `<![` at byte {offset} has no keyword (Python raises \
         AssertionError \"expected name token\"): the reference cannot digest this part, \
         so no digest is produced"
    )]
    MarkedSectionName {
        /// Offset of the `<`.
        offset: usize,
    },
    /// `<![keyword` with a keyword other than `temp`, `cdata`, `ignore`,
    /// `include`, `rcdata`, `if`, `else`, `endif` (any case): Python's
    /// `parse_marked_section` raises `AssertionError("unknown status keyword")`.
    #[error(
        "HTML marked section `<![{keyword}` at byte {offset} has an unknown status keyword \
         (Python raises AssertionError): the reference cannot digest this part, so no digest \
         is produced"
    )]
    MarkedSection {
        /// The keyword as written.
        keyword: String,
        /// Offset of the `<`.
        offset: usize,
    },
    /// A decimal character reference (`&#` + digits) with more than 4300
    /// digits, leading zeros included, in text or in an attribute value:
    /// Python's `int()` raises `ValueError` (the integer string conversion
    /// limit of CPython 3.11).
    #[error(
        "HTML character reference at byte {offset} has {digits} decimal digits; Python's int() \
         refuses more than 4300 (ValueError): the reference cannot digest this part, so no \
         digest is produced"
    )]
    CharrefTooLong {
        /// Number of digits.
        digits: usize,
        /// Offset of the `&`.
        offset: usize,
    },
}

impl HtmlError {
    /// The same error with its offset moved by `by` bytes (an error found
    /// in a slice, reported against the whole text).
    fn shifted(self, by: usize) -> Self {
        match self {
            HtmlError::MarkedSectionName { offset } => HtmlError::MarkedSectionName {
                offset: offset + by,
            },
            HtmlError::MarkedSection { keyword, offset } => HtmlError::MarkedSection {
                keyword,
                offset: offset + by,
            },
            HtmlError::CharrefTooLong { digits, offset } => HtmlError::CharrefTooLong {
                digits,
                offset: offset + by,
            },
        }
    }
}

/// pyzor's `HTMLStripper`: `feed(text)` without `close()`; every data chunk
/// `str.strip()`ped, empty ones dropped, collection off between `<script>`/
/// `<style>` start and end tags; chunks joined with one space.
///
/// Text that the parser holds back at the end (an unterminated construct,
/// or a tail with an `&` close to the end) is lost, as in the reference.
/// Lone-surrogate stand-ins (`digest::text`) are ordinary characters here.
pub fn strip_html(text: &str) -> Result<String, HtmlError> {
    let mut p = parser::Stripper::new(text);
    p.feed()?;
    Ok(p.into_text())
}

#[cfg(test)]
mod tests;
