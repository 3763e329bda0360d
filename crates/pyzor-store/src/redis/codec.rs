//! Stored values ↔ [`Record`]: the v1 hash fields and the v0 string.

use std::collections::HashMap;

use pyzor_protocol::{Record, Timestamp};

use crate::pytime::{naive_local_to_ts, py_int, ts_to_naive_local};
use crate::{Result, StoreError};

pub(super) fn corrupt(d: &[u8], reason: String) -> StoreError {
    StoreError::Corrupt {
        digest: String::from_utf8_lossy(d).into_owned(),
        reason,
    }
}

/// Decode a v1 hash the way the reference's `_decode_record` does (missing
/// fields are 0; a date of 0 is never). An empty hash is no record.
pub(crate) fn decode_hash(d: &[u8], h: &HashMap<Vec<u8>, Vec<u8>>) -> Result<Option<Record>> {
    if h.is_empty() {
        return Ok(None);
    }
    let int = |f: &str| -> Result<i64> {
        match h.get(f.as_bytes()) {
            None => Ok(0),
            Some(v) => std::str::from_utf8(v).ok().and_then(py_int).ok_or_else(|| {
                corrupt(d, format!("field {f} is {:?}", String::from_utf8_lossy(v)))
            }),
        }
    };
    let date = |f: &str| -> Result<Option<Timestamp>> {
        let v = int(f)?;
        Ok((v != 0).then(|| Timestamp::from_secs(v)))
    };
    Ok(Some(Record {
        r_count: int("r_count")?,
        wl_count: int("wl_count")?,
        r_entered: date("r_entered")?,
        r_updated: date("r_updated")?,
        wl_entered: date("wl_entered")?,
        wl_updated: date("wl_updated")?,
    }))
}

/// The record [`super::scripts::SCRIPT_COUNT`] leaves behind, from the
/// fields it returned (as they were before its write, nil for a missing
/// one, in [`super::scripts::FIELDS`] order): the reference's
/// `r_increment`/`wl_increment` at `now` truncated to the second, which is
/// what the script stored. A missing hash counts from the empty record.
pub(super) fn after_count(
    d: &[u8],
    before: Vec<Option<Vec<u8>>>,
    report: bool,
    now: Timestamp,
) -> Result<Record> {
    if before.len() != super::scripts::FIELDS.len() {
        return Err(corrupt(
            d,
            format!("the count script returned {} fields, not 6", before.len()),
        ));
    }
    let h: HashMap<Vec<u8>, Vec<u8>> = super::scripts::FIELDS
        .iter()
        .zip(before)
        .filter_map(|(f, v)| Some((f.as_bytes().to_vec(), v?)))
        .collect();
    let mut r = decode_hash(d, &h)?.unwrap_or_default();
    let now = Timestamp::from_secs(now.secs());
    if report {
        r.report(now);
    } else {
        r.whitelist(now);
    }
    Ok(r)
}

pub(crate) fn secs(t: Option<Timestamp>) -> i64 {
    t.map(|t| t.secs()).unwrap_or(0)
}

/// The reference v0 value (`redis_v0._encode_record`).
pub(crate) fn encode_v0(r: &Record) -> String {
    let d = |t: Option<Timestamp>| {
        t.and_then(ts_to_naive_local)
            .map(|n| n.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default()
    };
    format!(
        "{},{},{},{},{},{}",
        r.r_count,
        d(r.r_entered),
        d(r.r_updated),
        r.wl_count,
        d(r.wl_entered),
        d(r.wl_updated)
    )
}

/// The reference v0 decoder (`redis_v0._decode_record`).
pub(crate) fn decode_v0(d: &[u8], v: &[u8]) -> Result<Record> {
    let bad = || corrupt(d, format!("v0 value {:?}", String::from_utf8_lossy(v)));
    let s = std::str::from_utf8(v).map_err(|_| bad())?;
    let f: Vec<&str> = s.split(',').collect();
    if f.len() < 6 {
        return Err(bad());
    }
    let n = |x: &str| py_int(x).ok_or_else(bad);
    let t = |x: &str| -> Result<Option<Timestamp>> {
        if x.is_empty() {
            return Ok(None);
        }
        chrono::NaiveDateTime::parse_from_str(x, "%Y-%m-%d %H:%M:%S")
            .map(|n| Some(naive_local_to_ts(n)))
            .map_err(|_| bad())
    };
    Ok(Record {
        r_count: n(f[0])?,
        r_entered: t(f[1])?,
        r_updated: t(f[2])?,
        wl_count: n(f[3])?,
        wl_entered: t(f[4])?,
        wl_updated: t(f[5])?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v0_values() {
        let r = decode_v0(b"k", b"3,2026-01-02 03:04:05,2026-01-02 03:04:06,0,,").unwrap();
        assert_eq!(r.r_count, 3);
        assert_eq!(
            encode_v0(&r),
            "3,2026-01-02 03:04:05,2026-01-02 03:04:06,0,,"
        );
        assert!(decode_v0(b"k", b"x,,,0,,").is_err());
        assert!(decode_v0(b"k", b"1,2").is_err());
    }
}
