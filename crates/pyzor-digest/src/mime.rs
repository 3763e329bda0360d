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

use std::borrow::Cow;
use std::rc::Rc;

use super::text::{py_isspace, py_strip};
use super::DigestError;

/// Deepest nesting of `multipart`/`message` parts we parse. CPython raises
/// `RecursionError` a little below 990 levels (measured with the reference:
/// 980 nested `message/rfc822` digest fine, 990 crash); we go up to this
/// depth and return [`DigestError::TooDeep`] beyond it.
pub const MAX_DEPTH: usize = 1000;

/// A byte range `[start, end)` of the message.
pub type Span = (usize, usize);

/// One stored header: name and raw value (compat32 `header_source_parse`).
#[derive(Debug, Clone, Copy)]
pub struct Header {
    /// The name, verbatim (`line[:line.find(':')]`).
    pub name: Span,
    /// The value: first line after the colon with leading spaces/tabs
    /// removed, continuation lines with their line ends, then trailing CR/LF
    /// removed (§B.3 step 3).
    pub value: Span,
}

/// One part of the message tree, as far as the digest needs it. Nothing is
/// copied or allocated for an ordinary part: the headers the digest reads
/// are found while the header block is read, and the payload is (almost
/// always) one byte range.
#[derive(Debug, Clone, Default)]
pub struct Part<'a> {
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

/// The byte ranges of a string payload. The lines of a payload are always
/// adjacent in the message, so in practice there is one range; further ones
/// are kept (never merged wrongly) should that ever not hold. No heap
/// allocation for one range.
#[derive(Debug, Clone, Default)]
struct Spans {
    first: Option<Span>,
    more: Vec<Span>,
}

impl Spans {
    /// Append a range, merged with the last one when adjacent.
    fn push(&mut self, sp: Span) {
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

    fn bytes<'a>(&self, data: &'a [u8]) -> Cow<'a, [u8]> {
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
    fn trim_eol(&mut self, data: &[u8]) {
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

/// A leaf part (string payload) handed to the visitor of [`parse_leaves`].
#[derive(Debug, Clone, Copy)]
pub struct PartRef<'p, 'a> {
    data: &'a [u8],
    part: &'p Part<'a>,
}

/// A parameter value as `Message.get_param` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamValue {
    /// A plain (unquoted) string.
    Str(String),
    /// An RFC 2231 `(charset, language, value)` tuple.
    Tuple(Option<String>, Option<String>, String),
}

/// `str(header_value)` for compat32: a value holding 8-bit bytes comes back
/// as an `email.header.Header` whose `str()` replaces **each** 8-bit byte by
/// U+FFFD (§B.4). ASCII values are returned as they are.
pub fn header_str(bytes: &[u8]) -> Cow<'_, str> {
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

/// `email.message_from_bytes(data)` (policy compat32) followed by
/// `msg.walk()`, streamed: `visit` is called for every part whose payload is
/// a string, in walk order (depth-first pre-order, §B.8). Parts whose
/// payload is a list (multipart with parts, `message/*`, delivery-status)
/// are not visited: the digest skips them (§C). Only the open
/// ancestors of the current part are kept, so memory does not grow with the
/// number of parts.
pub fn parse_leaves(
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

impl<'a> PartRef<'_, 'a> {
    /// The whole message.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// The part.
    pub fn part(&self) -> &Part<'a> {
        self.part
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
    pub fn headers(&self) -> Vec<Header> {
        let mut v = Vec::new();
        for_each_header(self.data, self.part.header_block, |h| v.push(h));
        v
    }

    /// `get_content_type()`.
    pub fn ctype(&self) -> &str {
        &self.part.ctype
    }

    /// `get_content_maintype()`.
    pub fn maintype(&self) -> &str {
        maintype(self.ctype())
    }

    /// `get_content_subtype()`.
    pub fn subtype(&self) -> &str {
        // `ctype.split('/')[1]`; a content type always has exactly one '/'.
        let ct = self.ctype();
        match memchr::memchr(b'/', ct.as_bytes()) {
            Some(i) => &ct[i + 1..],
            None => "",
        }
    }

    /// The string payload as raw bytes (what `get_payload(decode=True)`
    /// starts from, §C.1): borrowed when it is one range.
    pub fn payload_bytes(&self) -> Cow<'a, [u8]> {
        match &self.part.payload {
            Some(spans) => spans.bytes(self.data),
            None => Cow::Borrowed(&[]),
        }
    }

