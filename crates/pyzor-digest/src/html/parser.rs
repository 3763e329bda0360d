//! A port of CPython 3.11.2's `html.parser.HTMLParser` (plus the parts of
//! `_markupbase.ParserBase` it uses), specialised to pyzor's `HTMLStripper`:
//! `convert_charrefs=True`, one `feed()`, no `close()`.
//!
//! Every regex of the Python module is replaced by a hand-written scanner
//! that returns the same match as Python's backtracking engine; each one
//! names the regex it stands for. The scanners work on UTF-8 byte offsets
//! (all delimiters are ASCII) and decode a character only where Python's
//! `\s` (= `str.isspace`, [`py_isspace`]) can match. Every scanner is
//! linear, and closing quotes are found through a memo, so the whole parse
//! is linear in the input length where Python may be quadratic.

use super::unescape::{check_unescape, try_unescape};
use super::HtmlError;
use crate::text::{py_isspace, py_isspace_byte, py_strip};

/// The two `CDATA_CONTENT_ELEMENTS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CdataElem {
    Script,
    Style,
}

impl CdataElem {
    fn name(self) -> &'static str {
        match self {
            CdataElem::Script => "script",
            CdataElem::Style => "style",
        }
    }

    /// `tag.lower() in ("script", "style")`. Python's Unicode `lower()`
    /// maps only one non-ASCII character to a lone ASCII letter (U+212A
    /// KELVIN SIGN to `k`, absent from both names), so an ASCII
    /// case-insensitive comparison is exact.
    fn from_tag(tag: &str) -> Option<Self> {
        if tag.eq_ignore_ascii_case("script") {
            Some(CdataElem::Script)
        } else if tag.eq_ignore_ascii_case("style") {
            Some(CdataElem::Style)
        } else {
            None
        }
    }
}

/// Memo for "first `q` at or after `from`", so that repeated searches for
/// an unmatched quote (Python rescans to the end every time) stay linear.
#[derive(Default)]
struct QuoteMemo {
    /// `(from, found)`: the first quote at or after `from` is at `found`.
    hit: Option<(usize, usize)>,
    /// No quote at or after this offset.
    none_from: Option<usize>,
}

impl QuoteMemo {
    fn find(&mut self, s: &str, q: char, from: usize) -> Option<usize> {
        if let Some((f, found)) = self.hit {
            if f <= from && from <= found {
                return Some(found);
            }
        }
        if self.none_from.is_some_and(|n| n <= from) {
            return None;
        }
        // An ASCII byte never occurs inside a multi-byte UTF-8 character:
        // memchr finds the same index as `str::find`, faster.
        let found = if q.is_ascii() {
            super::find_byte(q as u8, &s.as_bytes()[from..])
        } else {
            s[from..].find(q)
        };
        match found {
            Some(off) => {
                self.hit = Some((from, from + off));
                Some(from + off)
            }
            None => {
                self.none_from = Some(self.none_from.map_or(from, |n| n.min(from)));
                None
            }
        }
    }
}

/// Result of a `locatestarttagend_tolerant`-style value group match.
struct ValueMatch {
    /// `(value_start, value_end)` of the value alternative (group 3 of
    /// `attrfind_tolerant`), quotes included.
    value: (usize, usize),
    /// End of the whole group.
    end: usize,
}

pub(super) struct Stripper<'a> {
    raw: &'a str,
    b: &'a [u8],
    out: String,
    /// `HTMLStripper.collect`.
    collect: bool,
    /// `HTMLParser.cdata_elem`.
    cdata_elem: Option<CdataElem>,
    single_quotes: QuoteMemo,
    double_quotes: QuoteMemo,
}

impl<'a> Stripper<'a> {
    pub(super) fn new(raw: &'a str) -> Self {
        Stripper {
            raw,
            b: raw.as_bytes(),
            // The text is about as long as the input at most: one
            // allocation instead of repeated doubling.
            out: String::with_capacity(raw.len()),
            collect: true,
            cdata_elem: None,
            single_quotes: QuoteMemo::default(),
            double_quotes: QuoteMemo::default(),
        }
    }

