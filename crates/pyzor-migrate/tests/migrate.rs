//! pyzor-migrate end to end: the binary against real files and services.

#[path = "../../pyzor-store/tests/common/mydb.rs"]
mod mydb;
#[path = "../../pyzor-store/tests/common/pgdb.rs"]
mod pgdb;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use pyzor_protocol::{Record, Timestamp};
use pyzor_store::{open, EngineOptions, Op};

fn migrate(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pyzor-migrate"))
        .current_dir(cwd)
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn gdbm_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../pyzor-store/tests/py/gdbm_ref.py")
}

fn py_gdbm(venv: &Path, args: &[&str]) -> String {
    let o = Command::new(venv.join("bin/python"))
        .arg(gdbm_script())
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn parse_py(s: &str) -> BTreeMap<Vec<u8>, Record> {
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

fn to_secs(r: Record) -> Record {
    let f = |t: Option<Timestamp>| t.map(|t| Timestamp::from_secs(t.secs()));
    Record {
        r_entered: f(r.r_entered),
        r_updated: f(r.r_updated),
        wl_entered: f(r.wl_entered),
        wl_updated: f(r.wl_updated),
        ..r
    }
}

fn assert_ok(o: &Output, n: usize) {
    let out = stdout(o);
    assert!(
        o.status.success(),
        "exit {:?}: {out} {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains(&format!(
            "Migration complete, {n} records transferred successfully, 0 records failed"
        )),
        "{out}"
    );
}

/// gdbm (written by the reference) → lmdb → redis → mysql → postgres →
/// gdbm, read back by the reference: every count and every timestamp (to
/// the second, which is what Redis and MySQL keep) survives.
#[test]
fn migrate_round_trip_through_every_engine() {
    let test = "migrate_round_trip_through_every_engine";
    let Some(venv) = pyzor_testkit::ref_venv(test) else {
        return;
    };
    if !pyzor_testkit::redis_available(test) {
        return;
    }
    let Some(my) = mydb::MyDb::create(test) else {
        return;
    };
    let Some(pg) = pgdb::PgDb::create(test) else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let want = parse_py(&py_gdbm(
        &venv,
        &["write", h.join("pyzord.db").to_str().unwrap(), "hexonly"],
    ));
    assert_eq!(want.len(), 201);
    // db 8 belongs to this test alone
    let mut con = redis::Client::open("redis://127.0.0.1:6379/8")
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = redis::cmd("FLUSHDB").query(&mut con).unwrap();
    let redis_dsn = "127.0.0.1,6379,,8";
    let my_dsn = my.dsn_tcp(3306, "digests");
    let pg_dsn = pg.dsn("digests");
    let hops = [
        ("gdbm", "pyzord.db", "lmdb", "pyzord.lmdb"),
        ("lmdb", "pyzord.lmdb", "redis", redis_dsn),
        ("redis", redis_dsn, "mysql", my_dsn.as_str()),
        ("mysql", my_dsn.as_str(), "postgres", pg_dsn.as_str()),
        ("postgres", pg_dsn.as_str(), "gdbm", "back.db"),
    ];
    for (se, sd, de, dd) in hops {
        let o = migrate(h, &["--se", se, "--sd", sd, "--de", de, "--dd", dd]);
        assert_ok(&o, want.len());
    }
    // The reference's own upgrade path: redis_v0 → redis on one Redis, --delete.
    let _: () = redis::cmd("FLUSHDB").query(&mut con).unwrap();
    let v0 = open(&EngineOptions::new("redis_v0", h).dsn(redis_dsn)).unwrap();
    let sample: Vec<(Vec<u8>, Record)> = want
        .iter()
        .take(50)
        .map(|(k, r)| (k.clone(), to_secs(*r)))
        .collect();
    v0.put_many(&sample).unwrap();
    let o = migrate(
        h,
        &[
            "--delete", "--se", "redis_v0", "--sd", redis_dsn, "--de", "redis", "--dd", redis_dsn,
        ],
    );
    assert_ok(&o, 50);
    assert_eq!(v0.scan().unwrap().count(), 0, "old records deleted");
    let v1 = open(&EngineOptions::new("redis", h).dsn(redis_dsn)).unwrap();
    let got: BTreeMap<_, _> = v1.scan().unwrap().map(|x| x.unwrap()).collect();
    assert_eq!(got, sample.into_iter().collect::<BTreeMap<_, _>>());
    let _: () = redis::cmd("FLUSHDB").query(&mut con).unwrap();
    let back = parse_py(&py_gdbm(
        &venv,
        &["read", h.join("back.db").to_str().unwrap()],
    ));
    let want_s: BTreeMap<_, _> = want.iter().map(|(k, r)| (k.clone(), to_secs(*r))).collect();
    assert_eq!(back, want_s);
    // lmdb kept the microseconds
    let lm = open(&EngineOptions::new("lmdb", h)).unwrap();
    let got: BTreeMap<_, _> = lm.scan().unwrap().map(|x| x.unwrap()).collect();
    assert_eq!(got, want);
}

