//! Input styles `mbox` and `digests` of the `pyzor` CLI (docs/digest-rules.md §A).

use std::io::{self, BufRead};

use super::text::py_strip;

/// Streams the messages of an mbox with the semantics of Python's
/// `mailbox.mbox` table of contents (`_generate_toc`), without holding more
/// than one message in memory:
///
/// * lines end at `\n` only;
/// * every line starting with the bytes `From ` starts a message (`>From `
///   is not unquoted, unquoted `From ` body lines split; J.10); bytes
///   before the first one are ignored;
/// * a message ends where the next `From ` line starts; if the line before
///   it is exactly `\n`, that one line is dropped (a `\r\n` line is not
///   blank). The same holds at end of input;
/// * the message bytes are the bytes after the `From ` line.
///
/// Yields `io::Result<Vec<u8>>`; each item can go to
/// [`super::digest_message`].
///
/// A message whose `From ` line (after `From `, without the `\n`) holds a
/// byte ≥ 0x80 is yielded as an `io::ErrorKind::InvalidData` error: the
/// reference's `mailbox.mbox.get_message` decodes that line as ASCII and
/// raises `UnicodeDecodeError` there, so `pyzor -s mbox` stops at that
/// message. Iteration may continue after such an error (best effort); to
/// match the reference, stop at the first error.
pub struct MboxReader<R> {
    reader: R,
    /// The message being read (`None` before the first `From ` line); each
    /// line is appended straight into it (one copy).
    cur: Option<Vec<u8>>,
    /// Lines before the first `From ` line go here and are dropped.
    junk: Vec<u8>,
    last_was_empty: bool,
    /// The current message's `From ` line is not ASCII.
    bad_from: bool,
    done: bool,
    /// Finds `From ` at a line start after the first line of a buffer.
    from_line: memchr::memmem::Finder<'static>,
}

impl<R: BufRead> MboxReader<R> {
    /// Read messages from `reader`.
    pub fn new(reader: R) -> Self {
        MboxReader {
            reader,
            cur: None,
            junk: Vec::new(),
            last_was_empty: false,
            bad_from: false,
            done: false,
            from_line: memchr::memmem::Finder::new(b"\nFrom ").into_owned(),
        }
    }

    /// Walk the complete lines in the reader's current buffer with the
    /// same rules as the line-at-a-time loop in `next` (which handles a line
    /// that crosses the buffer's end, and end of input). Returns the
    /// finished previous message when a `From ` line ends it; `None` when
    /// the buffered complete lines are used up (then at most a partial line
    /// is left in the buffer).
    fn scan_buffered(&mut self) -> Option<io::Result<Vec<u8>>> {
        // On an error `next`'s slow path reads again and reports it.
        let Ok(data) = self.reader.fill_buf() else {
            return None;
        };
        // Only complete lines are handled here; the buffer starts at a line
        // start (only whole lines are consumed, here and in `read_line`).
        let complete = memchr::memrchr(b'\n', data).map_or(0, |i| i + 1);
        let region = &data[..complete];
        // The first line starting with `From `, found with one substring
        // search rather than line by line.
        let from_at = if region.starts_with(b"From ") {
            Some(0)
        } else {
            self.from_line.find(region).map(|i| i + 1)
        };
        // Is the line ending just before `end` (> 0) exactly "\n"?
        let empty_line_before = |end: usize| end == 1 || region[end - 2] == b'\n';
        let Some(p) = from_at else {
            if complete > 0 {
                self.last_was_empty = empty_line_before(complete);
            }
            if let Some(m) = self.cur.as_mut() {
                m.extend_from_slice(region);
            }
            self.reader.consume(complete);
            return None;
        };
        if p > 0 {
            self.last_was_empty = empty_line_before(p);
        }
        // The `From ` line is complete: `region` ends with "\n".
        let end = p + memchr::memchr(b'\n', &region[p..]).map_or(region.len() - p, |i| i + 1);
        let from_ascii = region[p + 5..end].is_ascii();
        if let Some(m) = self.cur.as_mut() {
            m.extend_from_slice(&region[..p]);
        }
        self.reader.consume(end);
        let hint = self.cur.as_ref().map_or(0, Vec::len);
        let prev = self.cur.replace(Vec::with_capacity(hint));
        let prev = prev.map(|m| self.finish(m));
        self.last_was_empty = false;
        self.bad_from = !from_ascii;
        match prev {
            Some(m) => Some(m),
            None => self.scan_buffered(),
        }
    }

    fn finish(&mut self, mut m: Vec<u8>) -> io::Result<Vec<u8>> {
        if self.last_was_empty {
            m.pop(); // the "\n" line before the next From_ line / EOF
        }
        if self.bad_from {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "mbox From_ line is not ASCII; Pyzor 1.1.2 raises UnicodeDecodeError at this message",
            ));
        }
        Ok(m)
    }
}

impl<R: BufRead> Iterator for MboxReader<R> {
    type Item = io::Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        loop {
            // Fast path: the complete lines already in the reader's buffer,
            // copied into the message as one span per buffer fill rather
            // than one copy per line.
            if let Some(r) = self.scan_buffered() {
                return Some(r);
            }
            let buf = match self.cur.as_mut() {
                Some(m) => m,
                None => {
                    self.junk.clear();
                    &mut self.junk
                }
            };
            let start = buf.len();
            match read_line(&mut self.reader, buf) {
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
                Ok(0) => {
                    self.done = true;
                    let m = self.cur.take()?;
                    return Some(self.finish(m));
                }
                Ok(_) => {}
            }
            let line = &buf[start..];
            if line.starts_with(b"From ") {
                let from_ascii = line[5..].iter().all(|&b| b < 0x80);
                buf.truncate(start);
                // Size the next message like this one (fewer regrowths).
                let hint = self.cur.as_ref().map_or(0, Vec::len);
                let prev = self.cur.replace(Vec::with_capacity(hint));
                let prev = prev.map(|m| self.finish(m));
                self.last_was_empty = false;
                self.bad_from = !from_ascii;
                if let Some(m) = prev {
                    return Some(m);
                }
                continue;
            }
            self.last_was_empty = line == b"\n";
        }
    }
}

