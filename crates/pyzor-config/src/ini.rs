//! A reader for the INI dialect of Python 3's `configparser.ConfigParser()`
//! with its default settings, which is what the reference `pyzor` and
//! `pyzord` scripts use (docs/field-notes.md §5.2).
//!
//! Semantics reproduced (each in one place below):
//! * sections `[name]` (names case-sensitive, `SECTCRE` = `\[(?P<header>.+)\]`
//!   matched at the start of the stripped line); a `[DEFAULT]` section whose
//!   options every section inherits;
//! * options `key = value` or `key: value`, split at the **first** `=` or `:`;
//!   keys lower-cased (`optionxform`), values stripped;
//! * full-line comments only (`#` or `;` as the first non-blank character);
//!   **inline comments are not stripped** (`Timeout = 5 # s` is the value
//!   `5 # s`);
//! * continuation lines: a line indented deeper than the option line that
//!   started the value is appended with `\n`; empty lines inside a value are
//!   kept and trailing ones removed;
//! * `strict`: a section or an option given twice in one file is an error;
//! * `BasicInterpolation` on [`Ini::get`]: `%%` → `%`, `%(name)s` → the
//!   (interpolated) value of `name` in the same section or `[DEFAULT]`,
//!   nesting limited to 10 levels; any other `%` is an error.
//!
//! Errors carry the file name and line number, and say what is wrong.

use std::collections::BTreeMap;
use std::path::Path;

use pyzor_protocol::py::{py_isspace, py_strip};

/// The name of the section whose options every other section inherits.
pub(crate) const DEFAULT_SECTION: &str = "DEFAULT";
/// `configparser.MAX_INTERPOLATION_DEPTH`.
const MAX_INTERPOLATION_DEPTH: usize = 10;

/// Why a configuration file could not be read or a value not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IniError {
    #[error("{file}, line {line}: option line before any [section] header: {text:?}; add a section header such as [server] above it")]
    MissingSectionHeader {
        file: String,
        line: usize,
        text: String,
    },
    #[error("{file}, line {line}: section [{section}] appears twice; merge the two sections")]
    DuplicateSection {
        file: String,
        line: usize,
        section: String,
    },
    #[error(
        "{file}, line {line}: option {option:?} appears twice in section [{section}]; remove one"
    )]
    DuplicateOption {
        file: String,
        line: usize,
        section: String,
        option: String,
    },
    #[error("{file}, line {line}: cannot parse {text:?}; expected `key = value`, `key: value`, a [section] or a # comment")]
    Parsing {
        file: String,
        line: usize,
        text: String,
    },
    #[error("{file}: not valid UTF-8 text")]
    NotUtf8 { file: String },
    #[error("cannot read {file}: {reason}")]
    Io { file: String, reason: String },
    #[error("bad value for {option:?} in [{section}]: {reason}; write a literal % as %%")]
    InterpolationSyntax {
        section: String,
        option: String,
        reason: String,
    },
    #[error("value of {option:?} in [{section}] refers to %({missing})s, which is not set")]
    InterpolationMissing {
        section: String,
        option: String,
        missing: String,
    },
    #[error("value of {option:?} in [{section}] nests %(...)s references too deeply (more than 10 levels)")]
    InterpolationDepth { section: String, option: String },
    #[error("no section [{0}]")]
    NoSection(String),
}

/// One section: lower-cased option name → raw (uninterpolated) value.
pub(crate) type Section = BTreeMap<String, String>;

/// A parsed configuration, as `ConfigParser` holds it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ini {
    defaults: Section,
    /// Sections in insertion order.
    sections: Vec<(String, Section)>,
}

impl Ini {
    /// An empty configuration.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parse `text` as a whole file named `file` (used in error messages).
    pub fn parse(text: &str, file: &str) -> Result<Self, IniError> {
        let mut ini = Ini::new();
        ini.read_str(text, file)?;
        Ok(ini)
    }