#[test]
fn migrate_export_import_dry_run_and_delete() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let mut want = BTreeMap::new();
    {
        let src = open(&EngineOptions::new("lmdb", h).dsn("src.lmdb")).unwrap();
        let mut out = Vec::new();
        for i in 0..2500u32 {
            let d = if i % 500 == 0 {
                vec![0xff, (i / 500) as u8, 0]
            } else {
                format!("{i:x}").into_bytes()
            };
            let ops = if i % 3 == 0 {
                vec![Op::Whitelist(&d)]
            } else {
                vec![Op::Report(&d), Op::Report(&d)]
            };
            out.clear();
            src.execute(
                &ops,
                Timestamp(1_790_000_000_000_000 + i as i64 * 1_000_003),
                &mut out,
            )
            .unwrap();
            want.insert(d.clone(), out.last().unwrap().unwrap());
        }
    }
    let o = migrate(
        h,
        &[
            "--se",
            "lmdb",
            "--sd",
            "src.lmdb",
            "--dry-run",
            "--de",
            "gdbm",
            "--dd",
            "never.db",
        ],
    );
    assert!(o.status.success());
    assert!(stdout(&o)
        .contains("Migration complete, 2500 records would be transferred, 0 records failed"));
    assert!(!h.join("never.db").exists(), "a dry run writes nothing");

    let o = migrate(
        h,
        &[
            "--se",
            "lmdb",
            "--sd",
            "src.lmdb",
            "--export",
            "backup.jsonl",
        ],
    );
    assert_ok(&o, 2500);
    assert_eq!(
        std::fs::read_to_string(h.join("backup.jsonl"))
            .unwrap()
            .lines()
            .count(),
        2500
    );
    let o = migrate(
        h,
        &[
            "--import",
            "backup.jsonl",
            "--de",
            "gdbm",
            "--dd",
            "restored.db",
            "--batch-size",
            "64",
        ],
    );
    assert_ok(&o, 2500);
    // gdbm → lmdb with --delete empties the source
    let o = migrate(
        h,
        &[
            "--se",
            "gdbm",
            "--sd",
            "restored.db",
            "--de",
            "lmdb",
            "--dd",
            "dst.lmdb",
            "--delete",
        ],
    );
    assert_ok(&o, 2500);
    let g = open(&EngineOptions::new("gdbm", h).dsn("restored.db")).unwrap();
    assert_eq!(
        g.scan().unwrap().count(),
        0,
        "--delete removed every transferred record"
    );
    drop(g);
    let dst = open(&EngineOptions::new("lmdb", h).dsn("dst.lmdb")).unwrap();
    let got: BTreeMap<_, _> = dst.scan().unwrap().map(|x| x.unwrap()).collect();
    assert_eq!(got, want);
}

