//! Text the reference client prints, reproduced byte for byte
//! (docs/protocol.md §7, docs/field-notes.md §5.13).

use pyzor_protocol::py::py_ctime;

/// `str((code, diag))` as the reference prints it, e.g. `(200, 'OK')`.
pub use pyzor_protocol::py::py_str_int_str_tuple as head_tuple;

/// Python's `time.ctime(t)` in the process's local time zone (the
/// reference's info output, docs/protocol.md §7): `Thu Jan  1 00:00:00 1970`.
/// Returns `None` when the C library cannot represent `t` (the reference
/// then crashes with OverflowError/OSError).
pub fn ctime(t: i64) -> Option<String> {
    py_ctime(&pyzor_config::localtime::localtime(t)?)
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
