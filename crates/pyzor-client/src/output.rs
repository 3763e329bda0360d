//! Text the reference client prints, reproduced byte for byte
//! (docs/protocol.md §7, docs/field-notes.md §5.13).

use pyzor_protocol::py::py_repr_str;

/// `str((code, diag))` as the reference prints it, e.g. `(200, 'OK')`.
pub fn head_tuple(code: i64, diag: &str) -> String {
    format!("({code}, {})", py_repr_str(diag))
}

/// Python's `time.ctime(t)` in the process's local time zone (the
/// reference's info output, docs/protocol.md §7): `Thu Jan  1 00:00:00 1970`.
/// Returns `None` when the C library cannot represent `t` (the reference
/// then crashes with OverflowError/OSError).
#[allow(clippy::useless_conversion)] // time_t is 32 bits on some targets
pub fn ctime(t: i64) -> Option<String> {
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
    fn head_tuple_like_python() {
        assert_eq!(
            head_tuple(504, "Reading response timed-out."),
            "(504, 'Reading response timed-out.')"
        );
        assert_eq!(
            head_tuple(400, "doesn't have fields for a Response"),
            "(400, \"doesn't have fields for a Response\")"
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
