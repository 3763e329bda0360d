//! The UTF codecs of CPython 3.11 (`Objects/unicodeobject.c`), with the
//! error ranges CPython reports, because `replace` emits one U+FFFD per
//! reported range (docs/digest-rules.md C.2).

use super::Out;

/// `utf_8` (also the body of `utf_8_sig`): no BOM removal; each maximal
/// invalid subpart is one error, and a truncated sequence at the end is one
/// error. Rust's `Utf8Chunks` splits invalid input exactly the way CPython's
/// decoder reports it (Unicode's "maximal subpart" practice), which the
/// differential test `codecs_differential` checks.
pub(crate) fn utf8(input: &[u8], out: &mut Out) {
    for chunk in input.utf8_chunks() {
        out.s.push_str(chunk.valid());
        if !chunk.invalid().is_empty() {
            out.error();
        }
    }
}

/// `utf_16` (`big_endian = None`: a leading BOM picks the order and is
/// removed, otherwise little-endian, E30), `utf_16_le` / `utf_16_be` (BOM
/// kept as U+FEFF). Python quirks reproduced from
/// `PyUnicode_DecodeUTF16Stateful`: a lone low surrogate is a 2-byte error;
/// a high surrogate not followed by a low one is a 2-byte error and the next
/// unit is decoded afresh; a high surrogate with under 2 bytes after it is
/// one error to the end; a trailing odd byte is one error.
pub(crate) fn utf16(input: &[u8], big_endian: Option<bool>, out: &mut Out) {
    let mut q = 0;
    let be = match big_endian {
        Some(be) => be,
        None => match input {
            [0xFF, 0xFE, ..] => {
                q = 2;
                false
            }
            [0xFE, 0xFF, ..] => {
                q = 2;
                true
            }
            _ => false,
        },
    };
    let unit = |q: usize| {
        let (a, b) = (input[q], input[q + 1]);
        if be {
            u16::from_be_bytes([a, b])
        } else {
            u16::from_le_bytes([a, b])
        }
    };
    let n = input.len();
    while q < n {
        if n - q < 2 {
            out.error(); // "truncated data"
            break;
        }
        let u = unit(q);
        q += 2;
        if !(0xD800..=0xDFFF).contains(&u) {
            out.push_cp(u32::from(u));
        } else if u >= 0xDC00 {
            out.error(); // "illegal encoding"
        } else if n - q < 2 {
            out.error(); // "unexpected end of data", to the end
            break;
        } else {
            let u2 = unit(q);
            if (0xDC00..=0xDFFF).contains(&u2) {
                q += 2;
                out.push_cp(0x10000 + ((u32::from(u) - 0xD800) << 10) + (u32::from(u2) - 0xDC00));
            } else {
                out.error(); // "illegal UTF-16 surrogate"; u2 decoded next
            }
        }
    }
}

/// `utf_32`, `utf_32_le`, `utf_32_be` (`PyUnicode_DecodeUTF32Stateful`): a
/// BOM (only for `utf_32`) picks the order, default little-endian;
/// surrogates and values above U+10FFFF are 4-byte errors; 1–3 trailing
/// bytes are one error.
pub(crate) fn utf32(input: &[u8], big_endian: Option<bool>, out: &mut Out) {
    let mut q = 0;
    let be = match big_endian {
        Some(be) => be,
        None => match input {
            [0xFF, 0xFE, 0, 0, ..] => {
                q = 4;
                false
            }
            [0, 0, 0xFE, 0xFF, ..] => {
                q = 4;
                true
            }
            _ => false,
        },
    };
    let n = input.len();
    while q < n {
        let Some(b) = input.get(q..q + 4) else {
            out.error(); // "truncated data"
            break;
        };
        let b = [b[0], b[1], b[2], b[3]];
        let cp = if be {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        };
        match char::from_u32(cp) {
            Some(c) => out.s.push(c),
            None => out.error(),
        }
        q += 4;
    }
}

fn is_base64(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'+' || c == b'/'
}

fn from_base64(c: u8) -> u32 {
    u32::from(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    })
}

/// Python `DECODE_DIRECT`: bytes that stand for themselves outside a shift.
fn decode_direct(c: u8) -> bool {
    c <= 127 && c != b'+'
}

/// `utf_7` (`PyUnicode_DecodeUTF7Stateful`, RFC 2152 as CPython reads it).
/// Python quirks kept: lone surrogates are emitted (E37) — a pending high
/// surrogate is written when a non-low unit follows or when the shift ends
/// on a direct character, and silently dropped when it ends on a byte
/// ≥ 0x80; errors inside a shift consume the terminating byte; `+` followed
/// by a non-base64 byte is a 2-byte error; text already decoded from a
/// failing shift sequence stays in the output.
pub(crate) fn utf7(input: &[u8], out: &mut Out) {
    let n = input.len();
    let mut s = 0;
    let mut in_shift = false;
    let mut bits: u32 = 0;
    let mut buffer: u32 = 0;
    let mut surrogate: u32 = 0;
    while s < n {
        let ch = input[s];
        if in_shift {
            if is_base64(ch) {
                buffer = (buffer << 6) | from_base64(ch);
                bits += 6;
                s += 1;
                if bits >= 16 {
                    let out_ch = buffer >> (bits - 16);
                    bits -= 16;
                    buffer &= (1 << bits) - 1;
                    if surrogate != 0 {
                        if (0xDC00..=0xDFFF).contains(&out_ch) {
                            out.push_cp(0x10000 + ((surrogate - 0xD800) << 10) + (out_ch - 0xDC00));
                            surrogate = 0;
                            continue;
                        }
                        out.push_cp(surrogate);
                        surrogate = 0;
                    }
                    if (0xD800..=0xDBFF).contains(&out_ch) {
                        surrogate = out_ch;
                    } else {
                        out.push_cp(out_ch);
                    }
                }
            } else {
                in_shift = false;
                if bits > 0 && (bits >= 6 || buffer != 0) {
                    // "partial character" / "non-zero padding bits"
                    s += 1;
                    out.error();
                    continue;
                }
                if surrogate != 0 && decode_direct(ch) {
                    out.push_cp(surrogate);
                }
                surrogate = 0;
                if ch == b'-' {
                    s += 1;
                }
            }
        } else if ch == b'+' {
            s += 1;
            if s < n && input[s] == b'-' {
                s += 1;
                out.s.push('+');
            } else if s < n && !is_base64(input[s]) {
                s += 1;
                out.error(); // "ill-formed sequence"
            } else {
                in_shift = true;
                surrogate = 0;
                bits = 0;
                buffer = 0;
            }
        } else if decode_direct(ch) {
            s += 1;
            out.push_byte(ch);
        } else {
            s += 1;
            out.error(); // "unexpected special character"
        }
    }
    if in_shift && (surrogate != 0 || bits >= 6 || (bits > 0 && buffer != 0)) {
        out.error(); // "unterminated shift sequence"
    }
}
