//! `html.unescape` of CPython 3.11.2 (`Lib/html/__init__.py`): HTML5
//! character references, with the WHATWG fix-ups for invalid numbers and
//! the longest-prefix rule for legacy names (docs/digest-rules.md C.3, "Entities").

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::LazyLock;

use super::entities::HTML5_ENTITIES;
use super::HtmlError;

/// Python's `int()` refuses decimal strings longer than this
/// (`sys.get_int_max_str_digits()`, default 4300 since CPython 3.11.0).
pub(crate) const PY_INT_MAX_STR_DIGITS: usize = 4300;

/// `{1,32}` in `_charref`: a name is at most 32 code points.
const NAME_MAX_CHARS: usize = 32;

/// `html.unescape(s)`: replace every character reference in `s`.
///
/// Identical to Python, except for one input on which Python raises: a
/// decimal reference with more than 4300 digits (`&#` + 4301 digits), where
/// `int()` raises `ValueError`. This function converts such a reference by
/// its value as if Python had no limit; use `try_unescape` to get the
/// error.
pub fn unescape(s: &str) -> Cow<'_, str> {
    match unescape_impl(s, false) {
        Ok(v) => v,
        // Unreachable: with `strict == false` no error is produced.
        Err(_) => Cow::Borrowed(s),
    }
}

/// `html.unescape(s)` including Python's failure: a decimal character
/// reference with more than [`PY_INT_MAX_STR_DIGITS`] digits gives
/// [`HtmlError::CharrefTooLong`] (its `offset` is a byte offset into `s`).
pub(crate) fn try_unescape(s: &str) -> Result<Cow<'_, str>, HtmlError> {
    unescape_impl(s, true)
}

fn unescape_impl(s: &str, strict: bool) -> Result<Cow<'_, str>, HtmlError> {
    // `if '&' not in s: return s`
    // memchr on the bytes: `&` is ASCII, so the index is the same.
    let Some(first) = super::find_byte(b'&', s.as_bytes()) else {
        return Ok(Cow::Borrowed(s));
    };
    let mut out = String::with_capacity(s.len());
    let mut copied = 0; // s[..copied] is already in `out`
    let mut pos = first;
    // `_charref.sub(_replace_charref, s)`: leftmost matches, scanning on
    // after each match or after each `&` where the pattern fails.
    loop {
        if let Some(end) = replace_charref_at(s, pos, strict, &mut out, copied)? {
            copied = end;
            pos = end;
        } else {
            pos += 1;
        }
        match super::find_byte(b'&', &s.as_bytes()[pos..]) {
            Some(off) => pos += off,
            None => break,
        }
    }
    if copied == 0 {
        return Ok(Cow::Borrowed(s));
    }
    out.push_str(&s[copied..]);
    Ok(Cow::Owned(out))
}

/// Try `_charref` at the `&` at byte `amp`:
/// `&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)`.
/// On a match, append `s[copied..amp]` and the replacement to `out` and
/// return the end of the match.
fn replace_charref_at(
    s: &str,
    amp: usize,
    strict: bool,
    out: &mut String,
    copied: usize,
) -> Result<Option<usize>, HtmlError> {
    let b = s.as_bytes();
    let start = amp + 1;
    if b.get(start) == Some(&b'#') {
        let (digits_start, radix) = match b.get(start + 1) {
            Some(c) if c.is_ascii_digit() => (start + 1, 10),
            Some(b'x' | b'X') if b.get(start + 2).is_some_and(u8::is_ascii_hexdigit) => {
                (start + 2, 16)
            }
            // `&#` followed by anything else: no alternative matches ('#'
            // is excluded from the name class).
            _ => return Ok(None),
        };
        let digits_end = digits_start
            + b[digits_start..]
                .iter()
                .take_while(|c| {
                    if radix == 10 {
                        c.is_ascii_digit()
                    } else {
                        c.is_ascii_hexdigit()
                    }
                })
                .count();
        let ndigits = digits_end - digits_start;
        if radix == 10 && ndigits > PY_INT_MAX_STR_DIGITS && strict {
            return Err(HtmlError::CharrefTooLong {
                digits: ndigits,
                offset: amp,
            });
        }
        let value = b[digits_start..digits_end].iter().fold(0u32, |acc, &c| {
            let d = (c as char).to_digit(radix).unwrap_or(0);
            // Saturate: anything above U+10FFFF behaves the same.
            acc.saturating_mul(radix).saturating_add(d).min(0x0011_0000)
        });
        let end = if b.get(digits_end) == Some(&b';') {
            digits_end + 1
        } else {
            digits_end
        };
        out.push_str(&s[copied..amp]);
        push_numeric_charref(value, out);
        return Ok(Some(end));
    }
    // `[^\t\n\f <&#;]{1,32};?` — 32 code points, not bytes.
    let mut name_end = start;
    for (count, (off, c)) in s[start..].char_indices().enumerate() {
        if count == NAME_MAX_CHARS
            || matches!(c, '\t' | '\n' | '\x0c' | ' ' | '<' | '&' | '#' | ';')
        {
            break;
        }
        name_end = start + off + c.len_utf8();
    }
    if name_end == start {
        return Ok(None);
    }
    let end = if b.get(name_end) == Some(&b';') {
        name_end + 1
    } else {
        name_end
    };
    out.push_str(&s[copied..amp]);
    push_named_charref(&s[start..end], out);
    Ok(Some(end))
}

