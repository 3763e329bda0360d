#!/usr/bin/python3
"""Regenerate pyzor-digest's Python-codec tables by asking the local CPython.

Run with Debian's /usr/bin/python3 (CPython 3.11.2, the interpreter the
reference Pyzor 1.1.2 runs on):

    /usr/bin/python3 tools/gen-codec-tables.py [NameAliases.txt]

(default alias candidates: crates/pyzor-digest/src/codecs/tables/name-aliases.txt)

Writes into crates/pyzor-digest/src/codecs/:
  * generated.rs        the `Codec` enum, codec names, alias and module tables
  * tables/<module>.bin one byte-trie per stateless codec (format below)
  * tables/gb18030_bmp.bin  GB18030 four-byte BMP table (u16 LE, 0 = invalid)
  * tables/euckr_makeup.bin EUC-KR KS X 1001:1998 Annex 3 jamo index tables
  * tables/iso2022_*.bin  ISO-2022 double-byte sets and the G2 ISO-8859-7 table
  * tables/names.bin    FNV-1a-64 hashes of the character names (and, given
                        a NameAliases.txt, the aliases) that CPython's
                        `\\N{...}` escape accepts, with their code points

Nothing here is copied from CPython's sources: every table entry is the
observed result of `bytes.decode(codec, "strict")` on a probe input.

Trie format (all little-endian u32): magic b"PZCT", node count, pool length,
then node_count * 256 entries, then the pool.  Entry = tag << 30 | value:
  tag 0  one code point `value`; the unit is the path of bytes to here
  tag 1  error: the unit starting at the root byte is `value` bytes long
  tag 2  child node index: the unit needs another byte
  tag 3  special: bits 24..27 = kind; kind 0 = several code points, pool
         offset in bits 0..15 and count in bits 16..19; kind 1 = GB18030
         four-byte sequence; kind 2 = EUC-KR make-up sequence (8 bytes)
Running out of input inside a unit is CPython's MBERR_TOOFEW: one error
spanning the rest of the input.
"""
import codecs
import encodings
import encodings.aliases
import importlib
import os
import pkgutil
import struct
import sys

assert sys.version_info[:2] == (3, 11), "tables must come from CPython 3.11"

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "crates/pyzor-digest/src/codecs")
TABLES = os.path.join(OUT, "tables")

# Codecs implemented by hand in Rust (stateful, or not byte-trie shaped).
HAND = {
    "utf_8": "Utf8", "utf_8_sig": "Utf8Sig",
    "utf_16": "Utf16", "utf_16_le": "Utf16Le", "utf_16_be": "Utf16Be",
    "utf_32": "Utf32", "utf_32_le": "Utf32Le", "utf_32_be": "Utf32Be",
    "utf_7": "Utf7", "unicode_escape": "UnicodeEscape",
    "raw_unicode_escape": "RawUnicodeEscape", "punycode": "Punycode",
    "idna": "Idna", "undefined": "Undefined", "hz": "Hz",
    "iso2022_jp": "Iso2022", "iso2022_jp_1": "Iso2022",
    "iso2022_jp_2": "Iso2022", "iso2022_jp_2004": "Iso2022",
    "iso2022_jp_3": "Iso2022", "iso2022_jp_ext": "Iso2022",
    "iso2022_kr": "Iso2022",
}


def camel(mod):
    return "".join(p[:1].upper() + p[1:] for p in mod.split("_"))


def text_modules():
    mods = []
    for m in sorted(x.name for x in pkgutil.iter_modules(encodings.__path__)):
        try:
            info = codecs.lookup(m)
        except LookupError:
            continue  # aliases, mbcs, oem on Linux
        assert not hasattr(importlib.import_module("encodings." + m), "getaliases"), m
        if not info._is_text_encoding:
            continue
        mods.append((m, info.name))
    return mods


