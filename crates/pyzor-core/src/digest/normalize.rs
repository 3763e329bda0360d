//! `DataDigester.normalize` and the line filter (digest-spec.md §D), as one
//! hand-written scanner instead of four regex passes.
//!
//! Python runs, on each line `s` from `str.splitlines()`:
//!
//! ```text
//! s = s.replace("\x00", "")
//! s = re.sub(r"\S{10,}", "", s)
//! s = re.sub(r"\S+@\S+", "", s)
//! s = re.sub(r"[a-z]+:\S+", "", s, flags=re.I)
//! s = re.sub(r"\s", "", s).strip()
//! ```
//!
//! None of the three token patterns can match across whitespace and a
//! removal never joins two tokens (the whitespace around them stays until
//! the last step), so the passes act on each maximal run of non-whitespace
//! characters (a *token*) independently:
//!
//! 1. a token of 10 or more code points is removed;
//! 2. a token with an `@` that has at least one character on each side
//!    (within the token) is removed; the leftmost match starts at the token
//!    start and the greedy `\S+` runs to its end;
//! 3. at the first `:` that has a "letter" right before it and at least one
//!    character after it, the token is cut at the start of the letter run
//!    that ends at that `:` (leftmost match, greedy to the token end);
//! 4. the surviving token texts are concatenated.
//!
//! Whitespace is Python's `str.isspace()` ([`py_isspace`]); NUL is removed
//! before tokens are formed, so it joins its neighbours (E35).

use super::text::{encode_utf8_ignore, is_line_boundary, py_isspace};

/// `[a-z]` under `re.IGNORECASE` on a `str` pattern: ASCII letters plus
/// U+0130 İ, U+0131 ı, U+017F ſ and U+212A K (Kelvin), whose lower/upper
/// case is an ASCII letter (digest-spec.md §D.2, E23).
#[inline]
pub fn is_url_letter(c: char) -> bool {
    c.is_ascii_alphabetic() || matches!(c, '\u{130}' | '\u{131}' | '\u{17f}' | '\u{212a}')
}

/// Append the normalised form of one token (NULs already removed) to `out`.
fn push_token(tok: &[char], out: &mut String) {
    let n = tok.len();
    if n == 0 || n >= 10 {
        return; // \S{10,}
    }
    if n >= 3 && tok[1..n - 1].contains(&'@') {
        return; // \S+@\S+
    }
    // [a-z]+:\S+ (re.I)
    let mut cut = n;
    for c in 1..n.saturating_sub(1) {
        if tok[c] == ':' && is_url_letter(tok[c - 1]) {
            let mut p = c - 1;
            while p > 0 && is_url_letter(tok[p - 1]) {
                p -= 1;
            }
            cut = p;
            break;
        }
    }
    out.extend(&tok[..cut]);
}

/// `normalize(line)` for a line that holds no line boundary; returns the
/// normalised text and its length in code points (surrogate stand-ins
/// count, §D.3).
pub fn normalize_into(line: &str, out: &mut String, tok: &mut Vec<char>) -> usize {
    out.clear();
    tok.clear();
    for c in line.chars() {
        if c == '\0' {
            continue;
        }
        if py_isspace(c) {
            push_token(tok, out);
            tok.clear();
        } else {
            tok.push(c);
        }
    }
    push_token(tok, out);
    tok.clear();
    out.chars().count()
}

/// The digest's line list: every line of every payload, normalised, kept
/// when it has 8 or more code points, encoded with
/// `encode("utf8", "ignore")`. Stored in one buffer to avoid an allocation
/// per line.
#[derive(Default, Debug, Clone)]
pub struct Lines {
    buf: Vec<u8>,
    ends: Vec<usize>,
    norm: String,
    tok: Vec<char>,
}

