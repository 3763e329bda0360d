//! Character-name lookup for the `\N{...}` escape of `unicode_escape`,
//! as CPython 3.11's `unicodedata` `_getcode` does it (Unicode 14.0):
//! * `HANGUL SYLLABLE ` + jamo short names, case-sensitive, each column
//!   taking the longest matching jamo name (no backtracking);
//! * `CJK UNIFIED IDEOGRAPH-` + 4 or 5 upper-case hex digits naming a
//!   unified ideograph, case-sensitive;
//! * every other name compared ASCII case-insensitively against the name
//!   table, generated from CPython as FNV-1a-64 hashes of the upper-case
//!   names (tools/gen-codec-tables.py).

use std::sync::OnceLock;

use super::{generated::CJK_UNIFIED, CodecError};

static NAMES: &[u8] = include_bytes!("tables/names.bin");

const JAMO_L: [&str; 19] = [
    "G", "GG", "N", "D", "DD", "R", "M", "B", "BB", "S", "SS", "", "J", "JJ", "C", "K", "T", "P",
    "H",
];
const JAMO_V: [&str; 21] = [
    "A", "AE", "YA", "YAE", "EO", "E", "YEO", "YE", "O", "WA", "WAE", "OE", "YO", "U", "WEO", "WE",
    "WI", "YU", "EU", "YI", "I",
];
const JAMO_T: [&str; 28] = [
    "", "G", "GG", "GS", "N", "NJ", "NH", "D", "L", "LG", "LM", "LB", "LS", "LT", "LP", "LH", "M",
    "B", "BS", "S", "SS", "NG", "J", "C", "K", "T", "P", "H",
];

struct Table {
    hashes: Vec<u64>,
    cps: Vec<u32>,
}

fn table() -> &'static Table {
    static T: OnceLock<Table> = OnceLock::new();
    T.get_or_init(|| {
        let n = u32::from_le_bytes([NAMES[0], NAMES[1], NAMES[2], NAMES[3]]) as usize;
        let h = &NAMES[4..4 + 8 * n];
        let c = &NAMES[4 + 8 * n..4 + 12 * n];
        Table {
            hashes: h
                .chunks_exact(8)
                .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                .collect(),
            cps: c
                .chunks_exact(4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        }
    })
}

fn fnv1a64_upper(name: &[u8]) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for &b in name {
        h ^= u64::from(b.to_ascii_uppercase());
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

/// Longest jamo short name of `column` at the start of `s` (CPython
/// `find_syllable`): (index, length), or None when nothing matches.
fn find_syllable(s: &[u8], column: &[&str]) -> Option<(u32, usize)> {
    let mut best: Option<(u32, usize)> = None;
    for (i, name) in column.iter().enumerate() {
        let len = name.len();
        if best.is_some_and(|(_, l)| len <= l) {
            continue;
        }
        if s.starts_with(name.as_bytes()) {
            best = Some((i as u32, len));
        }
    }
    best
}

fn hangul(rest: &[u8]) -> Option<u32> {
    let (l, a) = find_syllable(rest, &JAMO_L)?;
    let (v, b) = find_syllable(&rest[a..], &JAMO_V)?;
    let (t, c) = find_syllable(&rest[a + b..], &JAMO_T)?;
    (a + b + c == rest.len()).then_some(0xAC00 + (l * 21 + v) * 28 + t)
}

fn cjk(hex: &[u8]) -> Option<u32> {
    if hex.len() != 4 && hex.len() != 5 {
        return None;
    }
    let mut v = 0u32;
    for &c in hex {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'A'..=b'F' => c - b'A' + 10,
            _ => return None,
        };
        v = v * 16 + u32::from(d);
    }
    CJK_UNIFIED
        .iter()
        .any(|&(a, b)| (a..=b).contains(&v))
        .then_some(v)
}

/// The code point named `name`, `None` if CPython knows no such name.
pub(crate) fn lookup(name: &[u8]) -> Result<Option<u32>, CodecError> {
    if let Some(rest) = name.strip_prefix(b"HANGUL SYLLABLE ") {
        return Ok(hangul(rest));
    }
    if let Some(hex) = name.strip_prefix(b"CJK UNIFIED IDEOGRAPH-") {
        return Ok(cjk(hex));
    }
    let t = table();
    let h = fnv1a64_upper(name);
    Ok(t.hashes.binary_search(&h).ok().map(|i| t.cps[i]))
}
