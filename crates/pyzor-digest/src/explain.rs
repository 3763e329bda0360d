//! Why a message has the digest it has: the lines that went into it, where
//! they came from, what the normalisation removed, and warnings when the
//! digest says little about the message (docs/digest-rules.md §D, §E).
//!
//! The digest and the hashed lines come from the digest pipeline itself
//! ([`crate::predigest`]); this module only walks the same parts and lines
//! a second time to say where each hashed line came from and which of the
//! reference's `DataDigester.normalize` rules removed which words. No I/O,
//! no clock, and everything it keeps is bounded whatever the message size
//! (a few lines and examples, each cut to a fixed length).
//!
//! ```
//! use pyzor_digest::explain::{explain, WarningCode};
//!
//! let gtube = b"Subject: test\n\nXJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\n";
//! let e = explain(gtube).unwrap();
//! assert_eq!(e.digest.to_string(), pyzor_digest::EMPTY_DIGEST);
//! let codes: Vec<WarningCode> = e.warnings.iter().map(|w| w.code()).collect();
//! assert_eq!(codes, [WarningCode::EmptyDigest, WarningCode::Gtube]);
//! assert_eq!(e.removed.long_words, 1);
//! println!("{}", e.warnings[1].text());
//! ```

use std::fmt;

use crate::normalize::Lines;
use crate::text::{py_isspace, py_splitlines, StandIns};
use crate::{predigest, Digest, DigestError, Selection, EMPTY_DIGEST};

/// `DataDigester.min_line_length`: a normalised line is kept when it has at
/// least this many code points (§D.3).
pub const MIN_LINE_LENGTH: usize = 8;
/// `DataDigester.atomic_num_lines`: up to this many kept lines, all are
/// hashed; above it, only the sampled ones (§E).
pub const ATOMIC_NUM_LINES: usize = 4;
/// The `\S{10,}` rule: words of this many code points or more are removed.
pub const LONG_WORD: usize = 10;
/// The GTUBE test string (SpamAssassin's generic test for unsolicited bulk
/// email), one 68-character word.
pub const GTUBE: &str = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

/// Longest source or removed-word text kept, in characters (longer ones are
/// cut and end with `…`).
pub const MAX_TEXT_CHARS: usize = 120;
/// Removed words kept as examples, per rule.
pub const MAX_EXAMPLES: usize = 3;

/// One of the reference's `DataDigester.normalize` removal rules, in the
/// order it applies them (§D.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// `re.sub(r"\S{10,}", "", s)`: a word of 10 or more characters.
    LongWord,
    /// `re.sub(r"\S+@\S+", "", s)`: a word with an `@` inside it.
    Address,
    /// `re.sub(r"[a-z]+:\S+", "", s, flags=re.I)`: from a letter run
    /// followed by `:` to the end of the word.
    Url,
}

impl Rule {
    /// The rule as the reference writes it.
    pub fn pattern(self) -> &'static str {
        match self {
            Rule::LongWord => r"\S{10,}",
            Rule::Address => r"\S+@\S+",
            Rule::Url => r"[a-z]+:\S+ (ignoring case)",
        }
    }

    /// A stable name (for machine output).
    pub fn code(self) -> &'static str {
        match self {
            Rule::LongWord => "long-word",
            Rule::Address => "address",
            Rule::Url => "url",
        }
    }
}

/// A word (or the end of one) the normalisation removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    /// Which rule removed it.
    pub rule: Rule,
    /// The removed text, cut to [`MAX_TEXT_CHARS`].
    pub text: String,
}

/// How many words each rule removed, over the whole message, with the
/// first few of each as examples.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removed {
    /// Words of 10 or more characters.
    pub long_words: usize,
    /// Words with an inner `@`.
    pub addresses: usize,
    /// Words cut by the `scheme:` rule.
    pub urls: usize,
    /// Up to [`MAX_EXAMPLES`] examples per rule, in message order.
    pub examples: Vec<Removal>,
    /// Whether the GTUBE string was among the removed long words.
    pub gtube: bool,
}

