//! Every CPython 3.11 behaviour reproduced by more than one part of
//! pyzor-rs, in one place.
//!
//! Each function names the Python function it mirrors. The digest crate,
//! the configuration crate, the stores, the server and the client call
//! these: a Python rule is written once.
//!
//! | Python | here |
//! | --- | --- |
//! | `str.isspace()` | [`py_isspace`], [`py_isspace_byte`] (one byte of ASCII or surrogate-escaped text) |
//! | `bytes.isspace()`, C `isspace` | [`py_bytes_isspace`] |
//! | `str.splitlines()` | [`py_splitlines`], [`is_line_boundary`], [`is_line_boundary_byte`] |
//! | `str.strip()` | [`py_strip`], [`py_strip_ascii`] |
//! | `int(str)` | [`py_int_outcome`] (value or Python's error text), [`py_int`] |
//! | `int(bytes)` | [`py_int_bytes`] |
//! | `float(str)` | [`py_float`] |
//! | `int(float)` | [`py_int_of_float`] |
//! | `repr(str)`, `%r`; `%.200R` | [`py_repr_str`]; `py_repr_str_max` |
//! | `str((int, str))` | [`py_str_int_str_tuple`] |
//! | `str(OSError)` | [`py_oserror_str`] |
//! | `time.ctime()`; `logging`'s `asctime` | [`py_ctime`]; [`py_log_asctime`] (on a [`StructTime`]) |

use std::borrow::Cow;

// ---------------------------------------------------------------------------
// Whitespace and line boundaries

/// Python `str.isspace()` on an ASCII character, or on one byte of
/// surrogate-escaped text (a byte ≥ 0x80 stands for a lone surrogate, which
/// is never whitespace): `\t`, `\n`, `\v`, `\f`, `\r`, U+001C..U+001F
/// (bidi class B/S) and space. The one definition of Python's ASCII
/// whitespace for `str`, docs/digest-rules.md D.2.
///
/// Written as two ranges (0x1C..=0x20 includes the space): with three, the
/// HTML parser's scanning loops cost measurably more (callgrind on
/// digest-bench).
#[inline]
pub const fn py_isspace_byte(b: u8) -> bool {
    matches!(b, b'\t'..=b'\r' | 0x1c..=b' ')
}

/// C `isspace` in the "C" locale, CPython's `Py_ISSPACE`: what
/// `bytes.isspace()`/`bytes.strip()` use, and what `int()` and `float()`
/// skip around a number. Unlike [`py_isspace_byte`], U+001C..U+001F are not
/// whitespace here.
#[inline]
pub const fn py_bytes_isspace(b: u8) -> bool {
    matches!(b, b'\t'..=b'\r' | b' ')
}

/// Python `str.isspace()`, which is also what `re`'s `\s` matches on `str`
/// patterns: Unicode White_Space **plus** U+001C..U+001F (bidi class B/S),
/// docs/digest-rules.md D.2. Rust's `char::is_whitespace` misses 0x1C..0x1F.
#[inline]
pub fn py_isspace(c: char) -> bool {
    if c.is_ascii() {
        py_isspace_byte(c as u8)
    } else {
        is_non_ascii_space(c)
    }
}

/// The non-ASCII characters `str.isspace()` accepts (Unicode White_Space).
#[inline]
fn is_non_ascii_space(c: char) -> bool {
    matches!(
        c,
        '\u{85}' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}' | '\u{2028}' | '\u{2029}' | '\u{202f}' | '\u{205f}' | '\u{3000}'
    )
}

/// The whitespace `int()` and `float()` skip around a `str` number.
/// CPython's `_PyUnicode_TransformDecimalAndSpaceToASCII` keeps ASCII
/// characters as they are and turns every other `str.isspace()` character
/// into a space; `PyLong_FromString`/`PyFloat_FromString` then skip
/// `Py_ISSPACE` ([`py_bytes_isspace`]). So U+001C..U+001F, which
/// `str.strip()` removes, make `int("\x1c5")` a `ValueError`. (This set is
/// exactly Unicode White_Space, i.e. Rust's `char::is_whitespace`.)
#[inline]
fn py_number_space(c: char) -> bool {
    if c.is_ascii() {
        py_bytes_isspace(c as u8)
    } else {
        is_non_ascii_space(c)
    }
}

