//! Stateless codecs as byte tries generated from CPython 3.11
//! (tools/gen-codec-tables.py documents the format). This covers every
//! charmap codec (`decoding_table`, `\ufffe` = undefined byte), `ascii`,
//! `latin_1`, `charmap`, and the stateless CJK codecs of `_codecs_*`
//! (docs/digest-rules.md C.2), whose error rules are CPython's
//! `multibytecodec.c` ones: an invalid unit is skipped by the length the
//! codec reports, one U+FFFD each with `replace`, and a unit cut short by
//! the end of the input (`MBERR_TOOFEW`) is one error spanning the rest.

use std::sync::OnceLock;

use super::Out;

const TAG_CHAR: u32 = 0;
const TAG_ERROR: u32 = 1;
const TAG_CHILD: u32 = 2;
const VALUE: u32 = (1 << 30) - 1;
const SPECIAL_MULTI: u32 = 0;
const SPECIAL_GB18030_FOUR: u32 = 1;
const SPECIAL_EUCKR_MAKEUP: u32 = 2;

/// A generated trie, parsed on first use.
pub(crate) struct Trie {
    bytes: &'static [u8],
    parsed: OnceLock<Parsed>,
}

/// A char's UTF-8 encoding: (length, bytes); length 0 = undefined.
type Utf8Char = (u8, [u8; 4]);

struct Parsed {
    /// `node * 256 + byte` → entry, as little-endian `u32`s read in place
    /// from the compiled-in table ([`Words::get`]): copying the big CJK
    /// tables into a `Vec<u32>` on first use cost a process about 3 M
    /// instructions, more than a typical mbox run spends decoding.
    entries: Words,
    pool: Words,
    /// Bytes 0x00..=0x7F decode to themselves (ASCII fast path).
    ascii_identity: bool,
    /// For single-byte codecs (the trie is one node of plain entries):
    /// each byte's UTF-8 encoding, length 0 for an undefined byte.
    single: Option<Box<[Utf8Char]>>,
}

fn read_u32s(bytes: &[u8]) -> impl Iterator<Item = u32> + '_ {
    bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
}