def py_lookup(name):
    """The text codec module bytes.decode(name) resolves to, or None."""
    try:
        info = codecs.lookup(name)
    except LookupError:
        return None
    if not info._is_text_encoding:
        return None
    mod = info.decode.__module__ if hasattr(info.decode, "__module__") else None
    return info.name, mod


# ---------------------------------------------------------------- tries
class Trie:
    def __init__(self):
        self.nodes = []
        self.pool = []

    def new_node(self):
        self.nodes.append([None] * 256)
        return len(self.nodes) - 1


def probe(codec, data):
    try:
        return ("ok", data.decode(codec, "strict"))
    except UnicodeDecodeError as e:
        if e.start != 0:
            raise SystemExit(f"{codec}: error not at unit start for {data!r}: {e}")
        if e.reason == "incomplete multibyte sequence":
            assert e.end == len(data), (codec, data, e)
            return ("more", None)
        return ("err", e.end - e.start)


def build_trie(codec):
    t = Trie()
    root = t.new_node()

    def fill(node, prefix):
        for b in range(256):
            data = prefix + bytes([b])
            if codec == "gb18030" and len(data) == 2 and 0x30 <= b <= 0x39:
                t.nodes[node][b] = (3 << 30) | (1 << 24)
                continue
            if codec == "euc_kr" and data == b"\xa4\xd4":
                t.nodes[node][b] = (3 << 30) | (2 << 24)
                continue
            kind, val = probe(codec, data)
            if kind == "ok":
                cps = [ord(c) for c in val]
                assert not any(0xD800 <= c <= 0xDFFF for c in cps), (codec, data)
                if len(cps) == 1:
                    t.nodes[node][b] = cps[0]
                else:
                    assert 1 < len(cps) < 16
                    off = len(t.pool)
                    t.pool.extend(cps)
                    assert off < 1 << 16
                    t.nodes[node][b] = (3 << 30) | (len(cps) << 16) | off
            elif kind == "err":
                assert 1 <= val <= len(data)
                t.nodes[node][b] = (1 << 30) | val
            else:
                if len(data) >= 3:
                    raise SystemExit(f"{codec}: unit longer than 3 bytes at {data!r}")
                child = t.new_node()
                t.nodes[node][b] = (2 << 30) | child
                fill(child, data)

    fill(root, b"")
    return t


def write_trie(path, t):
    with open(path, "wb") as f:
        f.write(b"PZCT")
        f.write(struct.pack("<II", len(t.nodes), len(t.pool)))
        for n in t.nodes:
            f.write(struct.pack("<256I", *n))
        f.write(struct.pack(f"<{len(t.pool)}I", *t.pool))


def gb18030_formula(c, c2, c3, c4, bmp):
    """Our Rust rule for a GB18030 four-byte unit; checked against CPython."""
    if not (0x81 <= c <= 0xFE and 0x81 <= c3 <= 0xFE and 0x30 <= c4 <= 0x39):
        return None
    c -= 0x81
    c2 -= 0x30
    c3 -= 0x81
    c4 -= 0x30
    if c < 4:
        lseq = (c * 10 + c2) * 1260 + c3 * 10 + c4
        if lseq < 39420 and bmp[lseq]:
            return chr(bmp[lseq])
    elif c >= 15:
        lseq = 0x10000 + ((c - 15) * 10 + c2) * 1260 + c3 * 10 + c4
        if lseq <= 0x10FFFF:
            return chr(lseq)
    return None


