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

/// The `iso2022_*` codecs: not implemented yet (docs/codecs.md).
pub(crate) fn iso2022(codec: Codec, _input: &[u8], _out: &mut Out) -> Result<(), CodecError> {
    Err(CodecError::Unsupported(codec.name().into()))
}
