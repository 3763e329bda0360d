//! The stateful CJK codecs of CPython 3.11's `_codecs_cn.c` (`hz`) and
//! `_codecs_iso2022.c` (`iso2022_*`), run through `multibytecodec.c`'s
//! error rules: an invalid unit is skipped by the length the codec
//! reports (one U+FFFD with `replace`), and a unit cut short by the end of
//! the input is one error spanning the rest.

use super::{generated::tries, Codec, CodecError, Out};

/// `hz` (RFC 1843). `~~` is `~`, `~{` / `~}` switch to GB2312 / ASCII
/// (only from the other mode), `~\n` is a line continuation (ASCII mode
/// only, like `~~`); any other `~x` is a 1-byte error. Bytes ≥ 0x80 are 1-byte
/// errors in both modes. In GB mode two bytes form one GB2312 character
/// (looked up through the `gb2312` table with the high bits set).
pub(crate) fn hz(input: &[u8], out: &mut Out) {
    let n = input.len();
    let mut gb = false;
    let mut s = 0;
    while s < n {
        let c = input[s];
        if c == b'~' {
            let Some(&c2) = input.get(s + 1) else {
                out.error();
                break;
            };
            // Python 3.11 quirk: `~~` and `~\n` are only recognised in
            // ASCII mode; in GB mode they are 1-byte errors.
            match c2 {
                b'~' if !gb => out.s.push('~'),
                b'{' if !gb => gb = true,
                b'}' if gb => gb = false,
                b'\n' if !gb => {}
                _ => {
                    out.error();
                    s += 1;
                    continue;
                }
            }
            s += 2;
            continue;
        }
        if c & 0x80 != 0 {
            out.error();
            s += 1;
            continue;
        }
        if !gb {
            out.push_byte(c);
            s += 1;
            continue;
        }
        let Some(&c2) = input.get(s + 1) else {
            out.error();
            break;
        };
        match (c2 < 0x80)
            .then(|| tries::GB2312.lookup2(c | 0x80, c2 | 0x80))
            .flatten()
        {
            Some(cp) => {
                out.push_cp(cp);
                s += 2;
            }
            None => {
                out.error();
                s += 1;
            }
        }
    }
}

// ------------------------------------------------------------------ ISO-2022

const ESC: u8 = 0x1B;
const SO: u8 = 0x0E;
const SI: u8 = 0x0F;
const LF: u8 = 0x0A;
/// Longest escape sequence CPython scans for its final byte.
const MAX_ESCSEQLEN: usize = 16;
/// Marks a double-byte set in a charset id (`CHARSET_DBCS`).
const DBCS: u8 = 0x80;
const ASCII: u8 = b'B';