impl Removed {
    fn count(&mut self, rule: Rule, text: &str) {
        let n = match rule {
            Rule::LongWord => &mut self.long_words,
            Rule::Address => &mut self.addresses,
            Rule::Url => &mut self.urls,
        };
        *n += 1;
        if *n <= MAX_EXAMPLES {
            self.examples.push(Removal {
                rule,
                text: cut(text),
            });
        }
        if rule == Rule::LongWord && text.contains(GTUBE) {
            self.gtube = true;
        }
    }

    /// Words removed by all rules together.
    pub fn total(&self) -> usize {
        self.long_words + self.addresses + self.urls
    }
}

/// One hashed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashedLine {
    /// Its index among the kept lines (0-based; the sampling rule works on
    /// these).
    pub index: usize,
    /// The normalised line, as hashed (UTF-8, lone surrogates dropped).
    pub normalized: Vec<u8>,
    /// Which MIME leaf part it came from (1-based, walk order).
    pub part: usize,
    /// Its line number in that part's decoded text (1-based,
    /// `str.splitlines()` numbering).
    pub line: usize,
    /// That line before normalisation, cut to [`MAX_TEXT_CHARS`].
    pub source: String,
}

/// Which of the kept lines the digest hashes (§E).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sampling {
    /// No line was kept: the digest is SHA-1 of nothing.
    Empty,
    /// At most [`ATOMIC_NUM_LINES`] lines were kept: all are hashed.
    All,
    /// More were kept: the three lines starting at 20 % and the three
    /// starting at 60 % of the list are hashed, the rest are not.
    Sampled {
        /// The distinct kept-line indexes hashed, ascending.
        used: Vec<usize>,
        /// Kept lines not hashed.
        skipped: usize,
    },
}

/// Something about this digest a person should know before acting on its
/// counts. [`Warning::code`] is stable (machine output); [`Warning::text`]
/// says it in plain words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// The digest is [`EMPTY_DIGEST`]: no line survived.
    EmptyDigest,
    /// The GTUBE string was in the message and the long-word rule removed
    /// it.
    Gtube,
    /// Only 1 to [`ATOMIC_NUM_LINES`] lines survived.
    FewLines {
        /// Lines kept.
        kept: usize,
    },
    /// More than [`ATOMIC_NUM_LINES`] lines survived and only some were
    /// hashed.
    Sampled {
        /// Lines kept.
        kept: usize,
        /// Distinct kept-line indexes hashed, ascending.
        used: Vec<usize>,
    },
}

/// The stable machine codes of [`Warning`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WarningCode {
    /// `empty-digest`
    EmptyDigest,
    /// `gtube`
    Gtube,
    /// `few-lines`
    FewLines,
    /// `sampled`
    Sampled,
}

impl WarningCode {
    /// The code as text.
    pub fn as_str(self) -> &'static str {
        match self {
            WarningCode::EmptyDigest => "empty-digest",
            WarningCode::Gtube => "gtube",
            WarningCode::FewLines => "few-lines",
            WarningCode::Sampled => "sampled",
        }
    }
}

impl fmt::Display for WarningCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Warning {
    /// The stable code.
    pub fn code(&self) -> WarningCode {
        match self {
            Warning::EmptyDigest => WarningCode::EmptyDigest,
            Warning::Gtube => WarningCode::Gtube,
            Warning::FewLines { .. } => WarningCode::FewLines,
            Warning::Sampled { .. } => WarningCode::Sampled,
        }
    }