    pub(super) fn into_text(self) -> String {
        self.out
    }

    // ----- character helpers ------------------------------------------------

    fn char_at(&self, pos: usize) -> Option<char> {
        self.raw.get(pos..).and_then(|s| s.chars().next())
    }

    fn char_before(&self, pos: usize) -> Option<char> {
        self.raw[..pos].chars().next_back()
    }

    /// Length in bytes of the `\s` character at `pos`, if there is one.
    fn ws_at(&self, pos: usize) -> Option<usize> {
        // Fast path: an ASCII byte that is not whitespace.
        match self.b.get(pos) {
            None => None,
            Some(&c) if c < 0x80 => py_isspace_byte(c).then_some(1),
            Some(_) => self
                .char_at(pos)
                .filter(|&c| py_isspace(c))
                .map(char::len_utf8),
        }
    }

    /// The end of the run of characters satisfying `pred` from `pos`
    /// (ASCII bytes are tested without decoding).
    fn scan_while(&self, mut pos: usize, pred: impl Fn(char) -> bool) -> usize {
        while let Some(&byte) = self.b.get(pos) {
            if byte < 0x80 {
                if !pred(byte as char) {
                    break;
                }
                pos += 1;
            } else {
                match self.char_at(pos) {
                    Some(c) if pred(c) => pos += c.len_utf8(),
                    _ => break,
                }
            }
        }
        pos
    }

    /// [`Stripper::scan_while`] with the test on ASCII bytes given as the
    /// byte predicate `ascii` (which must agree with `pred` on ASCII): a
    /// tight byte loop for the common all-ASCII run, `scan_while` from the
    /// first 8-bit byte on. Forced inline (with [`Stripper::skip_ws`]):
    /// LLVM otherwise kept a call per `\s*`, most of which match nothing.
    #[inline(always)]
    fn scan_ascii_while(
        &self,
        mut pos: usize,
        ascii: impl Fn(u8) -> bool,
        pred: impl Fn(char) -> bool,
    ) -> usize {
        while let Some(&byte) = self.b.get(pos) {
            if byte >= 0x80 {
                return self.scan_while(pos, pred);
            }
            if !ascii(byte) {
                break;
            }
            pos += 1;
        }
        pos
    }

    /// `\s*` from `pos`.
    #[inline(always)]
    fn skip_ws(&self, pos: usize) -> usize {
        self.scan_ascii_while(pos, py_isspace_byte, py_isspace)
    }

    fn find_byte(&self, c: u8, from: usize) -> Option<usize> {
        let from = from.min(self.b.len());
        debug_assert!(c.is_ascii());
        super::find_byte(c, &self.b[from..]).map(|o| from + o)
    }

    // ----- HTMLStripper handlers -------------------------------------------

    /// `HTMLStripper.handle_data`: `strip()`, keep if non-empty and
    /// collecting; chunks are joined with one space.
    fn handle_data(&mut self, data: &str) {
        let d = py_strip(data);
        if !d.is_empty() && self.collect {
            if !self.out.is_empty() {
                self.out.push(' ');
            }
            self.out.push_str(d);
        }
    }

    /// `handle_data(unescape(rawdata[i:j]))` of the `convert_charrefs` path.
    fn handle_text(&mut self, i: usize, j: usize) -> Result<(), HtmlError> {
        let raw = self.raw;
        let text = try_unescape(&raw[i..j]).map_err(|e| e.shifted(i))?;
        self.handle_data(&text);
        Ok(())
    }

    fn handle_starttag(&mut self, tag: &str) {
        if CdataElem::from_tag(tag).is_some() {
            self.collect = false;
        }
    }

    fn handle_endtag(&mut self, tag: &str) {
        if CdataElem::from_tag(tag).is_some() {
            self.collect = true;
        }
    }

    // ----- goahead -----------------------------------------------------------