impl Lines {
    /// Number of kept lines.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether no line was kept.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Kept line `i` (UTF-8, possibly empty, §D.3).
    pub fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.buf[start..self.ends[i]]
    }

    /// Feed one payload: `for line in payload.splitlines()` (§D.1).
    pub fn add_payload(&mut self, payload: &str) {
        if payload.is_ascii() {
            self.add_ascii_payload(payload.as_bytes());
            return;
        }
        for line in super::text::py_splitlines(payload) {
            self.add_line(line);
        }
    }

    fn add_line(&mut self, line: &str) {
        let n = normalize_into(line, &mut self.norm, &mut self.tok);
        if n >= 8 {
            encode_utf8_ignore(&self.norm, &mut self.buf);
            self.ends.push(self.buf.len());
        }
    }

    /// Fast path for ASCII payloads: same rules on bytes (one byte is one
    /// code point, no stand-ins, no NEL/LS/PS).
    fn add_ascii_payload(&mut self, p: &[u8]) {
        let mut i = 0;
        let n = p.len();
        while i < n {
            // One line: up to the next boundary.
            let line_start_len = self.buf.len();
            let mut kept = 0usize;
            let mut tok_start = usize::MAX; // start index of current token in p
            let mut tok_len = 0usize; // non-NUL bytes in token
            let mut tok_has_nul = false;
            loop {
                let b = if i < n { p[i] } else { b'\n' };
                let boundary = i >= n || is_line_boundary(b as char);
                let space = boundary || py_isspace(b as char);
                if space {
                    if tok_len > 0 {
                        kept += self.push_ascii_token(&p[tok_start..i], tok_len, tok_has_nul);
                    }
                    tok_start = usize::MAX;
                    tok_len = 0;
                    tok_has_nul = false;
                    if boundary {
                        break;
                    }
                } else {
                    if tok_start == usize::MAX {
                        tok_start = i;
                    }
                    if b == 0 {
                        tok_has_nul = true;
                    } else {
                        tok_len += 1;
                    }
                }
                i += 1;
            }
            // i is at the boundary (or n).
            if i < n {
                if p[i] == b'\r' && p.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                i += 1;
            }
            if kept >= 8 {
                self.ends.push(self.buf.len());
            } else {
                self.buf.truncate(line_start_len);
            }
        }
    }

    /// ASCII twin of [`push_token`]; returns the number of bytes appended.
    fn push_ascii_token(&mut self, raw: &[u8], len: usize, has_nul: bool) -> usize {
        if len >= 10 {
            return 0;
        }
        let owned: Vec<u8>;
        let tok: &[u8] = if has_nul {
            owned = raw.iter().copied().filter(|&b| b != 0).collect();
            &owned
        } else {
            raw
        };
        let n = tok.len();
        if n >= 3 && tok[1..n - 1].contains(&b'@') {
            return 0;
        }
        let mut cut = n;
        for c in 1..n.saturating_sub(1) {
            if tok[c] == b':' && tok[c - 1].is_ascii_alphabetic() {
                let mut p = c - 1;
                while p > 0 && tok[p - 1].is_ascii_alphabetic() {
                    p -= 1;
                }
                cut = p;
                break;
            }
        }
        self.buf.extend_from_slice(&tok[..cut]);
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        let mut out = String::new();
        normalize_into(s, &mut out, &mut Vec::new());
        out
    }

    fn lines_of(p: &str) -> Vec<String> {
        let mut l = Lines::default();
        l.add_payload(p);
        (0..l.len())
            .map(|i| String::from_utf8(l.get(i).to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn spec_d2_examples() {
        // E01: \x1f is whitespace.
        assert_eq!(norm("abcde\x1ffghij klmno pqrst"), "abcdefghijklmnopqrst");
        assert_eq!(norm("a@b x:y @@ a@ @@@"), "@@a@");
        assert_eq!(norm("Note:this re:x 12:30"), "12:30");
        assert_eq!(norm("a@ b"), "a@b");
        assert_eq!(norm("12ab:cd"), "12");
        assert_eq!(norm("\u{131}:x \u{212a}:y \u{f1}:x"), "\u{f1}:x");
        assert_eq!(norm("abc\0defghij klm"), "klm");
        assert_eq!(norm("x:"), "x:");
    }

    #[test]
    fn ascii_fast_path_agrees_with_general_path() {
        let samples = [
            "Hello world, this is a line\r\nsecond line here ok\rthird\x0bfour five six seven\x1ceight nine ten eleven",
            "a\0b\0c\0d\0e\0f\0g\0h\n\n\nmailto:user@example.com visit http://x now ok fine",
            "Note:this is   x@y  a:b::c 12:30 long-token-here trailing",
        ];
        for s in samples {
            let fast = lines_of(s);
            let mut slow = Vec::new();
            for line in crate::digest::text::py_splitlines(s) {
                let n = norm(line);
                if n.chars().count() >= 8 {
                    slow.push(n);
                }
            }
            assert_eq!(fast, slow, "{s:?}");
        }
    }

    #[test]
    fn code_point_length_threshold() {
        assert_eq!(
            lines_of("\u{e9}\u{e9}\u{e9}\u{e9} \u{e9}\u{e9}\u{e9}\u{e9}"),
            ["\u{e9}".repeat(8)]
        );
        assert!(lines_of("abcd efg").is_empty());
        assert_eq!(lines_of("abcd efgh"), ["abcdefgh"]);
    }
}