    /// The warning in plain words.
    pub fn text(&self) -> String {
        match self {
            Warning::EmptyDigest => format!(
                "The digest is {EMPTY_DIGEST}, the digest of a message with no usable text: \
                 no line kept {MIN_LINE_LENGTH} or more characters after normalisation. It matches \
                 every empty message (attachments only, images only, or only links, addresses and \
                 long words), so its counts say nothing about this message; many servers and \
                 filters ignore it."
            ),
            Warning::Gtube => format!(
                "The message holds the GTUBE test string ({GTUBE}). It is a single {}-character word, \
                 and the digest removes every word of {LONG_WORD} or more characters \
                 (DataDigester.normalize: re.sub(r\"\\S{{10,}}\", \"\", line)), so GTUBE contributes \
                 nothing to the digest: it is the digest of the message's other text (the empty \
                 digest when there is none), and Pyzor cannot tell a GTUBE test from other mail.",
                GTUBE.chars().count()
            ),
            Warning::FewLines { kept } => format!(
                "Only {kept} line{} of {MIN_LINE_LENGTH} or more characters survived normalisation \
                 (words of {LONG_WORD}+ characters, addresses and URLs are removed, then all white \
                 space); a digest of so little text is shared by many unrelated messages.",
                if *kept == 1 { "" } else { "s" }
            ),
            Warning::Sampled { kept, used } => {
                let ends = match (used.first() != Some(&0), used.last() != Some(&(kept - 1))) {
                    (true, true) => " (the first and the last line among them)",
                    (true, false) => " (the first line among them)",
                    (false, true) => " (the last line among them)",
                    (false, false) => "",
                };
                let other = kept - used.len();
                format!(
                    "The digest samples lines: of {kept} usable lines only {} are hashed ({}: three \
                     starting at 20 % and three at 60 % of the way through), so the other {other} \
                     {}{ends} {} not change it; messages that differ only there share this \
                     digest.",
                    used.len(),
                    index_ranges(used),
                    if other == 1 { "line" } else { "lines" },
                    if other == 1 { "does" } else { "do" },
                )
            }
        }
    }
}

/// `1-3, 7` style list of 0-based indexes shown 1-based.
fn index_ranges(ix: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ix.len() {
        let mut j = i;
        while j + 1 < ix.len() && ix[j + 1] == ix[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            format!("line {}", ix[i] + 1)
        } else {
            format!("lines {}-{}", ix[i] + 1, ix[j] + 1)
        });
        i = j + 1;
    }
    out.join(", ")
}

/// What [`explain`] found.
#[derive(Debug, Clone)]
pub struct Explanation {
    /// The digest (identical to [`crate::digest_message`]).
    pub digest: Digest,
    /// The hashed lines in hashing order (a line sampled twice appears
    /// twice, §E).
    pub lines: Vec<HashedLine>,
    /// Lines kept after normalisation (the sampling works on these).
    pub kept: usize,
    /// Lines of decoded text looked at, kept or not.
    pub source_lines: usize,
    /// Which kept lines are hashed.
    pub sampling: Sampling,
    /// What the normalisation removed.
    pub removed: Removed,
    /// Warnings, in the order: empty digest, GTUBE, few lines, sampled.
    pub warnings: Vec<Warning>,
}

/// Cut `s` to [`MAX_TEXT_CHARS`] characters.
fn cut(s: &str) -> String {
    match s.char_indices().nth(MAX_TEXT_CHARS) {
        None => s.to_string(),
        Some((at, _)) => format!("{}…", &s[..at]),
    }
}

