//! How Python's `Message.as_string()` (policy `compat32`, `maxheaderlen=0`)
//! writes one header value: the text the reference server echoes as
//! `Thread`, and the text both sides sign (docs/protocol.md §2.2, §4.2).
//!
//! Quirk reproduced (`email.header.Header.encode` with unlimited line
//! length, `_ValueFormatter`): the value goes through the header folder even
//! though nothing is ever wrapped:
//! * an ASCII value on one line is written unchanged (the fast path);
//! * a multi-line value (split like `str.splitlines`) is re-joined with
//!   `\n`: each continuation keeps its leading blanks, a continuation of
//!   exactly one blank vanishes, other blank-only continuations are glued to
//!   the previous line;
//! * a value with bytes ≥ 0x80 becomes RFC 2047 encoded words, charset
//!   `unknown-8bit` on the server (bytes received) or `utf-8` on the client
//!   (text sent), Q or B encoding, whichever is shorter (Q on a tie);
//!   continuation lines become separate words that start with an encoded
//!   blank;
//! * a result containing `\n` + non-blank text + `:` is refused
//!   (`HeaderParseError: header value appears to contain an embedded
//!   header`), which the server turns into 500 when signing and into "no
//!   reply" when echoing `Thread`.

use crate::py::{is_line_boundary_byte, py_isspace_byte};

/// Python's serialiser refuses the value; the text is the exception
/// message (`header value appears to contain an embedded header: ...` from
/// `Header.encode`, or `folded header contains newline: ...` from the
/// generator's header check that Debian's CPython 3.11.2 carries, the
/// CVE-2024-6923 fix).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EmbeddedHeader(pub String);

/// Charset used for values with non-ASCII bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Charset8 {
    /// Bytes parsed from the wire (`unknown-8bit`).
    Unknown8bit,
    /// Text the client encodes (`utf-8`).
    Utf8,
}

impl Charset8 {
    fn name(self) -> &'static str {
        match self {
            Charset8::Unknown8bit => "unknown-8bit",
            Charset8::Utf8 => "utf-8",
        }
    }
}

/// Append the rendered form of a header value received as bytes.
pub(crate) fn render_value(value: &[u8], out: &mut Vec<u8>) -> Result<(), EmbeddedHeader> {
    render_field_value(b"", value, out)
}

/// `render_value` for the field `name` (the name only appears in the
/// error text).
pub fn render_field_value(
    name: &[u8],
    value: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), EmbeddedHeader> {
    if value.is_ascii() && !value.iter().any(|&b| is_line_boundary_byte(b)) {
        out.extend_from_slice(value);
        return Ok(());
    }
    let lines = split_lines_bytes(value);
    let s = format_lines(&lines, !value.is_ascii(), Charset8::Unknown8bit);
    check_embedded(&s)?;
    check_newlines(name, &s)?;
    out.extend_from_slice(&s);
    Ok(())
}

/// The generator's check (`NEWLINE_WITHOUT_FWSP`): every line break of
/// the written header must be followed by a blank or a tab.
fn check_newlines(name: &[u8], s: &[u8]) -> Result<(), EmbeddedHeader> {
    let bad = s
        .windows(2)
        .any(|w| w[0] == b'\n' && !matches!(w[1], b' ' | b'\t'));
    if bad {
        let mut folded = String::from_utf8_lossy(name).into_owned();
        folded.push_str(": ");
        folded.push_str(&String::from_utf8_lossy(s));
        folded.push('\n');
        return Err(EmbeddedHeader(format!(
            "folded header contains newline: {}",
            crate::py::py_repr_str(&folded)
        )));
    }
    Ok(())
}

/// Append the rendered form of a header value the client sends (a Rust
/// string; non-ASCII text becomes `utf-8` encoded words).
pub(crate) fn render_str(value: &str, out: &mut Vec<u8>) -> Result<(), EmbeddedHeader> {
    let b = value.as_bytes();
    if b.is_ascii() && !b.iter().any(|&c| is_line_boundary_byte(c)) {
        out.extend_from_slice(b);
        return Ok(());
    }
    let lines: Vec<Vec<u8>> = if value.is_ascii() {
        split_lines_bytes(b)
    } else {
        crate::py::py_splitlines(value)
            .map(|l| l.as_bytes().to_vec())
            .collect()
    };
    let s = format_lines(&lines, !value.is_ascii(), Charset8::Utf8);
    check_embedded(&s)?;
    check_newlines(b"", &s)?;
    out.extend_from_slice(&s);
    Ok(())
}

