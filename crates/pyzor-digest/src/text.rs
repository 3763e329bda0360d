//! Python `str` semantics on Rust strings, shared by the digest modules.
//!
//! Python text may hold **lone surrogates** (U+D800–U+DFFF): the `utf-7`,
//! `unicode_escape` and `raw_unicode_escape` codecs produce them
//! (docs/digest-rules.md C.2, E32, E37). A Rust `String` cannot, so a lone
//! surrogate `s` is carried as a stand-in character `base + (s - 0xD800)`,
//! where `base` starts a block of 2048 private-use code points in planes
//! 15–16 ([`StandIns`]). A stand-in behaves as a surrogate does in Python
//! everywhere in the pipeline: like every private-use character it is
//! `\S`, not a letter, has no case mapping and counts as one code point;
//! only `encode("utf8", "ignore")` (`encode_utf8_ignore`) tells them
//! apart and drops the stand-ins.
//!
//! Which characters are stand-ins is a property of each decoded text, not
//! of the code points: a text that no codec gave a lone surrogate has
//! `StandIns::NONE` and is encoded verbatim, so a genuine U+10F800..
//! U+10FFFF character is kept as Python keeps it. A codec that emits lone
//! surrogates uses the block at `SURROGATE_STAND_IN_BASE` (U+10F800..
//! U+10FFFF) unless the same text also holds genuine characters of that
//! block; then it decodes again with a block the text does not use
//! (`codecs::decode_text`). The only inexact case left: a text with lone
//! surrogates that also uses all 64 blocks of U+F0000..U+10FFFF; genuine
//! characters of the last block are then dropped with the surrogates.

/// First code point of the default stand-in block (stands for U+D800).
pub(crate) const SURROGATE_STAND_IN_BASE: u32 = 0x10_F800;

/// The stand-in for the lone surrogate `unit` (0xD800..=0xDFFF).
pub fn surrogate_stand_in(unit: u16) -> char {
    debug_assert!((0xD800..=0xDFFF).contains(&unit));
    let off = u32::from(unit).wrapping_sub(0xD800) & 0x7FF;
    char::from_u32(SURROGATE_STAND_IN_BASE + off).expect("plane 16 code point")
}

/// Whether `c` is in the default stand-in block (U+10F800..U+10FFFF).
/// Only meaningful for a text whose [`StandIns`] is the default block.
pub fn is_surrogate_stand_in(c: char) -> bool {
    (c as u32) >= SURROGATE_STAND_IN_BASE
}

/// Lowest code point a stand-in block may start at (U+F0000: planes 15 and
/// 16 are private use, 64 blocks of 2048).
pub(crate) const STAND_IN_AREA_START: u32 = 0xF_0000;

/// Which characters of one decoded text stand for lone surrogates: none,
/// or the 2048-code-point block starting at a base in U+F0000..U+10F800.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct StandIns(Option<u32>);

impl StandIns {
    /// The text holds no stand-in: every character is genuine.
    pub(crate) const NONE: StandIns = StandIns(None);
    /// Stand-ins in the default block U+10F800..U+10FFFF.
    pub const DEFAULT: StandIns = StandIns(Some(SURROGATE_STAND_IN_BASE));

    /// Stand-ins in block `index` (0..64) of U+F0000..U+10FFFF.
    pub fn block(index: u32) -> StandIns {
        debug_assert!(index < 64);
        StandIns(Some(STAND_IN_AREA_START + (index & 63) * 0x800))
    }

    /// First code point of the block, if any.
    pub fn base(self) -> Option<u32> {
        self.0
    }

    /// Whether the text may hold stand-ins.
    pub fn is_some(self) -> bool {
        self.0.is_some()
    }

    /// The stand-in for the lone surrogate `unit` (0xD800..=0xDFFF); the
    /// default block when this is [`StandIns::NONE`].
    pub(crate) fn stand_in(self, unit: u16) -> char {
        let base = self.0.unwrap_or(SURROGATE_STAND_IN_BASE);
        let off = u32::from(unit).wrapping_sub(0xD800) & 0x7FF;
        char::from_u32(base + off).expect("plane 15/16 code point")
    }

