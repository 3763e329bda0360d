//! Every CPython behaviour the protocol side reproduces, in one place.
//!
//! Each function names the Python function it mirrors. The digest crate and
//! the configuration crate call these too: a Python rule is written once.

use std::borrow::Cow;

/// Python `str.isspace()`, which is also what `re`'s `\s` matches on `str`
/// patterns: Unicode White_Space **plus** U+001C..U+001F (bidi class B/S),
/// docs/digest-rules.md D.2. Rust's `char::is_whitespace` misses 0x1C..0x1F.
pub fn py_isspace(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\x0b' | '\x0c' | '\r' | '\x1c'..='\x1f' | ' ' | '\u{85}' | '\u{a0}'
            | '\u{1680}' | '\u{2000}'..='\u{200a}' | '\u{2028}' | '\u{2029}' | '\u{202f}'
            | '\u{205f}' | '\u{3000}'
    )
}

/// Python `str.strip()` with no argument. Byte tests for ASCII edges,
/// [`py_isspace`] on decoded characters otherwise.
pub fn py_strip(s: &str) -> &str {
    let b = s.as_bytes();
    // A table lookup: measured cheaper than the range tests of `matches!`.
    static ASCII_SPACE: [bool; 256] = {
        let mut t = [false; 256];
        let mut c = 0;
        while c < 0x80 {
            t[c] = matches!(
                c as u8,
                b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0x1c..=0x1f | b' '
            );
            c += 1;
        }
        t
    };
    let ascii_space = |c: u8| ASCII_SPACE[usize::from(c)];
    // Common case: both ends are ASCII and not whitespace.
    match (b.first(), b.last()) {
        (Some(&f), Some(&l)) if f < 0x80 && l < 0x80 && !ascii_space(f) && !ascii_space(l) => {
            return s
        }
        _ => {}
    }
    let mut start = 0;
    while start < b.len() {
        if b[start] < 0x80 {
            if !ascii_space(b[start]) {
                break;
            }
            start += 1;
        } else {
            match s[start..].chars().next() {
                Some(c) if py_isspace(c) => start += c.len_utf8(),
                _ => break,
            }
        }
    }
    let mut end = b.len();
    while end > start {
        if b[end - 1] < 0x80 {
            if !ascii_space(b[end - 1]) {
                break;
            }
            end -= 1;
        } else {
            match s[start..end].chars().next_back() {
                Some(c) if py_isspace(c) => end -= c.len_utf8(),
                _ => break,
            }
        }
    }
    &s[start..end]
}

/// Python `str.splitlines()` boundaries (docs/digest-rules.md D.1): `\r\n` is one
/// boundary; `\x1f` is whitespace but not a boundary.
pub fn is_line_boundary(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r'
            | '\x0b'
            | '\x0c'
            | '\x1c'
            | '\x1d'
            | '\x1e'
            | '\u{85}'
            | '\u{2028}'
            | '\u{2029}'
    )
}

/// Python `str.splitlines()` (no `keepends`): boundaries removed, no empty
/// trailing element.
pub fn py_splitlines(s: &str) -> impl Iterator<Item = &str> {
    let mut rest = s;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        match rest.char_indices().find(|&(_, c)| is_line_boundary(c)) {
            None => {
                let line = rest;
                rest = "";
                Some(line)
            }
            Some((i, c)) => {
                let line = &rest[..i];
                let mut next = i + c.len_utf8();
                if c == '\r' && rest[next..].starts_with('\n') {
                    next += 1;
                }
                rest = &rest[next..];
                Some(line)
            }
        }
    })
}

/// Python `int(s)` for a `str` in base 10: surrounding whitespace (Python's
/// `isspace`, which includes `\x1c`..`\x1f`) is ignored, an optional sign,
/// ASCII digits with single underscores between digits (`1_000`).
/// Returns `None` where Python raises `ValueError`, or for values outside
/// `i64` (Python would accept those; no setting or timestamp needs them).
///
/// Python also accepts non-ASCII decimal digits (`"１２"`); callers that can
/// see non-ASCII text handle it before (a `Time` header with non-ASCII bytes
/// is a 500 in the reference for another reason, docs/protocol.md §3.2).
pub fn py_int(s: &str) -> Option<i64> {
    let t = py_strip(s);
    let (neg, digits) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let b = digits.as_bytes();
    if b.is_empty() || !b[0].is_ascii_digit() || !b[b.len() - 1].is_ascii_digit() {
        return None;
    }
    let mut v: i64 = 0;
    let mut prev_us = false;
    for &c in b {
        if c == b'_' {
            if prev_us {
                return None;
            }
            prev_us = true;
            continue;
        }
        prev_us = false;
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?;
        v = if neg {
            v.checked_sub((c - b'0') as i64)?
        } else {
            v.checked_add((c - b'0') as i64)?
        };
    }
    Some(v)
}

/// Python's `repr()` of a `str` (ASCII and printable-Unicode subset): single
/// quotes unless the text has `'` and no `"`; backslash escapes for `\\`,
/// the quote, `\t`, `\n`, `\r`, other control characters as `\xNN`.
/// Used where the reference prints `%r` (log lines, error texts).
pub fn py_repr_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if (0x80..0xa0).contains(&(c as u32)) => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python `float(str)` for ASCII text: surrounding whitespace ignored,
/// underscores allowed only between digits, `inf`/`infinity`/`nan` in any
/// case with an optional sign. Rust's parser accepts the same grammar
/// otherwise.
pub fn py_float(s: &str) -> Option<f64> {
    let t = py_strip(s);
    let b = t.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if c == b'_' {
            let ok =
                i > 0 && b[i - 1].is_ascii_digit() && b.get(i + 1).is_some_and(u8::is_ascii_digit);
            if !ok {
                return None;
            }
        }
    }
    let cleaned: Cow<str> = if t.contains('_') {
        Cow::Owned(t.replace('_', ""))
    } else {
        Cow::Borrowed(t)
    };
    cleaned.parse::<f64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn py_int_like_python() {
        assert_eq!(py_int("24441"), Some(24441));
        assert_eq!(py_int("  +12 \n"), Some(12));
        assert_eq!(py_int("-7"), Some(-7));
        assert_eq!(py_int("1_000"), Some(1000));
        assert_eq!(py_int("\x1c5\x1f"), Some(5));
        for bad in [
            "", " ", "1__0", "_1", "1_", "3.5", "abc", "+", "0x10", "1 2", "5 # s",
        ] {
            assert_eq!(py_int(bad), None, "{bad:?}");
        }
        assert_eq!(py_int("9223372036854775807"), Some(i64::MAX));
        assert_eq!(py_int("-9223372036854775808"), Some(i64::MIN));
        assert_eq!(py_int("9223372036854775808"), None);
    }

    #[test]
    fn repr_like_python() {
        assert_eq!(py_repr_str("abc"), "'abc'");
        assert_eq!(py_repr_str("it's"), "\"it's\"");
        assert_eq!(py_repr_str("a'\""), "'a\\'\"'");
        assert_eq!(py_repr_str("a\tb\n\x00"), "'a\\tb\\n\\x00'");
    }
}