    /// `HTMLParser.feed(text)` with `end == 0` (pyzor never calls
    /// `close()`): whatever `goahead` leaves in `rawdata` is lost
    /// (docs/digest-rules.md J.2). Any `None` from a `parse_*` method is
    /// "incomplete, wait for more data" and so ends the parse for good.
    pub(super) fn feed(&mut self) -> Result<(), HtmlError> {
        let raw = self.raw;
        let n = self.b.len();
        let tail34 = start_of_last_chars(raw, 34);
        let mut i = 0;
        while i < n {
            // Whether raw[i..j] may hold a character reference: the search
            // for `<` first looks for `<` or `&`, so a text run without `&`
            // (most) skips `unescape` and its own search.
            let mut amp = false;
            let j = if self.cdata_elem.is_none() {
                let first = match super::find_either(b'<', b'&', &self.b[i..]) {
                    Some(o) if self.b[i + o] == b'&' => {
                        amp = true;
                        self.find_byte(b'<', i + o + 1)
                    }
                    other => other.map(|o| i + o),
                };
                match first {
                    Some(j) => j,
                    None => {
                        if withhold_tail(raw, i.max(tail34)) {
                            break;
                        }
                        n
                    }
                }
            } else {
                match self.search_cdata_end(i) {
                    Some(j) => j,
                    None => break,
                }
            };
            if i < j {
                if amp {
                    self.handle_text(i, j)?;
                } else {
                    // `unescape` of a text without `&` is the text.
                    self.handle_data(&raw[i..j]);
                }
            }
            i = j;
            if i == n {
                break;
            }
            // rawdata[i] == '<' here: with convert_charrefs the `&` branches
            // of goahead are unreachable (j is always a '<' or n).
            let next = self.b.get(i + 1).copied();
            let k = match next {
                Some(c) if c.is_ascii_alphabetic() => self.parse_starttag(i)?,
                Some(b'/') => self.parse_endtag(i),
                Some(b'!') if raw[i..].starts_with("<!--") => self.parse_comment(i),
                Some(b'?') => self.parse_pi(i),
                Some(b'!') => self.parse_html_declaration(i)?,
                Some(_) => {
                    self.handle_data("<");
                    Some(i + 1)
                }
                None => break,
            };
            match k {
                Some(k) => i = k,
                None => break,
            }
        }
        Ok(())
    }

    /// In CDATA mode `interesting` is `re.compile(r'</\s*%s\s*>' % elem,
    /// re.I)`; return the start of its first match at or after `from`.
    fn search_cdata_end(&self, from: usize) -> Option<usize> {
        let elem = self.cdata_elem?.name().as_bytes();
        let mut pos = from;
        loop {
            let p = pos + memchr::memmem::find(&self.b[pos..], b"</")?;
            let mut q = self.skip_ws(p + 2);
            let mut ok = true;
            for &letter in elem {
                match self.char_at(q) {
                    Some(c) if re_ignorecase_letter_matches(letter, c) => q += c.len_utf8(),
                    _ => {
                        ok = false;
                        break;
                    }
                }
            }
            if ok && self.b.get(self.skip_ws(q)) == Some(&b'>') {
                return Some(p);
            }
            pos = p + 1;
        }
    }

    // ----- start tags --------------------------------------------------------

    /// `[a-zA-Z][^\t\n\r\f />\x00]*` starting at `pos` (which holds the
    /// letter): the end of the tag name.
    fn tag_name_end(&self, pos: usize) -> usize {
        pos + 1
            + self.b[pos + 1..]
                .iter()
                .take_while(|&&c| {
                    !matches!(c, b'\t' | b'\n' | b'\r' | b'\x0c' | b' ' | b'/' | b'>' | 0)
                })
                .count()
    }

    /// `(?:\s|/(?!>))*` from `pos`.
    fn skip_ws_or_lone_slash(&self, mut pos: usize) -> usize {
        loop {
            if let Some(l) = self.ws_at(pos) {
                pos += l;
            } else if self.b.get(pos) == Some(&b'/') && self.b.get(pos + 1) != Some(&b'>') {
                pos += 1;
            } else {
                return pos;
            }
        }
    }

    /// `[^>\s]*` from `pos`.
    fn skip_bare_value(&self, pos: usize) -> usize {
        self.scan_ascii_while(
            pos,
            |b| b != b'>' && !py_isspace_byte(b),
            |c| c != '>' && !py_isspace(c),
        )
    }

