//! Python-compatible conversions shared by the engines whose stored format
//! Python Pyzor reads and writes (gdbm, mysql, redis_v0): naive local
//! datetimes and `str(datetime)`. Python's `int()`, which they also use,
//! is in `pyzor_protocol::py`.

/// `int(str)`, for `redis.rs`, which imports it from here. Its v1 hash
/// fields are read by the reference with `int(bytes)`, which is
/// `pyzor_protocol::py::py_int_bytes` (ASCII whitespace only); its v0 value
/// with `int(str)` after `decode()`, which is this one.
#[cfg(feature = "redis")]
pub(crate) use pyzor_protocol::py::py_int;

use chrono::{DateTime, Local, LocalResult, NaiveDateTime, Offset, TimeZone};
use pyzor_protocol::Timestamp;

/// A naive local datetime (what Python's `datetime.now()` returns) to our
/// UTC timestamp.
///
/// Python quirk (docs/protocol.md §6 "Timestamps in info"): the reference
/// stores naive local times, so a time in the DST fold is ambiguous and one
/// in the spring-forward gap does not exist. Like Python's
/// `datetime.timestamp()` with the default `fold=0`, the ambiguous time
/// takes the earlier instant; a time in the gap is read with the offset in
/// force before the gap (i.e. shifted forward by the gap's length).
pub(crate) fn naive_local_to_ts(n: NaiveDateTime) -> Timestamp {
    let dt = match Local.from_local_datetime(&n) {
        LocalResult::Single(d) => d,
        LocalResult::Ambiguous(a, b) => a.min(b),
        LocalResult::None => {
            // Offset before the gap: that of one hour earlier (gaps are at
            // most a few hours; step back until one resolves).
            let mut back = n;
            let mut found = None;
            for _ in 0..48 {
                back -= chrono::Duration::minutes(30);
                if let Some(d) = Local.from_local_datetime(&back).earliest() {
                    found = Some(d.offset().fix());
                    break;
                }
            }
            let off =
                found.unwrap_or_else(|| chrono::FixedOffset::east_opt(0).expect("zero offset"));
            let utc = n - chrono::Duration::seconds(i64::from(off.local_minus_utc()));
            return Timestamp(utc.and_utc().timestamp_micros());
        }
    };
    Timestamp(dt.timestamp_micros())
}

/// Our timestamp as a naive local datetime, or `None` outside chrono's range.
pub(crate) fn ts_to_naive_local(t: Timestamp) -> Option<NaiveDateTime> {
    let utc = DateTime::from_timestamp_micros(t.0)?;
    Some(utc.with_timezone(&Local).naive_local())
}

/// Python's `str(datetime)`: `YYYY-MM-DD HH:MM:SS`, plus `.ffffff` only
/// when the microsecond is not zero (docs/field-notes.md §5.12).
#[cfg(any(feature = "gdbm", test))]
pub(crate) fn py_str_datetime(n: &NaiveDateTime) -> String {
    use chrono::{Datelike, Timelike};
    let mut s = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        n.year(),
        n.month(),
        n.day(),
        n.hour(),
        n.minute(),
        n.second()
    );
    let us = n.nanosecond() / 1000;
    if us != 0 {
        s.push_str(&format!(".{us:06}"));
    }
    s
}

/// Python's `strptime(s, "%Y-%m-%d %H:%M:%S.%f")`, falling back to
/// `"%Y-%m-%d %H:%M:%S"` (the reference's `_dt_decode`): `%f` takes one to
/// six digits, the other fields one or more.
#[cfg(any(feature = "gdbm", feature = "mysql", test))]
pub(crate) fn py_parse_datetime(s: &str) -> Option<NaiveDateTime> {
    let (date, time) = s.split_once(' ')?;
    let mut d = date.splitn(3, '-');
    let (y, mo, da) = (d.next()?, d.next()?, d.next()?);
    let (hms, frac) = match time.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (time, None),
    };
    let mut t = hms.splitn(3, ':');
    let (h, mi, se) = (t.next()?, t.next()?, t.next()?);
    let num = |x: &str, max_len: usize| -> Option<u32> {
        if x.is_empty() || x.len() > max_len || !x.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        x.parse().ok()
    };
    let micro = match frac {
        None => 0,
        Some(f) => {
            let v = num(f, 6)?;
            v * 10u32.pow(6 - f.len() as u32)
        }
    };
    let date = chrono::NaiveDate::from_ymd_opt(num(y, 4)? as i32, num(mo, 2)?, num(da, 2)?)?;
    date.and_hms_micro_opt(num(h, 2)?, num(mi, 2)?, num(se, 2)?, micro)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn str_datetime_omits_zero_micros() {
        let n = py_parse_datetime("2026-11-27 10:14:55.884661").unwrap();
        assert_eq!(py_str_datetime(&n), "2026-11-27 10:14:55.884661");
        let n = py_parse_datetime("2026-11-27 10:14:55").unwrap();
        assert_eq!(py_str_datetime(&n), "2026-11-27 10:14:55");
        let n = py_parse_datetime("2026-1-2 3:4:5.5").unwrap();
        assert_eq!(py_str_datetime(&n), "2026-01-02 03:04:05.500000");
        assert!(py_parse_datetime("None").is_none());
        assert!(py_parse_datetime("2026-11-27 10:14:55.").is_none());
        assert!(py_parse_datetime("2026-13-27 10:14:55").is_none());
        assert!(py_parse_datetime("2026-11-27 10:14:55.1234567").is_none());
    }

    #[test]
    fn local_round_trip() {
        let t = Timestamp(1_795_000_000_123_456);
        let n = ts_to_naive_local(t).unwrap();
        assert_eq!(naive_local_to_ts(n), t);
    }
}
