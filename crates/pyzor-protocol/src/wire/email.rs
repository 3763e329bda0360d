//! The subset of Python's `email.message_from_bytes` (policy `compat32`,
//! `feedparser`) that Pyzor's headers-only messages exercise
//! (docs/protocol.md §3.2).
//!
//! The parser records offsets into the caller's buffer, never copies, and
//! reuses its `Vec` between messages: parsing allocates nothing once the
//! vector has grown to the largest header count seen.
//!
//! Rules reproduced (the lexer below, shared with `pyzor_digest::mime`,
//! which reads the header block of every MIME part with it):
//! * lines end in `\n`, `\r\n` or a bare `\r` ([`line_end`]);
//! * header lines match `^(From |[\x21-\x39\x3b-\x7e]*:|[\t ])`
//!   (`classify_header_line`); the first line that does not ends the
//!   headers (a blank line is consumed, any other line starts the body,
//!   [`read_header_block`]);
//! * a line starting with a blank or tab continues the previous header (a
//!   continuation as first line is dropped, `HeaderFolder`);
//! * `From ` as the first line is the mbox "Unix from" (skipped); as the
//!   last header line it is pushed back into the body; elsewhere dropped;
//! * a line starting with `:` is dropped;
//! * value = text after the first `:` with leading blanks/tabs removed,
//!   continuation lines appended verbatim (with their line ends), trailing
//!   `\r`/`\n` removed (compat32 `header_source_parse`).
//!
//! The lexer works on byte offsets ([`Span`]) and allocates nothing; the
//! caller supplies the lines, so the MIME parser can feed it from its
//! `BufferedSubFile` (push-back and false-EOF boundary lines) while
//! [`Headers::parse`] feeds it the datagram's lines directly.

use std::ops::Range;

/// A byte range `[start, end)` of the parsed buffer.
pub type Span = (usize, usize);

/// One header as the lexer reports it: name and raw value
/// (compat32 `header_source_parse`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The name, verbatim (`line[:line.find(':')]`).
    pub name: Span,
    /// The value: first line after the colon with leading spaces/tabs
    /// removed, continuation lines with their line ends, then trailing CR/LF
    /// removed (docs/digest-rules.md §B.3 step 3).
    pub value: Span,
}

/// End of the physical line starting at `s`: just past its `\r\n`, `\r` or
/// `\n`, or the end of the data (`BufferedSubFile`'s line split, `NLCRE_crack`).
#[inline]
pub fn line_end(d: &[u8], s: usize) -> usize {
    match memchr::memchr2(b'\r', b'\n', &d[s..]) {
        Some(i) => {
            let i = s + i;
            if d[i] == b'\r' && d.get(i + 1) == Some(&b'\n') {
                i + 2
            } else {
                i + 1
            }
        }
        None => d.len(),
    }
}

/// A line of a header block, classified by `feedparser.headerRE =
/// ^(From |[\041-\071\073-\176]*:|[\t ])` (`NotHeader` when it does not
/// match).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HeaderLine {
    NotHeader,
    /// Starts with `From `.
    From,
    /// Starts with a space or tab.
    Continuation,
    /// `name:`; the index of the (first) colon.
    Field(usize),
}

/// Bytes allowed in a header name by `headerRE`: `[\041-\071\073-\176]`
/// (printable ASCII except the colon).
static NAME_BYTE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0x21;
    while b <= 0x7e {
        t[b] = b != b':' as usize;
        b += 1;
    }
    t
};

/// `headerRE.match(line)`, and which alternative matched.
#[inline]
pub(crate) fn classify_header_line(line: &[u8]) -> HeaderLine {
    match line.first() {
        Some(b'\t' | b' ') => return HeaderLine::Continuation,
        Some(b'F') if line.starts_with(b"From ") => return HeaderLine::From,
        _ => {}
    }
    let i = line
        .iter()
        .position(|&b| !NAME_BYTE[usize::from(b)])
        .unwrap_or(line.len());
    match line.get(i) {
        Some(b':') => HeaderLine::Field(i),
        _ => HeaderLine::NotHeader,
    }
}

/// `feedparser._parse_headers` with compat32 `header_source_parse`, fed
/// one header line at a time (docs/digest-rules.md §B.3 step 2-3): a field
/// line starts a header, a continuation line extends the current one (or is
/// dropped when there is none: `FirstHeaderLineIsContinuationDefect`), a
/// `From ` line ends the current one and is dropped (the unix-from line, a
/// misplaced envelope header, or a last line the caller pushes back, see
/// [`read_header_block`]), a line with an empty name is dropped ("Missing
/// header name.").
#[derive(Debug, Default)]
pub(crate) struct HeaderFolder {
    /// (name, value start, end of its last line).
    cur: Option<(Span, usize, usize)>,
}

