//! The subset of Python's `email.message_from_bytes` (policy `compat32`,
//! `feedparser`) that Pyzor's headers-only messages exercise
//! (docs/protocol.md §3.2).
//!
//! The parser records offsets into the caller's buffer, never copies, and
//! reuses its `Vec` between messages: parsing allocates nothing once the
//! vector has grown to the largest header count seen.
//!
//! Rules reproduced (all in [`Headers::parse`]):
//! * lines end in `\n`, `\r\n` or a bare `\r`;
//! * header lines match `^(From |[\x21-\x39\x3b-\x7e]*:|[\t ])`; the first
//!   line that does not ends the headers (a blank line is consumed, any
//!   other line starts the body);
//! * a line starting with a blank or tab continues the previous header (a
//!   continuation as first line is dropped);
//! * `From ` as the first line is the mbox "Unix from" (skipped); as the
//!   last header line it is pushed back into the body; elsewhere dropped;
//! * a line starting with `:` is dropped;
//! * value = text after the first `:` with leading blanks/tabs removed,
//!   continuation lines appended verbatim (with their line ends), trailing
//!   `\r`/`\n` removed.

use std::ops::Range;

/// One header: byte ranges of its name and value in the parsed buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: Range<u32>,
    pub value: Range<u32>,
}

/// The headers of one message (offsets into the buffer it was parsed from).
#[derive(Clone, Debug, Default)]
pub struct Headers {
    fields: Vec<Field>,
    /// A `From ` line pushed back into the body (see module docs).
    body_prefix: Option<Range<u32>>,
    /// Start of the body (the rest of the buffer), if there is a body.
    body_start: Option<u32>,
    len: u32,
}

/// Python's `headerRE`.
fn is_header_line(line: &[u8]) -> bool {
    if line.starts_with(b"From ") {
        return true;
    }
    match line.first() {
        Some(b' ' | b'\t') => return true,
        None => return false,
        _ => {}
    }
    for &c in line {
        match c {
            b':' => return true,
            0x21..=0x39 | 0x3b..=0x7e => {}
            _ => return false,
        }
    }
    false
}

/// Split off the next line (with its line end) as `BufferedSubFile` does.
#[inline]
fn next_line(buf: &[u8], pos: usize) -> Option<(usize, usize)> {
    if pos >= buf.len() {
        return None;
    }
    let rest = &buf[pos..];
    match memchr::memchr2(b'\n', b'\r', rest) {
        Some(i) => {
            let end = if rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n') {
                i + 2
            } else {
                i + 1
            };
            Some((pos, pos + end))
        }
        None => Some((pos, buf.len())),
    }
}

impl Headers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parse `buf` (which must be shorter than 4 GiB), replacing the
    /// previous contents. One pass over the lines: `feedparser._parsegen`
    /// (where the header block ends) and `_parse_headers` (what each header
    /// line means) together.
    pub fn parse(&mut self, buf: &[u8]) {
        self.fields.clear();
        self.body_prefix = None;
        self.body_start = None;
        self.len = buf.len() as u32;

        let mut current: Option<(usize, usize, usize)> = None; // (line start, colon, end)
        let mut pos = 0usize;
        let mut lineno = 0usize;
        while let Some((s, e)) = next_line(buf, pos) {
            let line = &buf[s..e];
            if !is_header_line(line) {
                // End of the headers: a blank line is consumed, any other
                // line starts the body.
                let blank = matches!(line.first(), Some(b'\r' | b'\n'));
                let body = if blank { e } else { s };
                if body < buf.len() {
                    self.body_start = Some(body as u32);
                }
                break;
            }
            pos = e;
            let this = lineno;
            lineno += 1;
            if matches!(line[0], b' ' | b'\t') {
                // Continuation (dropped when there is no header yet).
                if let Some(cur) = current.as_mut() {
                    cur.2 = e;
                }
                continue;
            }
            if let Some(cur) = current.take() {
                self.push(buf, cur);
            }
            if line.starts_with(b"From ") {
                // Unix-from as first line: skipped. As the last header
                // line: pushed back into the body. Elsewhere: dropped.
                let is_last =
                    next_line(buf, e).is_none_or(|(s2, e2)| !is_header_line(&buf[s2..e2]));
                if this > 0 && is_last {
                    self.body_prefix = Some(s as u32..e as u32);
                }
                continue;
            }
            let colon = memchr::memchr(b':', line).unwrap_or(0);
            if colon == 0 {
                continue; // ":value" — missing header name, dropped
            }
            current = Some((s, s + colon, e));
        }
        if let Some(cur) = current.take() {
            self.push(buf, cur);
        }
    }

    /// `compat32.header_source_parse`.
    fn push(&mut self, buf: &[u8], (start, colon, end): (usize, usize, usize)) {
        let mut vs = colon + 1;
        while vs < end && matches!(buf[vs], b' ' | b'\t') {
            vs += 1;
        }
        let mut ve = end;
        while ve > vs && matches!(buf[ve - 1], b'\r' | b'\n') {
            ve -= 1;
        }
        self.fields.push(Field {
            name: start as u32..colon as u32,
            value: vs as u32..ve as u32,
        });
    }

    /// All fields in order.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// `msg[name]`: the value of the **first** field of that name (ASCII
    /// case-insensitive), or `None`.
    pub fn get<'b>(&self, buf: &'b [u8], name: &str) -> Option<&'b [u8]> {
        self.fields
            .iter()
            .find(|f| slice(buf, &f.name).eq_ignore_ascii_case(name.as_bytes()))
            .map(|f| slice(buf, &f.value))
    }

    /// `msg.get_all(name)`: every value of that name, in order.
    pub fn get_all<'s, 'b>(
        &'s self,
        buf: &'b [u8],
        name: &'s str,
    ) -> impl Iterator<Item = &'b [u8]> + 's
    where
        'b: 's,
    {
        self.fields
            .iter()
            .filter(move |f| slice(buf, &f.name).eq_ignore_ascii_case(name.as_bytes()))
            .map(move |f| slice(buf, &f.value))
    }

    /// The body, in up to two pieces (a pushed-back `From ` line, then the
    /// rest of the buffer). Empty pieces are omitted.
    pub fn body<'b>(&self, buf: &'b [u8]) -> [&'b [u8]; 2] {
        let a = self
            .body_prefix
            .as_ref()
            .map(|r| slice(buf, r))
            .unwrap_or(&[]);
        let b = self
            .body_start
            .map(|s| &buf[s as usize..self.len as usize])
            .unwrap_or(&[]);
        [a, b]
    }
}