/// Python `str.splitlines()` boundaries on an ASCII character or one byte
/// of surrogate-escaped text (a byte 0x85 is a surrogate there, not NEL):
/// `\n`, `\r`, `\v`, `\f`, U+001C..U+001E. U+001F is whitespace but not a
/// boundary (docs/digest-rules.md D.1).
#[inline]
pub const fn is_line_boundary_byte(b: u8) -> bool {
    matches!(b, b'\n' | b'\r' | 0x0b | 0x0c | 0x1c | 0x1d | 0x1e)
}

/// Python `str.splitlines()` boundaries (docs/digest-rules.md D.1): `\r\n`
/// is one boundary; `\x1f` is whitespace but not a boundary.
#[inline]
pub fn is_line_boundary(c: char) -> bool {
    if c.is_ascii() {
        is_line_boundary_byte(c as u8)
    } else {
        matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}')
    }
}

// ---------------------------------------------------------------------------
// str.strip, str.splitlines

/// [`py_isspace_byte`] as a table: measured cheaper than the range tests
/// in the strip loops.
static STR_SPACE: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        t[c] = py_isspace_byte(c as u8);
        c += 1;
    }
    t
};

/// Python `str.strip()` with no argument. Byte tests for ASCII edges,
/// [`py_isspace`] on decoded characters otherwise.
pub fn py_strip(s: &str) -> &str {
    let b = s.as_bytes();
    let ascii_space = |c: u8| STR_SPACE[usize::from(c)];
    // Common case: both ends are ASCII and not whitespace.
    match (b.first(), b.last()) {
        (Some(&f), Some(&l)) if f < 0x80 && l < 0x80 && !ascii_space(f) && !ascii_space(l) => {
            return s
        }
        _ => {}
    }
    let mut start = 0;
    while start < b.len() {
        if b[start] < 0x80 {
            if !ascii_space(b[start]) {
                break;
            }
            start += 1;
        } else {
            match s[start..].chars().next() {
                Some(c) if py_isspace(c) => start += c.len_utf8(),
                _ => break,
            }
        }
    }
    let mut end = b.len();
    while end > start {
        if b[end - 1] < 0x80 {
            if !ascii_space(b[end - 1]) {
                break;
            }
            end -= 1;
        } else {
            match s[start..end].chars().next_back() {
                Some(c) if py_isspace(c) => end -= c.len_utf8(),
                _ => break,
            }
        }
    }
    &s[start..end]
}

/// Python `str.strip()` on ASCII or surrogate-escaped text held as bytes
/// (bytes ≥ 0x80 are surrogates, never whitespace): what
/// `msg.as_string().strip()` and `str(header).strip()` do to such text.
#[inline]
pub fn py_strip_ascii(b: &[u8]) -> &[u8] {
    let space = |c: &u8| STR_SPACE[usize::from(*c)];
    let start = b.iter().position(|c| !space(c)).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !space(c)).map_or(start, |i| i + 1);
    &b[start..end]
}

/// Python `str.splitlines()` (no `keepends`): boundaries removed, no empty
/// trailing element.
pub fn py_splitlines(s: &str) -> impl Iterator<Item = &str> {
    let mut rest = s;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        match rest.char_indices().find(|&(_, c)| is_line_boundary(c)) {
            None => {
                let line = rest;
                rest = "";
                Some(line)
            }
            Some((i, c)) => {
                let line = &rest[..i];
                let mut next = i + c.len_utf8();
                if c == '\r' && rest[next..].starts_with('\n') {
                    next += 1;
                }
                rest = &rest[next..];
                Some(line)
            }
        }
    })
}

// ---------------------------------------------------------------------------
// int(), float()

/// CPython's default `sys.get_int_max_str_digits()`.
pub(crate) const INT_MAX_STR_DIGITS: usize = 4300;

/// A value Python's `int()` returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PyInt<'a> {
    /// The value fits in an `i64`.
    I64(i64),
    /// A valid integer outside `i64` (Python's ints are unbounded).
    Big {
        negative: bool,
        /// The ASCII digits, with the single underscores Python allows
        /// between them.
        digits: &'a str,
    },
}