impl HeaderFolder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Take the header line `sp` of `data`, classified as `kind`; a header
    /// that is complete is passed to `out`.
    #[inline]
    pub fn line(&mut self, data: &[u8], sp: Span, kind: HeaderLine, out: &mut impl FnMut(Header)) {
        let (s, e) = sp;
        match kind {
            HeaderLine::Continuation => {
                if let Some(h) = self.cur.as_mut() {
                    h.2 = e;
                }
            }
            HeaderLine::NotHeader => {}
            HeaderLine::From => self.finish(data, out),
            HeaderLine::Field(i) => {
                self.finish(data, out);
                if i == 0 {
                    return; // "Missing header name."
                }
                let mut vs = s + i + 1;
                while vs < e && matches!(data[vs], b' ' | b'\t') {
                    vs += 1;
                }
                self.cur = Some(((s, s + i), vs, e));
            }
        }
    }

    /// Pass the current header, if any, to `out`: its value without the
    /// trailing CR/LF.
    #[inline(always)]
    pub fn finish(&mut self, data: &[u8], out: &mut impl FnMut(Header)) {
        if let Some((name, start, mut end)) = self.cur.take() {
            while end > start && matches!(data[end - 1], b'\r' | b'\n') {
                end -= 1;
            }
            out(Header {
                name,
                value: (start, end),
            });
        }
    }
}

/// How a header block ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockEnd {
    /// The lines ran out (end of data, or a false EOF of the caller).
    Eof,
    /// A blank line (`NLCRE.match`), consumed: the body starts after it.
    Blank(Span),
    /// Another non-header line: the first line of the body
    /// (`MissingHeaderBodySeparatorDefect`); the caller puts it back.
    Body(Span),
}

/// A header block read by [`read_header_block`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderBlock {
    /// From the start of the first header line to the end of the last one
    /// (the trailing `From ` line excluded); `None` without header lines.
    pub lines: Option<Span>,
    /// What ended it.
    pub end: BlockEnd,
    /// A `From ` line that was the last of several header lines: the
    /// reference pushes it back (after [`BlockEnd::Body`], so it is read
    /// first): it becomes the first line of the body.
    pub trailing_from: Option<Span>,
}

/// The header loop of `feedparser._parsegen` and the line rules of
/// `_parse_headers`: read lines from `next_line` while they match
/// `headerRE`, passing each complete header to `on_header`. Generic and
/// inlined so that the MIME parser's loop stays as tight as a hand-written
/// one.
#[inline]
pub fn read_header_block(
    data: &[u8],
    mut next_line: impl FnMut() -> Option<Span>,
    mut on_header: impl FnMut(Header),
) -> HeaderBlock {
    let mut folder = HeaderFolder::new();
    let mut lines: Option<Span> = None;
    let mut trailing_from: Option<Span> = None;
    let mut end = BlockEnd::Eof;
    while let Some(sp) = next_line() {
        let line = &data[sp.0..sp.1];
        let kind = classify_header_line(line);
        if kind == HeaderLine::NotHeader {
            end = if matches!(line.first(), Some(b'\r' | b'\n')) {
                BlockEnd::Blank(sp)
            } else {
                BlockEnd::Body(sp)
            };
            break;
        }
        // `From ` as the last line (not the first): pushed back.
        trailing_from = (kind == HeaderLine::From && lines.is_some()).then_some(sp);
        lines = Some(lines.map_or(sp, |b| (b.0, sp.1)));
        folder.line(data, sp, kind, &mut on_header);
    }
    folder.finish(data, &mut on_header);
    if let (Some(from), Some(b)) = (trailing_from, lines.as_mut()) {
        b.1 = from.0;
    }
    HeaderBlock {
        lines,
        end,
        trailing_from,
    }
}

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

impl Headers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parse `buf` (which must be shorter than 4 GiB), replacing the
    /// previous contents: [`read_header_block`] over the lines of `buf`.
    pub fn parse(&mut self, buf: &[u8]) {
        self.fields.clear();
        self.body_prefix = None;
        self.body_start = None;
        self.len = buf.len() as u32;

        let mut pos = 0usize;
        let next_line = || {
            if pos >= buf.len() {
                return None;
            }
            let s = pos;
            pos = line_end(buf, s);
            Some((s, pos))
        };
        let fields = &mut self.fields;
        let block = read_header_block(buf, next_line, |h| {
            fields.push(Field {
                name: h.name.0 as u32..h.name.1 as u32,
                value: h.value.0 as u32..h.value.1 as u32,
            })
        });
        let body = match block.end {
            BlockEnd::Eof => None,
            BlockEnd::Blank((_, e)) => Some(e),
            BlockEnd::Body((s, _)) => Some(s),
        };
        self.body_start = body.filter(|&b| b < buf.len()).map(|b| b as u32);
        self.body_prefix = block.trailing_from.map(|(s, e)| s as u32..e as u32);
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
    pub(crate) fn get_all<'s, 'b>(
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