/// `html.entities.html5[name]`, through a hash index built on first use
/// (a third faster than binary search over the 2231 names).
fn lookup_entity(name: &str) -> Option<&'static str> {
    static INDEX: LazyLock<HashMap<&'static str, &'static str, BuildHasherDefault<Fnv1a>>> =
        LazyLock::new(|| HTML5_ENTITIES.iter().copied().collect());
    INDEX.get(name).copied()
}

/// FNV-1a: the keys are a fixed table of short ASCII names, so a DoS-safe
/// hash buys nothing, and SipHash cost about 170 instructions per lookup
/// (more than the rest of the reference's replacement).
#[derive(Default)]
struct Fnv1a(u64);

impl Hasher for Fnv1a {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// Whether `html.unescape(s)` would raise, without building its result:
/// Python raises exactly when some `&#` is followed by more than
/// [`PY_INT_MAX_STR_DIGITS`] decimal digits (every such `&` is reached by
/// the substitution scan, since no other reference can contain `&` or `#`).
pub(super) fn check_unescape(s: &str) -> Result<(), HtmlError> {
    let b = s.as_bytes();
    let mut pos = 0;
    while let Some(off) = super::find_byte(b'&', &b[pos..]) {
        let amp = pos + off;
        pos = amp + 1;
        if b.get(pos) != Some(&b'#') {
            continue;
        }
        let digits = b[pos + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits > PY_INT_MAX_STR_DIGITS {
            return Err(HtmlError::CharrefTooLong {
                digits,
                offset: amp,
            });
        }
        pos += 1 + digits;
    }
    Ok(())
}

/// The named branch of `_replace_charref`: an exact match (the `;` is part
/// of `name` when present), else the longest prefix of at least two code
/// points that is a name (only legacy names without `;` can be prefixes),
/// followed by the rest; else the text unchanged (`'&' + name`).
fn push_named_charref(name: &str, out: &mut String) {
    if let Some(v) = lookup_entity(name) {
        out.push_str(v);
        return;
    }
    // `for x in range(len(s)-1, 1, -1): if s[:x] in _html5`
    let cuts: Vec<usize> = name.char_indices().map(|(i, _)| i).skip(2).collect();
    for &cut in cuts.iter().rev() {
        if let Some(v) = lookup_entity(&name[..cut]) {
            out.push_str(v);
            out.push_str(&name[cut..]);
            return;
        }
    }
    out.push('&');
    out.push_str(name);
}

/// `_invalid_charrefs`: 0x00, CR and the C1 range read as windows-1252
/// (the five bytes windows-1252 leaves undefined map to themselves).
fn invalid_charref(num: u32) -> Option<char> {
    const C1: [char; 32] = [
        '\u{20ac}', '\u{81}', '\u{201a}', '\u{192}', '\u{201e}', '\u{2026}', '\u{2020}',
        '\u{2021}', '\u{2c6}', '\u{2030}', '\u{160}', '\u{2039}', '\u{152}', '\u{8d}', '\u{17d}',
        '\u{8f}', '\u{90}', '\u{2018}', '\u{2019}', '\u{201c}', '\u{201d}', '\u{2022}', '\u{2013}',
        '\u{2014}', '\u{2dc}', '\u{2122}', '\u{161}', '\u{203a}', '\u{153}', '\u{9d}', '\u{17e}',
        '\u{178}',
    ];
    match num {
        0x00 => Some('\u{fffd}'),
        0x0d => Some('\r'),
        0x80..=0x9f => Some(C1[(num - 0x80) as usize]),
        _ => None,
    }
}

/// `_invalid_codepoints`: references to these produce the empty string.
fn is_invalid_codepoint(num: u32) -> bool {
    matches!(num, 0x01..=0x08 | 0x0b | 0x0e..=0x1f | 0x7f..=0x9f | 0xfdd0..=0xfdef)
        || (num & 0xfffe == 0xfffe && num <= 0x10ffff)
}

/// The numeric branch of `_replace_charref`, in Python's order of checks.
fn push_numeric_charref(num: u32, out: &mut String) {
    if let Some(c) = invalid_charref(num) {
        out.push(c);
    } else if (0xd800..=0xdfff).contains(&num) || num > 0x10ffff {
        out.push('\u{fffd}');
    } else if is_invalid_codepoint(num) {
        // empty replacement
    } else if let Some(c) = char::from_u32(num) {
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> String {
        unescape(s).into_owned()
    }

    #[test]
    fn no_ampersand_is_borrowed() {
        assert!(matches!(unescape("plain <b> text"), Cow::Borrowed(_)));
        assert!(matches!(unescape("a & b &#; &#x;"), Cow::Borrowed(_)));
    }

    #[test]
    fn named_exact_with_and_without_semicolon() {
        assert_eq!(u("&amp;&lt;&gt;&quot;"), "&<>\"");
        assert_eq!(u("&amp &lt"), "& <");
        assert_eq!(u("&nbsp;x"), "\u{a0}x");
        // HTML5-only names need the semicolon
        assert_eq!(u("&hellip;"), "\u{2026}");
        assert_eq!(u("&hellip"), "&hellip");
        // two-code-point values
        assert_eq!(u("&NotEqualTilde;"), "\u{2242}\u{338}");
        // case matters
        assert_eq!(u("&AMP;"), "&");
        assert_eq!(u("&Amp;"), "&Amp;");
    }

    #[test]
    fn named_longest_legacy_prefix() {
        assert_eq!(u("&notit;"), "\u{ac}it;");
        assert_eq!(u("&ampfoo"), "&foo");
        assert_eq!(u("&notin;"), "\u{2209}");
        assert_eq!(u("&copyright"), "\u{a9}right");
        // prefix must be at least two code points; no prefix -> unchanged
        assert_eq!(u("&xyz;"), "&xyz;");
        assert_eq!(u("&"), "&");
        assert_eq!(u("& amp;"), "& amp;");
        // 32 code points at most, then the rest is plain text
        let long = format!("&amp{};", "x".repeat(40));
        assert_eq!(u(&long), format!("&{};", "x".repeat(40)));
        // non-ASCII is part of the name class
        assert_eq!(u("&ampé;"), "&é;");
        assert_eq!(u("&\u{e9}\u{e9};"), "&\u{e9}\u{e9};");
    }

    #[test]
    fn name_class_boundaries() {
        // \r is in the name class (only \t \n \f space < & # ; end a name)
        assert_eq!(u("&amp\r"), "&\r");
        assert_eq!(u("&lt&gt"), "<>");
        assert_eq!(u("&lt#"), "<#");
        assert_eq!(u("&&amp;"), "&&");
    }

    #[test]
    fn numeric_references() {
        assert_eq!(u("&#65;&#x41;&#X41;&#0065"), "AAAA");
        assert_eq!(u("&#0;"), "\u{fffd}");
        assert_eq!(u("&#13;"), "\r");
        assert_eq!(u("&#133;"), "\u{2026}");
        assert_eq!(u("&#x80;"), "\u{20ac}");
        assert_eq!(u("&#x81;"), "\u{81}");
        assert_eq!(u("&#xD800;"), "\u{fffd}");
        assert_eq!(u("&#x110000;"), "\u{fffd}");
        assert_eq!(u(&format!("&#{};", "9".repeat(100))), "\u{fffd}");
        assert_eq!(u(&format!("&#x{};", "f".repeat(5000))), "\u{fffd}");
        assert_eq!(
            u("a&#1;b&#x0b;c&#x7f;d&#xFDD0;e&#xFFFE;f&#x10FFFF;g"),
            "abcdefg"
        );
        assert_eq!(u("&#9;&#10;&#12;"), "\t\n\x0c");
        assert_eq!(u("&#8232;&#x2029;"), "\u{2028}\u{2029}");
        assert_eq!(u("&#;&#x;&#xg;"), "&#;&#x;&#xg;");
        assert_eq!(u("&#65a"), "Aa");
    }

    #[test]
    fn python_int_digit_limit() {
        let ok = format!("&#{}65;", "0".repeat(PY_INT_MAX_STR_DIGITS - 2));
        assert_eq!(try_unescape(&ok).unwrap(), "A");
        let bad = format!("xy&#{}65;", "0".repeat(PY_INT_MAX_STR_DIGITS - 1));
        match try_unescape(&bad) {
            Err(HtmlError::CharrefTooLong { digits, offset }) => {
                assert_eq!((digits, offset), (PY_INT_MAX_STR_DIGITS + 1, 2));
            }
            other => panic!("expected CharrefTooLong, got {other:?}"),
        }
        assert_eq!(unescape(&bad), "xyA");
        let big = format!("&#{};", "7".repeat(PY_INT_MAX_STR_DIGITS + 1));
        assert_eq!(unescape(&big), "\u{fffd}");
        assert!(try_unescape(&big).is_err());
        // hex has no limit in Python (power-of-two base)
        let hex = format!("&#x{}41;", "0".repeat(5000));
        assert_eq!(try_unescape(&hex).unwrap(), "A");
    }

    #[test]
    fn entity_table_is_sorted_and_complete() {
        assert_eq!(HTML5_ENTITIES.len(), 2231);
        assert!(HTML5_ENTITIES.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(HTML5_ENTITIES
            .iter()
            .all(|(k, _)| k.is_ascii() && k.len() <= NAME_MAX_CHARS));
    }
}
