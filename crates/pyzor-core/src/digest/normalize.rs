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

use super::text::{encode_utf8_ignore, py_isspace};

/// `[a-z]` under `re.IGNORECASE` on a `str` pattern: ASCII letters plus
/// U+0130 İ, U+0131 ı, U+017F ſ and U+212A K (Kelvin), whose lower/upper
/// case is an ASCII letter (digest-spec.md §D.2, E23).
#[inline]
pub fn is_url_letter(c: char) -> bool {
    c.is_ascii_alphabetic() || matches!(c, '\u{130}' | '\u{131}' | '\u{17f}' | '\u{212a}')
}

/// The byte offset where the `[a-z]+:\S+` removal cuts token `t` (NULs
/// removed), or `t.len()`: at the first `:` that has a letter right before
/// it and a character after it, back to the start of that letter run.
fn url_cut(t: &str) -> usize {
    let b = t.as_bytes();
    for c in 1..b.len().saturating_sub(1) {
        if b[c] != b':' {
            continue;
        }
        let mut p = c;
        while let Some(ch) = t[..p].chars().next_back() {
            if !is_url_letter(ch) {
                break;
            }
            p -= ch.len_utf8();
        }
        if p < c {
            return p;
        }
    }
    b.len()
}

/// ASCII twin of [`url_cut`] (only ASCII letters exist in ASCII text).
fn url_cut_ascii(t: &[u8]) -> usize {
    for c in 1..t.len().saturating_sub(1) {
        if t[c] == b':' && t[c - 1].is_ascii_alphabetic() {
            let mut p = c - 1;
            while p > 0 && t[p - 1].is_ascii_alphabetic() {
                p -= 1;
            }
            return p;
        }
    }
    t.len()
}

/// Whether a token (NULs removed) of `len` bytes has an `@` with at least
/// one character on each side: `@` is ASCII, so this is a byte test.
fn has_inner_at(t: &[u8]) -> bool {
    t.len() >= 3 && memchr::memchr(b'@', &t[1..t.len() - 1]).is_some()
}

/// `normalize(line).encode("utf8", "ignore")` for a line that holds no
/// line boundary, and `len(normalize(line))` in code points (surrogate
/// stand-ins count, §D.3).
pub fn normalize_line(line: &str) -> (Vec<u8>, usize) {
    let mut l = Lines::default();
    let n = l.line_tokens(line);
    (l.buf, n)
}

const OTHER: u8 = 0;
const SPACE: u8 = 1;
const BOUNDARY: u8 = 2;
const NUL: u8 = 3;

/// Byte classes for ASCII text: `str.splitlines` boundaries (§D.1), other
/// `str.isspace` characters (`\t`, `\x1f`, space), NUL.
static ASCII_CLASS: [u8; 256] = {
    let mut t = [OTHER; 256];
    t[b'\t' as usize] = SPACE;
    t[0x1f] = SPACE;
    t[b' ' as usize] = SPACE;
    t[b'\n' as usize] = BOUNDARY;
    t[b'\r' as usize] = BOUNDARY;
    t[0x0b] = BOUNDARY;
    t[0x0c] = BOUNDARY;
    t[0x1c] = BOUNDARY;
    t[0x1d] = BOUNDARY;
    t[0x1e] = BOUNDARY;
    t[0] = NUL;
    t
};

