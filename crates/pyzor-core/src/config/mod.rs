//! Configuration as the reference scripts read it.
//!
//! * [`ini`]: the `configparser.ConfigParser` dialect of `<homedir>/config`.
//! * [`home`]: the home-directory rules and file-name expansion
//!   (field-survey.md §5.1).
//! * [`server`]: the `[server]` keys of `pyzord`, their defaults and the
//!   precedence defaults < config file < command-line flags (§5.2, §5.4).
//! * [`py_int`]: Python's `int(str)` (used for every integer setting and for
//!   the `Time` header).
//!
//! * [`client`]: the `[client]` keys of `pyzor` and the servers, accounts
//!   and local whitelist files.

pub mod client;
pub mod home;
pub mod ini;
pub mod server;

pub use home::{default_homedir, ensure_homedir, expand_path};
pub use ini::{Ini, IniError};
pub use server::{ServerConfig, SERVER_DEFAULTS};

use crate::digest::text::py_strip;

/// Python `int(s)` for a `str` in base 10: surrounding whitespace (Python's
/// `isspace`, which includes `\x1c`..`\x1f`) is ignored, an optional sign,
/// ASCII digits with single underscores between digits (`1_000`).
/// Returns `None` where Python raises `ValueError`, or for values outside
/// `i64` (Python would accept those; no setting or timestamp needs them).
///
/// Python also accepts non-ASCII decimal digits (`"１２"`); callers that can
/// see non-ASCII text handle it before (a `Time` header with non-ASCII bytes
/// is a 500 in the reference for another reason, wire-protocol.md §3.2).
pub fn py_int(s: &str) -> Option<i64> {
    let t = py_strip(s);
    let (neg, digits) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let b = digits.as_bytes();
    if b.is_empty() || !b[0].is_ascii_digit() || !b[b.len() - 1].is_ascii_digit() {
        return None;
    }
    let mut v: i64 = 0;
    let mut prev_us = false;
    for &c in b {
        if c == b'_' {
            if prev_us {
                return None;
            }
            prev_us = true;
            continue;
        }
        prev_us = false;
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?;
        v = if neg {
            v.checked_sub((c - b'0') as i64)?
        } else {
            v.checked_add((c - b'0') as i64)?
        };
    }
    Some(v)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn py_int_like_python() {
        assert_eq!(py_int("24441"), Some(24441));
        assert_eq!(py_int("  +12 \n"), Some(12));
        assert_eq!(py_int("-7"), Some(-7));
        assert_eq!(py_int("1_000"), Some(1000));
        assert_eq!(py_int("\x1c5\x1f"), Some(5));
        for bad in [
            "", " ", "1__0", "_1", "1_", "3.5", "abc", "+", "0x10", "1 2", "5 # s",
        ] {
            assert_eq!(py_int(bad), None, "{bad:?}");
        }
        assert_eq!(py_int("9223372036854775807"), Some(i64::MAX));
        assert_eq!(py_int("-9223372036854775808"), Some(i64::MIN));
        assert_eq!(py_int("9223372036854775808"), None);
    }

    #[test]
    fn repr_like_python() {
        assert_eq!(py_repr_str("abc"), "'abc'");
        assert_eq!(py_repr_str("it's"), "\"it's\"");
        assert_eq!(py_repr_str("a'\""), "'a\\'\"'");
        assert_eq!(py_repr_str("a\tb\n\x00"), "'a\\tb\\n\\x00'");
    }
}
