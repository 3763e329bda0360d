//! Content-Transfer-Encoding decoders exactly as CPython 3.11 applies them
//! in `Message.get_payload(decode=True)` (docs/digest-rules.md §C.1). Hand-written
//! rather than taken from the `base64`/`quoted_printable` crates because the
//! digest depends on Python's error paths: `decode_b`'s four attempts and
//! `a2b_base64`'s padding stop, `a2b_qp`'s `=\r` handling, and
//! `_decode_uu`'s fallbacks, none of which those crates reproduce.

use std::borrow::Cow;

/// The decoders `get_payload(decode=True)` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cte {
    /// `quoted-printable`
    QuotedPrintable,
    /// `base64`
    Base64,
    /// `x-uuencode`, `uuencode`, `uue`, `x-uue`
    Uuencode,
    /// Anything else: no decoding.
    Other,
}

impl Cte {
    /// Python compares `str(header).lower()` with the names, with **no
    /// strip**: `base64 ` or a folded value is not base64 (§C.1, J.8).
    /// `str()` turns each 8-bit byte into U+FFFD, which never matches, so an
    /// ASCII case-insensitive comparison of the raw bytes is exact.
    pub(crate) fn from_header(raw: &[u8]) -> Cte {
        let is = |name: &str| raw.eq_ignore_ascii_case(name.as_bytes());
        if is("quoted-printable") {
            Cte::QuotedPrintable
        } else if is("base64") {
            Cte::Base64
        } else if is("x-uuencode") || is("uuencode") || is("uue") || is("x-uue") {
            Cte::Uuencode
        } else {
            Cte::Other
        }
    }
}

