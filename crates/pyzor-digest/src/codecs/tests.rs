//! Deterministic checks of the codec facts named in docs/digest-rules.md C.2.

use super::*;
use crate::text::surrogate_stand_in;

fn ig(label: &str, b: &[u8]) -> String {
    decode(label, b, Errors::Ignore).unwrap()
}

fn rp(label: &str, b: &[u8]) -> String {
    decode(label, b, Errors::Replace).unwrap()
}

#[test]
fn lookup_normalises_like_cpython() {
    for l in [
        "utf-8",
        "UTF-8",
        "utf 8",
        "-utf-8-",
        "UTF_-_8",
        "utf--8",
        "u8",
        "utf\u{e9}8",
        "_utf8",
    ] {
        assert_eq!(lookup(l), Some(Codec::Utf8), "{l}");
    }
    assert_eq!(lookup("iso8859.1"), Some(Codec::Latin1));
    assert_eq!(lookup("iso.8859.1"), Some(Codec::Latin1));
    for l in [
        "utf.8",
        "latin.1",
        "utf8.",
        "iso8859..1",
        "lat\u{e9}in1",
        "k\u{212a}oi8_r",
        "",
        "x-sjis",
        "windows-874",
    ] {
        assert_eq!(lookup(l), None, "{l:?}");
    }
    // E06: ks_c_5601-1987 is euc_kr, not cp949.
    assert_eq!(lookup("ks_c_5601-1987"), Some(Codec::EucKr));
    assert_eq!(lookup("latin1"), Some(Codec::Latin1));
}

#[test]
fn non_text_codecs_are_lookup_errors_e36() {
    for l in [
        "base64",
        "hex",
        "quopri",
        "quoted-printable",
        "rot13",
        "rot_13",
        "uu",
        "zlib",
        "zip",
        "bz2",
        "mbcs",
        "oem",
        "aliases",
    ] {
        assert!(
            matches!(decode(l, b"x", Errors::Ignore), Err(CodecError::Lookup(_))),
            "{l}"
        );
    }
    assert!(matches!(
        decode("undefined", b"x", Errors::Ignore),
        Err(CodecError::Unicode(_))
    ));
    assert!(matches!(
        decode("idna", b"x", Errors::Replace),
        Err(CodecError::Unicode(_))
    ));
}

#[test]
fn ascii_drops_high_bytes_e04() {
    assert_eq!(ig("us-ascii", b"a\xe9b\x80c"), "abc");
    assert_eq!(rp("ascii", b"a\xe9b"), "a\u{fffd}b");
}

#[test]
fn latin1_is_identity_e03() {
    assert_eq!(ig("latin1", b"a\x85b\xa0"), "a\u{85}b\u{a0}");
    // E39: no BOM sniffing.
    assert_eq!(ig("latin-1", b"\xef\xbb\xbfx"), "\u{ef}\u{bb}\u{bf}x");
}

#[test]
fn cp1252_drops_undefined_bytes() {
    assert_eq!(
        ig("windows-1252", b"\x80\x81\x8d\x8f\x90\x9d\x9f"),
        "\u{20ac}\u{178}"
    );
    assert_eq!(rp("cp1252", b"\x81"), "\u{fffd}");
}

#[test]
fn strict_legacy_cjk_sets_e07() {
    // cp932 extension (NEC row 13) is not in shift_jis.
    assert_eq!(ig("shift_jis", b"\x87\x40"), "@");
    assert_eq!(ig("cp932", b"\x87\x40"), "\u{2460}");
    assert_eq!(ig("euc_kr", b"\xb0\xa1"), "\u{ac00}");
    assert_eq!(ig("gb2312", b"\x81\x40"), "@");
    assert_eq!(ig("gbk", b"\x81\x40"), "\u{4e02}");
}

#[test]
fn utf8_keeps_bom_and_drops_maximal_subparts() {
    assert_eq!(ig("utf-8", b"\xef\xbb\xbfa"), "\u{feff}a");
    assert_eq!(ig("utf-8-sig", b"\xef\xbb\xbfa\xef\xbb\xbf"), "a\u{feff}");
    assert_eq!(rp("utf-8", b"\xe2\x82a"), "\u{fffd}a");
    assert_eq!(rp("utf-8", b"\xed\xa0\x80"), "\u{fffd}\u{fffd}\u{fffd}");
    assert_eq!(rp("utf-8", b"\xf4\x90\x80\x80"), "\u{fffd}".repeat(4));
    // E40: a literal U+FFFD is kept.
    assert_eq!(ig("utf-8", "x\u{fffd}".as_bytes()), "x\u{fffd}");
}

#[test]
fn utf16_defaults_to_little_endian_e30() {
    assert_eq!(ig("utf-16", b"a\x00b\x00"), "ab");
    assert_eq!(ig("utf-16", b"\xfe\xff\x00a"), "a");
    assert_eq!(ig("utf-16", b"\xff\xfea\x00"), "a");
    assert_eq!(ig("utf-16-le", b"\xff\xfea\x00"), "\u{feff}a");
    assert_eq!(rp("utf-16-le", b"a\x00b"), "a\u{fffd}");
    assert_eq!(rp("utf-16-le", b"\x00\xdca\x00"), "\u{fffd}a");
    assert_eq!(rp("utf-16-le", b"\x00\xd8a\x00"), "\u{fffd}a");
    assert_eq!(rp("utf-16-le", b"\x00\xd8a"), "\u{fffd}");
    assert_eq!(ig("utf-32", b"a\x00\x00\x00"), "a");
    assert_eq!(rp("utf-32-be", b"\x00\x11\x00\x00\x00"), "\u{fffd}\u{fffd}");
}

