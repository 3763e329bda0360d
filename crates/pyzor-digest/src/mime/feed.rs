//! `email.feedparser.FeedParser._parsegen` (docs/digest-rules.md §B.3,
//! §B.7, §B.8) without recursion, streaming the leaves in `walk()` order.

use std::rc::Rc;

use pyzor_protocol::wire::email::{read_header_block, BlockEnd, Header};

use super::input::{boundary_match, Input, Line, Matcher, Spans};
use super::params::{
    content_type_of, get_param_raw, maintype, raw_unicode_escape, unquote, ParamValue,
};
use super::{Part, PartRef, MAX_DEPTH};
use crate::text::py_isspace;
use crate::DigestError;

/// `email.message_from_bytes(data)` (policy compat32) followed by
/// `msg.walk()`, streamed: `visit` is called for every part whose payload is
/// a string, in walk order (depth-first pre-order, §B.8). Parts whose
/// payload is a list (multipart with parts, `message/*`, delivery-status)
/// are not visited: the digest skips them (§C). Only the open
/// ancestors of the current part are kept, so memory does not grow with the
/// number of parts.
pub(crate) fn parse_leaves(
    data: &[u8],
    visit: &mut dyn FnMut(PartRef<'_, '_>) -> Result<(), DigestError>,
) -> Result<(), DigestError> {
    let scratch = SCRATCH.with(|s| s.take()).unwrap_or_default();
    let mut p = Parser {
        input: Input {
            data,
            pos: 0,
            pushback: scratch.pushback,
            eof: scratch.eof,
        },
        stack: relifetime(scratch.stack),
        held: None,
        last_is_multipart: false,
        visit,
    };
    let mut frames = scratch.frames;
    frames.clear();
    p.run(&mut frames)?;
    p.pop_message(); // FeedParser.close() pops the root
    p.flush()?;
    // Keep the (now empty) buffers for the next message, unless deep
    // nesting made them big.
    if p.stack.capacity() <= SCRATCH_MAX && frames.capacity() <= SCRATCH_MAX {
        let (mut pushback, mut eof) = (p.input.pushback, p.input.eof);
        pushback.clear();
        eof.clear();
        pushback.shrink_to(SCRATCH_MAX);
        eof.shrink_to(SCRATCH_MAX);
        frames.clear();
        SCRATCH.with(|s| {
            s.set(Some(Scratch {
                pushback,
                eof,
                frames,
                stack: relifetime(p.stack),
            }))
        });
    }
    Ok(())
}

/// Parser buffers kept between messages on a thread, so that a stream of
/// messages does not allocate them each time.
#[derive(Default)]
struct Scratch {
    pushback: Vec<Line>,
    eof: Vec<Matcher>,
    frames: Vec<Frame>,
    stack: Vec<Part<'static>>,
}

/// Largest buffer (elements) kept in [`Scratch`].
const SCRATCH_MAX: usize = 64;

thread_local! {
    static SCRATCH: std::cell::Cell<Option<Scratch>> = const { std::cell::Cell::new(None) };
}

/// An emptied `Vec<Part>` for another message's lifetime. The vector is
/// cleared first, so the closure never runs; std's in-place `collect` keeps
/// the allocation because the element layout is the same (if it did not,
/// this would merely allocate).
fn relifetime<'x, 'y>(mut v: Vec<Part<'x>>) -> Vec<Part<'y>> {
    v.clear();
    v.into_iter().map(|_| Part::default()).collect()
}

/// How a part's body is parsed (§B.7, in this order).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    DeliveryStatus,
    Message,
    Multipart,
    Leaf,
}

/// A part waiting for its sub-part to be parsed (a suspended `_parsegen`).
enum Frame {
    /// `message/delivery-status`: one sub-message per header block.
    DeliveryStatus,
    /// `message/*`: exactly one sub-message.
    Message,
    /// A multipart between delimiters.
    Multipart(MultipartState),
}

struct MultipartState {
    /// `'--' + boundary`, `None` when the boundary can never match.
    sep: Option<Rc<[u8]>>,
    capturing_preamble: bool,
    preamble: Spans,
}