    /// `ConfigParser.read(path)`: a missing file is silently ignored
    /// (returns `Ok(false)`); otherwise its options are merged in.
    pub(crate) fn read_file(&mut self, path: &Path) -> Result<bool, IniError> {
        let file = path.display().to_string();
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => {
                return Err(IniError::Io {
                    file,
                    reason: e.to_string(),
                })
            }
        };
        let text =
            String::from_utf8(bytes).map_err(|_| IniError::NotUtf8 { file: file.clone() })?;
        self.read_str(&text, &file)?;
        Ok(true)
    }

    /// Add a section (no error if it exists, unlike Python; callers use it
    /// to seed defaults).
    pub(crate) fn add_section(&mut self, name: &str) {
        if name != DEFAULT_SECTION && self.section(name).is_none() {
            self.sections.push((name.to_owned(), Section::new()));
        }
    }

    /// `ConfigParser.set`: the option name is lower-cased.
    pub fn set(&mut self, section: &str, option: &str, value: &str) {
        self.add_section(section);
        let key = optionxform(option);
        self.section_mut(section).insert(key, value.to_owned());
    }

    /// The raw value of `option` (case-insensitive) in `section` or `[DEFAULT]`.
    pub(crate) fn get_raw(&self, section: &str, option: &str) -> Option<&str> {
        let key = optionxform(option);
        self.section(section)
            .and_then(|s| s.get(&key))
            .or_else(|| self.defaults.get(&key))
            .map(String::as_str)
    }

    /// `ConfigParser.get(section, option)`: interpolated value; `Ok(None)`
    /// when the option is not set.
    pub fn get(&self, section: &str, option: &str) -> Result<Option<String>, IniError> {
        let Some(raw) = self.get_raw(section, option) else {
            return Ok(None);
        };
        let mut out = String::with_capacity(raw.len());
        self.interpolate(section, &optionxform(option), raw, &mut out, 1)?;
        Ok(Some(out))
    }

    /// The names of the sections (without `DEFAULT`), in file order.
    pub fn sections(&self) -> impl Iterator<Item = &str> {
        self.sections.iter().map(|(n, _)| n.as_str())
    }

    /// The options of a section (own and inherited from `[DEFAULT]`), raw.
    pub fn options(&self, section: &str) -> Result<Vec<(&str, &str)>, IniError> {
        let sec = self
            .section(section)
            .ok_or_else(|| IniError::NoSection(section.to_owned()))?;
        let mut all: BTreeMap<&str, &str> = self
            .defaults
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        all.extend(sec.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        Ok(all.into_iter().collect())
    }

    fn section(&self, name: &str) -> Option<&Section> {
        if name == DEFAULT_SECTION {
            return Some(&self.defaults);
        }
        self.sections
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s)
    }

    fn section_mut(&mut self, name: &str) -> &mut Section {
        if name == DEFAULT_SECTION {
            return &mut self.defaults;
        }
        let i = self
            .sections
            .iter()
            .position(|(n, _)| n == name)
            .expect("section added before");
        &mut self.sections[i].1
    }

    /// `RawConfigParser._read` with the default options (strict, no inline
    /// comments, empty lines in values, `=`/`:` delimiters).
    fn read_str(&mut self, text: &str, file: &str) -> Result<(), IniError> {
        // (section, option) pairs and sections seen in *this* file (strict mode).
        let mut seen_sections: Vec<String> = Vec::new();
        let mut seen_options: Vec<(String, String)> = Vec::new();
        // Values being built: (section, option) -> lines.
        let mut cur_section: Option<String> = None;
        let mut cur_option: Option<String> = None;
        let mut cur_lines: Vec<String> = Vec::new();
        let mut indent_level = 0usize;
        let mut first_error: Option<IniError> = None;

        let flush =
            |ini: &mut Ini, sec: &Option<String>, opt: &Option<String>, lines: &mut Vec<String>| {
                if let (Some(s), Some(o)) = (sec, opt) {
                    // `_join_multiline_values`: "\n".join(lines).rstrip()
                    let joined = lines.join("\n");
                    let v = joined.trim_end_matches(py_isspace).to_owned();
                    ini.section_mut(s).insert(o.clone(), v);
                }
                lines.clear();
            };

        for (idx, line) in split_file_lines(text).enumerate() {
            let lineno = idx + 1;
            let stripped = py_strip(line);
            let is_comment = stripped.starts_with('#') || stripped.starts_with(';');
            let value = if is_comment { "" } else { stripped };
            if value.is_empty() {
                // Empty lines belong to the current value (only if not a comment).
                if !is_comment && cur_section.is_some() && has_option(cur_option.as_deref()) {
                    cur_lines.push(String::new());
                }
                continue;
            }
            let cur_indent = line.find(|c: char| !py_isspace(c)).unwrap_or(0);
            if cur_section.is_some()
                && has_option(cur_option.as_deref())
                && cur_indent > indent_level
            {
                cur_lines.push(value.to_owned());
                continue;
            }
            indent_level = cur_indent;
            if let Some(name) = section_header(value) {
                flush(self, &cur_section, &cur_option, &mut cur_lines);
                cur_option = None;
                if seen_sections.iter().any(|s| s == name) {
                    return Err(IniError::DuplicateSection {
                        file: file.to_owned(),
                        line: lineno,
                        section: name.to_owned(),
                    });
                }
                if name != DEFAULT_SECTION {
                    seen_sections.push(name.to_owned());
                }
                self.add_section(name);
                cur_section = Some(name.to_owned());
                continue;
            }
            let Some(section) = cur_section.clone() else {
                return Err(IniError::MissingSectionHeader {
                    file: file.to_owned(),
                    line: lineno,
                    text: line.to_owned(),
                });
            };
            match split_option(value) {
                Some((name, val)) => {
                    flush(self, &cur_section, &cur_option, &mut cur_lines);
                    if name.is_empty() && first_error.is_none() {
                        first_error = Some(IniError::Parsing {
                            file: file.to_owned(),
                            line: lineno,
                            text: line.to_owned(),
                        });
                    }
                    let key = optionxform(name);
                    if seen_options.iter().any(|(s, o)| *s == section && *o == key) {
                        return Err(IniError::DuplicateOption {
                            file: file.to_owned(),
                            line: lineno,
                            section,
                            option: key,
                        });
                    }
                    seen_options.push((section.clone(), key.clone()));
                    cur_lines.push(val.to_owned());
                    cur_option = Some(key);
                }
                None => {
                    // Python records the error and goes on; the option
                    // being read stays open for continuation lines.
                    if first_error.is_none() {
                        first_error = Some(IniError::Parsing {
                            file: file.to_owned(),
                            line: lineno,
                            text: line.to_owned(),
                        });
                    }
                }
            }
        }
        flush(self, &cur_section, &cur_option, &mut cur_lines);
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// `BasicInterpolation._interpolate_some`.
    fn interpolate(
        &self,
        section: &str,
        option: &str,
        raw: &str,
        out: &mut String,
        depth: usize,
    ) -> Result<(), IniError> {
        if depth > MAX_INTERPOLATION_DEPTH {
            return Err(IniError::InterpolationDepth {
                section: section.to_owned(),
                option: option.to_owned(),
            });
        }
        let mut rest = raw;
        while !rest.is_empty() {
            let Some(p) = rest.find('%') else {
                out.push_str(rest);
                return Ok(());
            };
            out.push_str(&rest[..p]);
            rest = &rest[p..];
            let next = rest[1..].chars().next();
            match next {
                Some('%') => {
                    out.push('%');
                    rest = &rest[2..];
                }
                Some('(') => {
                    // _KEYCRE = %\(([^)]+)\)s
                    let close = rest[2..].find(')').map(|i| i + 2);
                    let name = match close {
                        Some(c) if c > 2 && rest[c + 1..].starts_with('s') => &rest[2..c],
                        _ => {
                            return Err(IniError::InterpolationSyntax {
                                section: section.to_owned(),
                                option: option.to_owned(),
                                reason: format!("bad interpolation variable reference {rest:?}"),
                            })
                        }
                    };
                    let end = close.unwrap_or(0) + 2;
                    let var = optionxform(name);
                    let Some(v) = self.get_raw(section, &var) else {
                        return Err(IniError::InterpolationMissing {
                            section: section.to_owned(),
                            option: option.to_owned(),
                            missing: var,
                        });
                    };
                    if v.contains('%') {
                        self.interpolate(section, option, v, out, depth + 1)?;
                    } else {
                        out.push_str(v);
                    }
                    rest = &rest[end..];
                }
                _ => {
                    return Err(IniError::InterpolationSyntax {
                        section: section.to_owned(),
                        option: option.to_owned(),
                        reason: format!("'%' must be followed by '%' or '(', found: {rest:?}"),
                    })
                }
            }
        }
        Ok(())
    }
}