    /// Whether `c` is a stand-in in this text.
    #[inline]
    pub fn contains(self, c: char) -> bool {
        match self.0 {
            Some(base) => (c as u32).wrapping_sub(base) < 0x800,
            None => false,
        }
    }
}

pub use pyzor_protocol::py::{
    is_line_boundary, is_line_boundary_byte, py_isspace, py_isspace_byte, py_splitlines, py_strip,
};

/// `s.encode("utf8", "ignore")`: UTF-8, with lone surrogates (the stand-ins
/// of `stand_ins`) dropped (docs/digest-rules.md D.3). Every other character,
/// U+10F800..U+10FFFF included, is kept.
pub(crate) fn encode_utf8_ignore(s: &str, stand_ins: StandIns, out: &mut Vec<u8>) {
    if !stand_ins.is_some() || !s.chars().any(|c| stand_ins.contains(c)) {
        out.extend_from_slice(s.as_bytes());
        return;
    }
    let mut buf = [0u8; 4];
    for c in s.chars().filter(|&c| !stand_ins.contains(c)) {
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isspace_matches_python_including_unit_separators() {
        for c in [
            '\x1c', '\x1d', '\x1e', '\x1f', '\u{85}', '\u{a0}', '\u{3000}',
        ] {
            assert!(py_isspace(c), "{c:?}");
        }
        for c in ['\u{200b}', '\u{feff}', '\u{180e}', '\u{2060}', 'a', '\0'] {
            assert!(!py_isspace(c), "{c:?}");
        }
    }

    #[test]
    fn splitlines_matches_python() {
        let v: Vec<_> = py_splitlines("a\r\nb\rc\x1fd\x0be\u{2028}f\n\n").collect();
        assert_eq!(v, ["a", "b", "c\x1fd", "e", "f", ""]);
        assert_eq!(py_splitlines("").count(), 0);
        assert_eq!(py_splitlines("x").collect::<Vec<_>>(), ["x"]);
    }

    #[test]
    fn surrogates_are_dropped_on_encode() {
        let s: String = [
            'a',
            surrogate_stand_in(0xD800),
            'b',
            surrogate_stand_in(0xDFFF),
        ]
        .iter()
        .collect();
        assert_eq!(s.chars().count(), 4);
        let mut out = Vec::new();
        encode_utf8_ignore(&s, StandIns::DEFAULT, &mut out);
        assert_eq!(out, b"ab");
        // Without stand-ins the same characters are genuine and kept.
        out.clear();
        encode_utf8_ignore(&s, StandIns::NONE, &mut out);
        assert_eq!(out, s.as_bytes());
        // Another block: only its characters are dropped.
        let other = StandIns::block(3);
        let t: String = ['x', other.stand_in(0xDC00), '\u{10ffff}'].iter().collect();
        out.clear();
        encode_utf8_ignore(&t, other, &mut out);
        assert_eq!(out, "x\u{10ffff}".as_bytes());
        assert!(!py_isspace(surrogate_stand_in(0xDC80)));
    }

    #[test]
    fn strip_uses_python_whitespace() {
        assert_eq!(py_strip("\x1f\u{a0} x \x1c"), "x");
        for s in [
            "",
            " ",
            "\u{3000}",
            "a",
            " a\u{2028}",
            "\u{85}é\u{a0}",
            "é",
            " \u{200b} ",
            "x\u{1680}y\u{205f}",
        ] {
            assert_eq!(py_strip(s), s.trim_matches(py_isspace), "{s:?}");
        }
        // Random strings over whitespace and non-whitespace, ASCII or not
        // (the early exit for non-space ASCII ends included).
        let alphabet: Vec<char> =
            " \t\n\x0b\x0c\r\x1c\x1f\u{85}\u{a0}\u{2028}\u{3000}a\u{e9}\u{200b}\0>"
                .chars()
                .collect();
        let mut rng = pyzor_testkit::XorShift::new(0xabcd_ef01_2345_6789);
        for _ in 0..20_000 {
            let x = rng.next();
            let len = (x % 9) as usize;
            let s: String = (0..len)
                .map(|k| alphabet[((x >> (8 + 4 * k)) % alphabet.len() as u64) as usize])
                .collect();
            assert_eq!(py_strip(&s), s.trim_matches(py_isspace), "{s:?}");
        }
    }
}