fn split_lines_bytes(v: &[u8]) -> Vec<Vec<u8>> {
    let mut lines = Vec::new();
    let mut i = 0;
    let mut start = 0;
    while i < v.len() {
        if is_line_boundary_byte(v[i]) {
            lines.push(v[start..i].to_vec());
            if v[i] == b'\r' && v.get(i + 1) == Some(&b'\n') {
                i += 1;
            }
            start = i + 1;
        }
        i += 1;
    }
    if start < v.len() {
        lines.push(v[start..].to_vec());
    }
    lines
}

/// `_ValueFormatter` with an unlimited line length.
struct Formatter {
    lines: Vec<Vec<u8>>,
    cur: Vec<(Vec<u8>, Vec<u8>)>,
    initial: usize,
}

impl Formatter {
    fn cur_len(&self) -> usize {
        self.cur
            .iter()
            .map(|(a, b)| a.len() + b.len())
            .sum::<usize>()
            + self.initial
    }
    fn cur_str(&self) -> Vec<u8> {
        let mut s = Vec::new();
        for (a, b) in &self.cur {
            s.extend_from_slice(a);
            s.extend_from_slice(b);
        }
        s
    }
    fn newline(&mut self) {
        let end = self.cur.pop().unwrap_or_default();
        if !(end.0 == b" " && end.1.is_empty()) {
            self.cur.push(end);
        }
        if self.cur_len() > 0 {
            let s = self.cur_str();
            // `is_onlyws`: `not self or str(self).isspace()`; the list is
            // never empty here, and `"".isspace()` is false.
            let only_ws =
                self.initial == 0 && !s.is_empty() && s.iter().all(|&b| py_isspace_byte(b));
            match self.lines.last_mut() {
                Some(last) if only_ws => last.extend_from_slice(&s),
                _ => self.lines.push(s),
            }
        }
        self.cur.clear();
        self.initial = 0;
    }
    /// `_ascii_split`: split at runs of blanks/tabs.
    fn ascii_split(&mut self, line: &[u8]) {
        let mut i = 0;
        let mut fws_start = 0;
        // leading fws
        while i < line.len() && matches!(line[i], b' ' | b'\t') {
            i += 1;
        }
        if i == line.len() {
            if !line.is_empty() {
                self.cur.push((line.to_vec(), Vec::new()));
            }
            return;
        }
        loop {
            let part_start = i;
            while i < line.len() && !matches!(line[i], b' ' | b'\t') {
                i += 1;
            }
            self.cur.push((
                line[fws_start..part_start].to_vec(),
                line[part_start..i].to_vec(),
            ));
            if i == line.len() {
                return;
            }
            fws_start = i;
            while i < line.len() && matches!(line[i], b' ' | b'\t') {
                i += 1;
            }
            if i == line.len() {
                self.cur.push((line[fws_start..].to_vec(), Vec::new()));
                return;
            }
        }
    }
}

fn format_lines(lines: &[Vec<u8>], encoded: bool, cs: Charset8) -> Vec<u8> {
    let mut f = Formatter {
        lines: Vec::new(),
        cur: Vec::new(),
        initial: 1,
    };
    let empty = Vec::new();
    let first = lines.first().unwrap_or(&empty);
    if encoded {
        f.cur.push((Vec::new(), encoded_word(first, cs)));
    } else {
        f.ascii_split(first);
    }
    for line in lines.iter().skip(1) {
        f.newline();
        if encoded {
            let stripped: &[u8] = {
                let n = line.iter().take_while(|&&b| py_isspace_byte(b)).count();
                &line[n..]
            };
            let mut with_blank = vec![b' '];
            with_blank.extend_from_slice(stripped);
            f.cur.push((b" ".to_vec(), encoded_word(&with_blank, cs)));
        } else {
            f.ascii_split(line);
        }
    }
    if lines.len() > 1 {
        f.newline();
    }
    // add_transition, then _str(): newline() and join.
    f.cur.push((b" ".to_vec(), Vec::new()));
    f.newline();
    f.lines.join(&b'\n')
}