    /// `(?<=['"\s/])[^\s/>][^\s/=>]*` at `pos`: the end of an attribute
    /// name, or `None` when the lookbehind or the first character fails.
    fn attr_name(&self, pos: usize) -> Option<usize> {
        // ASCII bytes are their own characters: decode only 8-bit ones.
        let prev_ok = match pos.checked_sub(1).and_then(|p| self.b.get(p)) {
            Some(&c) if c < 0x80 => matches!(c, b'\'' | b'"' | b'/') || py_isspace_byte(c),
            _ => self.char_before(pos).is_some_and(py_isspace),
        };
        if !prev_ok {
            return None;
        }
        let first_len = match self.b.get(pos) {
            Some(&c) if c < 0x80 => {
                if c == b'/' || c == b'>' || py_isspace_byte(c) {
                    return None;
                }
                1
            }
            _ => {
                let first = self.char_at(pos)?;
                if py_isspace(first) {
                    return None;
                }
                first.len_utf8()
            }
        };
        Some(self.scan_ascii_while(
            pos + first_len,
            |b| !matches!(b, b'/' | b'=' | b'>') && !py_isspace_byte(b),
            |c| !matches!(c, '/' | '=' | '>') && !py_isspace(c),
        ))
    }

    /// The optional attribute value group at `pos` (right after a name):
    /// `\s*=+\s*('[^']*'|"[^"]*"|(?!['"])[^>\s]*)`, followed by `\s*` in
    /// `locatestarttagend_tolerant` (`trailing_ws`) but not in
    /// `attrfind_tolerant`. Returns the match Python's backtracking engine
    /// settles on, `None` when the group matches nothing.
    ///
    /// Quirk (html/parser.py, docs/digest-rules.md C.3 "incomplete tags"): when
    /// the value starts with a quote that is never closed, the engine
    /// backtracks: it gives back one whitespace character after the `=`
    /// (empty bare value), else one `=` of a `==` run (bare value starting
    /// at that `=`), else the whole group fails.
    fn value_group(&mut self, pos: usize, trailing_ws: bool) -> Option<ValueMatch> {
        let a = self.skip_ws(pos);
        if self.b.get(a) != Some(&b'=') {
            return None;
        }
        let eq_end = a + self.b[a..].iter().take_while(|&&c| c == b'=').count();
        let c = self.skip_ws(eq_end);
        let quote = match self.b.get(c) {
            Some(b'\'') => Some('\''),
            Some(b'"') => Some('"'),
            _ => None,
        };
        let (value, end) = match quote {
            None => {
                let e = self.skip_bare_value(c);
                ((c, e), e)
            }
            Some(q) => {
                let raw = self.raw;
                let memo = if q == '\'' {
                    &mut self.single_quotes
                } else {
                    &mut self.double_quotes
                };
                if let Some(close) = memo.find(raw, q, c + 1) {
                    ((c, close + 1), close + 1)
                } else if c > eq_end {
                    // give back the last whitespace character of `\s*`
                    let back = c - self.char_before(c).map_or(1, char::len_utf8);
                    ((back, back), back)
                } else if eq_end - a >= 2 {
                    // give back one '=' of `=+`; the bare value starts there
                    let v = eq_end - 1;
                    let e = self.skip_bare_value(v);
                    ((v, e), e)
                } else {
                    return None;
                }
            }
        };
        let end = if trailing_ws { self.skip_ws(end) } else { end };
        Some(ValueMatch { value, end })
    }

