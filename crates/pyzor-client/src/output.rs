//! Text the reference client prints, reproduced byte for byte
//! (wire-protocol.md §7, field-survey.md §5.13), plus the opt-in JSON lines.

use std::fmt::Write as _;

/// Python's `repr()` of a `str` (field-survey.md §5.16 B5: the client prints
/// the tuple repr `(200, 'OK')`, and SpamAssassin/rspamd parse it).
///
/// Quirk reproduced: single quotes unless the text contains `'` and no `"`,
/// then double quotes; `\\`, the chosen quote, `\t`, `\n`, `\r` escaped;
/// other non-printable characters as `\xNN`, `\uNNNN` or `\UNNNNNNNN`.
/// "Non-printable" follows `str.isprintable()` for C0/C1 controls, DEL,
/// the soft hyphen and the Unicode separators/format characters a server
/// could plausibly send; every other character is printed as is.
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
            c if !py_isprintable(c) => {
                let n = c as u32;
                if n <= 0xff {
                    let _ = write!(out, "\\x{n:02x}");
                } else if n <= 0xffff {
                    let _ = write!(out, "\\u{n:04x}");
                } else {
                    let _ = write!(out, "\\U{n:08x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Approximation of Python's `str.isprintable()` for one character: false
/// for categories Cc, Cf, Zl, Zp, Zs (except the ASCII space) that matter
/// in practice, and for unpaired-surrogate stand-ins (which Rust strings
/// cannot hold anyway).
fn py_isprintable(c: char) -> bool {
    let n = c as u32;
    !(n < 0x20
        || (0x7f..=0xa0).contains(&n)
        || n == 0xad
        || (0x2000..=0x200f).contains(&n)
        || (0x2028..=0x202f).contains(&n)
        || (0x205f..=0x206f).contains(&n)
        || n == 0x1680
        || n == 0x3000
        || n == 0xfeff
        || (0xfff9..=0xfffb).contains(&n)
        || (0xe000..=0xf8ff).contains(&n))
}

/// `str((code, diag))` as the reference prints it, e.g. `(200, 'OK')`.
pub fn head_tuple(code: i128, diag: &str) -> String {
    format!("({code}, {})", py_repr_str(diag))
}

/// Python's `time.ctime(t)` in the process's local time zone (the
/// reference's info output, wire-protocol.md §7): `Thu Jan  1 00:00:00 1970`.
/// Returns `None` when the C library cannot represent `t` (the reference
/// then crashes with OverflowError/OSError).
pub fn ctime(t: i128) -> Option<String> {
    let t: libc::time_t = t.try_into().ok()?;
    // SAFETY: `tm` is plain old data; localtime_r only writes into it and
    // returns NULL on failure, which we check.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return None;
        }
        tm
    };
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let wday = DAYS.get(usize::try_from(tm.tm_wday).ok()?)?;
    let mon = MONTHS.get(usize::try_from(tm.tm_mon).ok()?)?;
    Some(format!(
        "{wday} {mon} {:2} {:02}:{:02}:{:02} {}",
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        i64::from(tm.tm_year) + 1900
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repr_matches_python() {
        assert_eq!(py_repr_str("OK"), "'OK'");
        assert_eq!(
            py_repr_str("doesn't have fields for a Response"),
            "\"doesn't have fields for a Response\""
        );
        assert_eq!(py_repr_str("a'b\"c"), "'a\\'b\"c'");
        assert_eq!(py_repr_str("x\ty\n\\"), "'x\\ty\\n\\\\'");
        assert_eq!(py_repr_str("\u{0}\u{7f}é"), "'\\x00\\x7fé'");
        assert_eq!(py_repr_str("\u{2028}"), "'\\u2028'");
        assert_eq!(
            head_tuple(504, "Reading response timed-out."),
            "(504, 'Reading response timed-out.')"
        );
    }

    #[test]
    fn ctime_epoch_in_utc() {
        // The test process may run in any zone; compare against libc's own
        // rendering through a known UTC offset only when TZ is unset/UTC.
        if std::env::var("TZ")
            .map(|v| v.is_empty() || v == "UTC")
            .unwrap_or(true)
        {
            assert_eq!(ctime(0).unwrap(), "Thu Jan  1 00:00:00 1970");
            assert_eq!(ctime(1_700_000_000).unwrap(), "Tue Nov 14 22:13:20 2023");
        }
    }
}