    /// `get_param(name)` on Content-Type (see [`get_param`]).
    pub fn get_param(&self, name: &str) -> Result<Option<ParamValue>, DigestError> {
        match self.get("content-type") {
            None => Ok(None),
            Some(v) => get_param_raw(v, name),
        }
    }
}

/// `ctype.split('/')[0]`.
fn maintype(ctype: &str) -> &str {
    match memchr::memchr(b'/', ctype.as_bytes()) {
        Some(i) => &ctype[..i],
        None => ctype,
    }
}

/// `get_content_type()` from the raw Content-Type value (§B.5):
/// `str(v).partition(';')[0].strip().lower()`, and anything without exactly
/// one `/` is `text/plain`. No trimming around the slash.
fn content_type(value: Option<&[u8]>, default_rfc822: bool) -> String {
    let Some(v) = value else {
        return if default_rfc822 {
            "message/rfc822"
        } else {
            "text/plain"
        }
        .to_string();
    };
    let s = header_str(v);
    let head = match memchr::memchr(b';', s.as_bytes()) {
        Some(i) => &s[..i],
        None => &s[..],
    };
    // Python str.lower(): the value is ASCII plus U+FFFD, so ASCII lowering
    // is exact.
    let ct = py_strip(head).to_ascii_lowercase();
    if memchr::memchr_iter(b'/', ct.as_bytes()).count() != 1 {
        return "text/plain".to_string();
    }
    ct
}

/// [`content_type`] for the header at `value`, without an allocation when
/// the (ASCII) type is already lower-case: then it is the header's own bytes.
fn content_type_of(data: &[u8], value: Option<Span>, default_rfc822: bool) -> Cow<'_, str> {
    let Some((vs, ve)) = value else {
        return Cow::Borrowed(if default_rfc822 {
            "message/rfc822"
        } else {
            "text/plain"
        });
    };
    let v = &data[vs..ve];
    let head = &v[..memchr::memchr(b';', v).unwrap_or(v.len())];
    if !head.is_ascii() {
        return Cow::Owned(content_type(Some(v), default_rfc822));
    }
    // `str.strip()` on ASCII: these are all the ASCII characters
    // `str.isspace()` accepts (\x1c-\x1f included).
    let space = |b: &u8| matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0x1c..=0x1f | b' ');
    let start = head.iter().position(|b| !space(b)).unwrap_or(head.len());
    let end = head
        .iter()
        .rposition(|b| !space(b))
        .map_or(start, |i| i + 1);
    let t = &head[start..end];
    if memchr::memchr_iter(b'/', t).count() != 1 {
        return Cow::Borrowed("text/plain");
    }
    if t.iter().any(u8::is_ascii_uppercase) {
        return Cow::Owned(String::from_utf8_lossy(t).to_ascii_lowercase());
    }
    // ASCII, so always valid UTF-8.
    Cow::Borrowed(ascii_str(t))
}

/// ASCII bytes as `&str`. The content types and charset values seen in
/// nearly every message come from a table (a `from_utf8` call costs about
/// a hundred instructions even on a few bytes); anything else is checked.
fn ascii_str(b: &[u8]) -> &str {
    let known: &'static str = match b {
        b"text/plain" => "text/plain",
        b"text/html" => "text/html",
        b"multipart/alternative" => "multipart/alternative",
        b"multipart/mixed" => "multipart/mixed",
        b"multipart/related" => "multipart/related",
        b"message/rfc822" => "message/rfc822",
        b"application/octet-stream" => "application/octet-stream",
        b"us-ascii" => "us-ascii",
        b"\"us-ascii\"" => "\"us-ascii\"",
        b"iso-8859-1" => "iso-8859-1",
        b"\"iso-8859-1\"" => "\"iso-8859-1\"",
        b"utf-8" => "utf-8",
        b"\"utf-8\"" => "\"utf-8\"",
        b"UTF-8" => "UTF-8",
        b"\"UTF-8\"" => "\"UTF-8\"",
        b"windows-1252" => "windows-1252",
        b"\"windows-1252\"" => "\"windows-1252\"",
        _ => return std::str::from_utf8(b).unwrap_or_default(),
    };
    known
}