impl PyInt<'_> {
    /// `float(n)`, as Python converts an int wherever it meets a float.
    /// Correctly rounded (round-half-even), like CPython's conversion.
    pub(crate) fn to_f64(self) -> Result<f64, PyIntTooLargeForFloat> {
        match self {
            PyInt::I64(v) => Ok(v as f64),
            PyInt::Big { negative, digits } => {
                let clean: String = digits.chars().filter(|&c| c != '_').collect();
                match clean.parse::<f64>() {
                    Ok(f) if f.is_finite() => Ok(if negative { -f } else { f }),
                    _ => Err(PyIntTooLargeForFloat),
                }
            }
        }
    }
}

/// Python's `OverflowError` converting a huge int to float.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("int too large to convert to float")]
pub(crate) struct PyIntTooLargeForFloat;

/// Python's `ValueError` from `int(s)` on a `str`, with Python's text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PyIntError<'a> {
    /// Not an integer: `invalid literal for int() with base 10: %.200R`
    /// of the argument.
    #[error("invalid literal for int() with base 10: {}", py_repr_str_max(.0, 200))]
    InvalidLiteral(&'a str),
    /// More digits than `INT_MAX_STR_DIGITS` (checked before what follows
    /// the digits, as CPython does: `"5" * 5000 + "x"` gets this error).
    #[error("Exceeds the limit ({INT_MAX_STR_DIGITS} digits) for integer string conversion: value has {0} digits; use sys.set_int_max_str_digits() to increase the limit")]
    TooManyDigits(usize),
}

/// The grammar of `PyLong_FromString` in base 10 on text whose surrounding
/// whitespace is already removed: an optional sign, then digits with single
/// underscores between them. `Err(None)` for an invalid literal.
fn scan_int(t: &[u8]) -> Result<PyInt<'_>, Option<usize>> {
    let (negative, body) = match t.first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    // "May not start with underscores."
    if body.first() == Some(&b'_') {
        return Err(None);
    }
    // The run of digits and underscores.
    let mut digits = 0usize;
    let mut prev = 0u8;
    let mut run = 0;
    let mut value: Option<i64> = Some(0);
    for &c in body {
        match c {
            b'_' if prev == b'_' => return Err(None), // "Only one underscore allowed."
            b'_' => {}
            b'0'..=b'9' => {
                digits += 1;
                let d = i64::from(c - b'0');
                value = value.and_then(|v| v.checked_mul(10)).and_then(|v| {
                    if negative {
                        v.checked_sub(d)
                    } else {
                        v.checked_add(d)
                    }
                });
            }
            _ => break,
        }
        prev = c;
        run += 1;
    }
    if prev == b'_' {
        return Err(None); // trailing underscore
    }
    if digits > INT_MAX_STR_DIGITS {
        return Err(Some(digits));
    }
    if digits == 0 || run != body.len() {
        return Err(None);
    }
    Ok(match value {
        Some(v) => PyInt::I64(v),
        None => PyInt::Big {
            negative,
            // ASCII digits and underscores.
            digits: std::str::from_utf8(body).unwrap_or_default(),
        },
    })
}

/// Python `int(s)` for a `str` `s` in base 10, with Python's outcome: the
/// value, or the `ValueError` and its text.
///
/// Surrounding whitespace is what `int()` skips (ASCII `\t\n\v\f\r` and
/// space, non-ASCII `str.isspace()` characters; **not** U+001C..U+001F,
/// see `py_number_space`), then an optional sign, ASCII digits with
/// single underscores between digits (`1_000`).
///
/// Python also accepts non-ASCII decimal digits (`"１２"`); these are an
/// invalid literal here. Callers that can see non-ASCII text handle it
/// before (a `Time` header with non-ASCII bytes is a 500 in the reference
/// for another reason, docs/protocol.md §3.2); elsewhere (config values,
/// stored records) only ASCII digits are ever written.
pub fn py_int_outcome(s: &str) -> Result<PyInt<'_>, PyIntError<'_>> {
    let t = s.trim_matches(py_number_space);
    scan_int(t.as_bytes()).map_err(|e| match e {
        Some(n) => PyIntError::TooManyDigits(n),
        None => PyIntError::InvalidLiteral(s),
    })
}

/// [`py_int_outcome`] when only an `i64` is of use: `None` where Python
/// raises `ValueError`, and for values outside `i64` (Python would accept
/// those; no setting, field or timestamp needs them).
pub fn py_int(s: &str) -> Option<i64> {
    match py_int_outcome(s) {
        Ok(PyInt::I64(v)) => Some(v),
        _ => None,
    }
}