/// Explain the digest of one message (style `msg`). Fails exactly where
/// [`crate::digest_message`] fails.
pub fn explain(raw: &[u8]) -> Result<Explanation, DigestError> {
    let pre = predigest(raw)?;
    let digest = pre.digest();
    let kept = pre.lines.len();
    let selected = Selection::new(kept);
    let wanted = selected.as_slice();

    let mut walk = Walk {
        wanted,
        sources: vec![None; wanted.len()],
        kept: 0,
        source_lines: 0,
        removed: Removed::default(),
        one: Lines::default(),
        word: Lines::default(),
    };
    let mut part_no = 0usize;
    crate::mime::parse_leaves(raw, &mut |part| {
        part_no += 1;
        let (text, stand_ins) = if part.maintype() == "text" {
            crate::text_part(&part)?
        } else {
            crate::non_text_part(&part)?
        };
        walk.payload(part_no, &text, stand_ins);
        Ok(())
    })?;

    // Both walks keep the same lines (the same normaliser decides).
    debug_assert_eq!(walk.kept, kept, "explain's walk disagrees with predigest");

    let lines: Vec<HashedLine> = wanted
        .iter()
        .zip(walk.sources)
        .map(|(&index, src)| {
            let (part, line, source) = src.unwrap_or((0, 0, String::new()));
            HashedLine {
                index,
                normalized: pre.lines.get(index).to_vec(),
                part,
                line,
                source,
            }
        })
        .collect();

    let sampling = if kept == 0 {
        Sampling::Empty
    } else if kept <= ATOMIC_NUM_LINES {
        Sampling::All
    } else {
        let mut used = wanted.to_vec();
        used.dedup();
        Sampling::Sampled {
            skipped: kept - used.len(),
            used,
        }
    };
    let mut warnings = Vec::new();
    if digest.to_string() == EMPTY_DIGEST {
        warnings.push(Warning::EmptyDigest);
    }
    if walk.removed.gtube {
        warnings.push(Warning::Gtube);
    }
    match &sampling {
        Sampling::All => warnings.push(Warning::FewLines { kept }),
        Sampling::Sampled { used, .. } => warnings.push(Warning::Sampled {
            kept,
            used: used.clone(),
        }),
        Sampling::Empty => {}
    }
    Ok(Explanation {
        digest,
        lines,
        kept,
        source_lines: walk.source_lines,
        sampling,
        removed: walk.removed,
        warnings,
    })
}

/// The second walk over the message's lines.
struct Walk<'s> {
    /// Kept-line indexes hashed, in hashing order.
    wanted: &'s [usize],
    /// For each wanted entry: part, line number, source text.
    sources: Vec<Option<(usize, usize, String)>>,
    kept: usize,
    source_lines: usize,
    removed: Removed,
    /// Scratch: one line through the real normaliser.
    one: Lines,
    /// Scratch: one word through the real normaliser.
    word: Lines,
}

/// Appended to a word so that the real normaliser keeps the line whatever
/// the word leaves: eight plain ASCII letters, untouched by every rule.
const PAD: &str = " ABCDEFGH";

