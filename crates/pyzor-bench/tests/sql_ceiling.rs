//! `pyzor-bench sql-ceiling` against MariaDB and PostgreSQL: every pattern
//! counts exactly (the sum of the report counts grows by the rows it says
//! it reported, digests drawn twice in a batch included) and every check
//! hits after the prefill. Counts only, never timings. Each test makes its
//! own database and drops it; without the service it skips loudly.

use mysql::prelude::Queryable;
use serde_json::Value;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_pyzor-bench");
const MY_SOCKET: &str = "/run/mysqld/mysqld.sock";

fn tag() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("pyzor_bench_test_{:x}_{t:x}", std::process::id())
}

/// Run sql-ceiling with `args`; its JSON and exit code.
fn ceiling(engine: &str, dsn: &str, args: &[&str]) -> (Value, i32) {
    let out = Command::new(BIN)
        .args([
            "sql-ceiling",
            "--engine",
            engine,
            "--dsn",
            dsn,
            "--json",
            "--timeout",
            "10",
        ])
        .args(args)
        .output()
        .expect("run pyzor-bench");
    let text = String::from_utf8_lossy(&out.stdout);
    let v = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "no JSON ({e}): {text} / {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (v, out.status.code().unwrap_or(-1))
}

/// Report and check on a 10-digest pool (64-digest batches: every batch
/// draws digests twice) with each pattern; `sum` reads SUM(r_count).
fn counts_exactly(engine: &str, dsn: &str, mut sum: impl FnMut() -> i64) {
    let common = [
        "--table", "ceil", "-P", "10", "-w", "64", "-W", "0", "-d", "0.3",
    ];
    let (v, code) = ceiling(engine, dsn, &[&common[..], &["--prefill", "only"]].concat());
    assert_eq!((code, v["ok"].as_bool()), (0, Some(true)), "{v}");
    assert_eq!(sum(), 10, "the prefill writes each pool digest once");
    for pattern in ["batch", "per-digest"] {
        let before = sum();
        let (v, code) = ceiling(
            engine,
            dsn,
            &[
                &common[..],
                &["--prefill", "no", "-o", "report", "--pattern", pattern],
            ]
            .concat(),
        );
        assert_eq!((code, v["errors"].as_u64()), (0, Some(0)), "{v}");
        let rows = v["rows"].as_i64().unwrap();
        assert!(rows >= 64 && rows % 64 == 0, "{v}");
        assert_eq!(
            sum() - before,
            rows,
            "{engine} {pattern}: one count per row reported"
        );
        let (v, code) = ceiling(
            engine,
            dsn,
            &[
                &common[..],
                &["--prefill", "no", "-o", "check", "--pattern", pattern],
            ]
            .concat(),
        );
        assert_eq!(code, 0, "{v}");
        assert!(v["rows"].as_u64().unwrap() >= 64, "{v}");
        assert_eq!(
            v["check_hits"], v["rows"],
            "{engine} {pattern}: every check hits"
        );
    }
    assert!(v_durability(engine, dsn).contains('='));
}

fn v_durability(engine: &str, dsn: &str) -> String {
    let (v, _) = ceiling(
        engine,
        dsn,
        &["--table", "ceil", "-P", "1", "--prefill", "only"],
    );
    v["durability"].as_str().unwrap().to_owned()
}

#[test]
fn sql_ceiling_mysql_counts_exactly() {
    let test = "sql_ceiling_mysql_counts_exactly";
    if !pyzor_testkit::mysql_available(test) {
        return;
    }
    let opts = mysql::OptsBuilder::new()
        .socket(Some(MY_SOCKET))
        .user(Some("root"))
        .prefer_socket(true);
    let mut root = match mysql::Conn::new(opts) {
        Ok(c) => c,
        Err(e) => {
            pyzor_testkit::skip(test, &format!("cannot connect to MariaDB as root: {e}"));
            return;
        }
    };
    let db = tag();
    root.query_drop(format!("CREATE DATABASE {db}")).unwrap();
    let dsn = format!("mysql://root@localhost/{db}?socket={MY_SOCKET}");
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        counts_exactly("mysql", &dsn, || {
            root.query_first::<i64, _>(format!(
                "SELECT CAST(SUM(r_count) AS SIGNED) FROM {db}.ceil"
            ))
            .unwrap()
            .unwrap()
        })
    }));
    root.query_drop(format!("DROP DATABASE {db}")).unwrap();
    if let Err(p) = r {
        std::panic::resume_unwind(p);
    }
}

#[test]
fn sql_ceiling_postgres_counts_exactly() {
    let test = "sql_ceiling_postgres_counts_exactly";
    if !pyzor_testkit::postgres_available(test) {
        return;
    }
    let admin = |db: &str| {
        postgres::Config::new()
            .host("127.0.0.1")
            .user("postgres")
            .dbname(db)
            .connect_timeout(std::time::Duration::from_secs(5))
            .connect(postgres::NoTls)
    };
    let mut root = match admin("postgres") {
        Ok(c) => c,
        Err(e) => {
            pyzor_testkit::skip(
                test,
                &format!("cannot connect to PostgreSQL as postgres: {e}"),
            );
            return;
        }
    };
    let db = tag();
    root.batch_execute(&format!("CREATE DATABASE {db}"))
        .unwrap();
    let dsn = format!("host=127.0.0.1 user=postgres dbname={db}");
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut c = admin(&db).unwrap();
        counts_exactly("postgres", &dsn, || {
            c.query_one("SELECT SUM(r_count)::bigint FROM ceil", &[])
                .unwrap()
                .get(0)
        })
    }));
    root.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .unwrap();
    if let Err(p) = r {
        std::panic::resume_unwind(p);
    }
}

/// Hostile arguments are refused before any database is contacted: a
/// table name that is not a plain identifier, a DSN that is no URL, a
/// pool past the bound.
#[test]
fn sql_ceiling_refuses_bad_arguments() {
    for (engine, dsn, extra, what) in [
        (
            "mysql",
            "mysql://u@127.0.0.1:1/x",
            &["--table", "t; DROP TABLE x"][..],
            "--table",
        ),
        (
            "postgres",
            "host=127.0.0.1 port=1",
            &["--table", &"t".repeat(65)][..],
            "--table",
        ),
        ("mysql", "not a url", &[][..], "--dsn"),
        (
            "postgres",
            "host=127.0.0.1",
            &["-P", "10000001"][..],
            "--pool",
        ),
    ] {
        let out = Command::new(BIN)
            .args(["sql-ceiling", "--engine", engine, "--dsn", dsn])
            .args(extra)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {err}");
        assert!(err.contains(what), "{what}: {err}");
        assert!(err.len() < 400, "error text is bounded: {err}");
    }
}