/// Python `int(b)` for `bytes` in base 10: only ASCII whitespace
/// (`Py_ISSPACE`, [`py_bytes_isspace`]) is skipped around the number, and
/// any byte ≥ 0x80 is an invalid literal. `None` where Python raises
/// `ValueError`, and for values outside `i64`.
pub fn py_int_bytes(b: &[u8]) -> Option<i64> {
    let start = b
        .iter()
        .position(|&c| !py_bytes_isspace(c))
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|&c| !py_bytes_isspace(c))
        .map_or(start, |i| i + 1);
    match scan_int(&b[start..end]) {
        Ok(PyInt::I64(v)) => Some(v),
        _ => None,
    }
}

/// Python `float(s)` for a `str`: surrounding whitespace as for `int()`
/// (`py_number_space`), underscores allowed only between digits,
/// `inf`/`infinity`/`nan` in any case with an optional sign. Rust's parser
/// accepts the same grammar otherwise. `None` where Python raises
/// `ValueError`. (Non-ASCII digits, which Python accepts, are refused.)
pub fn py_float(s: &str) -> Option<f64> {
    let t = s.trim_matches(py_number_space);
    let b = t.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if c == b'_' {
            let ok =
                i > 0 && b[i - 1].is_ascii_digit() && b.get(i + 1).is_some_and(u8::is_ascii_digit);
            if !ok {
                return None;
            }
        }
    }
    let cleaned: Cow<str> = if t.contains('_') {
        Cow::Owned(t.replace('_', ""))
    } else {
        Cow::Borrowed(t)
    };
    cleaned.parse::<f64>().ok()
}

/// Python's errors from `int(f)` on a float.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PyFloatToIntError {
    /// `ValueError`.
    #[error("cannot convert float NaN to integer")]
    NaN,
    /// `OverflowError`.
    #[error("cannot convert float infinity to integer")]
    Infinity,
}

/// Python `int(f)` for a float: truncation toward zero (returned as an
/// `f64`, since Python's result is unbounded), or Python's error.
pub fn py_int_of_float(f: f64) -> Result<f64, PyFloatToIntError> {
    if f.is_nan() {
        Err(PyFloatToIntError::NaN)
    } else if f.is_infinite() {
        Err(PyFloatToIntError::Infinity)
    } else {
        Ok(f.trunc())
    }
}

// ---------------------------------------------------------------------------
// repr and str of objects

/// Python's `repr()` of a `str` (ASCII and printable-Unicode subset): single
/// quotes unless the text has `'` and no `"`; backslash escapes for `\\`,
/// the quote, `\t`, `\n`, `\r`, other control characters as `\xNN`.
/// Used where the reference prints `%r` (log lines, error texts).
pub fn py_repr_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if (0x80..0xa0).contains(&(c as u32)) => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// `%.<max>R` in CPython's `PyUnicode_FromFormat` (e.g. `%.200R` in the
/// `int()` error): [`py_repr_str`] cut after `max` characters, closing
/// quote included in the cut.
pub(crate) fn py_repr_str_max(s: &str, max: usize) -> String {
    let mut r = py_repr_str(s);
    if let Some((i, _)) = r.char_indices().nth(max) {
        r.truncate(i);
    }
    r
}

/// Python `str((n, s))` for an int and a str, e.g. `(200, 'OK')`: the
/// reference client's `str(response.head_tuple())`.
pub fn py_str_int_str_tuple(n: i64, s: &str) -> String {
    format!("({n}, {})", py_repr_str(s))
}

/// Python `str(OSError)`: `[Errno N] text`, or `[Errno N] text: 'name'`
/// when the error carries a file name (`%R` of it). The text is the C
/// library's `strerror(N)`, as CPython takes it; an error without an OS
/// number is shown as Rust shows it.
pub fn py_oserror_str(e: &std::io::Error, filename: Option<&str>) -> String {
    let Some(n) = e.raw_os_error() else {
        return e.to_string();
    };
    // Rust renders an OS error as `strerror_r(N) (os error N)`.
    let shown = e.to_string();
    let text = shown
        .strip_suffix(&format!(" (os error {n})"))
        .unwrap_or(&shown);
    match filename {
        Some(f) => format!("[Errno {n}] {text}: {}", py_repr_str(f)),
        None => format!("[Errno {n}] {text}"),
    }
}