/// RFC 2047 word, the shorter of Q and B (`Charset.header_encode_lines`
/// with `SHORTEST`); empty input gives an empty string.
fn encoded_word(bytes: &[u8], cs: Charset8) -> Vec<u8> {
    if bytes.is_empty() {
        return Vec::new();
    }
    let b64_len = bytes.len().div_ceil(3) * 4;
    let q_len: usize = bytes.iter().map(|&b| if q_safe(b) { 1 } else { 3 }).sum();
    let mut out = Vec::with_capacity(b64_len.min(q_len) + 20);
    out.extend_from_slice(b"=?");
    out.extend_from_slice(cs.name().as_bytes());
    if b64_len < q_len {
        out.extend_from_slice(b"?b?");
        base64_encode(bytes, &mut out);
    } else {
        out.extend_from_slice(b"?q?");
        for &b in bytes {
            if b == b' ' {
                out.push(b'_');
            } else if q_safe(b) {
                out.push(b);
            } else {
                out.extend_from_slice(format!("={b:02X}").as_bytes());
            }
        }
    }
    out.extend_from_slice(b"?=");
    out
}

/// Characters `quoprimime` leaves alone in headers (space becomes `_`,
/// also one character).
fn q_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'!' | b'*' | b'+' | b'/' | b' ')
}

fn base64_encode(data: &[u8], out: &mut Vec<u8>) {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in data.chunks(3) {
        let n = chunk.len();
        let v = (chunk[0] as u32) << 16
            | (*chunk.get(1).unwrap_or(&0) as u32) << 8
            | *chunk.get(2).unwrap_or(&0) as u32;
        out.push(T[(v >> 18) as usize & 63]);
        out.push(T[(v >> 12) as usize & 63]);
        out.push(if n > 1 {
            T[(v >> 6) as usize & 63]
        } else {
            b'='
        });
        out.push(if n > 2 { T[v as usize & 63] } else { b'=' });
    }
}

/// `_embedded_header = re.compile(r'\n[^ \t]+:')`.
fn check_embedded(s: &[u8]) -> Result<(), EmbeddedHeader> {
    for (i, &b) in s.iter().enumerate() {
        if b == b'\n' {
            let rest = &s[i + 1..];
            // `[^ \t]+` (which may contain ':' and newlines) then ':': a ':'
            // anywhere after the first character of the non-blank run.
            let run = rest
                .iter()
                .take_while(|&&c| c != b' ' && c != b'\t')
                .count();
            if run > 1 && rest[1..run].contains(&b':') {
                return Err(EmbeddedHeader(format!(
                    "header value appears to contain an embedded header: {}",
                    crate::py::py_repr_str(&String::from_utf8_lossy(s))
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(v: &[u8]) -> Result<String, EmbeddedHeader> {
        let mut o = Vec::new();
        render_value(v, &mut o).map(|_| String::from_utf8(o).unwrap())
    }

    #[test]
    fn observed_reference_renderings() {
        // Outputs recorded from CPython 3.11's email package.
        assert_eq!(r(b"1234").unwrap(), "1234");
        assert_eq!(r(b"ping  ").unwrap(), "ping  ");
        assert_eq!(r(b"").unwrap(), "");
        assert_eq!(r(b"\xff\xfe7").unwrap(), "=?unknown-8bit?b?//43?=");
        assert_eq!(r(b"a\x85b c").unwrap(), "=?unknown-8bit?q?a=85b_c?=");
        assert_eq!(
            r(b"12 \xc3\xa9\n 5").unwrap(),
            "=?unknown-8bit?b?MTIgw6k=?=\n =?unknown-8bit?q?_5?="
        );
        assert_eq!(r(b"1234\n 5678").unwrap(), "1234\n 5678");
        assert_eq!(r(b"1234\r\n 5678").unwrap(), "1234\n 5678");
        assert_eq!(r(b"1\n ").unwrap(), "1");
        assert_eq!(r(b"1\n\t").unwrap(), "1\t");
        assert_eq!(r(b"\n 1234").unwrap(), "\n 1234");
        assert!(r(b"12\x0bX: y")
            .unwrap_err()
            .0
            .starts_with("header value appears to contain an embedded header: "));
        let mut o = Vec::new();
        let e = render_field_value(b"Op-Digest", b"1\x0c2", &mut o).unwrap_err();
        assert_eq!(e.0, "folded header contains newline: 'Op-Digest: 1\\n2\\n'");
        assert_eq!(r(b"a 1\x0c 2").unwrap(), "a 1\n 2");
    }

    #[test]
    fn client_utf8() {
        let mut o = Vec::new();
        render_str("é", &mut o).unwrap();
        assert_eq!(o, b"=?utf-8?b?w6k=?=");
    }
}