#[test]
fn migrate_counts_failures_and_exits_non_zero() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    std::fs::write(
        h.join("in.jsonl"),
        "{\"digest\":\"ok1\",\"r_count\":1}\nnot json\n{\"digest\":\"ok2\",\"wl_count\":2,\"wl_updated\":5}\n{\"r_count\":1}\n",
    )
    .unwrap();
    let o = migrate(
        h,
        &["--import", "in.jsonl", "--de", "lmdb", "--dd", "x.lmdb"],
    );
    assert_eq!(o.status.code(), Some(2));
    let out = stdout(&o);
    assert!(
        out.contains("Migration complete, 2 records transferred successfully, 2 records failed"),
        "{out}"
    );
    // Per-record failures are diagnostics: stderr, stdout keeps the result.
    assert!(
        stderr(&o).contains("Record line 2 failed"),
        "{}",
        stderr(&o)
    );
    assert!(!out.contains("Record line"), "{out}");
    // A record the destination refuses (a digest MySQL's char(40) cannot hold).
    let test = "migrate_counts_failures_and_exits_non_zero";
    let Some(my) = mydb::MyDb::create(test) else {
        return;
    };
    let src = open(&EngineOptions::new("lmdb", h).dsn("odd.lmdb")).unwrap();
    let mut out = Vec::new();
    src.execute(
        &[Op::Report(&[b'x'; 41]), Op::Report(b"fine")],
        pyzor_store::now(),
        &mut out,
    )
    .unwrap();
    drop(src);
    let o = migrate(
        h,
        &[
            "--se",
            "lmdb",
            "--sd",
            "odd.lmdb",
            "--de",
            "mysql",
            "--dd",
            &my.dsn_tcp(3306, "digests"),
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stdout(&o).contains("1 records transferred successfully, 1 records failed"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn migrate_usage_errors_match_the_reference() {
    let home = tempfile::tempdir().unwrap();
    let o = migrate(home.path(), &["--se", "gdbm", "--sd", "x"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), "options --se/--sd/--de/--dd are required\n");
    // ... and the three forms of the command line on stderr
    for form in ["--dd DSN", "--export FILE|-", "--import FILE|-"] {
        assert!(stderr(&o).contains(form), "{form}: {}", stderr(&o));
    }
    let o = migrate(
        home.path(),
        &["--se", "nosuch", "--sd", "x", "--de", "lmdb", "--dd", "y"],
    );
    assert_eq!(o.status.code(), Some(1));
    // The reference's words first, then what this build has.
    assert_eq!(
        stdout(&o),
        format!(
            "Unsupported source engine: nosuch (this build has: {})\n",
            pyzor_store::ENGINES.join(", ")
        )
    );
    let o = migrate(
        home.path(),
        &[
            "--se",
            "lmdb",
            "--sd",
            "x",
            "--de",
            &"n".repeat(500),
            "--dd",
            "y",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).starts_with(&format!(
            "Unsupported destination engine: {} (",
            "n".repeat(64)
        )),
        "a hostile name is cut: {}",
        stdout(&o)
    );
    // unique prefixes of long options work, as with optparse
    let o = migrate(
        home.path(),
        &[
            "--source-e",
            "gdbm",
            "--source-d",
            "missing.db",
            "--de",
            "lmdb",
            "--dd",
            "y",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("does not exist"), "{}", stdout(&o));
    assert!(
        !home.path().join("missing.db").exists(),
        "a missing source is not created"
    );
}

#[test]
fn migrate_prints_plain_progress_lines_off_a_terminal() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let mut f = String::new();
    for i in 0..100_001 {
        f.push_str(&format!("{{\"digest\":\"{i:040x}\",\"r_count\":{i}}}\n"));
    }
    std::fs::write(h.join("big.jsonl"), f).unwrap();
    let o = migrate(
        h,
        &[
            "--import",
            "big.jsonl",
            "--de",
            "lmdb",
            "--dd",
            "big.lmdb",
            "--batch-size",
            "5000",
        ],
    );
    assert_ok(&o, 100_001);
    // Progress is on stderr; its rate is a whole number (no
    // `906,370.3155/s`); stdout holds the result line only.
    let err = stderr(&o);
    let line = err
        .lines()
        .find(|l| l.starts_with("100000 records transferred... ("))
        .unwrap_or_else(|| panic!("{err}"));
    let rate = line
        .strip_prefix("100000 records transferred... (")
        .and_then(|r| r.strip_suffix("/s)"))
        .unwrap_or_else(|| panic!("{line}"));
    assert!(rate.parse::<u64>().is_ok(), "{line}");
    assert_eq!(
        stdout(&o),
        "Migration complete, 100001 records transferred successfully, 0 records failed\n"
    );
}

#[test]
fn migrate_version_and_help() {
    let home = tempfile::tempdir().unwrap();
    for flag in ["-V", "--version"] {
        let o = migrate(home.path(), &[flag]);
        assert!(o.status.success());
        assert_eq!(
            stdout(&o),
            format!(
                "pyzor-migrate {} (pyzor-rs; Pyzor 1.1.2 compatible)\n",
                env!("CARGO_PKG_VERSION")
            )
        );
    }
    let o = migrate(home.path(), &["--help"]);
    let help = stdout(&o);
    assert!(o.status.success());
    assert!(
        !help.contains("This scripts") && !help.contains("It's arguments"),
        "{help}"
    );
    for form in [
        "--se ENGINE --sd DSN --de ENGINE --dd DSN",
        "--se ENGINE --sd DSN --export FILE|-",
        "--import FILE|- --de ENGINE --dd DSN",
    ] {
        assert!(help.contains(form), "{form}: {help}");
    }
}

/// Every ordered pair of engines (20), through the binary: a private Redis,
/// a private MariaDB database and a private PostgreSQL database.
#[test]
fn migrate_between_every_pair_of_engines() {
    use std::time::Duration;
    let test = "migrate_between_every_pair_of_engines";
    if !pyzor_testkit::programs_available(test, &["redis-server"]) {
        return;
    }
    let Some(my) = mydb::MyDb::create(test) else {
        return;
    };
    let Some(pg) = pgdb::PgDb::create(test) else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    struct Proc(std::process::Child);
    impl Drop for Proc {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _redis = Proc(
        Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--dir",
            ])
            .arg(h)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert!(
        pyzor_testkit::wait_tcp(port, Duration::from_secs(10)),
        "private redis did not start"
    );
    let mut con = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .unwrap()
        .get_connection()
        .unwrap();

    let data: BTreeMap<Vec<u8>, Record> = (0..300i64)
        .map(|i| {
            let s = |x: i64| Some(Timestamp::from_secs(x));
            let r = Record {
                r_count: if i % 4 == 1 { 0 } else { i * 13 },
                wl_count: if i % 4 == 0 { 0 } else { i % 9 + 1 },
                r_entered: if i % 4 == 1 {
                    None
                } else {
                    s(1_790_000_000 + i)
                },
                r_updated: if i % 4 == 1 {
                    None
                } else {
                    s(1_790_100_000 + i * 7)
                },
                wl_entered: if i % 4 == 0 {
                    None
                } else {
                    s(1_780_000_000 + i)
                },
                wl_updated: if i % 4 == 0 {
                    None
                } else {
                    s(1_795_000_000 - i)
                },
            };
            (format!("{:040x}", i * 982_451_653).into_bytes(), r)
        })
        .collect();
    let records: Vec<(Vec<u8>, Record)> = data.iter().map(|(k, r)| (k.clone(), *r)).collect();
    let engines = ["lmdb", "gdbm", "redis", "mysql", "postgres"];
    let mut pair = 0;
    for se in engines {
        for de in engines {
            if se == de {
                continue;
            }
            pair += 1;
            let dsn = |e: &str, role: &str| -> String {
                let tag = format!("{role}{pair}");
                match e {
                    "lmdb" => format!("{tag}.lmdb"),
                    "gdbm" => format!("{tag}.db"),
                    "redis" => format!("127.0.0.1,{port},,{}", if role == "s" { 1 } else { 2 }),
                    "mysql" => my.dsn_tcp(3306, &tag),
                    _ => pg.dsn(&tag),
                }
            };
            let (sd, dd) = (dsn(se, "s"), dsn(de, "d"));
            for db in [1, 2] {
                let _: () = redis::cmd("SELECT").arg(db).query(&mut con).unwrap();
                let _: () = redis::cmd("FLUSHDB").query(&mut con).unwrap();
            }
            {
                let src = open(&EngineOptions::new(se, h).dsn(&sd)).unwrap();
                src.put_many(&records).unwrap();
            }
            let o = migrate(
                h,
                &[
                    "--se",
                    se,
                    "--sd",
                    &sd,
                    "--de",
                    de,
                    "--dd",
                    &dd,
                    "--batch-size",
                    "128",
                ],
            );
            assert_ok(&o, records.len());
            let dst = open(&EngineOptions::new(de, h).dsn(&dd)).unwrap();
            let got: BTreeMap<_, _> = dst.scan().unwrap().map(|x| x.unwrap()).collect();
            assert_eq!(got, data, "{se} -> {de}");
        }
    }
    assert_eq!(pair, 20);
}