/// `BufRead::read_until(b'\n', buf)` with the `memchr` crate's SIMD search
/// in place of std's word-at-a-time one (the mbox CLI spent about 8 % of
/// its instructions in `read_until`). Appends one line, `\n` included, to
/// `buf`; returns the bytes appended (0 at end of input).
fn read_line<R: BufRead>(reader: &mut R, buf: &mut Vec<u8>) -> io::Result<usize> {
    let mut n = 0;
    loop {
        let avail = match reader.fill_buf() {
            Ok(a) => a,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if avail.is_empty() {
            return Ok(n);
        }
        let (used, done) = match memchr::memchr(b'\n', avail) {
            Some(i) => (i + 1, true),
            None => (avail.len(), false),
        };
        buf.extend_from_slice(&avail[..used]);
        reader.consume(used);
        n += used;
        if done {
            return Ok(n);
        }
    }
}

/// Style `digests`: each input line (ending at `\n` only; a CR stays in the
/// line) passed through Python's `str.strip()`; non-empty results are what
/// `pyzor -s digests digest` prints, unchecked.
///
/// The reference reads stdin as text in the locale encoding (UTF-8): a line
/// that is not valid UTF-8 makes it raise `UnicodeDecodeError`. Here such a
/// line yields an `io::ErrorKind::InvalidData` error; the caller stops
/// there, as the reference does.
pub fn digests_style_lines<R: BufRead>(mut reader: R) -> impl Iterator<Item = io::Result<String>> {
    let mut buf = Vec::new();
    let mut done = false;
    std::iter::from_fn(move || loop {
        if done {
            return None;
        }
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Err(e) => {
                done = true;
                return Some(Err(e));
            }
            Ok(0) => return None,
            Ok(_) => {}
        }
        let s = match std::str::from_utf8(&buf) {
            Ok(s) => s,
            Err(e) => {
                done = true;
                return Some(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("digests input is not UTF-8 ({e}); Pyzor 1.1.2 raises UnicodeDecodeError here"),
                )));
            }
        };
        let t = py_strip(s);
        if !t.is_empty() {
            return Some(Ok(t.to_string()));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(s: &[u8]) -> Vec<Vec<u8>> {
        MboxReader::new(s).collect::<io::Result<_>>().unwrap()
    }

    #[test]
    fn mbox_splitting() {
        assert!(msgs(b"no from line\n").is_empty());
        assert_eq!(
            msgs(b"junk\nFrom a\nX: 1\n\nbody\n\nFrom b\nY\n\n"),
            [&b"X: 1\n\nbody\n"[..], b"Y\n"]
        );
        assert_eq!(msgs(b"From a\nx\r\n\r\nFrom b\n"), [&b"x\r\n\r\n"[..], b""]);
        assert_eq!(msgs(b"From a\n>From x\nFrom y\n"), [&b">From x\n"[..], b""]);
        assert_eq!(msgs(b"From a"), [b""]);
        // A non-ASCII From_ line: an error for that message only.
        let r: Vec<_> = MboxReader::new(&b"From a\xe9\nx\nFrom b\ny\n"[..]).collect();
        assert_eq!(r.len(), 2);
        assert_eq!(
            r[0].as_ref().unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        assert_eq!(r[1].as_ref().unwrap(), b"y\n");
    }

    /// The buffered fast path and the line-at-a-time path agree wherever
    /// the reader's buffer ends (lines and `From ` lines cut anywhere).
    #[test]
    fn mbox_splitting_any_buffer_size() {
        let inputs: [(&[u8], usize); 3] = [
            (b"junk\nFro\nFrom a\nX: 1\n\nbody\nFrom\n>From x\n\nFrom b\xe9\nY\r\n\r\nFrom c\n\n\nFrom d\nz", 4),
            // `From ` not at a line start, after a lone CR, after "\n\n",
            // and an empty line that is the whole first line.
            (b"\nFrom a\nx From b\n\rFrom c\n\n\nFrom d\n\nFrom e\nFrom f\n\n", 4),
            (b"From a\n\nFrom b\nFrom c\n\n\n\nFrom  d \xff\n\n", 4),
        ];
        for (input, n) in inputs {
            let whole: Vec<String> = MboxReader::new(input).map(|r| format!("{r:?}")).collect();
            assert_eq!(whole.len(), n, "{whole:?}");
            for cap in 1..=input.len() + 1 {
                let got: Vec<String> = MboxReader::new(io::BufReader::with_capacity(cap, input))
                    .map(|r| format!("{r:?}"))
                    .collect();
                assert_eq!(got, whole, "buffer capacity {cap}");
            }
        }
        // The line-at-a-time path alone (capacity 1) against known results.
        let r: Vec<_> = MboxReader::new(io::BufReader::with_capacity(1, inputs[1].0))
            .map(Result::unwrap)
            .collect();
        assert_eq!(r, [&b"x From b\n\rFrom c\n\n"[..], b"", b"", b""]);
    }

    #[test]
    fn digests_lines() {
        let v: Vec<String> = digests_style_lines(&b" abc \n\n\r\nx\ry\r\n\x1cz"[..])
            .map(Result::unwrap)
            .collect();
        assert_eq!(v, ["abc", "x\ry", "z"]);
    }
}
