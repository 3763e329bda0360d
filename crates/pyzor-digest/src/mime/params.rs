//! `Content-Type` as `email.message.Message` reads it (docs/digest-rules.md
//! §B.5, §B.6): `get_content_type()`, `get_param()` with `_parseparam`,
//! RFC 2231 continuations and encodings (`utils.decode_params`,
//! `collapse_rfc2231_value`), and `get_content_charset()`.

use std::borrow::Cow;

use pyzor_protocol::py::py_strip_ascii;

use super::{header_str, PartRef, Span};
use crate::text::py_strip;
use crate::DigestError;

/// A parameter value as `Message.get_param` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ParamValue {
    /// A plain (unquoted) string.
    Str(String),
    /// An RFC 2231 `(charset, language, value)` tuple.
    Tuple(Option<String>, Option<String>, String),
}

/// `ctype.split('/')[0]`.
pub(super) fn maintype(ctype: &str) -> &str {
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
#[inline]
pub(super) fn content_type_of(
    data: &[u8],
    value: Option<Span>,
    default_rfc822: bool,
) -> Cow<'_, str> {
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
    // `str.strip()` on ASCII.
    let t = py_strip_ascii(head);
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
pub(super) fn ascii_str(b: &[u8]) -> &str {
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
pub(crate) fn unquote(s: &str) -> String {
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
pub(crate) fn get_param(value: &str, name: &str) -> Result<Option<ParamValue>, DigestError> {
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
pub(crate) fn get_param_raw(value: &[u8], name: &str) -> Result<Option<ParamValue>, DigestError> {
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
            Some(i) => (py_strip_ascii(&f[..i]), py_strip_ascii(&f[i + 1..])),
            None => (py_strip_ascii(f), &b""[..]),
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

/// `get_content_charset()` (§B.6): the charset parameter, RFC 2231
/// tuples decoded strictly with their charset, `None` unless ASCII,
/// lower-cased.
pub(crate) fn content_charset<'a>(
    part: &PartRef<'_, 'a>,
) -> Result<Option<Cow<'a, str>>, DigestError> {
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
            match crate::decode_strict(&pcs, &raw) {
                Ok(s) => s,
                Err(crate::CodecFailure::Runtime) => {
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
}