struct Parser<'a, 'v> {
    input: Input<'a>,
    /// The open parts: the current part and its ancestors.
    stack: Vec<Part<'a>>,
    /// The most recently created part once finished, if it is a leaf: it is
    /// Python's `self._last` when a delimiter trims a line end (§B.7),
    /// and is handed to the visitor when the next part starts or at the end.
    held: Option<Part<'a>>,
    /// Python's `self._last` is a multipart that got its sub-parts through
    /// the delimiter loop (`self._last = self._cur` after each one) rather
    /// than the most recently created part. A delimiter then trims that
    /// multipart's epilogue, never a string payload.
    last_is_multipart: bool,
    visit: &'v mut dyn FnMut(PartRef<'_, '_>) -> Result<(), DigestError>,
}

impl<'a> Parser<'a, '_> {
    fn flush(&mut self) -> Result<(), DigestError> {
        if let Some(part) = self.held.take() {
            (self.visit)(PartRef {
                data: self.input.data,
                part: &part,
            })?;
        }
        Ok(())
    }

    /// `_new_message`: the previous leaf is final now; the new part's
    /// default type depends on its parent (`multipart/digest`).
    fn new_message(&mut self) -> Result<(), DigestError> {
        self.flush()?;
        let default_rfc822 = self
            .stack
            .last()
            .is_some_and(|p| p.ctype == "multipart/digest");
        if let Some(parent) = self.stack.last_mut() {
            parent.has_children = true;
        }
        self.last_is_multipart = false; // `self._last = msg`
        self.stack.push(Part {
            default_rfc822,
            ..Part::default()
        });
        Ok(())
    }

    /// `_pop_message`: a finished leaf is held for the visitor; a finished
    /// part with sub-parts is dropped (the digest skips it).
    fn pop_message(&mut self) {
        if let Some(part) = self.stack.pop() {
            if !part.has_children {
                debug_assert!(self.held.is_none());
                self.held = Some(part);
            }
        }
    }

    fn cur(&mut self) -> &mut Part<'a> {
        self.stack.last_mut().expect("parsegen runs inside a part")
    }

    fn read_rest(&mut self) -> Spans {
        let mut spans = Spans::default();
        self.input.read_to_eof(&mut spans);
        spans
    }

    /// `_parsegen` without recursion: Python's generator nesting becomes an
    /// explicit stack of [`Frame`]s, so nesting depth costs heap, not
    /// thread stack.
    fn run(&mut self, frames: &mut Vec<Frame>) -> Result<(), DigestError> {
        let mut finished = self.start_part(frames)?;
        loop {
            if !finished {
                // The top frame wants a sub-part parsed.
                if frames.len() > MAX_DEPTH {
                    return Err(DigestError::TooDeep { limit: MAX_DEPTH });
                }
                finished = self.start_part(frames)?;
                continue;
            }
            // A part is complete: resume its parent, if any.
            let Some(frame) = frames.pop() else {
                return Ok(());
            };
            finished = self.resume(frame, frames)?;
        }
    }

    /// Start a part at the current input position: header block, content
    /// type, then the body by type (§B.7). `Ok(true)` when the part is
    /// complete, `Ok(false)` when it pushed a frame and needs a sub-part.
    fn start_part(&mut self, frames: &mut Vec<Frame>) -> Result<bool, DigestError> {
        self.new_message()?;
        let data = self.input.data;
        // Header block (§B.3 step 1), lexed as it is read.
        let (mut ct_hdr, mut cte_hdr) = (None, None);
        let on_header = |h: Header| {
            let name = &data[h.name.0..h.name.1];
            if ct_hdr.is_none() && name.eq_ignore_ascii_case(b"content-type") {
                ct_hdr = Some(h.value);
            } else if cte_hdr.is_none() && name.eq_ignore_ascii_case(b"content-transfer-encoding") {
                cte_hdr = Some(h.value);
            }
        };
        let input = &mut self.input;
        let block = read_header_block(data, || input.readline_plain(), on_header);
        // A non-blank line that ended the block is the first body line; a
        // `From ` line that was the last header line goes back in front of
        // it.
        if let BlockEnd::Body(sp) = block.end {
            self.input.unreadline(Some(sp));
        }
        if let Some(from) = block.trailing_from {
            self.input.unreadline(Some(from));
        }
        let cur = self.cur();
        cur.header_block = block.lines.unwrap_or_default();
        cur.content_type_hdr = ct_hdr;
        cur.cte_hdr = cte_hdr;
        cur.ctype = content_type_of(data, ct_hdr, cur.default_rfc822);
        let kind = match (&*cur.ctype, maintype(&cur.ctype)) {
            ("message/delivery-status", _) => Kind::DeliveryStatus,
            (_, "message") => Kind::Message,
            (_, "multipart") => Kind::Multipart,
            _ => Kind::Leaf,
        };

        if kind == Kind::DeliveryStatus {
            // Header blocks separated by blank lines, each a sub-message.
            self.input.eof.push(Matcher::Blank);
            frames.push(Frame::DeliveryStatus);
            return Ok(false);
        }
        if kind == Kind::Message {
            frames.push(Frame::Message);
            return Ok(false);
        }
        if kind == Kind::Multipart {
            let Some(boundary) = self.get_boundary()? else {
                // NoBoundaryInMultipartDefect: the rest is a string payload.
                let spans = self.read_rest();
                self.cur().payload = Some(spans);
                return Ok(true);
            };
            let sep: Option<Rc<[u8]>> = boundary.is_ascii().then(|| {
                let mut s = b"--".to_vec();
                s.extend_from_slice(boundary.as_bytes());
                Rc::from(s)
            });
            let state = MultipartState {
                sep,
                capturing_preamble: true,
                preamble: Spans::default(),
            };
            return self.multipart_loop(state, frames);
        }
        let spans = self.read_rest();
        self.cur().payload = Some(spans);
        Ok(true)
    }

    /// Resume `frame` after its sub-part is complete.
    fn resume(&mut self, frame: Frame, frames: &mut Vec<Frame>) -> Result<bool, DigestError> {
        match frame {
            Frame::DeliveryStatus => {
                self.pop_message();
                self.input.eof.pop();
                // Consume the blank line, then look at the next one: EOF
                // (real or false) ends the delivery-status part.
                let _blank = self.input.readline();
                let line = self.input.readline();
                if line.is_none() {
                    return Ok(true);
                }
                self.input.unreadline(line);
                self.input.eof.push(Matcher::Blank);
                frames.push(Frame::DeliveryStatus);
                Ok(false)
            }
            Frame::Message => {
                self.pop_message();
                Ok(true)
            }
            Frame::Multipart(state) => {
                // The line end before a delimiter belongs to it: trim it
                // from the string payload of Python's `self._last` (§B.7).
                // That is a multipart that parsed sub-parts of its
                // own (the sub-part itself, or one inside a `message/*`
                // sub-part): only its epilogue is trimmed, which the digest
                // never reads. Otherwise it is the most recently created
                // part, a leaf: the sub-part itself, or the held leaf when
                // the sub-part has children (`message/*`, delivery-status).
                let data = self.input.data;
                let sub_is_leaf = self.stack.last().is_some_and(|p| !p.has_children);
                let last = if self.last_is_multipart {
                    None
                } else if sub_is_leaf {
                    self.stack.last_mut()
                } else {
                    self.held.as_mut()
                };
                if let Some(last) = last {
                    if maintype(&last.ctype) != "multipart" {
                        if let Some(spans) = last.payload.as_mut() {
                            spans.trim_eol(data);
                        }
                    }
                }
                self.input.eof.pop();
                self.pop_message();
                // `self._last = self._cur`: this multipart.
                self.last_is_multipart = true;
                self.multipart_loop(state, frames)
            }
        }
    }

    /// The delimiter loop of a multipart with a boundary (§B.7).
    fn multipart_loop(
        &mut self,
        mut st: MultipartState,
        frames: &mut Vec<Frame>,
    ) -> Result<bool, DigestError> {
        let data = self.input.data;
        let mut close_seen = false;
        while let Some(sp) = self.input.readline() {
            let line = &data[sp.0..sp.1];
            match boundary_match(st.sep.as_deref(), line) {
                Some(true) => {
                    close_seen = true;
                    break;
                }
                Some(false) => {
                    if st.capturing_preamble {
                        st.capturing_preamble = false;
                        self.input.unreadline(Some(sp));
                        continue;
                    }
                    // Consecutive delimiter lines (close ones too) are skipped.
                    loop {
                        let l = self.input.readline();
                        match l {
                            Some(l2)
                                if boundary_match(st.sep.as_deref(), &data[l2.0..l2.1])
                                    .is_some() => {}
                            other => {
                                self.input.unreadline(other);
                                break;
                            }
                        }
                    }
                    self.input.eof.push(Matcher::Boundary(st.sep.clone()));
                    frames.push(Frame::Multipart(st));
                    return Ok(false);
                }
                None => {
                    if st.capturing_preamble {
                        st.preamble.push(sp);
                    }
                }
            }
        }
        if st.capturing_preamble {
            // StartBoundaryNotFoundDefect: the preamble is the payload, the
            // rest is consumed.
            self.cur().payload = Some(st.preamble);
            self.input.read_to_eof(&mut Spans::default());
            return Ok(true);
        }
        if close_seen {
            // Epilogue: never digested, consumed.
            self.input.read_to_eof(&mut Spans::default());
        }
        Ok(true)
    }

    /// `get_boundary()`: `collapse_rfc2231_value(get_param('boundary')).rstrip()`.
    fn get_boundary(&mut self) -> Result<Option<String>, DigestError> {
        let data = self.input.data;
        let Some((vs, ve)) = self.cur().content_type_hdr else {
            return Ok(None);
        };
        let v = &data[vs..ve];
        let b = match get_param_raw(v, "boundary")? {
            None => return Ok(None),
            Some(ParamValue::Str(s)) => unquote(&s),
            Some(ParamValue::Tuple(cs, _lang, text)) => {
                // collapse_rfc2231_value: charset None -> us-ascii; errors=replace;
                // LookupError -> unquote(text).
                let cs = cs.unwrap_or_else(|| "us-ascii".to_string());
                if cs.contains('\0') {
                    // `str(rawbytes, charset, errors)` rejects the name
                    // with ValueError, which nothing catches.
                    return Err(DigestError::ReferenceCrash {
                        what: "RFC 2231 boundary parameter has a NUL in its charset (ValueError in the reference)",
                    });
                }
                let raw = raw_unicode_escape(&text);
                match crate::decode_codec(&cs, &raw, crate::Errors::Replace) {
                    Ok((s, _)) => s,
                    Err(crate::CodecFailure::Lookup) => unquote(&text),
                    Err(crate::CodecFailure::Unicode | crate::CodecFailure::Runtime) => {
                        return Err(DigestError::ReferenceCrash {
                            what: "RFC 2231 boundary charset raises UnicodeError",
                        })
                    }
                }
            }
        };
        Ok(Some(b.trim_end_matches(py_isspace).to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mime::content_charset;

    /// (content type, payload, first header value) of every leaf.
    fn leaves(raw: &[u8]) -> Vec<(String, Vec<u8>, Option<Vec<u8>>)> {
        let mut v = Vec::new();
        parse_leaves(raw, &mut |p| {
            let first = p
                .headers()
                .first()
                .map(|h| p.data()[h.value.0..h.value.1].to_vec());
            v.push((p.ctype().to_string(), p.payload_bytes().into_owned(), first));
            Ok(())
        })
        .unwrap();
        v
    }

    fn ctypes(raw: &[u8]) -> Vec<String> {
        leaves(raw).into_iter().map(|l| l.0).collect()
    }

    #[test]
    fn header_block_ends_at_non_header_line() {
        let l = leaves(b"Subject: x\nContent-Type : text/html\n\nbody\n");
        assert_eq!(l[0].0, "text/plain");
        assert_eq!(l[0].1, b"Content-Type : text/html\n\nbody\n");
    }

    #[test]
    fn folded_value_keeps_line_ends() {
        let l = leaves(b"X-A:  a\r\n b \r\n\r\nbody");
        assert_eq!(l[0].2.as_deref(), Some(&b"a\r\n b "[..]));
        assert_eq!(l[0].1, b"body");
    }

    #[test]
    fn multipart_tree_and_trim() {
        let raw = b"Content-Type: multipart/mixed; boundary=b\n\npre\n--b\n\none\n--b\nContent-Type: text/html\n\ntwo\n--b--\nepi\n";
        let l = leaves(raw);
        assert_eq!(ctypes(raw), ["text/plain", "text/html"]);
        assert_eq!(l[0].1, b"one");
        assert_eq!(l[1].1, b"two");
        // A text part inside message/rfc822 inside a multipart is trimmed too.
        let raw = b"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: message/rfc822\n\nX: y\n\ninner\r\n--b--\n";
        assert_eq!(leaves(raw)[0].1, b"inner");
    }

    /// Python's `self._last` after a nested multipart is that multipart
    /// (`self._last = self._cur`), so the outer delimiter trims its epilogue
    /// and not the inner last leaf a second time (payloads checked with
    /// CPython 3.11's email package).
    #[test]
    fn outer_delimiter_does_not_trim_inner_leaf_again() {
        let inner =
            b"Content-Type: multipart/alternative; boundary=i\n\n--i\n\ninner text\n\n--i--\n";
        let mut raw = b"Content-Type: multipart/mixed; boundary=o\n\n--o\n".to_vec();
        raw.extend_from_slice(inner);
        raw.extend_from_slice(b"--o--\n");
        assert_eq!(leaves(&raw)[0].1, b"inner text\n");
        // The same inside message/rfc822.
        let mut raw =
            b"Content-Type: multipart/mixed; boundary=o\n\n--o\nContent-Type: message/rfc822\n\n"
                .to_vec();
        raw.extend_from_slice(inner);
        raw.extend_from_slice(b"--o--\n");
        assert_eq!(leaves(&raw)[0].1, b"inner text\n");
        // A leaf inside message/rfc822 is Python's `_last`: trimmed once.
        let raw = b"Content-Type: multipart/mixed; boundary=o\n\n--o\nContent-Type: message/rfc822\n\nX: y\n\ninner\n\n--o--\n";
        assert_eq!(leaves(raw)[0].1, b"inner\n");
        // An epilogue, then a second outer part.
        let mut raw = b"Content-Type: multipart/mixed; boundary=o\n\n--o\n".to_vec();
        raw.extend_from_slice(inner);
        raw.extend_from_slice(b"epi\n\n--o\n\nsecond\n\n--o--\n");
        let l = leaves(&raw);
        assert_eq!(
            (&l[0].1[..], &l[1].1[..]),
            (&b"inner text\n"[..], &b"second\n"[..])
        );
    }

    /// A NUL in the charset of an RFC 2231 parameter: Python's
    /// `str(bytes, charset)` raises ValueError, uncaught by
    /// `get_content_charset` and `collapse_rfc2231_value`.
    #[test]
    fn rfc2231_charset_with_nul_is_a_reference_crash() {
        let raw = b"Content-Type: text/plain; charset*=utf-8\0''%E9\n\nbody text here\n";
        let r = parse_leaves(raw, &mut |p| content_charset(&p).map(|_| ()));
        assert!(matches!(r, Err(DigestError::ReferenceCrash { .. })));
        let raw = b"Content-Type: multipart/mixed; boundary*=a\0''b\n\n--b\n\nx\n--b--\n";
        assert!(matches!(
            parse_leaves(raw, &mut |_| Ok(())),
            Err(DigestError::ReferenceCrash { .. })
        ));
    }

    #[test]
    fn from_line_last_header_goes_to_body() {
        assert_eq!(
            leaves(b"Subject: a\nFrom me\n\nbody\n")[0].1,
            b"From me\nbody\n"
        );
    }

    #[test]
    fn delivery_status_blocks() {
        let raw = b"Content-Type: message/delivery-status\n\nA: 1\n\nB: 2\ntext here\n";
        // The delivery-status part itself has a list payload: not visited.
        assert_eq!(ctypes(raw), ["text/plain", "text/plain"]);
        assert_eq!(leaves(raw)[0].1, b"");
        assert_eq!(leaves(raw)[1].1, b"text here\n");
    }

    #[test]
    fn too_deep_is_an_error_not_a_crash() {
        let raw = b"Content-Type: message/rfc822\n\n".repeat(MAX_DEPTH + 5);
        assert!(matches!(
            parse_leaves(&raw, &mut |_| Ok(())),
            Err(DigestError::TooDeep { .. })
        ));
    }
}