/// The digest's line list: every line of every payload, normalised, kept
/// when it has 8 or more code points, encoded with
/// `encode("utf8", "ignore")`. Stored in one buffer to avoid an allocation
/// per line.
#[derive(Default, Debug, Clone)]
pub struct Lines {
    buf: Vec<u8>,
    ends: Vec<usize>,
    scratch: Vec<u8>,
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
            let start = self.buf.len();
            if self.line_tokens(line) >= 8 {
                self.ends.push(self.buf.len());
            } else {
                self.buf.truncate(start);
            }
        }
    }

    /// Normalise one line into `buf`; returns its length in code points.
    fn line_tokens(&mut self, line: &str) -> usize {
        let mut count = 0;
        let mut tok_start = None;
        for (i, c) in line.char_indices() {
            if py_isspace(c) {
                if let Some(s) = tok_start.take() {
                    count += self.push_token(&line[s..i]);
                }
            } else if tok_start.is_none() {
                tok_start = Some(i);
            }
        }
        if let Some(s) = tok_start {
            count += self.push_token(&line[s..]);
        }
        count
    }

    /// One token: NULs removed, then the three removals (module docs).
    fn push_token(&mut self, t: &str) -> usize {
        if t.as_bytes().contains(&0) {
            let clean: String = t.chars().filter(|&c| c != '\0').collect();
            return self.push_clean_token(&clean);
        }
        self.push_clean_token(t)
    }

    fn push_clean_token(&mut self, t: &str) -> usize {
        let n = t.chars().take(10).count();
        if n == 0 || n >= 10 || has_inner_at(t.as_bytes()) {
            return 0; // \S{10,} or \S+@\S+
        }
        let cut = url_cut(t);
        let kept = &t[..cut];
        let chars = if cut == t.len() {
            n
        } else {
            kept.chars().count()
        };
        encode_utf8_ignore(kept, &mut self.buf);
        chars
    }

    /// Fast path for ASCII payloads: the same rules on bytes (one byte is
    /// one code point; no stand-ins, NEL, LS or PS can occur).
    fn add_ascii_payload(&mut self, p: &[u8]) {
        let n = p.len();
        let mut i = 0;
        while i < n {
            let line_start = self.buf.len();
            let mut kept = 0usize;
            // One line: tokens up to the next boundary.
            loop {
                // Skip whitespace.
                while i < n && ASCII_CLASS[p[i] as usize] == SPACE {
                    i += 1;
                }
                if i >= n || ASCII_CLASS[p[i] as usize] == BOUNDARY {
                    break;
                }
                let s = i;
                let mut has_nul = false;
                loop {
                    match ASCII_CLASS[p[i] as usize] {
                        OTHER => {}
                        NUL => has_nul = true,
                        _ => break,
                    }
                    i += 1;
                    if i >= n {
                        break;
                    }
                }
                kept += self.push_ascii_token(&p[s..i], has_nul);
            }
            if i < n {
                // At a boundary; `\r\n` is one.
                if p[i] == b'\r' && p.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                i += 1;
            }
            if kept >= 8 {
                self.ends.push(self.buf.len());
            } else {
                self.buf.truncate(line_start);
            }
        }
    }

    /// ASCII twin of [`Lines::push_token`]; returns the bytes appended.
    fn push_ascii_token(&mut self, raw: &[u8], has_nul: bool) -> usize {
        let tok: &[u8] = if has_nul {
            self.scratch.clear();
            self.scratch.extend(raw.iter().copied().filter(|&b| b != 0));
            &self.scratch
        } else {
            raw
        };
        let n = tok.len();
        if n == 0 || n >= 10 || has_inner_at(tok) {
            return 0;
        }
        let cut = url_cut_ascii(tok);
        self.buf.extend_from_slice(&tok[..cut]);
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        String::from_utf8(normalize_line(s).0).unwrap()
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

    /// An independent oracle: the four Python substitutions written as
    /// `regex` patterns with Python's `\s` set spelled out and `[a-z]` under
    /// `re.I` spelled as the six-plus-ASCII letter set (§D.2).
    fn oracle(line: &str) -> String {
        use regex::Regex;
        use std::sync::OnceLock;
        static RES: OnceLock<[Regex; 4]> = OnceLock::new();
        const WS: &str = r"\t\n\x0b\x0c\r\x1c-\x1f \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}";
        let [long, email, url, ws] = RES.get_or_init(|| {
            [
                Regex::new(&format!("[^{WS}]{{10,}}")).unwrap(),
                Regex::new(&format!("[^{WS}]+@[^{WS}]+")).unwrap(),
                Regex::new(&format!("[a-zA-Z\u{130}\u{131}\u{17f}\u{212a}]+:[^{WS}]+")).unwrap(),
                Regex::new(&format!("[{WS}]")).unwrap(),
            ]
        });
        let s = line.replace('\0', "");
        let s = long.replace_all(&s, "");
        let s = email.replace_all(&s, "");
        let s = url.replace_all(&s, "");
        ws.replace_all(&s, "").into_owned()
    }

    #[test]
    fn random_lines_match_regex_oracle_and_ascii_path() {
        let alphabet: Vec<char> = "aZk:@@::  \t\x1f\0\u{a0}\u{3000}\u{2000}\u{85}\u{130}\u{131}\u{17f}\u{212a}\u{e9}\u{65e5}\u{200b}\u{feff}.-/1"
            .chars()
            .collect();
        let ascii: Vec<char> = alphabet.iter().copied().filter(char::is_ascii).collect();
        let mut x: u64 = 0x1234_5678_9abc_def1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..4000 {
            let set = if round % 2 == 0 { &alphabet } else { &ascii };
            let len = (next() % 40) as usize;
            let line: String = (0..len)
                .map(|_| set[(next() % set.len() as u64) as usize])
                .collect();
            let (got, n) = normalize_line(&line);
            let want = oracle(&line);
            assert_eq!(String::from_utf8(got).unwrap(), want, "{line:?}");
            assert_eq!(n, want.chars().count(), "{line:?}");
            if line.is_ascii() {
                let mut l = Lines::default();
                l.add_payload(&line);
                let fast: Vec<&[u8]> = (0..l.len()).map(|i| l.get(i)).collect();
                let expect: Vec<&[u8]> = if n >= 8 {
                    vec![want.as_bytes()]
                } else {
                    vec![]
                };
                assert_eq!(fast, expect, "{line:?}");
            }
        }
    }
}
