//! The process's local time zone (`TZ`, `/etc/localtime`), read through
//! the C library as Python's `time.localtime()` does, and the log-line
//! format both `pyzord` and `pyzor` use. The Python formats themselves are
//! in `pyzor_protocol::py`.

use std::time::{SystemTime, UNIX_EPOCH};

use pyzor_protocol::py::{py_log_asctime, StructTime};

/// Python `time.localtime(secs)`: C `localtime_r`. `None` when the C
/// library cannot represent `secs` (Python raises OverflowError/OSError).
#[allow(clippy::useless_conversion)] // time_t is 32 bits on some targets
pub fn localtime(secs: i64) -> Option<StructTime> {
    let t: libc::time_t = secs.try_into().ok()?;
    // SAFETY: `tm` is plain old data; localtime_r only writes into it and
    // returns NULL on failure, which we check.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return None;
        }
        tm
    };
    let field = |v: libc::c_int| u32::try_from(v).ok();
    Some(StructTime {
        year: i64::from(tm.tm_year) + 1900,
        month: field(tm.tm_mon)? + 1,
        day: field(tm.tm_mday)?,
        hour: field(tm.tm_hour)?,
        minute: field(tm.tm_min)?,
        second: field(tm.tm_sec)?,
        // C counts from Sunday, Python from Monday.
        weekday: (field(tm.tm_wday)? + 6) % 7,
    })
}

/// `%(asctime)s` of a log record created at `when`, in local time:
/// `2026-11-27 12:07:18,032`. Falls back to the epoch seconds if the C
/// library cannot convert the time.
pub(crate) fn log_asctime(when: SystemTime) -> String {
    let since = when.duration_since(UNIX_EPOCH).unwrap_or_default();
    match i64::try_from(since.as_secs()).ok().and_then(localtime) {
        Some(t) => py_log_asctime(&t, since.subsec_millis()),
        None => since.as_secs().to_string(),
    }
}

/// One log line in the format of both reference scripts'
/// `setup_logging`, `%(asctime)s (%(process)d) %(levelname)s %(message)s`,
/// newline included.
pub fn log_line(
    when: SystemTime,
    pid: u32,
    levelname: &str,
    message: &dyn std::fmt::Display,
) -> String {
    format!("{} ({pid}) {levelname} {message}\n", log_asctime(when))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_shape() {
        let when = UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123);
        let l = log_line(when, 42, "INFO", &"hello");
        assert!(l.ends_with(",123 (42) INFO hello\n"), "{l:?}");
        let b = l.as_bytes();
        assert!(b[4] == b'-' && b[7] == b'-' && b[10] == b' ' && b[19] == b',');
        let t = localtime(0).unwrap();
        assert!(t.weekday < 7 && (1..=12).contains(&t.month));
    }
}