// ---------------------------------------------------------------------------
// Parameters (§B.6)

/// `email.message._parseparam` followed by the `(name, value)` split of
/// `_get_params_preserve`: the `;` items of a header value (a `;` inside
/// quotes does not split), each as `(name, value)`: for an item with `=`,
/// the stripped, lower-cased text before the first `=` and the stripped
/// text after it; otherwise the stripped item and `""`. Item 0 is the type
/// itself. Borrowed slices, no allocation unless a name needs lowering.
fn param_items(value: &str) -> impl Iterator<Item = (Cow<'_, str>, &str)> {
    let mut rest = Some(value);
    std::iter::from_fn(move || {
        let s = rest?;
        // Python: `while end > 0 and (s.count('"', 0, end) - s.count('\\"', 0, end)) % 2:
        //            end = s.find(';', end + 1)`
        // The counts are kept incrementally (Python recounts from 0, which
        // is quadratic); a `\"` occurrence is a '"' preceded by '\'.
        let b = s.as_bytes();
        let mut end = memchr::memchr(b';', b).map_or(-1isize, |e| e as isize);
        let mut counted = 0usize; // b[..counted] is counted
        let mut odd = false; // (quotes - escaped quotes) % 2
        while end > 0 {
            let e = end as usize;
            for j in memchr::memchr_iter(b'"', &b[counted..e]) {
                let j = counted + j;
                if !(j > 0 && b[j - 1] == b'\\') {
                    odd = !odd;
                }
            }
            counted = e;
            if !odd {
                break;
            }
            end = memchr::memchr(b';', &b[e + 1..]).map_or(-1, |x| (x + e + 1) as isize);
        }
        let end = if end < 0 { s.len() } else { end as usize };
        let f = &s[..end];
        rest = s[end..].strip_prefix(';');
        Some(match memchr::memchr(b'=', f.as_bytes()) {
            Some(i) => {
                let name = py_strip(&f[..i]);
                let name = if name.bytes().any(|c| c.is_ascii_uppercase()) {
                    Cow::Owned(name.to_ascii_lowercase())
                } else {
                    Cow::Borrowed(name)
                };
                (name, py_strip(&f[i + 1..]))
            }
            None => (Cow::Borrowed(py_strip(f)), ""),
        })
    })
}

/// `email.utils.unquote`.
pub fn unquote(s: &str) -> String {
    if s.len() > 1 {
        if s.starts_with('"') && s.ends_with('"') {
            return s[1..s.len() - 1]
                .replace("\\\\", "\\")
                .replace("\\\"", "\"");
        }
        if s.starts_with('<') && s.ends_with('>') {
            return s[1..s.len() - 1].to_string();
        }
    }
    s.to_string()
}

/// `email.utils.quote`.
fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// `urllib.parse.unquote(s, encoding="latin-1")`: `%XX` (either case) in
/// ASCII runs becomes the byte, read as latin-1; anything else stays.
fn percent_unquote_latin1(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(x), Some(y)) = (hexval(b[i + 1]), hexval(b[i + 2])) {
                out.push(char::from(x * 16 + y));
                i += 3;
                continue;
            }
        }
        // copy one char
        let c = s[i..].chars().next().unwrap_or('\u{FFFD}');
        out.push(c);
        i += c.len_utf8();
    }
    out
}