/// A slice of little-endian `u32`s in a generated table.
#[derive(Clone, Copy)]
struct Words(&'static [u8]);

impl Words {
    /// Word `i`; 0 past the end (a valid table never indexes there: its
    /// length is checked against its header on first use).
    #[inline]
    fn get(self, i: usize) -> u32 {
        match self.0.get(i * 4..i * 4 + 4) {
            Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
            _ => 0,
        }
    }
}

impl Trie {
    pub(crate) const fn new(bytes: &'static [u8]) -> Self {
        Trie {
            bytes,
            parsed: OnceLock::new(),
        }
    }

    fn parsed(&self) -> &Parsed {
        self.parsed.get_or_init(|| {
            // The file is produced by our generator and compiled in; a bad
            // one is a build defect, caught by every codec test.
            assert_eq!(&self.bytes[..4], b"PZCT", "corrupt generated codec table");
            let mut head = read_u32s(&self.bytes[4..12]);
            let nodes = head.next().unwrap_or(0) as usize;
            let pool_len = head.next().unwrap_or(0) as usize;
            let body: &'static [u8] = &self.bytes[12..];
            assert_eq!(
                body.len(),
                (nodes * 256 + pool_len) * 4,
                "corrupt generated codec table"
            );
            let entries = Words(&body[..nodes * 1024]);
            let pool = Words(&body[nodes * 1024..]);
            let ascii_identity = (0..128u32).all(|b| entries.get(b as usize) == b);
            let single = (nodes == 1
                && read_u32s(entries.0).all(|e| matches!(e >> 30, TAG_CHAR | TAG_ERROR)))
            .then(|| {
                read_u32s(entries.0)
                    .map(|e| {
                        let mut buf = [0u8; 4];
                        match (e >> 30 == TAG_CHAR).then(|| char::from_u32(e)).flatten() {
                            Some(c) => (c.encode_utf8(&mut buf).len() as u8, buf),
                            None => (0, buf),
                        }
                    })
                    .collect()
            });
            Parsed {
                entries,
                pool,
                ascii_identity,
                single,
            }
        })
    }

    pub(crate) fn decode(&self, input: &[u8], out: &mut Out) {
        let p = self.parsed();
        if let Some(single) = &p.single {
            decode_single(single, p.ascii_identity, input, out);
            return;
        }
        let n = input.len();
        let mut i = 0;
        while i < n {
            if p.ascii_identity {
                let run = super::ascii_prefix_len(&input[i..]);
                if run > 0 {
                    // An all-ASCII slice is always valid UTF-8.
                    if let Ok(s) = std::str::from_utf8(&input[i..i + run]) {
                        out.s.push_str(s);
                    }
                    i += run;
                    continue;
                }
            }
            i = decode_unit(p, input, i, out);
        }
    }
}

/// Single-byte codecs: a byte → UTF-8 table, written straight into the
/// output buffer.
fn decode_single(table: &[Utf8Char], ascii_identity: bool, input: &[u8], out: &mut Out) {
    // Write into the output's own allocation (already sized for the input).
    let mut buf: Vec<u8> = std::mem::take(&mut out.s).into_bytes();
    buf.reserve(input.len());
    let replace = out.replaces();
    let mut rest = input;
    while let Some((&b, tail)) = rest.split_first() {
        if ascii_identity && b < 0x80 {
            let run = super::ascii_prefix_len(rest);
            match rest.get(..16) {
                // Short runs (between the accented letters of Latin text):
                // a fixed 16-byte copy cut back, instead of a memcpy call.
                Some(block) if run <= 16 => {
                    let w = buf.len();
                    buf.extend_from_slice(block);
                    buf.truncate(w + run);
                }
                _ => buf.extend_from_slice(&rest[..run]),
            }
            rest = &rest[run..];
            continue;
        }
        rest = tail;
        let (len, ref utf8) = table[usize::from(b)];
        if len != 0 {
            // All four bytes, then cut back: a fixed-size copy instead of a
            // memcpy call per character.
            let w = buf.len();
            buf.extend_from_slice(utf8);
            buf.truncate(w + usize::from(len));
        } else if replace {
            buf.extend_from_slice("\u{FFFD}".as_bytes());
        }
    }
    // The previous output and every table entry are valid UTF-8, so this
    // cannot fail.
    if let Ok(s) = String::from_utf8(buf) {
        out.s = s;
    }
}

/// Decodes the unit starting at `i`; returns where the next one starts.
#[inline]
fn decode_unit(p: &Parsed, input: &[u8], i: usize, out: &mut Out) -> usize {
    let n = input.len();
    let mut node = 0usize;
    let mut j = i;
    loop {
        let Some(&b) = input.get(j) else {
            // MBERR_TOOFEW: "incomplete multibyte sequence" up to the end.
            out.error();
            return n;
        };
        let e = p.entries.get(node * 256 + usize::from(b));
        let value = e & VALUE;
        match e >> 30 {
            TAG_CHAR => {
                out.push_cp(value);
                return j + 1;
            }
            TAG_ERROR => {
                out.error();
                return i + value as usize;
            }
            TAG_CHILD => {
                node = value as usize;
                j += 1;
            }
            _ => {
                return match value >> 24 {
                    SPECIAL_MULTI => {
                        let off = (value & 0xFFFF) as usize;
                        let len = ((value >> 16) & 0xF) as usize;
                        for k in off..off + len {
                            out.push_cp(p.pool.get(k));
                        }
                        j + 1
                    }
                    SPECIAL_GB18030_FOUR => gb18030_four(input, i, out),
                    SPECIAL_EUCKR_MAKEUP => euckr_makeup(input, i, out),
                    _ => unreachable!("unknown special entry in generated codec table"),
                };
            }
        }
    }
}

static GB18030_BMP: &[u8] = include_bytes!("tables/gb18030_bmp.bin");

/// A GB18030 four-byte unit at `i` (second byte 0x30..=0x39 already seen):
/// CPython's `_codecs_cn.c` rule, checked against CPython over a broad grid
/// by the generator. BMP code points come from a generated linear table
/// (0 = unmapped); `0x90308130` onwards is linear from U+10000.
fn gb18030_four(input: &[u8], i: usize, out: &mut Out) -> usize {
    let Some(u) = input.get(i..i + 4) else {
        out.error();
        return input.len();
    };
    let (c, c2, c3, c4) = (
        u32::from(u[0]),
        u32::from(u[1]),
        u32::from(u[2]),
        u32::from(u[3]),
    );
    if (0x81..=0xFE).contains(&c) && (0x81..=0xFE).contains(&c3) && (0x30..=0x39).contains(&c4) {
        let (c, c2, c3, c4) = (c - 0x81, c2 - 0x30, c3 - 0x81, c4 - 0x30);
        if c < 4 {
            let lseq = ((c * 10 + c2) * 1260 + c3 * 10 + c4) as usize;
            if lseq < 39420 {
                let cp = u16::from_le_bytes([GB18030_BMP[2 * lseq], GB18030_BMP[2 * lseq + 1]]);
                if cp != 0 {
                    out.push_cp(u32::from(cp));
                    return i + 4;
                }
            }
        } else if c >= 15 {
            let cp = 0x10000 + ((c - 15) * 10 + c2) * 1260 + c3 * 10 + c4;
            if cp <= 0x10FFFF {
                out.push_cp(cp);
                return i + 4;
            }
        }
    }
    out.error();
    i + 1
}

static EUCKR_MAKEUP: &[u8] = include_bytes!("tables/euckr_makeup.bin");

/// EUC-KR "KS X 1001:1998 Annex 3" make-up sequence
/// `A4 D4 A4 cho A4 jung A4 jong` (CPython `_codecs_kr.c`): needs all 8
/// bytes, any mismatch is a 1-byte error. The jamo index tables are
/// generated from CPython.
fn euckr_makeup(input: &[u8], i: usize, out: &mut Out) -> usize {
    const NONE: u8 = 0xFF;
    let Some(u) = input.get(i..i + 8) else {
        out.error();
        return input.len();
    };
    if u[2] == 0xA4 && u[4] == 0xA4 && u[6] == 0xA4 {
        let cho = EUCKR_MAKEUP[usize::from(u[3])];
        let jung = EUCKR_MAKEUP[256 + usize::from(u[5])];
        let jong = EUCKR_MAKEUP[512 + usize::from(u[7])];
        if cho != NONE && jung != NONE && jong != NONE {
            out.push_cp(0xAC00 + u32::from(cho) * 588 + u32::from(jung) * 28 + u32::from(jong));
            return i + 8;
        }
    }
    out.error();
    i + 1
}

impl Trie {
    /// The single code point a complete two-byte unit `b1 b2` decodes to,
    /// if it is valid (used by the stateful codecs that share a table).
    pub(crate) fn lookup2(&self, b1: u8, b2: u8) -> Option<u32> {
        let p = self.parsed();
        let e = p.entries.get(usize::from(b1));
        if e >> 30 != TAG_CHILD {
            return None;
        }
        let e = p.entries.get((e & VALUE) as usize * 256 + usize::from(b2));
        (e >> 30 == TAG_CHAR).then_some(e & VALUE)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ascii_prefix_len, lookup, Errors, Imp, Out};
    use super::*;
    use crate::text::StandIns;

    fn trie(label: &str) -> &'static Trie {
        match lookup(label).map(|c| c.imp()) {
            Some(Imp::Trie(t)) => t,
            _ => panic!("{label} is not a trie codec"),
        }
    }

    /// The general path: one `decode_unit` per unit, no ASCII runs, no
    /// single-byte table.
    fn slow(t: &Trie, input: &[u8], errors: Errors) -> String {
        let p = t.parsed();
        let mut out = Out::new(errors, 0, StandIns::DEFAULT);
        let mut i = 0;
        while i < input.len() {
            i = decode_unit(p, input, i, &mut out);
        }
        out.s
    }

    fn fast(t: &Trie, input: &[u8], errors: Errors) -> String {
        let mut out = Out::new(errors, 0, StandIns::DEFAULT);
        t.decode(input, &mut out);
        out.s
    }

    #[test]
    fn fast_paths_agree_with_unit_by_unit_decoding() {
        let mut rng = pyzor_testkit::XorShift::new(0x005e_ed0f_c0de_cafe);
        let mut next = move || rng.next();
        for label in [
            "latin-1",
            "cp1252",
            "iso-8859-5",
            "koi8-r",
            "shift_jis",
            "gb18030",
            "big5",
            "euc-kr",
            "ascii",
        ] {
            let t = trie(label);
            for _ in 0..2000 {
                let len = (next() % 40) as usize;
                // Mostly ASCII runs of every length, some 8-bit bytes.
                let input: Vec<u8> = (0..len)
                    .map(|_| {
                        let r = next();
                        if r % 4 == 0 {
                            (r >> 8) as u8 | 0x80
                        } else {
                            (r >> 8) as u8 & 0x7f
                        }
                    })
                    .collect();
                for errors in [Errors::Ignore, Errors::Replace] {
                    assert_eq!(
                        fast(t, &input, errors),
                        slow(t, &input, errors),
                        "{label} {input:02x?}"
                    );
                }
            }
        }
    }

    #[test]
    fn ascii_prefix_len_is_exact() {
        let mut buf = [b'a'; 40];
        for len in 0..40 {
            for hi in 0..=len {
                buf.fill(b'a');
                if hi < len {
                    buf[hi] = 0x80 | hi as u8;
                }
                assert_eq!(ascii_prefix_len(&buf[..len]), hi, "{len} {hi}");
            }
        }
    }
}