    /// `check_for_whole_start_tag(i)` with `locatestarttagend_tolerant`:
    /// the end of the tag, or `None` when it is incomplete.
    fn check_for_whole_start_tag(&mut self, i: usize) -> Option<usize> {
        // <[a-zA-Z][^\t\n\r\f />\x00]*
        let mut p = self.tag_name_end(i + 1);
        // (?:[\s/]* (?:attribute)* )?
        loop {
            if let Some(l) = self.ws_at(p) {
                p += l;
            } else if self.b.get(p) == Some(&b'/') {
                p += 1;
            } else {
                break;
            }
        }
        while let Some(name_end) = self.attr_name(p) {
            p = name_end;
            if let Some(v) = self.value_group(p, true) {
                p = v.end;
            }
            p = self.skip_ws_or_lone_slash(p);
        }
        // \s*
        let j = self.skip_ws(p);
        match self.b.get(j) {
            Some(b'>') => Some(j + 1),
            Some(b'/') if self.b.get(j + 1) == Some(&b'>') => Some(j + 2),
            // "buffer boundary"
            Some(b'/') => None,
            // end of input
            None => None,
            // "end of input in or before attribute value"
            Some(c) if c.is_ascii_alphabetic() || *c == b'=' => None,
            // bogus input: the tag ends before this character (j > i)
            Some(_) => Some(j),
        }
    }

    /// `parse_starttag(i)`.
    fn parse_starttag(&mut self, i: usize) -> Result<Option<usize>, HtmlError> {
        let Some(endpos) = self.check_for_whole_start_tag(i) else {
            return Ok(None);
        };
        let raw = self.raw;
        // tagfind_tolerant: ([a-zA-Z][^\t\n\r\f />\x00]*)(?:\s|/(?!>))*
        let name_end = self.tag_name_end(i + 1);
        let tag = &raw[i + 1..name_end];
        let mut k = self.skip_ws_or_lone_slash(name_end);
        // attrfind_tolerant loop; only its end position matters, and the
        // `unescape` of each value, which can raise in Python.
        while k < endpos {
            let Some(attr_end) = self.attr_name(k) else {
                break;
            };
            let mut m_end = attr_end;
            if let Some(v) = self.value_group(attr_end, false) {
                let (mut vs, mut ve) = v.value;
                let value = &raw[vs..ve];
                // attrvalue[:1] == '\'' == attrvalue[-1:] (or '"'): unquote
                if value.len() >= 2
                    && ((value.starts_with('\'') && value.ends_with('\''))
                        || (value.starts_with('"') && value.ends_with('"')))
                {
                    vs += 1;
                    ve -= 1;
                }
                // `if attrvalue: attrvalue = unescape(attrvalue)`: the value
                // itself is ignored, but unescape can raise.
                if vs < ve {
                    check_unescape(&raw[vs..ve]).map_err(|e| e.shifted(vs))?;
                }
                m_end = v.end;
            }
            k = self.skip_ws_or_lone_slash(m_end);
        }
        // end = rawdata[k:endpos].strip()  (an empty slice when k > endpos)
        let end = if k <= endpos {
            py_strip(&raw[k..endpos])
        } else {
            ""
        };
        if end != ">" && end != "/>" {
            self.handle_data(&raw[i..endpos]);
            return Ok(Some(endpos));
        }
        if end == "/>" {
            // handle_startendtag: <script/> leaves collect = True
            self.handle_starttag(tag);
            self.handle_endtag(tag);
        } else {
            self.handle_starttag(tag);
            if let Some(elem) = CdataElem::from_tag(tag) {
                self.cdata_elem = Some(elem);
            }
        }
        Ok(Some(endpos))
    }

    // ----- end tags ----------------------------------------------------------