fn hexval(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `^(\w+)\*((\d+)\*?)?$` with `re.ASCII`: `(name, number)` of an RFC 2231
/// piece. The number is kept as its digit string (Python ints are unbounded).
fn rfc2231_piece(name: &str) -> Option<(&str, Option<&str>)> {
    let star = name.find('*')?;
    let base = &name[..star];
    if base.is_empty() || !base.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    let rest = &name[star + 1..];
    if rest.is_empty() {
        return Some((base, None));
    }
    let digits = rest.strip_suffix('*').unwrap_or(rest);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        Some((base, Some(digits)))
    } else {
        None
    }
}

/// Compare two decimal digit strings as integers.
fn cmp_decimal(a: &str, b: &str) -> std::cmp::Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// One RFC 2231 piece: (number as digits, value, `*`-encoded).
type Piece = (Option<String>, String, bool);

/// `Message.get_param(name)` on a Content-Type value (`_parseparam`,
/// `utils.decode_params`, `_unquotevalue`; §B.6). Item 0 (the type
/// itself) takes part in the lookup. Plain parameters come before RFC 2231
/// ones. Python sorts the RFC 2231 pieces of a name as `(num, value,
/// encoded)` tuples; mixing a numbered piece with an unnumbered one makes
/// that sort compare `int` with `None`, a `TypeError` in the reference,
/// returned here as [`DigestError::ReferenceCrash`].
pub fn get_param(value: &str, name: &str) -> Result<Option<ParamValue>, DigestError> {
    if memchr::memchr(b'*', value.as_bytes()).is_none() {
        // No RFC 2231 piece is possible: the first name match wins, and only
        // its value is built.
        for (idx, (pname, pval)) in param_items(value).enumerate() {
            if pname.eq_ignore_ascii_case(name) {
                return Ok(Some(ParamValue::Str(
                    plain_param_value(idx, pval).into_owned(),
                )));
            }
        }
        return Ok(None);
    }
    let mut params: Vec<(String, ParamValue)> = Vec::new();
    // (name, pieces: (num, value, encoded)) in first-appearance order
    let mut pieces: Vec<(String, Vec<Piece>)> = Vec::new();
    for (idx, (pname, pval)) in param_items(value).enumerate() {
        let (pname, pval) = (pname.into_owned(), pval.to_string());
        if idx == 0 {
            params.push((pname, ParamValue::Str(pval)));
            continue;
        }
        let encoded = pname.ends_with('*');
        let v = unquote(&pval);
        if let Some((base, num)) = rfc2231_piece(&pname) {
            let entry = match pieces.iter_mut().position(|(n, _)| n == base) {
                Some(i) => &mut pieces[i].1,
                None => {
                    pieces.push((base.to_string(), Vec::new()));
                    &mut pieces.last_mut().expect("just pushed").1
                }
            };
            entry.push((num.map(str::to_string), v, encoded));
        } else {
            params.push((pname, ParamValue::Str(format!("\"{}\"", quote(&v)))));
        }
    }
    for (pname, mut conts) in pieces {
        // Python sorts (num, value, encoded) tuples: a numbered piece next to
        // an unnumbered one compares int with None -> TypeError, raised by
        // *every* get_param on this header (decode_params runs on all).
        let mixed = conts.iter().any(|c| c.0.is_none()) && conts.iter().any(|c| c.0.is_some());
        if mixed {
            return Err(DigestError::ReferenceCrash {
                what: "an RFC 2231 parameter mixes numbered and unnumbered pieces (TypeError in the reference)",
            });
        }
        conts.sort_by(|a, b| {
            let num = match (&a.0, &b.0) {
                (Some(x), Some(y)) => cmp_decimal(x, y),
                _ => std::cmp::Ordering::Equal,
            };
            num.then_with(|| a.1.cmp(&b.1)).then_with(|| a.2.cmp(&b.2))
        });
        let mut joined = String::new();
        let mut extended = false;
        for (_, s, enc) in &conts {
            if *enc {
                joined.push_str(&percent_unquote_latin1(s));
                extended = true;
            } else {
                joined.push_str(s);
            }
        }
        let q = quote(&joined);
        if extended {
            // decode_rfc2231: split on "'" at most twice
            let mut it = q.splitn(3, '\'');
            let (a, b, c) = (it.next(), it.next(), it.next());
            let v = match (a, b, c) {
                (Some(cs), Some(lang), Some(val)) => ParamValue::Tuple(
                    Some(cs.to_string()),
                    Some(lang.to_string()),
                    format!("\"{val}\""),
                ),
                _ => ParamValue::Tuple(None, None, format!("\"{q}\"")),
            };
            params.push((pname, v));
        } else {
            params.push((pname, ParamValue::Str(format!("\"{q}\""))));
        }
    }
    // get_param: first name match (Python str.lower() on ASCII+U+FFFD names),
    // then _unquotevalue.
    let lname = name.to_ascii_lowercase();
    Ok(params
        .into_iter()
        .find(|(k, _)| k.to_ascii_lowercase() == lname)
        .map(|(_, v)| match v {
            ParamValue::Str(s) => ParamValue::Str(unquote(&s)),
            ParamValue::Tuple(a, b, c) => ParamValue::Tuple(a, b, unquote(&c)),
        }))
}

