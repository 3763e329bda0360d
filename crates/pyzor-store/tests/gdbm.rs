#![cfg(feature = "gdbm")]
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use pyzor_core::{Record, Timestamp};
use pyzor_store::gdbm::{decode_record, encode_record, GdbmEngine};
use pyzor_store::{open, Engine, EngineOptions, Op};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/gdbm_ref.py")
}

/// Run the reference helper; `None` (with a loud skip) without the venv.
fn py(test: &str, cmd: &str, file: &Path) -> Option<String> {
    let venv = pyzor_testkit::ref_venv(test)?;
    let out = Command::new(venv.join("bin/python"))
        .arg(script())
        .arg(cmd)
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn parse_lines(s: &str) -> BTreeMap<Vec<u8>, Record> {
    s.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let ts = |f: &str| v[f].as_i64().map(Timestamp);
            (
                unhex(v["key"].as_str().unwrap()),
                Record {
                    r_count: v["r_count"].as_i64().unwrap(),
                    wl_count: v["wl_count"].as_i64().unwrap(),
                    r_entered: ts("r_entered"),
                    r_updated: ts("r_updated"),
                    wl_entered: ts("wl_entered"),
                    wl_updated: ts("wl_updated"),
                },
            )
        })
        .collect()
}

fn ours(e: &dyn Engine) -> BTreeMap<Vec<u8>, Record> {
    e.scan().unwrap().map(|x| x.unwrap()).collect()
}

#[test]
fn gdbm_contract() {
    let home = tempfile::tempdir().unwrap();
    let e = open(&EngineOptions::new("gdbm", home.path())).unwrap();
    assert_eq!(e.name(), "gdbm");
    common::run_all(e, common::EXACT, "c-");
    assert!(
        home.path().join("pyzord.db").is_file(),
        "default DSN is pyzord.db in the homedir"
    );
}

#[test]
fn gdbm_reads_a_file_written_by_the_reference() {
    let home = tempfile::tempdir().unwrap();
    let f = home.path().join("pyzord.db");
    let Some(written) = py("gdbm_reads_a_file_written_by_the_reference", "write", &f) else {
        return;
    };
    py("gdbm_reads_a_file_written_by_the_reference", "legacy", &f).unwrap();
    let mut want = parse_lines(&written);
    want.insert(
        b"legacy0".to_vec(),
        Record {
            r_count: 5,
            r_entered: Some(Timestamp::from_secs(1_000_000_000)),
            r_updated: Some(Timestamp::from_secs(1_000_000_100)),
            ..Record::default()
        },
    );
    assert!(want.len() > 200);
    {
        let e = GdbmEngine::open(&f).unwrap();
        assert_eq!(ours(&e), want);
    }
    // Every version-1 value re-encodes to the reference's exact bytes.
    let raw = py("raw", "raw", &f).unwrap();
    let mut n = 0;
    for l in raw.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let (k, val) = (
            unhex(v["key"].as_str().unwrap()),
            unhex(v["value"].as_str().unwrap()),
        );
        if k == b"legacy0" {
            continue;
        }
        let rec = decode_record(&val, &k).unwrap();
        assert_eq!(
            encode_record(&rec, &k).unwrap().as_bytes(),
            &val[..],
            "{}",
            String::from_utf8_lossy(&val)
        );
        n += 1;
    }
    assert!(n > 200);
}

#[test]
fn gdbm_reference_reads_our_file_and_our_updates() {
    let test = "gdbm_reference_reads_our_file_and_our_updates";
    let home = tempfile::tempdir().unwrap();
    let f = home.path().join("ours.db");
    let mut want = BTreeMap::new();
    {
        let e = GdbmEngine::open(&f).unwrap();
        let recs: Vec<(Vec<u8>, Record)> = (0..300i64)
            .map(|i| {
                let mut r = Record::default();
                if i % 2 == 0 {
                    r.report(common::t(1_790_000_000 + i * 1000, i * 3));
                }
                if i % 3 == 0 {
                    r.whitelist(common::t(1_780_000_000 + i, 0));
                }
                (format!("{:040x}", i * 104_729).into_bytes(), r)
            })
            .collect();
        e.put_many(&recs).unwrap();
        want.extend(recs);
        let mut out = Vec::new();
        for d in [&b""[..], b"x\0y", b"caf\xc3\xa9"] {
            e.execute(
                &[Op::Report(d), Op::Report(d), Op::Whitelist(d)],
                common::t(1_795_000_000, 42),
                &mut out,
            )
            .unwrap();
            want.insert(d.to_vec(), e.get(d).unwrap().unwrap());
        }
    }
    let Some(read) = py(test, "read", &f) else {
        return;
    };
    assert_eq!(parse_lines(&read), want);

    // Update in place a file the reference wrote; the reference sees it.
    let g = home.path().join("theirs.db");
    let written = py(test, "write", &g).unwrap();
    let mut want = parse_lines(&written);
    let k = b"a".repeat(40);
    {
        let e = GdbmEngine::open(&g).unwrap();
        let mut out = Vec::new();
        let now = common::t(1_796_000_000, 7);
        e.execute(&[Op::Report(&k), Op::Whitelist(&k)], now, &mut out)
            .unwrap();
        let r = want.get_mut(&k).unwrap();
        r.report(now);
        r.whitelist(now);
    }
    assert_eq!(parse_lines(&py(test, "read", &g).unwrap()), want);
}

#[test]
fn gdbm_expiry_handles_whitelist_only_and_legacy_records() {
    // The reference crashes here (crates.md §2.4); we apply the one rule.
    let home = tempfile::tempdir().unwrap();
    let f = home.path().join("pyzord.db");
    let e = GdbmEngine::open(&f).unwrap();
    let mut wl = Record::default();
    wl.whitelist(common::t(1_600_000_000, 0));
    let mut fresh = Record::default();
    fresh.whitelist(common::t(1_800_000_000, 0));
    e.put_many(&[(b"wl-old".to_vec(), wl), (b"wl-new".to_vec(), fresh)])
        .unwrap();
    drop(e);
    if py(
        "gdbm_expiry_handles_whitelist_only_and_legacy_records",
        "legacy",
        &f,
    )
    .is_none()
    {
        return;
    }
    let e = GdbmEngine::open(&f).unwrap();
    // legacy0 was last updated at 1_000_000_100 s
    assert_eq!(e.expire(common::t(1_700_000_000, 0)).unwrap(), 2);
    assert!(e.get(b"wl-old").unwrap().is_none());
    assert!(e.get(b"legacy0").unwrap().is_none());
    assert!(e.get(b"wl-new").unwrap().is_some());
}

#[test]
fn gdbm_open_of_a_locked_file_is_unavailable() {
    let home = tempfile::tempdir().unwrap();
    let f = home.path().join("pyzord.db");
    let _first = GdbmEngine::open(&f).unwrap();
    // flock is per open file description: a second open conflicts.
    match GdbmEngine::open(&f) {
        Err(pyzor_store::StoreError::Unavailable(m)) => assert!(m.contains("locked"), "{m}"),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("opened a locked file twice"),
    }
}