/// `get_payload(decode=True)` for a string payload: the decoder for the
/// Content-Transfer-Encoding (`None` when the header is absent).
pub(crate) fn decode_payload(cte: Option<Cte>, payload: Cow<'_, [u8]>) -> Cow<'_, [u8]> {
    match cte.unwrap_or(Cte::Other) {
        Cte::QuotedPrintable => Cow::Owned(a2b_qp(&payload)),
        Cte::Base64 => {
            let joined = bytes_splitlines_join(&payload);
            match decode_b(&joined) {
                Some(v) => Cow::Owned(v),
                // bpo-27397: the encoded text itself.
                None => Cow::Owned(joined),
            }
        }
        Cte::Uuencode => match decode_uu(&payload) {
            Some(v) => Cow::Owned(v),
            None => payload,
        },
        Cte::Other => payload,
    }
}

/// `b''.join(b.splitlines())`: `bytes.splitlines` breaks at `\r\n`, `\r` and
/// `\n` only, so this just removes every CR and LF.
fn bytes_splitlines_join(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut rest = b;
    while let Some(i) = memchr::memchr2(b'\r', b'\n', rest) {
        out.extend_from_slice(&rest[..i]);
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
    out
}

const B64_INVALID: u8 = 0xff;

static B64_TABLE: [u8; 256] = {
    let mut t = [B64_INVALID; 256];
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut i = 0;
    while i < 64 {
        t[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// `binascii.a2b_base64(s, strict_mode=strict)` of CPython 3.11; `None` is
/// `binascii.Error`.
fn a2b_base64(s: &[u8], strict: bool, out: &mut Vec<u8>) -> Option<()> {
    out.clear();
    if strict && s.first() == Some(&b'=') {
        return None; // "Leading padding not allowed"
    }
    let mut quad = 0u8;
    let mut left = 0u8;
    let mut pads = 0u32;
    let mut padding_started = false;
    for (i, &c) in s.iter().enumerate() {
        if c == b'=' {
            padding_started = true;
            if strict && quad == 0 {
                return None; // "Excess padding not allowed"
            }
            if quad >= 2 {
                pads += 1;
                if u32::from(quad) + pads >= 4 {
                    if strict && i + 1 < s.len() {
                        return None; // "Excess data after padding"
                    }
                    return Some(());
                }
            }
            continue;
        }
        let v = B64_TABLE[c as usize];
        if v == B64_INVALID {
            if strict {
                return None; // "Only base64 data is allowed"
            }
            continue;
        }
        if strict && padding_started {
            return None; // "Discontinuous padding not allowed"
        }
        pads = 0;
        match quad {
            0 => {
                quad = 1;
                left = v;
            }
            1 => {
                quad = 2;
                out.push((left << 2) | (v >> 4));
                left = v & 0x0f;
            }
            2 => {
                quad = 3;
                out.push((left << 4) | (v >> 2));
                left = v & 0x03;
            }
            _ => {
                quad = 0;
                out.push((left << 6) | v);
                left = 0;
            }
        }
    }
    // quad 1: "1 more than a multiple of 4"; 2, 3: "Incorrect padding".
    (quad == 0).then_some(())
}

/// `a2b_base64(s, strict_mode=True)` for `s.len() % 4 == 0`, four
/// characters at a time: every quad but the last must be four alphabet
/// characters (then the strict and lenient state is back to its start), the
/// last quad goes through [`a2b_base64`]. Anything else (a `=` or another
/// byte early on) is handed to [`a2b_base64`] from the start, so the result
/// is always exactly `a2b_base64(s, true)`.
fn a2b_base64_strict_fast(s: &[u8], out: &mut Vec<u8>) -> Option<()> {
    if s.len() % 4 != 0 || s.is_empty() {
        return a2b_base64(s, true, out);
    }
    out.clear();
    let (body, last) = s.split_at(s.len() - 4);
    // Sixteen characters (four quads) at a time: one validity test and one
    // append per 12 bytes.
    let mut blocks = body.chunks_exact(16);
    for blk in &mut blocks {
        let mut v = [0u8; 16];
        let mut bits = 0u8;
        for (dst, &src) in v.iter_mut().zip(blk) {
            *dst = B64_TABLE[usize::from(src)];
            bits |= *dst;
        }
        if bits & 0xC0 != 0 {
            return a2b_base64(s, true, out);
        }
        let mut o = [0u8; 12];
        for (q, d) in v.chunks_exact(4).zip(o.chunks_exact_mut(3)) {
            d[0] = (q[0] << 2) | (q[1] >> 4);
            d[1] = (q[1] << 4) | (q[2] >> 2);
            d[2] = (q[2] << 6) | q[3];
        }
        out.extend_from_slice(&o);
    }
    for q in blocks.remainder().chunks_exact(4) {
        let (a, b, c, d) = (
            B64_TABLE[q[0] as usize],
            B64_TABLE[q[1] as usize],
            B64_TABLE[q[2] as usize],
            B64_TABLE[q[3] as usize],
        );
        // Valid values are below 64; B64_INVALID (and '=') sets the top bits.
        if (a | b | c | d) & 0xC0 != 0 {
            return a2b_base64(s, true, out);
        }
        out.extend_from_slice(&[(a << 2) | (b >> 4), (b << 4) | (c >> 2), (c << 6) | d]);
    }
    let mut tail = Vec::with_capacity(3);
    a2b_base64(last, true, &mut tail)?;
    out.extend_from_slice(&tail);
    Some(())
}

/// `email._encoded_words.decode_b` (§C.1.1): strict with the missing
/// padding appended, then lenient, then lenient with `==`; `None` when all
/// three fail (the caller then keeps the encoded text).
pub(crate) fn decode_b(encoded: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(encoded.len() / 4 * 3 + 3);
    let pad = encoded.len() % 4;
    let mut padded;
    let first: &[u8] = if pad == 0 {
        encoded
    } else {
        padded = encoded.to_vec();
        padded.extend_from_slice(&b"==="[..4 - pad]);
        &padded
    };
    if a2b_base64_strict_fast(first, &mut out).is_some() {
        return Some(out);
    }
    if a2b_base64(encoded, false, &mut out).is_some() {
        return Some(out);
    }
    padded = encoded.to_vec();
    padded.extend_from_slice(b"==");
    if a2b_base64(&padded, false, &mut out).is_some() {
        return Some(out);
    }
    None
}

/// Value of a hex digit (either case), 0xff for anything else.
static HEX_VAL: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// `binascii.a2b_qp(data, header=False)` (§C.1.2).
pub(crate) fn a2b_qp(d: &[u8]) -> Vec<u8> {
    /// Bytes looked at one by one before handing the search to `memchr`:
    /// escapes are often this close together (`=3D`, `=20` in HTML), where
    /// a call to `memchr` costs more than the scan.
    const NEAR: usize = 16;
    let mut out = Vec::with_capacity(d.len());
    let n = d.len();
    let mut i = 0;
    while i < n {
        let near = &d[i..n.min(i + NEAR)];
        let found = match near.iter().position(|&b| b == b'=') {
            Some(off) => Some(off),
            None if i + NEAR < n => memchr::memchr(b'=', &d[i + NEAR..]).map(|o| o + NEAR),
            None => None,
        };
        let Some(off) = found else {
            out.extend_from_slice(&d[i..]);
            break;
        };
        out.extend_from_slice(&d[i..i + off]);
        i += off;
        // d[i] == '='
        i += 1;
        if i >= n {
            break; // soft line break at the very end
        }
        match d[i] {
            b'\n' => i += 1,
            b'\r' => {
                // `=\r`: skip to just past the next LF, or to EOF.
                match memchr::memchr(b'\n', &d[i..]) {
                    Some(j) => i += j + 1,
                    None => i = n,
                }
            }
            b'=' => {
                out.push(b'=');
                i += 1;
            }
            a => {
                let (hi, lo) = (
                    HEX_VAL[usize::from(a)],
                    d.get(i + 1).map_or(0xff, |&c| HEX_VAL[usize::from(c)]),
                );
                if (hi | lo) < 16 {
                    out.push((hi << 4) | lo);
                    i += 2;
                } else {
                    out.push(b'=');
                }
            }
        }
    }
    out
}

/// `bytes.splitlines()` (no keepends): `\r\n`, `\r`, `\n`.
fn bytes_splitlines(b: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = b;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        match memchr::memchr2(b'\r', b'\n', rest) {
            None => {
                let l = rest;
                rest = &[];
                Some(l)
            }
            Some(i) => {
                let l = &rest[..i];
                let skip = if rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                rest = &rest[i + skip..];
                Some(l)
            }
        }
    })
}

/// Python `int(x, 8)` on bytes: optional surrounding whitespace, sign,
/// optional `0o` prefix, digits 0-7 with single `_` separators between
/// digits.
fn parses_as_octal(x: &[u8]) -> bool {
    let ws = |c: &u8| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c');
    let start = x.iter().position(|c| !ws(c)).unwrap_or(x.len());
    let end = x.iter().rposition(|c| !ws(c)).map_or(start, |p| p + 1);
    let mut s = &x[start..end.max(start)];
    if let Some(r) = s.strip_prefix(b"+").or_else(|| s.strip_prefix(b"-")) {
        s = r;
    }
    let mut after_prefix = false;
    if s.len() >= 2 && s[0] == b'0' && (s[1] == b'o' || s[1] == b'O') {
        s = &s[2..];
        after_prefix = true;
    }
    if s.is_empty() {
        return false;
    }
    // With a prefix, an underscore may directly follow it ("0o_7").
    let mut prev_digit = after_prefix;
    for &c in s {
        match c {
            b'0'..=b'7' => prev_digit = true,
            b'_' if prev_digit => prev_digit = false,
            _ => return false,
        }
    }
    prev_digit
}

/// `binascii.a2b_uu(line)`; `None` is `binascii.Error`.
fn a2b_uu(line: &[u8]) -> Option<Vec<u8>> {
    // A line is stripped of nothing; an empty input gives 32 zero bytes? No:
    // CPython reads the length from the first byte, 0 for empty input.
    let mut it = line.iter();
    let len = match it.next() {
        Some(&c) => (c.wrapping_sub(b' ') & 0o77) as usize,
        None => 0,
    };
    let mut out = Vec::with_capacity(len);
    let mut left: u32 = 0;
    let mut bits = 0u32;
    let rest = &line[line.len().min(1)..];
    let mut idx = 0;
    while out.len() < len {
        // Missing bytes count as 0 ("whitespace-stripped" lines).
        let c = if idx < rest.len() {
            let c = rest[idx];
            idx += 1;
            if c == b'\n' || c == b'\r' {
                // A line end: the rest is treated as padding.
                0
            } else {
                if !(b' '..=b' ' + 64).contains(&c) {
                    return None; // "Illegal char"
                }
                (c.wrapping_sub(b' ') & 0o77) as u32
            }
        } else {
            0
        };
        left = (left << 6) | c;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((left >> bits) & 0xff) as u8);
            left &= (1 << bits) - 1;
        }
    }
    // Anything after the data must be padding: ' ', '`', '\n', '\r'.
    for &c in &rest[idx..] {
        if !matches!(c, b' ' | b'`' | b'\n' | b'\r') && c != b' ' + 64 {
            return None; // "Trailing garbage"
        }
    }
    Some(out)
}

/// `email.message._decode_uu` (§C.1.3); `None` is the ValueError
/// after which `get_payload` returns the raw payload.
pub(crate) fn decode_uu(encoded: &[u8]) -> Option<Vec<u8>> {
    let mut lines = bytes_splitlines(encoded);
    loop {
        let line = lines.next()?;
        if let Some(rest) = line.strip_prefix(b"begin ") {
            let mode = rest.split(|&c| c == b' ').next().unwrap_or(b"");
            if parses_as_octal(mode) {
                break;
            }
        }
    }
    let mut out = Vec::new();
    for line in lines {
        if line.is_empty() {
            return None; // "Truncated input"
        }
        let strip = |c: &u8| matches!(c, b' ' | b'\t' | b'\r' | b'\n' | b'\x0c');
        let s = line.iter().position(|c| !strip(c));
        let e = line.iter().rposition(|c| !strip(c));
        if let (Some(s), Some(e)) = (s, e) {
            if &line[s..=e] == b"end" {
                break;
            }
        }
        match a2b_uu(line) {
            Some(v) => out.extend_from_slice(&v),
            None => {
                let nbytes = ((((line[0].wrapping_sub(32)) & 63) as usize) * 4 + 5) / 3;
                let v = a2b_uu(&line[..nbytes.min(line.len())])?;
                out.extend_from_slice(&v);
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_spec_examples() {
        assert_eq!(decode_b(b"SGVsbG8=V29ybGQ=").unwrap(), b"Hello");
        assert_eq!(decode_b(b"====").unwrap(), b"");
        assert_eq!(decode_b(b"SGVsbG8gd29ybGQ").unwrap(), b"Hello world");
        // 4n+1 characters: nothing decodes, the caller keeps the text.
        assert_eq!(decode_b(b"QUJDR"), None);
        // URL-safe characters are skipped by the lenient pass.
        assert_eq!(decode_b(b"QU-JD").unwrap(), b"ABC");
    }

    #[test]
    fn strict_fast_path_equals_strict() {
        let cases: [&[u8]; 9] = [
            b"QUJD",
            b"QUJDRA==",
            b"QUJDREU=",
            b"=QUJ",
            b"QU=D",
            b"QUJD\n===",
            b"QUJDQUJD",
            b"QU JDQUJD",
            b"QUJD====",
        ];
        let mut x: u32 = 12345;
        let alphabet = b"AQgw+/=== \n-";
        let random: Vec<Vec<u8>> = (0..3000)
            .map(|_| {
                let len = 4 * (1 + (x % 20) as usize);
                (0..len)
                    .map(|_| {
                        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                        alphabet[(x >> 16) as usize % alphabet.len()]
                    })
                    .collect()
            })
            .collect();
        // Long valid text (several 16-character blocks), each position
        // spoilt in turn by a padding, space or invalid byte.
        let valid = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5eg==";
        let mut spoilt: Vec<Vec<u8>> = vec![valid.to_vec(), valid[..64].to_vec()];
        for i in 0..valid.len() {
            for b in [b'=', b' ', b'-', b'\n'] {
                let mut v = valid.to_vec();
                v[i] = b;
                spoilt.push(v);
            }
        }
        for c in cases
            .iter()
            .copied()
            .chain(random.iter().map(Vec::as_slice))
            .chain(spoilt.iter().map(Vec::as_slice))
        {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            let ra = a2b_base64_strict_fast(c, &mut a);
            let rb = a2b_base64(c, true, &mut b);
            assert_eq!(ra.is_some(), rb.is_some(), "{c:?}");
            if ra.is_some() {
                assert_eq!(a, b, "{c:?}");
            }
        }
    }

    /// The previous, plainer `a2b_qp` (memchr to every `=`, `to_digit`).
    fn a2b_qp_plain(d: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let n = d.len();
        let mut i = 0;
        while i < n {
            let Some(off) = memchr::memchr(b'=', &d[i..]) else {
                out.extend_from_slice(&d[i..]);
                break;
            };
            out.extend_from_slice(&d[i..i + off]);
            i += off + 1;
            if i >= n {
                break;
            }
            match d[i] {
                b'\n' => i += 1,
                b'\r' => match memchr::memchr(b'\n', &d[i..]) {
                    Some(j) => i += j + 1,
                    None => i = n,
                },
                b'=' => {
                    out.push(b'=');
                    i += 1;
                }
                a if i + 1 < n && a.is_ascii_hexdigit() && d[i + 1].is_ascii_hexdigit() => {
                    let h = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
                    out.push(h(a) << 4 | h(d[i + 1]));
                    i += 2;
                }
                _ => out.push(b'='),
            }
        }
        out
    }

    #[test]
    fn qp_fast_scan_equals_plain() {
        let pieces: [&[u8]; 14] = [
            b"=",
            b"=3D",
            b"=3d",
            b"=\n",
            b"=\r\n",
            b"=\r",
            b"==",
            b"=G1",
            b"=1",
            b"a",
            b"0123456789abcdefghij",
            b"\xe9\xff",
            b"=\x80\x81",
            b" \t\n",
        ];
        // Every sequence of up to 4 pieces, and longer pseudo-random ones
        // (runs around the 16-byte near-scan window).
        let mut inputs: Vec<Vec<u8>> = vec![Vec::new()];
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    inputs.push([a, b, c].concat());
                    for e in [&b"=4"[..], b"=", b"x=4", b"=\r"] {
                        inputs.push([a, b, c, e].concat());
                    }
                }
            }
        }
        let mut x = 12345u64;
        for _ in 0..2000 {
            let mut v = Vec::new();
            for _ in 0..(x % 40) {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                v.extend_from_slice(pieces[(x >> 33) as usize % pieces.len()]);
            }
            inputs.push(v);
        }
        for i in &inputs {
            assert_eq!(
                a2b_qp(i),
                a2b_qp_plain(i),
                "{:?}",
                String::from_utf8_lossy(i)
            );
        }
    }

    #[test]
    fn qp_quirks() {
        assert_eq!(a2b_qp(b"a=\nb"), b"ab");
        assert_eq!(a2b_qp(b"a=\rxx\nb"), b"ab");
        assert_eq!(a2b_qp(b"a=\rno lf"), b"a");
        assert_eq!(a2b_qp(b"=="), b"=");
        assert_eq!(a2b_qp(b"=41=4a=XY=4"), b"AJ=XY=4");
        assert_eq!(a2b_qp(b"x="), b"x");
        assert_eq!(a2b_qp(b"= \n_"), b"= \n_");
    }

    #[test]
    fn uu() {
        let enc = b"begin 644 f\n#86)C\n`\nend\n";
        assert_eq!(decode_uu(enc).unwrap(), b"abc");
        assert_eq!(decode_uu(b"no begin\n"), None);
        assert_eq!(decode_uu(b"begin 9 f\n#86)C\n"), None);
        assert_eq!(decode_uu(b"begin 0o6_4 f\n#86)C\n").unwrap(), b"abc");
        assert_eq!(decode_uu(b"begin 644 f\n\n"), None);
    }

    #[test]
    fn cte_is_not_stripped() {
        let p = Cow::Borrowed(&b"QUJD"[..]);
        let b64 = Cte::from_header(b"BASE64");
        assert_eq!(&*decode_payload(Some(b64), p.clone()), b"ABC");
        assert_eq!(
            &*decode_payload(Some(Cte::from_header(b"base64 ")), p.clone()),
            b"QUJD"
        );
        assert_eq!(
            &*decode_payload(Some(Cte::from_header(b"base64\xe9")), p),
            b"QUJD"
        );
    }
}