/// [`get_param`] on a raw header value (`str()` of it, see [`header_str`]).
/// The usual value, ASCII without a `*` (so without RFC 2231 pieces), is
/// scanned once as bytes, stopping at the first name that matches; anything
/// else goes through [`get_param`].
pub fn get_param_raw(value: &[u8], name: &str) -> Result<Option<ParamValue>, DigestError> {
    match plain_param_raw(value, name) {
        Some(v) => Ok(v.map(|v| ParamValue::Str(v.into_owned()))),
        None => get_param(&header_str(value), name),
    }
}

/// The fast path of [`get_param_raw`], borrowing from `value` when it can;
/// `None` when it does not apply (non-ASCII value, or a `*` in it).
fn plain_param_raw<'v>(value: &'v [u8], name: &str) -> Option<Option<Cow<'v, str>>> {
    if !value.is_ascii() || memchr::memchr(b'*', value).is_some() {
        return None;
    }
    // `str.strip()` on ASCII (\x1c-\x1f are whitespace to Python).
    fn strip(b: &[u8]) -> &[u8] {
        let space = |c: &u8| matches!(c, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0x1c..=0x1f | b' ');
        let start = b.iter().position(|c| !space(c)).unwrap_or(b.len());
        let end = b.iter().rposition(|c| !space(c)).map_or(start, |i| i + 1);
        &b[start..end]
    }
    let mut rest = value;
    let mut idx = 0;
    loop {
        // `_parseparam`: the item ends at the first `;` before which the
        // quotes not preceded by a backslash are even in number (see
        // `param_items`), in one pass.
        // The first `=` of the item is noted on the way.
        let mut odd = false;
        let mut end = rest.len();
        let mut eq = None;
        for (j, &c) in rest.iter().enumerate() {
            match c {
                b'"' if !(j > 0 && rest[j - 1] == b'\\') => odd = !odd,
                b';' if !odd => {
                    end = j;
                    break;
                }
                b'=' if eq.is_none() => eq = Some(j),
                _ => {}
            }
        }
        let f = &rest[..end];
        let (pname, pval) = match eq {
            Some(i) => (strip(&f[..i]), strip(&f[i + 1..])),
            None => (strip(f), &b""[..]),
        };
        if pname.eq_ignore_ascii_case(name.as_bytes()) {
            // ASCII, hence UTF-8.
            let pval = ascii_str(pval);
            return Some(Some(plain_param_value(idx, pval)));
        }
        if end == rest.len() {
            return Some(None);
        }
        rest = &rest[end + 1..];
        idx += 1;
    }
}