impl Walk<'_> {
    /// `for line in payload.splitlines()` as `DataDigester.__init__` does.
    fn payload(&mut self, part: usize, text: &str, stand_ins: StandIns) {
        for (n, line) in py_splitlines(text).enumerate() {
            self.source_lines += 1;
            self.words(line, stand_ins);
            self.one.clear();
            self.one.add_payload_with(line, stand_ins);
            if self.one.len() == 1 {
                for (slot, &w) in self.sources.iter_mut().zip(self.wanted) {
                    if w == self.kept {
                        *slot = Some((part, n + 1, cut(line)));
                    }
                }
                self.kept += 1;
            }
        }
    }

    /// Which rule removed which word of `line`. The rules act on each
    /// white-space-separated word alone (NULs removed first, so a NUL joins
    /// its neighbours; see `normalize`), so each word is put through the
    /// real normaliser with [`PAD`] and what it left is compared with it.
    fn words(&mut self, line: &str, stand_ins: StandIns) {
        let line: std::borrow::Cow<'_, str> = if line.contains('\0') {
            line.replace('\0', "").into()
        } else {
            line.into()
        };
        for w in line.split(py_isspace).filter(|w| !w.is_empty()) {
            // An ASCII word under 10 characters without '@' or ':' is
            // untouched by every rule: skip the round trip.
            if w.len() < LONG_WORD && !w.contains(['@', ':']) && w.is_ascii() {
                continue;
            }
            self.word.clear();
            self.word.add_payload_with(&format!("{w}{PAD}"), stand_ins);
            if self.word.len() != 1 {
                continue;
            }
            let left = self.word.get(0);
            let left = &left[..left.len().saturating_sub(PAD.len() - 1)];
            // The word as it is encoded when nothing is removed (lone
            // surrogates dropped, §D.3).
            let whole: std::borrow::Cow<'_, str> =
                if stand_ins.is_some() && w.chars().any(|c| stand_ins.contains(c)) {
                    w.chars()
                        .filter(|&c| !stand_ins.contains(c))
                        .collect::<String>()
                        .into()
                } else {
                    w.into()
                };
            if left.len() >= whole.len() {
                continue;
            }
            let rule = if w.chars().count() >= LONG_WORD {
                Rule::LongWord
            } else if left.is_empty()
                && w.len() >= 3
                && w.as_bytes()[1..w.len() - 1].contains(&b'@')
            {
                Rule::Address
            } else {
                Rule::Url
            };
            let gone = match whole.as_bytes().strip_prefix(left) {
                Some(_) => &whole[left.len()..],
                None => &whole[..],
            };
            self.removed.count(rule, gone);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(e: &Explanation) -> Vec<&'static str> {
        e.warnings.iter().map(|w| w.code().as_str()).collect()
    }

    #[test]
    fn empty_body_warns_empty_digest() {
        let e = explain(b"Subject: nothing\n\n").unwrap();
        assert_eq!(e.digest.to_string(), EMPTY_DIGEST);
        assert_eq!(codes(&e), ["empty-digest"]);
        assert_eq!(e.sampling, Sampling::Empty);
        assert!(e.lines.is_empty());
        assert!(e.warnings[0].text().contains("matches every empty message"));
    }

    #[test]
    fn gtube_is_removed_as_a_long_word() {
        let raw = b"Subject: gtube\n\nXJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\n\nThis is the GTUBE test message body.\n";
        let e = explain(raw).unwrap();
        assert_eq!(codes(&e), ["gtube", "few-lines"]);
        assert_eq!(e.removed.long_words, 1);
        assert_eq!(e.removed.examples[0].rule, Rule::LongWord);
        assert_eq!(e.removed.examples[0].text, GTUBE);
        assert_eq!(e.kept, 1);
        assert_eq!(e.lines[0].normalized, b"ThisistheGTUBEtestmessagebody.");
        assert_eq!((e.lines[0].part, e.lines[0].line), (1, 3));
        assert!(e.warnings[0].text().contains("68-character word"));
    }

    #[test]
    fn long_body_reports_the_sampled_lines() {
        let mut raw = b"Subject: long\n\n".to_vec();
        for i in 0..20 {
            raw.extend_from_slice(format!("this is body line number {i}\n").as_bytes());
        }
        let e = explain(&raw).unwrap();
        assert_eq!(e.digest, crate::digest_message(&raw).unwrap());
        assert_eq!(e.kept, 20);
        // 20 % of 20 = 4, 60 % = 12.
        assert_eq!(
            e.sampling,
            Sampling::Sampled {
                used: vec![4, 5, 6, 12, 13, 14],
                skipped: 14
            }
        );
        assert_eq!(codes(&e), ["sampled"]);
        let idx: Vec<usize> = e.lines.iter().map(|l| l.index).collect();
        assert_eq!(idx, [4, 5, 6, 12, 13, 14]);
        assert_eq!(e.lines[0].source, "this is body line number 4");
        assert_eq!(e.lines[0].line, 5);
        let t = e.warnings[0].text();
        assert!(t.contains("lines 5-7, lines 13-15"), "{t}");
        assert!(
            t.contains("other 14 lines (the first and the last line among them)"),
            "{t}"
        );
    }

    #[test]
    fn five_lines_sample_one_line_twice() {
        let mut raw = b"\n".to_vec();
        for i in 0..5 {
            raw.extend_from_slice(format!("line of text {i}\n").as_bytes());
        }
        let e = explain(&raw).unwrap();
        let idx: Vec<usize> = e.lines.iter().map(|l| l.index).collect();
        assert_eq!(idx, [1, 2, 3, 3, 4]);
        assert_eq!(
            e.sampling,
            Sampling::Sampled {
                used: vec![1, 2, 3, 4],
                skipped: 1
            }
        );
    }

    #[test]
    fn rules_are_named_for_what_they_removed() {
        let raw = b"\nwrite to bo@ex.org or see http://x.example/a today\nNote:this 12:30 stays ab@ here\n";
        let e = explain(raw).unwrap();
        assert_eq!(e.removed.addresses, 1);
        assert_eq!(e.removed.long_words, 1, "{:?}", e.removed);
        assert_eq!(e.removed.urls, 1, "{:?}", e.removed);
        let ex: Vec<(Rule, &str)> = e
            .removed
            .examples
            .iter()
            .map(|r| (r.rule, r.text.as_str()))
            .collect();
        assert_eq!(
            ex,
            [
                (Rule::Address, "bo@ex.org"),
                (Rule::LongWord, "http://x.example/a"),
                (Rule::Url, "Note:this"),
            ]
        );
        // What survived is the hashed text.
        assert_eq!(e.lines[0].normalized, b"writetoorseetoday");
        assert_eq!(e.lines[1].normalized, b"12:30staysab@here");
    }

    #[test]
    fn normal_message_digest_and_lines_are_the_predigest() {
        let raw = b"Subject: hi\n\nDear friend,\nthank you for the lovely dinner last night.\nThe garden looked wonderful in the evening light.\nWe should do it again soon.\nSee you on Sunday at the market.\nLove, Anne and the children\n";
        let e = explain(raw).unwrap();
        assert_eq!(e.digest, crate::digest_message(raw).unwrap());
        let pre = crate::predigest_lines(raw).unwrap();
        let got: Vec<Vec<u8>> = e.lines.iter().map(|l| l.normalized.clone()).collect();
        assert_eq!(got, pre);
        assert_eq!(e.kept, 6);
        assert!(e.lines.iter().all(|l| l.part == 1 && !l.source.is_empty()));
        assert_eq!(codes(&e), ["sampled"]);
    }

    /// Every message of the golden corpus (made by Pyzor 1.1.2): the
    /// hashed lines are the reference's `predigest` output, and each one
    /// is traced back to a source line.
    #[test]
    fn corpus_hashed_lines_are_the_references_predigest() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/digest-corpus");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("eml") {
                continue;
            }
            let Ok(golden) = std::fs::read(path.with_extension("predigest")) else {
                continue;
            };
            let raw = std::fs::read(&path).unwrap();
            let Ok(e) = explain(&raw) else { continue };
            let mut got = Vec::new();
            for l in &e.lines {
                got.extend_from_slice(&l.normalized);
                got.push(b'\n');
                assert!(l.part >= 1 && l.line >= 1, "{}: {l:?}", path.display());
            }
            assert_eq!(got, golden, "{}", path.display());
            checked += 1;
        }
        assert!(checked > 500, "only {checked} corpus cases checked");
    }

    /// Random lines over an alphabet of the rules' characters, multi-byte
    /// letters among them: no panic, and the hashed lines are the digest's.
    #[test]
    fn random_text_never_panics_and_agrees_with_predigest() {
        let alphabet: Vec<char> = "ab:@ \tü\u{130}\u{212a}é日x1\0.\n\r\u{2028}\u{a0}"
            .chars()
            .collect();
        let mut rng = pyzor_testkit::XorShift::new(0x5eed_1234_abcd_0042);
        for _ in 0..3000 {
            let len = rng.below(120);
            let body: String = (0..len).map(|_| rng.pick(&alphabet)).collect();
            let raw = format!("Subject: r\n\n{body}");
            let e = explain(raw.as_bytes()).unwrap();
            let pre = crate::predigest_lines(raw.as_bytes()).unwrap();
            let got: Vec<Vec<u8>> = e.lines.iter().map(|l| l.normalized.clone()).collect();
            assert_eq!(got, pre, "{body:?}");
            assert_eq!(e.digest, crate::digest_message(raw.as_bytes()).unwrap());
        }
    }

    #[test]
    fn hostile_sizes_stay_bounded() {
        let mut raw = b"\n".to_vec();
        for _ in 0..2000 {
            raw.extend_from_slice(&[b'x'; 5000]);
            raw.extend_from_slice(b" a@b q:r\n");
        }
        let e = explain(&raw).unwrap();
        assert_eq!(e.removed.long_words, 2000);
        assert!(e.removed.examples.len() <= 3 * MAX_EXAMPLES);
        assert!(e
            .removed
            .examples
            .iter()
            .all(|r| r.text.chars().count() <= MAX_TEXT_CHARS + 1));
        assert!(e.lines.len() <= 6);
    }
}