    /// `endtagfind`: `</\s*([a-zA-Z][-.a-zA-Z0-9:_]*)\s*>` matched at `i`;
    /// returns the name's range and the match end.
    fn endtagfind(&self, i: usize) -> Option<(usize, usize, usize)> {
        let s = self.skip_ws(i + 2);
        if !self.b.get(s)?.is_ascii_alphabetic() {
            return None;
        }
        let e = s
            + 1
            + self.b[s + 1..]
                .iter()
                .take_while(|&&c| {
                    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b':' | b'_')
                })
                .count();
        let gt = self.skip_ws(e);
        (self.b.get(gt) == Some(&b'>')).then_some((s, e, gt + 1))
    }

    /// `parse_endtag(i)`.
    fn parse_endtag(&mut self, i: usize) -> Option<usize> {
        let raw = self.raw;
        let gtpos = self.find_byte(b'>', i + 1)? + 1;
        if let Some((s, e, _)) = self.endtagfind(i) {
            let elem = &raw[s..e];
            if let Some(cd) = self.cdata_elem {
                if !elem.eq_ignore_ascii_case(cd.name()) {
                    self.handle_data(&raw[i..gtpos]);
                    return Some(gtpos);
                }
            }
            self.handle_endtag(elem);
            self.cdata_elem = None;
            return Some(gtpos);
        }
        if self.cdata_elem.is_some() {
            // e.g. `</scrİpt>` matched the re.I `interesting` pattern but
            // not the ASCII-only endtagfind: plain data, CDATA mode goes on.
            self.handle_data(&raw[i..gtpos]);
            return Some(gtpos);
        }
        if self.b.get(i + 2).is_some_and(u8::is_ascii_alphabetic) {
            let name_end = self.tag_name_end(i + 2);
            let after = self.skip_ws_or_lone_slash(name_end);
            self.handle_endtag(&raw[i + 2..name_end]);
            // The first '>' at or after `after` is the one found above.
            return Some(self.find_byte(b'>', after).map_or(gtpos, |g| g + 1));
        }
        if raw[i..].starts_with("</>") {
            return Some(i + 3);
        }
        self.parse_bogus_comment(i)
    }

    // ----- comments and declarations -----------------------------------------

    /// `parse_bogus_comment(i)`: up to the next `>`.
    fn parse_bogus_comment(&self, i: usize) -> Option<usize> {
        self.find_byte(b'>', i + 2).map(|p| p + 1)
    }

    /// `parse_pi(i)`: `<?` up to the next `>`.
    fn parse_pi(&self, i: usize) -> Option<usize> {
        self.find_byte(b'>', i + 2).map(|p| p + 1)
    }

    /// `parse_comment(i)`: search `--\s*>` from `i + 4`. The pre-2025
    /// pattern: `--!>` does not close a comment (docs/digest-rules.md C.3).
    fn parse_comment(&self, i: usize) -> Option<usize> {
        let mut pos = i + 4;
        loop {
            let p = pos + self.raw.get(pos..)?.find("--")?;
            let q = self.skip_ws(p + 2);
            if self.b.get(q) == Some(&b'>') {
                return Some(q + 1);
            }
            pos = p + 1;
        }
    }

    /// `parse_html_declaration(i)` for `<!` not followed by `--`.
    fn parse_html_declaration(&mut self, i: usize) -> Result<Option<usize>, HtmlError> {
        let b = self.b;
        if b.get(i + 2) == Some(&b'[') {
            return self.parse_marked_section(i);
        }
        // rawdata[i:i+9].lower() == '<!doctype' — no non-ASCII character
        // lowers to one of these letters, so ASCII folding is exact.
        if b.len() >= i + 9 && b[i..i + 9].eq_ignore_ascii_case(b"<!doctype") {
            return Ok(self.find_byte(b'>', i + 9).map(|p| p + 1));
        }
        Ok(self.parse_bogus_comment(i))
    }

    /// `_markupbase.ParserBase.parse_marked_section(i)` with `_scan_name`.
    ///
    /// Quirk (docs/digest-rules.md H.1, J.1): a missing or unknown keyword raises
    /// `AssertionError`, which pyzor's broken `except` clause turns into an
    /// `AttributeError`: the part cannot be digested. A keyword that runs
    /// to the end of the input is "incomplete" instead (no error).
    fn parse_marked_section(&mut self, i: usize) -> Result<Option<usize>, HtmlError> {
        let b = self.b;
        let n = b.len();
        let j = i + 3;
        if j == n {
            return Ok(None);
        }
        // _declname_match: [a-zA-Z][-_.a-zA-Z0-9]*\s*
        if !b[j].is_ascii_alphabetic() {
            return Err(HtmlError::MarkedSectionName { offset: i });
        }
        let name_end = j
            + 1
            + b[j + 1..]
                .iter()
                .take_while(|&&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
                .count();
        let m_end = self.skip_ws(name_end);
        if m_end == n {
            return Ok(None);
        }
        let name = self.raw[j..name_end].to_ascii_lowercase();
        let close = match name.as_str() {
            "temp" | "cdata" | "ignore" | "include" | "rcdata" => self.search_marked_close(j, true),
            "if" | "else" | "endif" => self.search_marked_close(j, false),
            _ => {
                return Err(HtmlError::MarkedSection {
                    keyword: self.raw[j..name_end].to_string(),
                    offset: i,
                })
            }
        };
        Ok(close)
    }

    /// `_markedsectionclose` (`]\s*]\s*>`, `double`) or
    /// `_msmarkedsectionclose` (`]\s*>`) searched from `from`; the match end.
    fn search_marked_close(&self, from: usize, double: bool) -> Option<usize> {
        let mut pos = from;
        loop {
            let p = self.find_byte(b']', pos)?;
            let mut q = self.skip_ws(p + 1);
            let ok = if double {
                if self.b.get(q) == Some(&b']') {
                    q = self.skip_ws(q + 1);
                    self.b.get(q) == Some(&b'>')
                } else {
                    false
                }
            } else {
                self.b.get(q) == Some(&b'>')
            };
            if ok {
                return Some(q + 1);
            }
            pos = p + 1;
        }
    }
}