/// The value `get_param` returns for a plain (non RFC 2231) parameter:
/// `unquote(pval)` for item 0, else `decode_params`' `'"%s"' % quote(unquote(pval))`
/// unquoted again. Without a backslash or quote inside, every step is an
/// identity or strips one pair of `"…"`/`<…>`: returned without the
/// intermediate strings.
fn plain_param_value(idx: usize, pval: &str) -> Cow<'_, str> {
    let inner = match pval.as_bytes() {
        [b'"', .., b'"'] | [b'<', .., b'>'] if pval.len() > 1 => &pval[1..pval.len() - 1],
        _ => pval,
    };
    if !inner.contains(['"', '\\']) {
        // Sliced at ASCII delimiters: still valid UTF-8.
        return Cow::Borrowed(inner);
    }
    Cow::Owned(if idx == 0 {
        unquote(pval)
    } else {
        unquote(&format!("\"{}\"", quote(&unquote(pval))))
    })
}

/// `str.encode('raw-unicode-escape')`.
pub fn raw_unicode_escape(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        let u = c as u32;
        if u < 0x100 {
            out.push(u as u8);
        } else if u < 0x10000 {
            out.extend_from_slice(format!("\\u{u:04x}").as_bytes());
        } else {
            out.extend_from_slice(format!("\\U{u:08x}").as_bytes());
        }
    }
    out
}

// ---------------------------------------------------------------------------
// BufferedSubFile

#[derive(Clone, Copy, Debug)]
enum Line {
    Data(Span),
    /// A pushed-back `''` (the parser re-pushes the false EOF it read).
    Empty,
}

