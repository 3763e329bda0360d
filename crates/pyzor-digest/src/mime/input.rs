//! `email.feedparser.BufferedSubFile` over the whole message: physical
//! lines, the push-back stack and the stack of false-EOF matchers
//! (multipart delimiters, the blank line of `message/delivery-status`), and
//! the byte ranges a payload is made of (docs/digest-rules.md §B.2, §B.7).

use std::borrow::Cow;
use std::rc::Rc;

use pyzor_protocol::wire::email::line_end;

use super::Span;

/// The byte ranges of a string payload. The lines of a payload are always
/// adjacent in the message, so in practice there is one range; further ones
/// are kept (never merged wrongly) should that ever not hold. No heap
/// allocation for one range.
#[derive(Debug, Clone, Default)]
pub(super) struct Spans {
    first: Option<Span>,
    more: Vec<Span>,
}

impl Spans {
    /// Append a range, merged with the last one when adjacent.
    pub(super) fn push(&mut self, sp: Span) {
        if sp.0 == sp.1 {
            return;
        }
        let last = match self.more.last_mut() {
            Some(l) => Some(l),
            None => self.first.as_mut(),
        };
        match last {
            Some(l) if l.1 == sp.0 => l.1 = sp.1,
            Some(_) => self.more.push(sp),
            None => self.first = Some(sp),
        }
    }

