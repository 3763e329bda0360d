//! The subset of CPython 3.11's `email` package (policy `compat32`) that the
//! Pyzor digest depends on: `email.message_from_bytes`, `Message.walk()`,
//! header lookup, content types, parameters (RFC 2231 included), the
//! boundary and the charset (docs/digest-rules.md §B, §C.4).
//!
//! The message is never copied: it stays a `&[u8]`, every byte ≥ 0x80 is an
//! opaque unit (Python's surrogate-escaped byte, §B.1), headers and
//! payloads are byte ranges into it. The parser is a literal port of
//! `email.feedparser.FeedParser._parsegen` with its `BufferedSubFile`
//! (physical lines, push-back stack and stack of false-EOF matchers). The
//! input is fed whole, which gives the same tree as Python's 8192-character
//! chunks because `BufferedSubFile` re-joins partial lines (§B.2).
//!
//! | module | job |
//! | --- | --- |
//! | this one | the public API: `parse_leaves`, `PartRef` (headers, content type, payload of a leaf), `header_str` |
//! | `feed` | `FeedParser._parsegen`: the walk over the parts |
//! | `input` | `BufferedSubFile`: lines, push-back, false-EOF matchers (boundaries), payload ranges |
//! | `params` | `Content-Type`: the type, parameters (RFC 2231 included), boundary and charset decoding |
//!
//! The header lines of each part are lexed by `pyzor_protocol::wire::email`
//! (line ends, `headerRE`, continuation lines, `From ` lines, the compat32
//! value), the same lexer the protocol's request parser uses.

use std::borrow::Cow;

use pyzor_protocol::wire::email::{line_end, read_header_block};

mod feed;
mod input;
mod params;

pub(crate) use feed::parse_leaves;
pub(crate) use params::{content_charset, get_param_raw, ParamValue};
/// A byte range `[start, end)` of the message, and one stored header (name
/// and raw value, compat32 `header_source_parse`): the protocol crate's
/// header lexer produces both.
pub use pyzor_protocol::wire::email::{Header, Span};

use self::input::Spans;
use self::params::maintype;
use super::DigestError;

/// Deepest nesting of `multipart`/`message` parts we parse. CPython raises
/// `RecursionError` a little below 990 levels (measured with the reference:
/// 980 nested `message/rfc822` digest fine, 990 crash); we go up to this
/// depth and return [`DigestError::TooDeep`] beyond it.
pub(crate) const MAX_DEPTH: usize = 1000;

/// One part of the message tree, as far as the digest needs it. Nothing is
/// copied or allocated for an ordinary part: the headers the digest reads
/// are found while the header block is read, and the payload is (almost
/// always) one byte range.
#[derive(Debug, Clone, Default)]
pub(crate) struct Part<'a> {
    /// The header block, `[start of first line, end of last line)`, without
    /// a trailing `From ` line that went back to the body. Other headers
    /// than the two below are re-parsed from it on demand.
    header_block: Span,
    /// First `Content-Type` value (`msg.get` semantics: first one wins).
    content_type_hdr: Option<Span>,
    /// First `Content-Transfer-Encoding` value.
    cte_hdr: Option<Span>,
    /// The string payload; `None` while unset and for parts whose payload is
    /// a list of sub-parts.
    payload: Option<Spans>,
    /// `get_content_type()`, computed once the headers are known; borrowed
    /// from the header when that already is the (lower-case) result.
    ctype: Cow<'a, str>,
    /// The default type is `message/rfc822` (child of `multipart/digest`).
    default_rfc822: bool,
    /// Sub-parts were attached (the payload is a list).
    has_children: bool,
}

/// A leaf part (string payload) handed to the visitor of [`parse_leaves`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct PartRef<'p, 'a> {
    data: &'a [u8],
    part: &'p Part<'a>,
}

/// `str(header_value)` for compat32: a value holding 8-bit bytes comes back
/// as an `email.header.Header` whose `str()` replaces **each** 8-bit byte by
/// U+FFFD (§B.4). ASCII values are returned as they are.
pub(crate) fn header_str(bytes: &[u8]) -> Cow<'_, str> {
    match bytes.is_ascii().then(|| std::str::from_utf8(bytes)) {
        Some(Ok(s)) => Cow::Borrowed(s),
        _ => Cow::Owned(
            bytes
                .iter()
                .map(|&b| if b < 0x80 { b as char } else { '\u{FFFD}' })
                .collect(),
        ),
    }
}

impl<'a> PartRef<'_, 'a> {
    /// The whole message.
    #[cfg(test)]
    pub(crate) fn data(&self) -> &'a [u8] {
        self.data
    }

    /// `msg.get(name)`: first header whose name equals `name` ignoring ASCII
    /// case, exactly (no trimming; §B.4). Returns the raw value bytes.
    pub fn get(&self, name: &str) -> Option<&'a [u8]> {
        let span = if name.eq_ignore_ascii_case("content-type") {
            self.part.content_type_hdr
        } else if name.eq_ignore_ascii_case("content-transfer-encoding") {
            self.part.cte_hdr
        } else {
            let mut found = None;
            for_each_header(self.data, self.part.header_block, |h| {
                if found.is_none()
                    && self.data[h.name.0..h.name.1].eq_ignore_ascii_case(name.as_bytes())
                {
                    found = Some(h.value);
                }
            });
            found
        };
        span.map(|(s, e)| &self.data[s..e])
    }

    /// All headers in order (compat32 `header_source_parse`).
    #[cfg(test)]
    pub(crate) fn headers(&self) -> Vec<Header> {
        let mut v = Vec::new();
        for_each_header(self.data, self.part.header_block, |h| v.push(h));
        v
    }

    /// `get_content_type()`.
    pub(crate) fn ctype(&self) -> &str {
        &self.part.ctype
    }

    /// `get_content_maintype()`.
    pub(crate) fn maintype(&self) -> &str {
        maintype(self.ctype())
    }

    /// `get_content_subtype()`.
    pub(crate) fn subtype(&self) -> &str {
        // `ctype.split('/')[1]`; a content type always has exactly one '/'.
        let ct = self.ctype();
        match memchr::memchr(b'/', ct.as_bytes()) {
            Some(i) => &ct[i + 1..],
            None => "",
        }
    }

    /// The string payload as raw bytes (what `get_payload(decode=True)`
    /// starts from, §C.1): borrowed when it is one range.
    pub(crate) fn payload_bytes(&self) -> Cow<'a, [u8]> {
        match &self.part.payload {
            Some(spans) => spans.bytes(self.data),
            None => Cow::Borrowed(&[]),
        }
    }

    /// `get_param(name)` on Content-Type (see [`get_param`]).
    pub(crate) fn get_param(&self, name: &str) -> Result<Option<ParamValue>, DigestError> {
        match self.get("content-type") {
            None => Ok(None),
            Some(v) => get_param_raw(v, name),
        }
    }
}

/// The headers of a stored header block, in order (the block holds header
/// lines only, see [`Part`]).
fn for_each_header(data: &[u8], block: Span, f: impl FnMut(Header)) {
    let data = &data[..block.1];
    let mut s = block.0;
    let next_line = || {
        if s >= data.len() {
            return None;
        }
        let start = s;
        s = line_end(data, start);
        Some((start, s))
    };
    read_header_block(data, next_line, f);
}