enum Matcher {
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
fn boundary_match(sep: Option<&[u8]>, line: &[u8]) -> Option<bool> {
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

struct Input<'a> {
    data: &'a [u8],
    pos: usize,
    pushback: Vec<Line>,
    eof: Vec<Matcher>,
}

/// End of the physical line starting at `s`: just past its `\r\n`, `\r` or
/// `\n`, or the end of the data.
fn line_end(d: &[u8], s: usize) -> usize {
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
    fn read_to_eof(&mut self, spans: &mut Spans) {
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
    fn readline_plain(&mut self) -> Option<Span> {
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
    fn readline(&mut self) -> Option<Span> {
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

    fn unreadline(&mut self, line: Option<Span>) {
        self.pushback.push(match line {
            Some(sp) => Line::Data(sp),
            None => Line::Empty,
        });
    }
}

// ---------------------------------------------------------------------------
// FeedParser._parsegen

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

/// A line of a header block, classified by `headerRE =
/// ^(From |[\041-\071\073-\176]*:|[\t ])` (`NotHeader` when it does not
/// match).
#[derive(Clone, Copy, PartialEq, Eq)]
enum HeaderLine {
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

#[inline]
fn classify_header_line(line: &[u8]) -> HeaderLine {
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

/// compat32 `header_source_parse` over the lines of `_parse_headers`, fed
/// one line at a time (§B.3 step 2-3): a field line starts a header, a
/// continuation line extends the current one (or is dropped when there is
/// none), a `From ` line ends the current one and is dropped (the unix-from
/// line, a misplaced envelope header, or a last line the caller pushes
/// back), a line with an empty name is dropped ("Missing header name.").
struct HeaderFolder {
    /// (name, value start, end of its last line).
    cur: Option<(Span, usize, usize)>,
}

impl HeaderFolder {
    fn line(&mut self, data: &[u8], sp: Span, kind: HeaderLine, out: &mut impl FnMut(Header)) {
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

    /// The value: trailing CR/LF removed.
    #[inline(always)]
    fn finish(&mut self, data: &[u8], out: &mut impl FnMut(Header)) {
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

/// The headers of a stored header block, in order (the block holds header
/// lines only, see [`Part`]).
fn for_each_header(data: &[u8], block: Span, mut f: impl FnMut(Header)) {
    let mut folder = HeaderFolder { cur: None };
    let mut s = block.0;
    while s < block.1 {
        let e = line_end(data, s).min(block.1);
        let kind = classify_header_line(&data[s..e]);
        folder.line(data, (s, e), kind, &mut f);
        s = e;
    }
    folder.finish(data, &mut f);
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
        // Header block (§B.3 step 1), parsed as it is read.
        let mut folder = HeaderFolder { cur: None };
        let (mut ct_hdr, mut cte_hdr) = (None, None);
        let mut on_header = |h: Header| {
            let name = &data[h.name.0..h.name.1];
            if ct_hdr.is_none() && name.eq_ignore_ascii_case(b"content-type") {
                ct_hdr = Some(h.value);
            } else if cte_hdr.is_none() && name.eq_ignore_ascii_case(b"content-transfer-encoding") {
                cte_hdr = Some(h.value);
            }
        };
        let mut block: Option<Span> = None;
        // A `From ` line after the first line: dropped if more header lines
        // follow, else pushed back to become the first body line.
        let mut trailing_from: Option<Span> = None;
        while let Some(sp) = self.input.readline_plain() {
            let line = &data[sp.0..sp.1];
            let kind = classify_header_line(line);
            if kind == HeaderLine::NotHeader {
                if !matches!(line.first(), Some(b'\r' | b'\n')) {
                    self.input.unreadline(Some(sp));
                }
                break;
            }
            trailing_from = (kind == HeaderLine::From && block.is_some()).then_some(sp);
            block = Some(block.map_or(sp, |b| (b.0, sp.1)));
            folder.line(data, sp, kind, &mut on_header);
        }
        folder.finish(data, &mut on_header);
        if let (Some(from), Some(b)) = (trailing_from, block.as_mut()) {
            self.input.unreadline(Some(from));
            b.1 = from.0;
        }
        let cur = self.cur();
        cur.header_block = block.unwrap_or_default();
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
                // from the string payload of Python's `self._last`
                // (§B.7). That is a multipart that parsed sub-parts of its
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
                match super::decode_codec(&cs, &raw, super::Errors::Replace) {
                    Ok((s, _)) => s,
                    Err(super::CodecFailure::Lookup) => unquote(&text),
                    Err(super::CodecFailure::Unicode | super::CodecFailure::Runtime) => {
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

/// `get_content_charset()` (§B.6): the charset parameter, RFC 2231
/// tuples decoded strictly with their charset, `None` unless ASCII,
/// lower-cased.
pub fn content_charset<'a>(part: &PartRef<'_, 'a>) -> Result<Option<Cow<'a, str>>, DigestError> {
    if let Some(v) = part.get("content-type") {
        if let Some(cs) = plain_param_raw(v, "charset") {
            // ASCII already; lower-cased without a copy when it is.
            return Ok(
                cs.map(|cs| match cs.bytes().any(|b| b.is_ascii_uppercase()) {
                    true => Cow::Owned(cs.to_ascii_lowercase()),
                    false => cs,
                }),
            );
        }
    }
    let mut cs = match part.get_param("charset")? {
        None => return Ok(None),
        Some(ParamValue::Str(s)) => s,
        Some(ParamValue::Tuple(cs, _lang, text)) => {
            let pcs = match cs {
                Some(c) if !c.is_empty() => c,
                _ => "us-ascii".to_string(),
            };
            if pcs.contains('\0') {
                // `str(as_bytes, pcharset)` rejects the name with
                // ValueError; `get_content_charset` catches only
                // LookupError and UnicodeError.
                return Err(DigestError::ReferenceCrash {
                    what: "RFC 2231 charset parameter has a NUL in its charset (ValueError in the reference)",
                });
            }
            let raw = raw_unicode_escape(&text);
            match super::decode_strict(&pcs, &raw) {
                Ok(s) => s,
                Err(super::CodecFailure::Runtime) => {
                    return Err(DigestError::ReferenceCrash {
                        what: "RFC 2231 charset parameter: its codec raises RuntimeError (uncaught in the reference)",
                    })
                }
                Err(_) => text,
            }
        }
    };
    if !cs.is_ascii() {
        return Ok(None);
    }
    cs.make_ascii_lowercase();
    Ok(Some(Cow::Owned(cs)))
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn content_type_quirks() {
        assert_eq!(content_type(Some(b"text / html"), false), "text / html");
        assert_eq!(content_type(Some(b"multipart"), false), "text/plain");
        assert_eq!(content_type(Some(b" TEXT/HTML ; x=y"), false), "text/html");
        assert_eq!(content_type(None, true), "message/rfc822");
    }

    #[test]
    fn plain_param_fast_path_is_exact() {
        for v in [
            "x",
            "\"x\"",
            "<x>",
            "\"<x>\"",
            "\"",
            "\"\"",
            "<>",
            "<",
            "a\\b",
            "\"a\\\\b\"",
            "\"a\\\"b\"",
            "\"a\"b\"",
            "é",
            "\"é\"",
        ] {
            for idx in [0, 1] {
                let slow = if idx == 0 {
                    unquote(v)
                } else {
                    unquote(&format!("\"{}\"", quote(&unquote(v))))
                };
                assert_eq!(plain_param_value(idx, v), slow, "{v:?} {idx}");
            }
        }
    }

    /// The one-pass byte scan of `get_param_raw` agrees with the general
    /// `get_param` (on `str()` of the value) everywhere.
    #[test]
    fn raw_param_fast_path_is_exact() {
        let values: [&[u8]; 22] = [
            b"text/plain; charset=\"koi8-r\"",
            b"text/plain;charset=us-ascii;format=flowed",
            b"Text/Plain; CHARSET = UTF-8 ; Charset=x",
            b"a/b; x=\"a;b\"; charset=1",
            b"a/b; x=\"a\\\";b\"; charset=2; y",
            b"a/b; x=\"a;b; charset=3",
            b";charset=4;",
            b"charset=5",
            b"charset",
            b"a/b;;; charset ;charset=\"\"",
            b"a/b; \x1ccharset\x1d=\x1f<six>\x1e",
            b"a/b; charset=\"<seven>\"",
            b"a/b; charset=\"a\\\\b\\\"c\"",
            b"a/b; boundary=\"----=_Part_1\"; charset=\"\"",
            b"a/b; charset=\"",
            b"a/b; charset==x=",
            b"a/b; char set=x; charset=y",
            b"a/b; charset=\xe9t\xe9",
            b"a/b; name*=utf-8''x; charset=z",
            b"\"a;b\";charset=q",
            b"",
            b"a/b; x=\"\\\"\"; charset=r",
        ];
        for v in values {
            for name in ["charset", "boundary", "a/b", "text/plain", "y", "x", ""] {
                let slow = get_param(&header_str(v), name);
                let fast = get_param_raw(v, name);
                assert_eq!(fast, slow, "{:?} {name}", String::from_utf8_lossy(v));
            }
        }
    }

    #[test]
    fn params() {
        let g = |v: &str, n: &str| get_param(v, n).unwrap();
        assert_eq!(
            g("text/plain; charset=\"koi8-r\"", "charset"),
            Some(ParamValue::Str("koi8-r".into()))
        );
        assert_eq!(
            g("charset=koi8-r", "charset"),
            Some(ParamValue::Str("koi8-r".into()))
        );
        assert_eq!(
            g("text/plain; charset=latin1; charset*=utf-8''x", "charset"),
            Some(ParamValue::Str("latin1".into()))
        );
        assert_eq!(
            g("a/b; boundary*0=\"ab\"; boundary*1=\"cd\"", "boundary"),
            Some(ParamValue::Str("abcd".into()))
        );
        assert_eq!(
            g("a/b; name*=utf-8'en'%41%e9", "name"),
            Some(ParamValue::Tuple(
                Some("utf-8".into()),
                Some("en".into()),
                "A\u{e9}".into()
            ))
        );
        assert_eq!(
            g("a/b; x=\"a;b\"; y=1", "y"),
            Some(ParamValue::Str("1".into()))
        );
        assert!(get_param("a/b; n*=x; n*0=y", "charset").is_err());
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
    fn boundary_lines() {
        assert_eq!(boundary_match(Some(b"--b"), b"--b  \t\r\n"), Some(false));
        assert_eq!(boundary_match(Some(b"--b"), b"--b--"), Some(true));
        assert_eq!(boundary_match(Some(b"--b"), b"--bX\n"), None);
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