    pub(super) fn bytes<'a>(&self, data: &'a [u8]) -> Cow<'a, [u8]> {
        match (self.first, self.more.is_empty()) {
            (None, _) => Cow::Borrowed(&[]),
            (Some((s, e)), true) => Cow::Borrowed(&data[s..e]),
            (Some(first), false) => {
                let all = std::iter::once(first).chain(self.more.iter().copied());
                let mut v = Vec::with_capacity(all.clone().map(|(s, e)| e - s).sum());
                for (s, e) in all {
                    v.extend_from_slice(&data[s..e]);
                }
                Cow::Owned(v)
            }
        }
    }

    /// `NLCRE_eol`: remove one trailing `\r\n`, `\r` or `\n` from the payload.
    pub(super) fn trim_eol(&mut self, data: &[u8]) {
        let last = match self.more.last_mut() {
            Some(l) => l,
            None => match self.first.as_mut() {
                Some(l) => l,
                None => return,
            },
        };
        let seg = &data[last.0..last.1];
        // A `\r\n` split over two ranges cannot happen: ranges are whole lines.
        let cut = if seg.ends_with(b"\r\n") {
            2
        } else if seg.ends_with(b"\r") || seg.ends_with(b"\n") {
            1
        } else {
            0
        };
        last.1 -= cut;
        if last.0 == last.1 && self.more.pop().is_none() {
            self.first = None;
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub(super) enum Line {
    Data(Span),
    /// A pushed-back `''` (the parser re-pushes the false EOF it read).
    Empty,
}

pub(super) enum Matcher {
    /// `NLCRE.match`: a line that starts with CR or LF (delivery-status).
    Blank,
    /// A multipart delimiter; `None` for a boundary holding non-ASCII
    /// characters, which can never match a line (lines hold surrogates,
    /// the boundary holds U+FFFD or decoded text).
    Boundary(Option<Rc<[u8]>>),
}

impl Matcher {
    fn matches(&self, line: &[u8]) -> bool {
        match self {
            Matcher::Blank => matches!(line.first(), Some(b'\r' | b'\n')),
            Matcher::Boundary(sep) => boundary_match(sep.as_deref(), line).is_some(),
        }
    }
}

/// `re.escape(sep) + r'(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$'`
/// anchored at the line start (§B.7). `Some(true)` for a close
/// delimiter.
pub(super) fn boundary_match(sep: Option<&[u8]>, line: &[u8]) -> Option<bool> {
    let rest = line.strip_prefix(sep?)?;
    fn tail_ok(r: &[u8]) -> bool {
        let i = r
            .iter()
            .position(|&b| b != b' ' && b != b'\t')
            .unwrap_or(r.len());
        matches!(&r[i..], b"" | b"\r\n" | b"\r" | b"\n")
    }
    if let Some(r) = rest.strip_prefix(b"--") {
        if tail_ok(r) {
            return Some(true);
        }
    }
    tail_ok(rest).then_some(false)
}

pub(super) struct Input<'a> {
    pub(super) data: &'a [u8],
    pub(super) pos: usize,
    pub(super) pushback: Vec<Line>,
    pub(super) eof: Vec<Matcher>,
}

/// End of the physical line starting at `s`: just past its `\r\n`, `\r` or
/// `\n`, or the end of the data.
impl Input<'_> {
    /// The next physical line, ending at `\r\n`, `\r` or `\n` (kept).
    fn next_raw(&mut self) -> Option<Span> {
        if self.pos >= self.data.len() {
            return None;
        }
        let s = self.pos;
        self.pos = line_end(self.data, s);
        Some((s, self.pos))
    }

    /// What a `readline()` loop up to the next `''` (EOF, false EOF or a
    /// pushed-back `''`) collects, appended to `spans`; the input is left
    /// where that loop leaves it.
    ///
    /// Without pending pushed-back lines and with only delimiter matchers
    /// (every delimiter line starts with `--`), only lines starting with
    /// `--` can end the run: those are found with a substring search
    /// instead of splitting every line.
    pub(super) fn read_to_eof(&mut self, spans: &mut Spans) {
        while !self.pushback.is_empty() {
            match self.readline() {
                Some(sp) => spans.push(sp),
                None => return,
            }
        }
        if self.eof.iter().any(|m| matches!(m, Matcher::Blank)) {
            while let Some(sp) = self.readline() {
                spans.push(sp);
            }
            return;
        }
        let d = self.data;
        let start = self.pos.min(d.len());
        let mut from = start;
        let stop = if self
            .eof
            .iter()
            .all(|m| matches!(m, Matcher::Boundary(None)))
        {
            d.len()
        } else {
            loop {
                let Some(i) = memchr::memmem::find(&d[from..], b"--").map(|i| from + i) else {
                    break d.len();
                };
                // A line starts at `start` or after a line end. A `\r`
                // before the `-` is a line end on its own.
                if i != start && !matches!(d[i - 1], b'\n' | b'\r') {
                    // Neither i + 1 nor i + 2 follows a line end.
                    from = i + 2;
                    continue;
                }
                let e = line_end(d, i);
                let line = &d[i..e];
                if self.eof.iter().rev().any(|m| m.matches(line)) {
                    // `readline` would push this line back and return `''`;
                    // leaving it unread is the same state.
                    break i;
                }
                from = e;
            }
        };
        spans.push((start, stop));
        self.pos = stop;
    }

    /// [`Input::readline`] with the common case inline: nothing pushed back
    /// and a line that no matcher can take (every matcher needs a first
    /// byte `-`, CR or LF).
    #[inline(always)]
    pub(super) fn readline_plain(&mut self) -> Option<Span> {
        let s = self.pos;
        match self.data.get(s) {
            Some(b'-' | b'\r' | b'\n') | None => self.readline(),
            Some(_) if !self.pushback.is_empty() => self.readline(),
            Some(_) => {
                self.pos = line_end(self.data, s);
                Some((s, self.pos))
            }
        }
    }

    /// `BufferedSubFile.readline()`; `None` is Python's `''` (EOF, a false
    /// EOF from a matcher, or a pushed-back `''`).
    #[inline]
    pub(super) fn readline(&mut self) -> Option<Span> {
        let line = match self.pushback.pop() {
            Some(l) => l,
            None => Line::Data(self.next_raw()?),
        };
        match line {
            Line::Empty => None,
            Line::Data(sp) => {
                let text = &self.data[sp.0..sp.1];
                // Every matcher needs a line starting with '-' (delimiters)
                // or CR/LF (blank): test the first byte before walking the
                // stack, so deep nesting costs nothing on ordinary lines.
                let may_match = matches!(text.first(), Some(b'-' | b'\r' | b'\n'));
                if may_match && self.eof.iter().rev().any(|m| m.matches(text)) {
                    self.pushback.push(line);
                    return None;
                }
                Some(sp)
            }
        }
    }

    pub(super) fn unreadline(&mut self, line: Option<Span>) {
        self.pushback.push(match line {
            Some(sp) => Line::Data(sp),
            None => Line::Empty,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundary_lines() {
        assert_eq!(boundary_match(Some(b"--b"), b"--b  \t\r\n"), Some(false));
        assert_eq!(boundary_match(Some(b"--b"), b"--b--"), Some(true));
        assert_eq!(boundary_match(Some(b"--b"), b"--bX\n"), None);
    }
}