def gen_gb18030_bmp():
    bmp = [0] * 39420
    for lseq in range(39420):
        c, rest = divmod(lseq, 12600)
        c2, rest = divmod(rest, 1260)
        c3, c4 = divmod(rest, 10)
        data = bytes([0x81 + c, 0x30 + c2, 0x81 + c3, 0x30 + c4])
        try:
            s = data.decode("gb18030")
        except UnicodeDecodeError:
            continue
        assert len(s) == 1 and ord(s) != 0
        bmp[lseq] = ord(s)
    # Check the four-byte rule on a broad grid of inputs.
    for c in range(0x80, 0x100):
        for c2 in (0x30, 0x34, 0x39):
            for c3 in range(0x80, 0x100, 1 if c in (0x81, 0x84, 0x90, 0xE3, 0xFE) else 7):
                for c4 in (0x2F, 0x30, 0x35, 0x39, 0x3A, 0x81):
                    data = bytes([c, c2, c3, c4])
                    exp = gb18030_formula(c, c2, c3, c4, bmp)
                    try:
                        s = data.decode("gb18030")
                        got = s if len(s) == 1 else None
                        assert got is not None, data
                    except UnicodeDecodeError as e:
                        assert e.start == 0 and e.end == 1, (data, e)
                        got = None
                    assert got == exp, (data, got, exp)
    with open(os.path.join(TABLES, "gb18030_bmp.bin"), "wb") as f:
        f.write(struct.pack("<39420H", *bmp))