// ---------------------------------------------------------------------------
// Local time formats

/// A broken-down local time, Python's `time.struct_time` (the fields the
/// formats below use). Filling it needs the time zone, which this crate
/// does not read: `pyzor_config::localtime` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StructTime {
    pub year: i64,
    /// 1..=12.
    pub month: u32,
    /// 1..=31.
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// Python's `tm_wday`: Monday is 0.
    pub weekday: u32,
}

/// Python `time.ctime()` / `time.asctime()`: `Thu Jan  1 00:00:00 1970`
/// (`"%s %s%3d %.2d:%.2d:%.2d %d"`). `None` for an out-of-range field.
pub fn py_ctime(t: &StructTime) -> Option<String> {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let wday = DAYS.get(t.weekday as usize)?;
    let mon = MONTHS.get((t.month as usize).checked_sub(1)?)?;
    Some(format!(
        "{wday} {mon} {:2} {:02}:{:02}:{:02} {}",
        t.day, t.hour, t.minute, t.second, t.year
    ))
}

/// Python `logging.Formatter.formatTime` with the default format, the
/// `%(asctime)s` of a log line: `time.strftime("%Y-%m-%d %H:%M:%S")` then
/// `",%03d"` milliseconds, e.g. `2026-11-27 12:07:18,032`.
pub fn py_log_asctime(t: &StructTime, millis: u32) -> String {
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02},{:03}",
        t.year, t.month, t.day, t.hour, t.minute, t.second, millis
    )
}

/// `str(v)` of a Python int, formatted on the stack (no allocation): the
/// signed request's `Time` and every number of a reply.
pub(crate) fn py_str_int(v: i64) -> DecimalBuf {
    // 19 digits at most for an i64, and the sign.
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut u = v.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (u % 10) as u8;
        u /= 10;
        if u == 0 {
            break;
        }
    }
    if v < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    DecimalBuf { buf, start: i }
}

/// What [`py_str_int`] returns; [`DecimalBuf::as_bytes`] is the text.
pub(crate) struct DecimalBuf {
    buf: [u8; 20],
    start: usize,
}

