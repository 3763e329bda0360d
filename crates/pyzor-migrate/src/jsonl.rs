//! The portable backup format: one JSON object per line,
//! `{"digest": "<text>", "r_count": n, "wl_count": n, "r_entered": µs|null,
//! "r_updated": …, "wl_entered": …, "wl_updated": …}` with dates in
//! microseconds since the Unix epoch (UTC) and `null` for never. A digest
//! that is not UTF-8 is written as `"digest_hex"` instead of `"digest"`.

use pyzor_protocol::{Record, Timestamp};
use serde_json::{json, Value};

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|p| u8::from_str_radix(p, 16).ok()))
        .collect()
}

pub fn encode(d: &[u8], r: &Record) -> String {
    let t = |x: Option<Timestamp>| x.map(|x| x.0);
    let mut v = json!({
        "r_count": r.r_count, "wl_count": r.wl_count,
        "r_entered": t(r.r_entered), "r_updated": t(r.r_updated),
        "wl_entered": t(r.wl_entered), "wl_updated": t(r.wl_updated),
    });
    match std::str::from_utf8(d) {
        Ok(s) => v["digest"] = Value::String(s.to_string()),
        Err(_) => v["digest_hex"] = Value::String(hex(d)),
    }
    v.to_string()
}

pub fn decode(line: &str) -> Result<(Vec<u8>, Record), String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let d = match (v.get("digest"), v.get("digest_hex")) {
        (Some(Value::String(s)), None) => s.as_bytes().to_vec(),
        (None, Some(Value::String(h))) => unhex(h).ok_or("digest_hex is not hex")?,
        _ => return Err("needs exactly one of digest / digest_hex (a string)".into()),
    };
    let count = |f: &str| -> Result<i64, String> {
        match v.get(f) {
            None | Some(Value::Null) => Ok(0),
            Some(x) => x.as_i64().ok_or_else(|| format!("{f} is not an integer")),
        }
    };
    let ts = |f: &str| -> Result<Option<Timestamp>, String> {
        match v.get(f) {
            None | Some(Value::Null) => Ok(None),
            Some(x) => x
                .as_i64()
                .map(|n| Some(Timestamp(n)))
                .ok_or_else(|| format!("{f} is not an integer")),
        }
    };
    Ok((
        d,
        Record {
            r_count: count("r_count")?,
            wl_count: count("wl_count")?,
            r_entered: ts("r_entered")?,
            r_updated: ts("r_updated")?,
            wl_entered: ts("wl_entered")?,
            wl_updated: ts("wl_updated")?,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let r = Record {
            r_count: 3,
            wl_count: 0,
            r_entered: Some(Timestamp(1_700_000_000_123_456)),
            r_updated: Some(Timestamp(-5)),
            wl_entered: None,
            wl_updated: None,
        };
        for d in [&b"abc"[..], b"", b"x\0y", b"\xff\xfe"] {
            assert_eq!(decode(&encode(d, &r)).unwrap(), (d.to_vec(), r));
        }
        assert!(encode(b"\xff", &r).contains("digest_hex"));
        assert!(decode("{}").is_err());
        assert!(decode(r#"{"digest":"a","r_count":"x"}"#).is_err());
        assert!(decode("nope").is_err());
    }
}
