//! Running the reference's engine code (tests/py/engine_ref.py).
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use pyzor_protocol::{Record, Timestamp};

/// Run `engine_ref.py`; `None` (loud skip) without the reference venv.
pub fn run(
    test: &str,
    engine: &str,
    dsn: &str,
    cmd: &str,
    arg: serde_json::Value,
) -> Option<String> {
    let venv = pyzor_testkit::ref_venv(test)?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/engine_ref.py");
    let out = Command::new(venv.join("bin/python"))
        .arg(script)
        .args([engine, dsn, cmd, &arg.to_string()])
        .output()
        .expect("run the reference python");
    assert!(
        out.status.success(),
        "engine_ref.py {cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).expect("utf-8 output"))
}

pub fn record_json(r: &Record) -> serde_json::Value {
    let s = |t: Option<Timestamp>| t.map(|t| t.secs());
    serde_json::json!({
        "r_count": r.r_count, "wl_count": r.wl_count,
        "r_entered": s(r.r_entered), "r_updated": s(r.r_updated),
        "wl_entered": s(r.wl_entered), "wl_updated": s(r.wl_updated),
    })
}

/// Parse `read` output: one record (or null) per line.
pub fn parse_read(out: &str) -> Vec<Option<Record>> {
    out.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            if v.is_null() {
                return None;
            }
            let ts = |f: &str| v[f].as_i64().map(Timestamp::from_secs);
            Some(Record {
                r_count: v["r_count"].as_i64().unwrap(),
                wl_count: v["wl_count"].as_i64().unwrap(),
                r_entered: ts("r_entered"),
                r_updated: ts("r_updated"),
                wl_entered: ts("wl_entered"),
                wl_updated: ts("wl_updated"),
            })
        })
        .collect()
}