/// Python tests `optname` for truth: an option with an empty name (an
/// error line such as `= v`) takes no continuation lines.
fn has_option(o: Option<&str>) -> bool {
    o.is_some_and(|o| !o.is_empty())
}

/// `ConfigParser.optionxform`: `str.lower()`.
fn optionxform(name: &str) -> String {
    name.to_lowercase()
}

/// Lines of a text file as Python's universal-newline reading yields them
/// (`\n`, `\r\n` and `\r` end a line), without their line ends.
fn split_file_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        match rest.find(['\n', '\r']) {
            Some(i) => {
                let line = &rest[..i];
                let skip = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = &rest[i + skip..];
                Some(line)
            }
            None => {
                let line = rest;
                rest = "";
                Some(line)
            }
        }
    })
}

/// `SECTCRE.match(value)`: `[` + at least one character + the **last** `]`
/// of the line (greedy `.+`); text after that `]` is ignored.
fn section_header(value: &str) -> Option<&str> {
    let inner = value.strip_prefix('[')?;
    let close = inner.rfind(']')?;
    if close == 0 {
        return None;
    }
    Some(&inner[..close])
}

/// `OPTCRE`: the option name is everything before the first `=` or `:`
/// (right-stripped), the value everything after it (stripped).
fn split_option(value: &str) -> Option<(&str, &str)> {
    let i = value.find(['=', ':'])?;
    let name = value[..i].trim_end_matches(py_isspace);
    let val = py_strip(&value[i + 1..]);
    Some((name, val))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Ini {
        Ini::parse(t, "config").unwrap()
    }

    #[test]
    fn keys_case_insensitive_values_verbatim_with_inline_comment() {
        let ini = parse("[server]\nPort = 24441 # the port\nListenAddress: ::1\n");
        assert_eq!(
            ini.get("server", "port").unwrap().as_deref(),
            Some("24441 # the port")
        );
        assert_eq!(
            ini.get("server", "LISTENADDRESS").unwrap().as_deref(),
            Some("::1")
        );
        assert_eq!(ini.get("client", "port").unwrap(), None);
    }

    #[test]
    fn first_delimiter_splits() {
        let ini = parse("[s]\na = b:c=d\ne: f=g\n");
        assert_eq!(ini.get_raw("s", "a"), Some("b:c=d"));
        assert_eq!(ini.get_raw("s", "e"), Some("f=g"));
    }

    #[test]
    fn comments_full_line_only_and_indented() {
        let ini = parse("# c\n; c\n[s]\n  # indented comment\na = 1\n");
        assert_eq!(ini.get_raw("s", "a"), Some("1"));
    }

    #[test]
    fn continuation_lines_and_empty_lines_in_values() {
        let ini = parse("[s]\na = first\n  second\n\n\tthird\n\n\nb = x\n");
        assert_eq!(ini.get_raw("s", "a"), Some("first\nsecond\n\nthird"));
        assert_eq!(ini.get_raw("s", "b"), Some("x"));
        // An indented `key = value` after a value is a continuation.
        let ini = parse("[s]\na = 1\n  b = 2\n");
        assert_eq!(ini.get_raw("s", "a"), Some("1\nb = 2"));
        assert_eq!(ini.get_raw("s", "b"), None);
    }

    #[test]
    fn interpolation() {
        let ini = parse("[DEFAULT]\nhome = /h\n[s]\nlog = %(home)s/log\npct = 50%%\nbad = 5%\nmiss = %(nope)s\n");
        assert_eq!(ini.get("s", "log").unwrap().as_deref(), Some("/h/log"));
        assert_eq!(ini.get("s", "pct").unwrap().as_deref(), Some("50%"));
        assert!(matches!(
            ini.get("s", "bad"),
            Err(IniError::InterpolationSyntax { .. })
        ));
        assert!(matches!(
            ini.get("s", "miss"),
            Err(IniError::InterpolationMissing { .. })
        ));
        let ini = parse("[s]\na = %(a)s\n");
        assert!(matches!(
            ini.get("s", "a"),
            Err(IniError::InterpolationDepth { .. })
        ));
    }

    #[test]
    fn strict_duplicates_and_errors() {
        assert!(matches!(
            Ini::parse("[s]\na=1\nA=2\n", "f"),
            Err(IniError::DuplicateOption { line: 3, .. })
        ));
        assert!(matches!(
            Ini::parse("[s]\n[s]\n", "f"),
            Err(IniError::DuplicateSection { line: 2, .. })
        ));
        assert!(matches!(
            Ini::parse("a=1\n", "f"),
            Err(IniError::MissingSectionHeader { line: 1, .. })
        ));
        assert!(matches!(
            Ini::parse("[s]\njunk\n", "f"),
            Err(IniError::Parsing { line: 2, .. })
        ));
        assert!(matches!(
            Ini::parse("[s]\n= v\n", "f"),
            Err(IniError::Parsing { .. })
        ));
    }

    #[test]
    fn section_header_greedy_and_trailing_text() {
        let ini = parse("[server] trailing\na = 1\n[x]y]\nb = 2\n");
        assert_eq!(ini.get_raw("server", "a"), Some("1"));
        assert_eq!(ini.get_raw("x]y", "b"), Some("2"));
    }

    #[test]
    fn seeded_defaults_are_overridden_by_file() {
        let mut ini = Ini::new();
        ini.set("server", "Port", "24441");
        ini.read_str("[server]\nport = 1\n", "f").unwrap();
        assert_eq!(ini.get_raw("server", "Port"), Some("1"));
    }

    #[test]
    fn cr_line_endings() {
        let ini = parse("[s]\r\na = 1\rb = 2\r\n");
        assert_eq!(ini.get_raw("s", "b"), Some("2"));
    }
}