def gen_euckr_makeup():
    """Index tables of the EUC-KR make-up sequence A4 D4 A4 cho A4 jung A4 jong."""
    none = 0xFF
    cho = [none] * 256
    jung = [none] * 256
    jong = [none] * 256
    for b in range(256):
        def dec(x, y, z):
            try:
                s = bytes([0xA4, 0xD4, 0xA4, x, 0xA4, y, 0xA4, z]).decode("euc_kr")
            except UnicodeDecodeError as e:
                assert e.start == 0 and e.end == 1
                return None
            assert len(s) == 1
            return ord(s) - 0xAC00
        v = dec(b, 0xBF, 0xD4)
        if v is not None:
            cho[b] = v // 588
        v = dec(0xA1, b, 0xD4)
        if v is not None:
            jung[b] = (v // 28) % 21
        v = dec(0xA1, 0xBF, b)
        if v is not None:
            jong[b] = v % 28
    # Verify the decomposition rule on the full product of valid indices.
    for x in range(256):
        if cho[x] == none:
            continue
        for y in range(256):
            if jung[y] == none:
                continue
            for z in range(256):
                if jong[z] == none:
                    continue
                s = bytes([0xA4, 0xD4, 0xA4, x, 0xA4, y, 0xA4, z]).decode("euc_kr")
                assert ord(s) == 0xAC00 + cho[x] * 588 + jung[y] * 28 + jong[z]
    with open(os.path.join(TABLES, "euckr_makeup.bin"), "wb") as f:
        f.write(bytes(cho + jung + jong))


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def gen_names(aliases_file):
    """Character names that `\\N{...}` (unicode_escape) accepts, hashed.

    CPython's name lookup is ASCII case-insensitive except for the
    algorithmic "HANGUL SYLLABLE " and "CJK UNIFIED IDEOGRAPH-" names, which
    the Rust side handles itself; those are left out here. Name aliases come
    from an optional NameAliases.txt and are kept only if this CPython
    accepts them.
    """
    import unicodedata
    assert unicodedata.unidata_version == "14.0.0"
    pairs = {}
    cjk = []
    for cp in range(0x110000):
        name = unicodedata.name(chr(cp), None)
        if name is None:
            continue
        if name.startswith("CJK UNIFIED IDEOGRAPH-"):
            cjk.append(cp)
            continue
        if name.startswith("HANGUL SYLLABLE "):
            continue
        pairs[name] = cp
    if aliases_file:
        for line in open(aliases_file, encoding="utf-8"):
            line = line.split("#")[0].strip()
            if not line:
                continue
            cp, alias = line.split(";")[:2]
            try:
                if unicodedata.lookup(alias) == chr(int(cp, 16)):
                    pairs.setdefault(alias, int(cp, 16))
            except KeyError:
                pass
    for name, cp in pairs.items():
        esc = b"\\N{" + name.encode() + b"}"
        assert esc.decode("unicode_escape") == chr(cp), name
        assert esc.lower().replace(b"\\n{", b"\\N{").decode("unicode_escape") == chr(cp), name
    rows = sorted((fnv1a64(n.encode()), cp) for n, cp in pairs.items())
    assert len({h for h, _ in rows}) == len(rows), "name hash collision"
    with open(os.path.join(TABLES, "names.bin"), "wb") as f:
        f.write(struct.pack("<I", len(rows)))
        f.write(struct.pack(f"<{len(rows)}Q", *(h for h, _ in rows)))
        f.write(struct.pack(f"<{len(rows)}I", *(c for _, c in rows)))
    ranges = []
    for cp in cjk:
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    print(f"names: {len(rows)} (aliases file: {aliases_file})", file=sys.stderr)
    return ranges


# ISO-2022 double-byte character sets: (file, codec, escape sequence that
# designates the set and makes it current).
ISO2022_SETS = [
    ("jisx0208", "iso2022_jp", b"\x1b$B"),
    ("jisx0212", "iso2022_jp_1", b"\x1b$(D"),
    ("ksx1001", "iso2022_kr", b"\x1b$)C\x0e"),
    ("gb2312", "iso2022_jp_2", b"\x1b$A"),
    ("jisx0213_2000_1", "iso2022_jp_3", b"\x1b$(O"),
    ("jisx0213_2000_2", "iso2022_jp_3", b"\x1b$(P"),
    ("jisx0213_2004_1", "iso2022_jp_2004", b"\x1b$(Q"),
    ("jisx0213_2004_2", "iso2022_jp_2004", b"\x1b$(P"),
]


def gen_iso2022():
    """96x96 u32 tables (lead and trail byte 0x20..0x7F) of the ISO-2022
    double-byte sets, probed through the iso2022 codecs: 0 = unmappable,
    bit 31 = a pair of BMP code points (high half first), else a code point.
    Trail bytes outside 0x20..0x7F are checked to be unmappable. Also the
    G2 ISO-8859-7 single-shift table of iso2022_jp_2 (u16, 0xFFFF = invalid)."""
    for name, codec, esc in ISO2022_SETS:
        table = [0] * (96 * 96)
        for b1 in range(0x20, 0x80):
            for b2 in range(256):
                try:
                    out = (esc + bytes([b1, b2])).decode(codec)
                except UnicodeDecodeError as e:
                    assert e.start == len(esc) and e.end == e.start + 2, (name, b1, b2, e)
                    continue
                assert 0x20 <= b2 < 0x80, (name, b1, b2)
                cps = [ord(c) for c in out]
                if len(cps) == 1:
                    v = cps[0]
                    assert 0 < v < 1 << 31
                else:
                    assert len(cps) == 2 and all(c < 0x10000 for c in cps), (name, b1, b2)
                    v = (1 << 31) | (cps[0] << 16) | cps[1]
                table[(b1 - 0x20) * 96 + (b2 - 0x20)] = v
        with open(os.path.join(TABLES, f"iso2022_{name}.bin"), "wb") as f:
            f.write(struct.pack("<9216I", *table))
    g2 = [0xFFFF] * 256
    for b in range(256):
        try:
            out = (b"\x1b.F\x1bN" + bytes([b])).decode("iso2022_jp_2")
        except UnicodeDecodeError as e:
            assert e.start == 3 and e.end == 6, (b, e)
            continue
        assert len(out) == 1 and ord(out) < 0xFFFF
        g2[b] = ord(out)
    with open(os.path.join(TABLES, "iso2022_g2_iso8859_7.bin"), "wb") as f:
        f.write(struct.pack("<256H", *g2))


def main():
    os.makedirs(TABLES, exist_ok=True)
    gen_iso2022()
    aliases_file = sys.argv[1] if len(sys.argv) > 1 else os.path.join(TABLES, "name-aliases.txt")
    cjk_ranges = gen_names(aliases_file)
    mods = text_modules()
    # Resolution tables: alias keys and module names, as bytes.decode sees them.
    # An alias names its module; if that module does not import (mbcs),
    # search_function retries the alias key itself as a module name.
    importable = {x.name for x in pkgutil.iter_modules(encodings.__path__)} - {"mbcs", "oem"}
    text = dict(mods)
    alias_rows = []
    for key in sorted(encodings.aliases.aliases):
        if key != key.lower():
            continue  # e.g. csHPRoman8: normalised names are lower-case
        target = encodings.aliases.aliases[key]
        if target not in importable:
            target = key if key in importable else None
        m = target if target in text else None
        r = py_lookup(key)
        assert (r[0] if r else None) == (text[m] if m else None), key
        alias_rows.append((key, m))

    lines = []
    w = lines.append
    w("// @generated by tools/gen-codec-tables.py from CPython %s; do not edit." % sys.version.split()[0])
    w("")
    w("use super::Imp;")
    w("")
    w("/// A Python 3.11 text codec that `bytes.decode` accepts (one per module")
    w("/// of the `encodings` package).")
    w("#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]")
    w("#[non_exhaustive]")
    w("pub enum Codec {")
    for m, n in mods:
        w(f"    /// `encodings.{m}` (`{n}`)")
        w(f"    {camel(m)},")
    w("}")
    w("")
    w("impl Codec {")
    w("    /// Python's `CodecInfo.name`.")
    w("    pub fn name(self) -> &'static str {")
    w("        match self {")
    for m, n in mods:
        w(f"            Codec::{camel(m)} => {n!r},".replace("'", '"'))
    w("        }")
    w("    }")
    w("")
    w("    /// The module name in the `encodings` package.")
    w("    pub fn module(self) -> &'static str {")
    w("        match self {")
    for m, n in mods:
        w(f'            Codec::{camel(m)} => "{m}",')
    w("        }")
    w("    }")
    w("")
    w("    /// How this codec is decoded.")
    w("    pub(crate) fn imp(self) -> Imp {")
    w("        match self {")
    for m, n in mods:
        if m in HAND:
            w(f"            Codec::{camel(m)} => Imp::{HAND[m]},")
        else:
            w(f"            Codec::{camel(m)} => Imp::Trie(&tries::{m.upper()}),")
    w("        }")
    w("    }")
    w("}")
    w("")
    w("/// `encodings.aliases.aliases` keys, sorted, with what `bytes.decode`")
    w("/// does with them: `None` = LookupError (non-text codec or a module")
    w("/// that does not import on Linux, such as `mbcs`).")
    w("pub(super) static ALIASES: &[(&str, Option<Codec>)] = &[")
    for key, m in alias_rows:
        val = f"Some(Codec::{camel(m)})" if m else "None"
        w(f'    ("{key}", {val}),')
    w("];")
    w("")
    w("/// Importable text-codec module names, sorted.")
    w("pub(super) static MODULES: &[(&str, Codec)] = &[")
    for m, n in mods:
        w(f'    ("{m}", Codec::{camel(m)}),')
    w("];")
    w("")
    w("/// Code points named `CJK UNIFIED IDEOGRAPH-XXXX` in Unicode 14.0.")
    w("pub(super) static CJK_UNIFIED: &[(u32, u32)] = &[")
    for a, b in cjk_ranges:
        w(f"    (0x{a:X}, 0x{b:X}),")
    w("];")
    w("")
    w("/// Byte tries of the stateless codecs (see tools/gen-codec-tables.py).")
    w("pub(super) mod tries {")
    w("    use super::super::trie::Trie;")
    for m, n in mods:
        if m in HAND:
            continue
        w(f'    pub static {m.upper()}: Trie = Trie::new(include_bytes!("tables/{m}.bin"));')
    w("}")
    with open(os.path.join(OUT, "generated.rs"), "w") as f:
        f.write("\n".join(lines) + "\n")

    for m, n in mods:
        if m in HAND:
            continue
        t = build_trie(m)
        write_trie(os.path.join(TABLES, m + ".bin"), t)
        print(f"{m}: {len(t.nodes)} nodes, pool {len(t.pool)}", file=sys.stderr)
    gen_gb18030_bmp()
    gen_euckr_makeup()


if __name__ == "__main__":
    main()
