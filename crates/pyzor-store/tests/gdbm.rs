#![cfg(feature = "gdbm")]
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use pyzor_protocol::{Record, Timestamp};
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
    // The reference crashes here (docs/protocol.md §9.11); we apply the one rule.
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

/// The real reference server and client: `pyzord` (gdbm engine) stores
/// reports from `pyzor`; we read its file, count into it, and the
/// reference server serves our update.
#[test]
fn gdbm_file_of_the_real_reference_server_round_trip() {
    use std::time::{Duration, Instant};
    let test = "gdbm_file_of_the_real_reference_server_round_trip";
    let Some(venv) = pyzor_testkit::ref_venv(test) else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let (srv, cli) = (home.path().join("server"), home.path().join("client"));
    std::fs::create_dir_all(&srv).unwrap();
    std::fs::create_dir_all(&cli).unwrap();
    let port = pyzor_testkit::free_udp_port();
    std::fs::write(cli.join("servers"), format!("127.0.0.1:{port}\n")).unwrap();
    let spam = home.path().join("spam.eml");
    let ham = home.path().join("ham.eml");
    std::fs::write(
        &spam,
        "Subject: buy\n\nCheap watches for everyone, today only, click the link below now.\n",
    )
    .unwrap();
    std::fs::write(&ham, "Subject: lunch\n\nShall we meet for lunch on Thursday at the usual place near the office?\n").unwrap();
    let pyzor = |args: &[&str], input: &Path| -> String {
        let o = Command::new(venv.join("bin/pyzor"))
            .arg("--homedir")
            .arg(&cli)
            .args(args)
            .stdin(std::fs::File::open(input).unwrap())
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    /// Stopped with SIGTERM (the reference closes, and so syncs, its GDBM
    /// file then; its unsynced writes would be lost to SIGKILL), SIGKILL
    /// after 10 s.
    struct Server(std::process::Child);
    impl Drop for Server {
        fn drop(&mut self) {
            let _ = Command::new("kill")
                .args(["-TERM", &self.0.id().to_string()])
                .status();
            let end = Instant::now() + Duration::from_secs(10);
            while Instant::now() < end {
                if let Ok(Some(_)) = self.0.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let start = || {
        // --cleanup-age 0: the reference crashes at start-up on a
        // whitelist-only record otherwise (docs/protocol.md §9.11)
        let s = Server(
            Command::new(venv.join("bin/pyzord"))
                .arg("--homedir")
                .arg(&srv)
                .args([
                    "-a",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                    "--cleanup-age",
                    "0",
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        let end = Instant::now() + Duration::from_secs(20);
        while !pyzor(&["ping"], &spam).contains("(200, 'OK')") {
            assert!(Instant::now() < end, "reference pyzord did not answer");
            std::thread::sleep(Duration::from_millis(100));
        }
        s
    };
    let digest = |m: &Path| pyzor(&["digest"], m).trim().to_string();
    let (ds, dh) = (digest(&spam), digest(&ham));
    assert_eq!(ds.len(), 40);
    {
        let _s = start();
        pyzor(&["report"], &spam);
        assert!(pyzor(&["report"], &spam).contains("(200, 'OK')"));
        // (anonymous whitelisting is refused by the reference's default ACL)
    }
    let before = pyzor_store::now();
    {
        let e = GdbmEngine::open(&srv.join("pyzord.db")).unwrap();
        let s = e.get(ds.as_bytes()).unwrap().unwrap();
        assert_eq!((s.r_count, s.wl_count, s.wl_entered), (2, 0, None));
        assert!(
            (before.secs() - s.r_updated.unwrap().secs()).abs() < 120,
            "local time read back: {s:?}"
        );
        assert_eq!(e.get(dh.as_bytes()).unwrap(), None);
        let mut out = Vec::new();
        e.execute(
            &[Op::Whitelist(dh.as_bytes()), Op::Whitelist(ds.as_bytes())],
            pyzor_store::now(),
            &mut out,
        )
        .unwrap();
    }
    // The reference serves our whitelist-only record and our update.
    let _s = start();
    let info = pyzor(&["info"], &ham);
    assert!(
        info.contains("\tCount: 0\n") && info.contains("\tWL-Count: 1\n"),
        "{info}"
    );
    let check = pyzor(&["check"], &spam);
    assert!(check.contains("\t2\t1"), "{check}");
}