#[inline]
pub(crate) fn slice<'b>(buf: &'b [u8], r: &Range<u32>) -> &'b [u8] {
    &buf[r.start as usize..r.end as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(buf: &[u8]) -> Vec<(String, String)> {
        let mut h = Headers::new();
        h.parse(buf);
        h.fields()
            .iter()
            .map(|f| {
                (
                    String::from_utf8_lossy(slice(buf, &f.name)).into_owned(),
                    String::from_utf8_lossy(slice(buf, &f.value)).into_owned(),
                )
            })
            .collect()
    }

    fn p(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn basic_and_line_endings() {
        assert_eq!(
            fields(b"Op: ping\nThread: 1\n\n"),
            p(&[("Op", "ping"), ("Thread", "1")])
        );
        assert_eq!(
            fields(b"Op: ping\r\nThread: 1\r\n\r\n"),
            p(&[("Op", "ping"), ("Thread", "1")])
        );
        assert_eq!(
            fields(b"Op: ping\rThread: 1"),
            p(&[("Op", "ping"), ("Thread", "1")])
        );
        assert_eq!(fields(b"Op:\tping  \n"), p(&[("Op", "ping  ")]));
    }

    #[test]
    fn continuation_and_defects() {
        assert_eq!(
            fields(b"Thread: 1234\n 5678\nPV: 2\n"),
            p(&[("Thread", "1234\n 5678"), ("PV", "2")])
        );
        assert_eq!(fields(b" lead\nOp: ping\n"), p(&[("Op", "ping")]));
        assert_eq!(
            fields(b"Op: ping\n: x\nPV: 2\n"),
            p(&[("Op", "ping"), ("PV", "2")])
        );
        assert_eq!(fields(b"From me\nOp: ping\n"), p(&[("Op", "ping")]));
        assert_eq!(
            fields(b"Op: ping\nFrom x\nPV: 2\n"),
            p(&[("Op", "ping"), ("PV", "2")])
        );
    }

    #[test]
    fn header_block_ends_at_non_header_line() {
        assert_eq!(fields(b"Op : ping\nThread: 1\n"), p(&[]));
        assert_eq!(
            fields(b"Op: ping\nGARBAGE\nThread: 1\n"),
            p(&[("Op", "ping")])
        );
        assert_eq!(fields(b"\nOp: ping\n"), p(&[]));
        let mut h = Headers::new();
        let buf = b"Op: ping\nGARBAGE\nmore";
        h.parse(buf);
        assert_eq!(h.body(buf), [&b""[..], &b"GARBAGE\nmore"[..]]);
        let buf = b"Op: ping\n\nbody";
        h.parse(buf);
        assert_eq!(h.body(buf)[1], b"body");
        let buf = b"Op: ping\nFrom x\n\nbody";
        h.parse(buf);
        assert_eq!(h.body(buf), [&b"From x\n"[..], &b"body"[..]]);
    }

    #[test]
    fn lookups() {
        let buf = b"op: a\nOP-DIGEST: d1\nOp: b\nop-digest: d2\n";
        let mut h = Headers::new();
        h.parse(buf);
        assert_eq!(h.get(buf, "Op"), Some(&b"a"[..]));
        assert_eq!(
            h.get_all(buf, "Op-Digest").collect::<Vec<_>>(),
            vec![&b"d1"[..], &b"d2"[..]]
        );
        assert_eq!(h.get(buf, "Thread"), None);
    }
}