impl DecimalBuf {
    /// The decimal text.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn py_int_like_python() {
        assert_eq!(py_int("24441"), Some(24441));
        assert_eq!(py_int("  +12 \n"), Some(12));
        assert_eq!(py_int("-7"), Some(-7));
        assert_eq!(py_int("1_000"), Some(1000));
        // `int()` does not skip U+001C..U+001F (str.strip() would): checked
        // against CPython 3.11, `int("\x1c5")` is a ValueError.
        assert_eq!(py_int("\x1c5\x1f"), None);
        assert_eq!(py_int("\u{a0}5\u{3000}"), Some(5));
        for bad in [
            "", " ", "1__0", "_1", "1_", "3.5", "abc", "+", "0x10", "1 2", "5 # s",
        ] {
            assert_eq!(py_int(bad), None, "{bad:?}");
        }
        assert_eq!(py_int("9223372036854775807"), Some(i64::MAX));
        assert_eq!(py_int("-9223372036854775808"), Some(i64::MIN));
        assert_eq!(py_int("9223372036854775808"), None);
    }

    /// The cases of the stores' former copy (gdbm and redis read counts
    /// and epoch seconds with `int(str)`).
    #[test]
    fn python_int_store_cases() {
        assert_eq!(py_int(" 42\n"), Some(42));
        assert_eq!(py_int("-1_000"), Some(-1000));
        assert_eq!(py_int("+7"), Some(7));
        assert_eq!(py_int("1__0"), None);
        assert_eq!(py_int("_1"), None);
        assert_eq!(py_int(""), None);
        assert_eq!(py_int("0x10"), None);
        assert_eq!(py_int("99999999999999999999"), None);
    }

    #[test]
    fn int_outcomes_and_texts() {
        assert_eq!(
            py_int_outcome("9223372036854775808"),
            Ok(PyInt::Big {
                negative: false,
                digits: "9223372036854775808"
            })
        );
        assert_eq!(
            py_int_outcome("-1_0000000000000000000").map(|v| v.to_f64()),
            Ok(Ok(-1e19))
        );
        assert_eq!(
            py_int_outcome(&"9".repeat(400)).map(|v| v.to_f64()),
            Ok(Err(PyIntTooLargeForFloat))
        );
        assert_eq!(
            py_int_outcome("12a").unwrap_err().to_string(),
            "invalid literal for int() with base 10: '12a'"
        );
        let long = "x".repeat(300);
        assert_eq!(
            py_int_outcome(&long).unwrap_err().to_string().len(),
            40 + 200
        );
        let many = format!("{}x", "5".repeat(5000));
        assert_eq!(
            py_int_outcome(&many).unwrap_err(),
            PyIntError::TooManyDigits(5000)
        );
        assert_eq!(
            py_int_outcome(&format!("{}__", "5".repeat(5000))).unwrap_err(),
            PyIntError::InvalidLiteral(&format!("{}__", "5".repeat(5000)))
        );
    }

    #[test]
    fn int_of_bytes_skips_ascii_space_only() {
        assert_eq!(py_int_bytes(b" 42\n"), Some(42));
        assert_eq!(py_int_bytes(b"\x0b-1_000\x0c"), Some(-1000));
        assert_eq!(py_int_bytes(b"\x1c5"), None);
        assert_eq!(py_int_bytes("\u{a0}5".as_bytes()), None);
        assert_eq!(py_int_bytes(b"99999999999999999999"), None);
    }

    #[test]
    fn float_and_int_of_float() {
        assert_eq!(py_float(" 2.1 "), Some(2.1));
        assert_eq!(py_float("\u{a0}2.1"), Some(2.1));
        assert_eq!(py_float("\x1c2.1"), None);
        assert_eq!(py_float("1_0.5"), Some(10.5));
        assert_eq!(py_float("1__0"), None);
        assert_eq!(py_int_of_float(-2.9), Ok(-2.0));
        assert_eq!(py_int_of_float(f64::NAN), Err(PyFloatToIntError::NaN));
        assert_eq!(
            py_int_of_float(f64::NEG_INFINITY).unwrap_err().to_string(),
            "cannot convert float infinity to integer"
        );
    }

    /// `int()`'s whitespace is exactly Unicode White_Space.
    #[test]
    fn number_space_is_unicode_white_space() {
        for c in (0..=0x10_FFFFu32).filter_map(char::from_u32) {
            assert_eq!(py_number_space(c), c.is_whitespace(), "{c:?}");
            assert_eq!(
                py_isspace(c),
                c.is_whitespace() || ('\x1c'..='\x1f').contains(&c),
                "{c:?}"
            );
        }
    }

    #[test]
    fn strips() {
        assert_eq!(py_strip_ascii(b"\x1c a \xff\t"), b"a \xff");
        assert_eq!(py_strip_ascii(b" \t "), b"");
        assert_eq!(py_strip("\u{3000}\x1fa b\u{85}"), "a b");
    }

    #[test]
    fn repr_like_python() {
        assert_eq!(py_repr_str("abc"), "'abc'");
        assert_eq!(py_repr_str("it's"), "\"it's\"");
        assert_eq!(py_repr_str("a'\""), "'a\\'\"'");
        assert_eq!(py_repr_str("a\tb\n\x00"), "'a\\tb\\n\\x00'");
        assert_eq!(py_repr_str_max("abcdef", 3), "'ab");
        assert_eq!(py_repr_str_max("ab", 200), "'ab'");
    }

    #[test]
    fn objects_like_python() {
        assert_eq!(py_str_int_str_tuple(200, "OK"), "(200, 'OK')");
        assert_eq!(
            py_oserror_str(&std::io::Error::from_raw_os_error(111), None),
            "[Errno 111] Connection refused"
        );
        assert_eq!(
            py_oserror_str(&std::io::Error::from_raw_os_error(2), Some("/x")),
            "[Errno 2] No such file or directory: '/x'"
        );
    }

    #[test]
    fn time_formats() {
        let t = StructTime {
            year: 1970,
            month: 1,
            day: 1,
            hour: 0,
            minute: 0,
            second: 0,
            weekday: 3,
        };
        assert_eq!(py_ctime(&t).unwrap(), "Thu Jan  1 00:00:00 1970");
        assert_eq!(py_log_asctime(&t, 32), "1970-01-01 00:00:00,032");
    }
}