/// Python `re.I` on a `str` pattern: the characters a lower-case ASCII
/// letter of `script`/`style` matches. Besides both ASCII cases, `s`
/// matches U+017F (ſ) and `i` matches U+0130 (İ) and U+0131 (ı), probed on
/// CPython 3.11.2 over all code points. (Such a match then fails the
/// ASCII-only `endtagfind`, so it does not end the CDATA block.)
fn re_ignorecase_letter_matches(letter: u8, c: char) -> bool {
    if c.is_ascii() {
        return (c as u8).eq_ignore_ascii_case(&letter);
    }
    matches!(
        (letter, c),
        (b's', '\u{17f}') | (b'i', '\u{130}' | '\u{131}')
    )
}

/// Byte offset of the start of the last `count` code points of `s`
/// (Python's `n - count`, clamped at 0).
fn start_of_last_chars(s: &str, count: usize) -> usize {
    s.char_indices().rev().nth(count - 1).map_or(0, |(i, _)| i)
}

/// The `convert_charrefs` hold-back in `goahead` when no `<` follows:
/// `amppos = rawdata.rfind('&', max(i, n-34))`; if there is one and
/// `[\s;]` does not occur from there to the end, the tail is kept back for
/// the next `feed()` — which never comes (docs/digest-rules.md C.3, J.2, E20).
fn withhold_tail(raw: &str, from: usize) -> bool {
    match memchr::memrchr(b'&', &raw.as_bytes()[from..]) {
        Some(off) => !raw[from + off..].chars().any(|c| c == ';' || py_isspace(c)),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_byte_predicates_agree_with_char_ones() {
        for b in 0u8..0x80 {
            let c = char::from(b);
            assert_eq!(py_isspace_byte(b), py_isspace(c), "{b:02x}");
        }
        // scan_ascii_while == scan_while on mixed text.
        let text = "ab c\u{a0}d\u{85}=e/f>g\u{3000}h\t\u{e9}\u{e9} \x1c>";
        let s = Stripper::new(text);
        for pos in (0..=text.len()).filter(|&p| text.is_char_boundary(p)) {
            assert_eq!(s.skip_ws(pos), s.scan_while(pos, py_isspace), "{pos}");
            assert_eq!(
                s.skip_bare_value(pos),
                s.scan_while(pos, |c| c != '>' && !py_isspace(c)),
                "{pos}"
            );
            let a = s.scan_ascii_while(
                pos,
                |b| !matches!(b, b'/' | b'=' | b'>') && !py_isspace_byte(b),
                |c| !matches!(c, '/' | '=' | '>') && !py_isspace(c),
            );
            let b = s.scan_while(pos, |c| !matches!(c, '/' | '=' | '>') && !py_isspace(c));
            assert_eq!(a, b, "{pos}");
        }
    }
}