#[test]
fn utf7_yields_lone_surrogates_e37() {
    // "+2D3-" is the lone high surrogate U+D83D... padded: +2D0- = D834? Use
    // an explicit value: U+D800 = 110110 0000000000 -> base64 "2AA".
    let s = ig("utf-7", b"a+2AA-b");
    assert_eq!(s, format!("a{}b", surrogate_stand_in(0xD800)));
    assert_eq!(ig("utf-7", b"+AGE-"), "a");
    assert_eq!(ig("utf-7", b"1+-2"), "1+2");
}

#[test]
fn escapes_e32() {
    assert_eq!(ig("unicode_escape", b"a\\u2028b\\x41\\n"), "a\u{2028}bA\n");
    assert_eq!(
        ig("unicode_escape", b"\\ud800"),
        surrogate_stand_in(0xD800).to_string()
    );
    assert_eq!(ig("unicode-escape", b"\xe9\\q"), "\u{e9}\\q");
    assert_eq!(rp("unicode_escape", b"\\x4g"), "\u{fffd}g");
    assert_eq!(
        ig(
            "unicode_escape",
            b"\\N{LATIN SMALL LETTER A}\\N{hangul syllable ga}\\N{HANGUL SYLLABLE GA}"
        ),
        "a\u{ac00}"
    );
    assert_eq!(
        ig("unicode_escape", b"\\N{CJK UNIFIED IDEOGRAPH-4E00}"),
        "\u{4e00}"
    );
    assert_eq!(
        ig("raw_unicode_escape", b"\\\\u0041\\u0041\\x"),
        "\\\\u0041A\\x"
    );
}

#[test]
fn hz_tilde_escapes_only_in_ascii_mode() {
    assert_eq!(ig("hz", b"~~a~\nb"), "~ab");
    assert_eq!(rp("hz", b"~{~~~}"), "\u{fffd}\u{fffd}");
    assert_eq!(ig("hz", b"~{\x30\x21~}x"), "\u{554a}x");
    assert_eq!(rp("hz", b"~}"), "\u{fffd}}");
}

#[test]
fn iso2022_escapes_and_errors() {
    // ESC $ B designates JIS X 0208; `ESC & @` prefix accepted.
    assert_eq!(ig("iso-2022-jp", b"\x1b$B\x30\x21\x1b(Bx"), "\u{4e9c}x");
    assert_eq!(ig("iso2022_jp", b"\x1b&@\x1b$B\x30\x21"), "\u{4e9c}");
    // Unknown escape: passed through up to the final byte; 8-bit is an error.
    assert_eq!(
        rp("iso2022_jp", b"\x1bxyzB\xe9abc"),
        "\u{1b}xyzB\u{fffd}abc"
    );
    // No final byte within 16 bytes: a 1-byte error; input ending before
    // that: one error to the end.
    assert_eq!(
        rp("iso2022_jp", b"\x1b(aaaaaaaaaaaaaaaaaa"),
        "\u{fffd}(aaaaaaaaaaaaaaaaaa"
    );
    assert_eq!(rp("iso2022_jp", b"\x1b(aaaa"), "\u{fffd}");
    // Truncated escape at the end: one error.
    assert_eq!(rp("iso2022_jp", b"a\x1b("), "a\u{fffd}");
    // iso2022_kr uses SO/SI; iso2022_jp passes them through.
    assert_eq!(ig("iso2022_kr", b"\x1b$)C\x0e\x30\x21\x0fa"), "\u{ac00}a");
    assert_eq!(ig("iso2022_jp", b"\x1b$)Ba\x0eab"), "a\u{e}ab");
    // Python raises RuntimeError here; the reference digest fails.
    assert!(matches!(
        decode("iso2022_jp_2", b"\x1b.J\x1bNa", Errors::Ignore),
        Err(CodecError::PythonRuntimeError(_))
    ));
}

#[test]
fn gb18030_four_byte_and_euc_kr_makeup() {
    assert_eq!(ig("gb18030", b"\x90\x30\x81\x30"), "\u{10000}");
    assert_eq!(ig("gb18030", b"\x84\x31\xa4\x39"), "\u{ffff}");
    assert_eq!(rp("gb18030", b"\x81\x30\xff\x30"), "\u{fffd}0\u{fffd}");
    assert_eq!(rp("gb18030", b"\x81\x30\x81"), "\u{fffd}");
    assert_eq!(
        ig("euc-kr", b"\xa4\xd4\xa4\xa1\xa4\xbf\xa4\xd4"),
        "\u{ac00}"
    );
    assert_eq!(rp("euc-kr", b"\xa4\xd4\xa4\xa1"), "\u{fffd}");
}

#[test]
fn empty_input_never_fails() {
    for l in ["no-such-codec", "base64", "undefined", "idna", "utf-16"] {
        assert_eq!(decode(l, b"", Errors::Ignore).unwrap(), "", "{l}");
    }
}