/// A generated 96x96 double-byte table (lead and trail 0x20..=0x7F).
struct DbcsTable(&'static [u8]);

impl DbcsTable {
    fn get(&self, b1: u8, b2: u8) -> u32 {
        if !(0x20..0x80).contains(&b1) || !(0x20..0x80).contains(&b2) {
            return 0;
        }
        let i = 4 * ((usize::from(b1) - 0x20) * 96 + usize::from(b2) - 0x20);
        u32::from_le_bytes([self.0[i], self.0[i + 1], self.0[i + 2], self.0[i + 3]])
    }
}

static JISX0208: DbcsTable = DbcsTable(include_bytes!("tables/iso2022_jisx0208.bin"));
static JISX0212: DbcsTable = DbcsTable(include_bytes!("tables/iso2022_jisx0212.bin"));
static KSX1001: DbcsTable = DbcsTable(include_bytes!("tables/iso2022_ksx1001.bin"));
static GB2312: DbcsTable = DbcsTable(include_bytes!("tables/iso2022_gb2312.bin"));
static JISX0213_2000_1: DbcsTable = DbcsTable(include_bytes!("tables/iso2022_jisx0213_2000_1.bin"));
static JISX0213_2000_2: DbcsTable = DbcsTable(include_bytes!("tables/iso2022_jisx0213_2000_2.bin"));
static JISX0213_2004_1: DbcsTable = DbcsTable(include_bytes!("tables/iso2022_jisx0213_2004_1.bin"));
static JISX0213_2004_2: DbcsTable = DbcsTable(include_bytes!("tables/iso2022_jisx0213_2004_2.bin"));
static G2_ISO8859_7: &[u8] = include_bytes!("tables/iso2022_g2_iso8859_7.bin");

/// How a designated character set decodes.
#[derive(Clone, Copy)]
enum Set {
    Double(&'static DbcsTable),
    /// JIS X 0201 Roman: ASCII with ¥ and ‾.
    JisRoman,
    /// JIS X 0201 Katakana (7-bit: 0x21..=0x5F are U+FF61..=U+FF9F).
    JisKana,
    /// ISO-8859-1 / ISO-8859-7 marks of iso2022_jp_2: only meaningful for
    /// G2; designated to G0/G1 every byte is unmappable.
    Dummy,
}

/// (charset id, decoder) pairs a codec accepts, in CPython's order.
fn designations(codec: Codec) -> &'static [(u8, Set)] {
    use Set::*;
    const JP: &[(u8, Set)] = &[
        (b'B' | DBCS, Double(&JISX0208)),
        (b'J', JisRoman),
        (b'@' | DBCS, Double(&JISX0208)),
    ];
    const JP1: &[(u8, Set)] = &[
        (b'B' | DBCS, Double(&JISX0208)),
        (b'D' | DBCS, Double(&JISX0212)),
        (b'J', JisRoman),
        (b'@' | DBCS, Double(&JISX0208)),
    ];
    const JP2: &[(u8, Set)] = &[
        (b'B' | DBCS, Double(&JISX0208)),
        (b'D' | DBCS, Double(&JISX0212)),
        (b'C' | DBCS, Double(&KSX1001)),
        (b'A' | DBCS, Double(&GB2312)),
        (b'J', JisRoman),
        (b'@' | DBCS, Double(&JISX0208)),
        (b'A', Dummy),
        (b'F', Dummy),
    ];
    const JP2004: &[(u8, Set)] = &[
        (b'Q' | DBCS, Double(&JISX0213_2004_1)),
        (b'B' | DBCS, Double(&JISX0208)),
        (b'P' | DBCS, Double(&JISX0213_2004_2)),
    ];
    const JP3: &[(u8, Set)] = &[
        (b'O' | DBCS, Double(&JISX0213_2000_1)),
        (b'B' | DBCS, Double(&JISX0208)),
        (b'P' | DBCS, Double(&JISX0213_2000_2)),
    ];
    const JPEXT: &[(u8, Set)] = &[
        (b'B' | DBCS, Double(&JISX0208)),
        (b'D' | DBCS, Double(&JISX0212)),
        (b'J', JisRoman),
        (b'I', JisKana),
        (b'@' | DBCS, Double(&JISX0208)),
    ];
    const KR: &[(u8, Set)] = &[(b'C' | DBCS, Double(&KSX1001))];
    match codec {
        Codec::Iso2022Jp => JP,
        Codec::Iso2022Jp1 => JP1,
        Codec::Iso2022Jp2 => JP2,
        Codec::Iso2022Jp2004 => JP2004,
        Codec::Iso2022Jp3 => JP3,
        Codec::Iso2022JpExt => JPEXT,
        _ => KR,
    }
}

/// Outcome of one step of the ISO-2022 decoder (CPython's return codes).
enum Step {
    /// Consumed this many bytes.
    Ok(usize),
    /// Invalid unit of this many bytes.
    Err(usize),
    /// The unit needs bytes beyond the end (`MBERR_TOOFEW`).
    TooFew,
    /// `MBERR_INTERNAL`: CPython raises RuntimeError("internal codec error").
    Internal,
}

struct Iso2022State {
    g: [u8; 3],
    shifted: bool,
    esc_throughout: bool,
}

/// The `iso2022_*` codecs (CPython `_codecs_iso2022.c` decoder), with the
/// designation sets per codec. Python quirks kept: an escape sequence is
/// scanned up to 16 bytes for a final byte (`A`–`Z`, `@`) and, when it is
/// not one the codec knows, the whole sequence is one error; `ESC` followed
/// by anything else is passed through with the following bytes up to a
/// final byte (as Latin-1); SO/SI are ordinary C0 bytes except in
/// iso2022_kr; a line feed resets the shift; an unmappable double-byte
/// character is a 2-byte error. `ESC N` with a G2 set that has no G2
/// decoder (iso2022_jp_2 after `ESC . J`, etc.) makes CPython raise
/// RuntimeError, reported as [`CodecError::PythonRuntimeError`].
pub(crate) fn iso2022(codec: Codec, input: &[u8], out: &mut Out) -> Result<(), CodecError> {
    let kr = codec == Codec::Iso2022Kr;
    let (no_shift, jisx0208_ext, use_g2) = (!kr, !kr, codec == Codec::Iso2022Jp2);
    let desig = designations(codec);
    let mut st = Iso2022State {
        g: [ASCII; 3],
        shifted: false,
        esc_throughout: false,
    };
    let n = input.len();
    let mut i = 0;
    while i < n {
        let step = iso2022_step(
            &mut st,
            desig,
            &input[i..],
            out,
            no_shift,
            jisx0208_ext,
            use_g2,
        );
        match step {
            Step::Ok(k) => i += k,
            Step::Err(k) => {
                out.error();
                i += k;
            }
            Step::TooFew => {
                out.error();
                i = n;
            }
            Step::Internal => {
                return Err(CodecError::PythonRuntimeError(format!(
                    "{}: internal codec error (ESC N with an unsupported G2 set)",
                    codec.name()
                )))
            }
        }
    }
    Ok(())
}

fn is_escend(c: u8) -> bool {
    c.is_ascii_uppercase() || c == b'@'
}

fn iso2022_step(
    st: &mut Iso2022State,
    desig: &[(u8, Set)],
    b: &[u8],
    out: &mut Out,
    no_shift: bool,
    jisx0208_ext: bool,
    use_g2: bool,
) -> Step {
    let c = b[0];
    if st.esc_throughout {
        out.push_byte(c);
        if is_escend(c) {
            st.esc_throughout = false;
        }
        return Step::Ok(1);
    }
    match c {
        ESC => {
            let Some(&c2) = b.get(1) else {
                return Step::TooFew;
            };
            if matches!(c2, b'(' | b')' | b'$' | b'.' | b'&') {
                process_escape(st, desig, b, jisx0208_ext, use_g2)
            } else if use_g2 && c2 == b'N' {
                let Some(&c3) = b.get(2) else {
                    return Step::TooFew;
                };
                process_g2(st, c3, out)
            } else {
                out.push_byte(ESC);
                st.esc_throughout = true;
                Step::Ok(1)
            }
        }
        SI if !no_shift => {
            st.shifted = false;
            Step::Ok(1)
        }
        SO if !no_shift => {
            st.shifted = true;
            Step::Ok(1)
        }
        LF => {
            st.shifted = false;
            out.push_byte(LF);
            Step::Ok(1)
        }
        0..=0x1F => {
            out.push_byte(c);
            Step::Ok(1)
        }
        0x80..=0xFF => Step::Err(1),
        _ => {
            let charset = if st.shifted { st.g[1] } else { st.g[0] };
            if charset == ASCII {
                out.push_byte(c);
                return Step::Ok(1);
            }
            // Every designated charset is in the list (process_escape
            // checks), so the lookup cannot fail.
            let Some(&(_, set)) = desig.iter().find(|(m, _)| *m == charset) else {
                return Step::Internal;
            };
            match set {
                Set::Double(t) => {
                    let Some(&c2) = b.get(1) else {
                        return Step::TooFew;
                    };
                    let v = t.get(c, c2);
                    if v == 0 {
                        return Step::Err(2);
                    }
                    if v >> 31 == 1 {
                        out.push_cp((v >> 16) & 0x7FFF);
                        out.push_cp(v & 0xFFFF);
                    } else {
                        out.push_cp(v);
                    }
                    Step::Ok(2)
                }
                Set::JisRoman => {
                    out.push_cp(match c {
                        0x5C => 0xA5,
                        0x7E => 0x203E,
                        _ => u32::from(c),
                    });
                    Step::Ok(1)
                }
                Set::JisKana => {
                    if (0x21..=0x5F).contains(&c) {
                        out.push_cp(0xFF61 + u32::from(c - 0x21));
                        Step::Ok(1)
                    } else {
                        Step::Err(1)
                    }
                }
                Set::Dummy => Step::Err(1),
            }
        }
    }
}

/// `iso2022processesc`: designate a set, or report the escape's length as
/// the error size.
fn process_escape(
    st: &mut Iso2022State,
    desig: &[(u8, Set)],
    b: &[u8],
    jisx0208_ext: bool,
    use_g2: bool,
) -> Step {
    let mut i = 1;
    let mut esclen = 0;
    while i < MAX_ESCSEQLEN {
        if i >= b.len() {
            return Step::TooFew;
        }
        if is_escend(b[i]) {
            esclen = i + 1;
            break;
        }
        if jisx0208_ext && i + 1 < b.len() && b[i] == b'&' && b[i + 1] == b'@' {
            // CPython skips `&@` and, through its loop increment, the byte
            // after it unchecked.
            i += 2;
        }
        i += 1;
    }
    if esclen == 0 {
        return Step::Err(1); // unterminated escape sequence
    }
    let (charset, g) = match esclen {
        3 => {
            if b[1] == b'$' {
                (b[2] | DBCS, 0)
            } else {
                let g = match b[1] {
                    b'(' => 0,
                    b')' => 1,
                    b'.' if use_g2 => 2,
                    _ => return Step::Err(3),
                };
                (b[2], g)
            }
        }
        4 => {
            if b[1] != b'$' {
                return Step::Err(4);
            }
            let g = match b[2] {
                b'(' => 0,
                b')' => 1,
                _ => return Step::Err(4),
            };
            (b[3] | DBCS, g)
        }
        6 if jisx0208_ext && b[3] == ESC && b[4] == b'$' && b[5] == b'B' => (b'B' | DBCS, 0),
        _ => return Step::Err(esclen),
    };
    if charset != ASCII && !desig.iter().any(|(m, _)| *m == charset) {
        return Step::Err(esclen);
    }
    st.g[g] = charset;
    Step::Ok(esclen)
}

/// `iso2022processg2`: the single-shift `ESC N c` of iso2022_jp_2.
fn process_g2(st: &Iso2022State, c3: u8, out: &mut Out) -> Step {
    match st.g[2] {
        b'A' => {
            if c3 < 0x80 {
                out.push_byte(c3 + 0x80);
            } else {
                return Step::Err(3);
            }
        }
        b'F' => {
            let i = 2 * usize::from(c3);
            let v = u16::from_le_bytes([G2_ISO8859_7[i], G2_ISO8859_7[i + 1]]);
            if v == 0xFFFF {
                return Step::Err(3);
            }
            out.push_cp(u32::from(v));
        }
        ASCII => {
            if c3 & 0x80 != 0 {
                return Step::Err(3);
            }
            out.push_byte(c3);
        }
        _ => return Step::Internal,
    }
    Step::Ok(3)
}
