//! `unicode_escape` and `raw_unicode_escape` of CPython 3.11
//! (`_PyUnicode_DecodeUnicodeEscapeInternal`,
//! `_PyUnicode_DecodeRawUnicodeEscapeStateful`). Bytes that are not part of
//! an escape are Latin-1 code points; escapes may produce lone surrogates
//! and line separators (docs/digest-rules.md C.2, E32).

use super::{CodecError, Out};

fn hex_value(c: u8) -> Option<u32> {
    (c as char).to_digit(16)
}

/// Reads `count` hex digits at `*s`. On a non-hex byte, `*s` stays on it
/// (CPython resumes there); on the end of input, `*s` is the end.
fn hex_digits(input: &[u8], s: &mut usize, count: usize) -> Option<u32> {
    let mut ch: u32 = 0;
    for _ in 0..count {
        let d = hex_value(*input.get(*s)?)?;
        ch = (ch << 4) | d;
        *s += 1;
    }
    Some(ch)
}

/// Pushes a `\x`/`\u`/`\U` result, or reports the error CPython raises for
/// a value above U+10FFFF ("illegal Unicode character").
fn push_escaped(ch: Option<u32>, out: &mut Out) {
    match ch {
        Some(cp) if cp <= 0x10FFFF => out.push_cp(cp),
        _ => out.error(),
    }
}

pub(crate) fn unicode_escape(input: &[u8], out: &mut Out) -> Result<(), CodecError> {
    let n = input.len();
    let mut s = 0;
    while s < n {
        // Fast path: copy the run up to the next backslash.
        let run = input[s..].iter().position(|&b| b == b'\\').unwrap_or(n - s);
        for &b in &input[s..s + run] {
            out.push_byte(b);
        }
        s += run;
        if s >= n {
            break;
        }
        s += 1; // the backslash
        let Some(&c) = input.get(s) else {
            out.error(); // "\\ at end of string"
            break;
        };
        s += 1;
        match c {
            b'\n' => {}
            b'\\' | b'\'' | b'"' => out.push_byte(c),
            b'b' => out.push_byte(0x08),
            b'f' => out.push_byte(0x0C),
            b't' => out.push_byte(b'\t'),
            b'n' => out.push_byte(b'\n'),
            b'r' => out.push_byte(b'\r'),
            b'v' => out.push_byte(0x0B),
            b'a' => out.push_byte(0x07),
            b'0'..=b'7' => {
                // Up to three octal digits; values above 0o377 are kept
                // (CPython only warns about them).
                let mut ch = u32::from(c - b'0');
                for _ in 0..2 {
                    match input.get(s) {
                        Some(&d @ b'0'..=b'7') => {
                            ch = (ch << 3) + u32::from(d - b'0');
                            s += 1;
                        }
                        _ => break,
                    }
                }
                out.push_cp(ch);
            }
            b'x' => push_escaped(hex_digits(input, &mut s, 2), out),
            b'u' => push_escaped(hex_digits(input, &mut s, 4), out),
            b'U' => push_escaped(hex_digits(input, &mut s, 8), out),
            b'N' => named_escape(input, &mut s, out)?,
            _ => {
                // Unknown escape: kept as backslash + character.
                out.push_byte(b'\\');
                out.push_byte(c);
            }
        }
    }
    Ok(())
}

/// `\N{name}`: `*s` is just past the `N`. Errors resume where CPython
/// does: at the end for a missing `{`…`}` pair, at the `}` for an empty
/// name, after the `}` for an unknown name.
fn named_escape(input: &[u8], s: &mut usize, out: &mut Out) -> Result<(), CodecError> {
    let n = input.len();
    if *s >= n {
        out.error();
        return Ok(());
    }
    if input[*s] != b'{' {
        out.error(); // "malformed \N character escape"
        return Ok(());
    }
    *s += 1;
    let start = *s;
    let Some(len) = input[start..].iter().position(|&b| b == b'}') else {
        *s = n;
        out.error();
        return Ok(());
    };
    *s = start + len;
    if len == 0 {
        out.error();
        return Ok(());
    }
    *s += 1;
    match super::names::lookup(&input[start..start + len])? {
        Some(cp) => out.push_cp(cp),
        None => out.error(), // "unknown Unicode character name"
    }
    Ok(())
}

/// `raw_unicode_escape`: only `\u` and `\U` are escapes, and only after an
/// odd number of backslashes (a backslash followed by anything else,
/// another backslash included, is kept as both bytes).
pub(crate) fn raw_unicode_escape(input: &[u8], out: &mut Out) {
    let n = input.len();
    let mut s = 0;
    while s < n {
        let c = input[s];
        s += 1;
        if c != b'\\' || s >= n {
            out.push_byte(c);
            continue;
        }
        let c = input[s];
        s += 1;
        let count = match c {
            b'u' => 4,
            b'U' => 8,
            _ => {
                out.push_byte(b'\\');
                out.push_byte(c);
                continue;
            }
        };
        push_escaped(hex_digits(input, &mut s, count), out);
    }
}
