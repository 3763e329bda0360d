//! Our client against a scripted UDP server we control: replies the
//! reference server never sends (wrong or missing Thread, no Count), IPv6
//! servers, servers-file comments, `--json`, stderr silence, genkey from a
//! pipe. Where the reference client behaves sanely on the same reply, its
//! output is compared too (needs the reference virtualenv for those parts).

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::*;

/// How the scripted server answers one request.
type Responder = Box<dyn Fn(&str, &str) -> Option<Vec<u8>> + Send>;

fn counts(count: u64, wl: u64) -> impl Fn(&str, &str) -> Option<Vec<u8>> {
    move |req, thread| {
        let extra = if req.starts_with("Op: check") || req.starts_with("Op: pong") {
            format!("Count: {count}\nWL-Count: {wl}\n")
        } else if req.starts_with("Op: info") {
            format!("Entered: 1700000000\nUpdated: 1700000100\nWL-Entered: 0\nWL-Updated: -1\nCount: {count}\nWL-Count: {wl}\n")
        } else {
            String::new()
        };
        Some(format!("Code: 200\nDiag: OK\nPV: 2.1\nThread: {thread}\n{extra}\n").into_bytes())
    }
}

fn ours() -> std::path::PathBuf {
    pyzor_testkit::our_bin("pyzor")
}

#[test]
fn json_output_one_object_per_server_and_digest() {
    let a = Fake::start("127.0.0.1:0", counts(3, 0)).unwrap();
    let b = Fake::start("127.0.0.1:0", counts(0, 2)).unwrap();
    let home = ClientHome::new(
        &[
            format!("127.0.0.1:{}", a.port),
            format!("127.0.0.1:{}", b.port),
        ],
        &[],
    );
    let h = home.path();
    let out = run_client(
        &ours(),
        h,
        &["--json", "-s", "digests", "check"],
        b"d1\nd2\n",
    );
    let objs: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(objs.len(), 4);
    assert_eq!(
        objs[0],
        serde_json::json!({"command": "check", "server": format!("127.0.0.1:{}", a.port),
            "digest": "d1", "code": 200, "diag": "OK", "count": 3, "wl_count": 0})
    );
    assert_eq!(objs[1]["wl_count"], 2);
    assert_eq!(objs[3]["digest"], "d2");
    assert_eq!(
        out.code, 1,
        "whitelisted on server b: same exit rule as text"
    );
    let out = run_client(&ours(), h, &["--json", "-s", "digests", "info"], b"d1\n");
    let first: serde_json::Value =
        serde_json::from_str(out.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(first["entered"], 1_700_000_000);
    assert_eq!(first["wl_updated"], -1);
    assert_eq!(out.code, 0);
    let out = run_client(&ours(), h, &["--json", "ping"], b"");
    assert_eq!(out.stdout.lines().count(), 2);
    assert!(out.stdout.lines().all(|l| !l.contains("digest")));
    // The default output is unchanged by the option's existence.
    let out = run_client(&ours(), h, &["-s", "digests", "check"], b"d1\n");
    assert_eq!(
        out.stdout,
        format!(
            "127.0.0.1:{}\t(200, 'OK')\t3\t0\n127.0.0.1:{}\t(200, 'OK')\t0\t2\n",
            a.port, b.port
        )
    );
}

#[test]
fn ipv6_servers_and_inline_comments() {
    let Some(v6) = Fake::start("[::1]:0", counts(1, 0)) else {
        pyzor_testkit::skip("ipv6_servers_and_inline_comments", "no IPv6 loopback");
        return;
    };
    let v4 = Fake::start("127.0.0.1:0", counts(2, 0)).unwrap();
    let home = ClientHome::new(
        &[
            format!("[::1]:{}   # the v6 one", v6.port),
            format!("127.0.0.1:{} # note", v4.port),
        ],
        &[],
    );
    std::fs::write(
        home.path().join("accounts"),
        format!("[::1] : {} : bob : salt,{BOB_KEY}\n", v6.port),
    )
    .unwrap();
    let out = run_client(&ours(), home.path(), &["-s", "digests", "check"], b"d\n");
    assert_eq!(
        out.stdout,
        format!(
            "[::1]:{}\t(200, 'OK')\t1\t0\n127.0.0.1:{}\t(200, 'OK')\t2\t0\n",
            v6.port, v4.port
        )
    );
    assert_eq!(out.code, 0);
    let seen6 = v6.finish();
    assert!(
        seen6[0].contains("\nUser: bob\n"),
        "accounts match [v6] hosts"
    );
    let seen4 = v4.finish();
    assert!(seen4[0].contains("\nUser: anonymous\n"));
}

/// Replies the reference client mishandles: we print an error line and
/// exit 1 where it crashes; where it prints a 400 line we print the same.
#[test]
fn odd_replies() {
    let clients = Clients::get("odd_replies");
    let cases: Vec<(&str, Responder)> = vec![
        (
            "wrong_thread",
            Box::new(|_: &str, _: &str| {
                Some(
                    b"Code: 200\nDiag: OK\nPV: 2.1\nThread: 1024\nCount: 1\nWL-Count: 0\n\n"
                        .to_vec(),
                )
            }),
        ),
        (
            "low_thread",
            Box::new(|_: &str, _: &str| {
                Some(b"Code: 200\nDiag: OK\nPV: 2.1\nThread: 7\nCount: 1\nWL-Count: 0\n\n".to_vec())
            }),
        ),
        (
            "no_pv",
            Box::new(|_: &str, t: &str| {
                Some(format!("Code: 200\nDiag: OK\nThread: {t}\n\n").into_bytes())
            }),
        ),
        (
            "no_code",
            Box::new(|_: &str, t: &str| {
                Some(format!("Diag: OK\nPV: 2.1\nThread: {t}\n\n").into_bytes())
            }),
        ),
        (
            "quote_in_diag",
            Box::new(|_: &str, t: &str| {
                Some(format!("Code: 401\nDiag: it's bad\nPV: 2.1\nThread: {t}\n\n").into_bytes())
            }),
        ),
    ];
    for (name, reply) in cases {
        let f = Fake::start("127.0.0.1:0", reply).unwrap();
        let home = ClientHome::new(&[format!("127.0.0.1:{}", f.port)], &[]);
        let o = run_client(&ours(), home.path(), &["-s", "digests", "check"], b"d\n");
        let mask = |s: &str| s.split(" (expected ").next().unwrap().to_string();
        if let Some(c) = &clients {
            let r = run_client(
                &c.reference,
                home.path(),
                &["-s", "digests", "check"],
                b"d\n",
            );
            assert_eq!(
                (mask(&o.stdout), o.code),
                (mask(&r.stdout), r.code),
                "{name}"
            );
        }
        match name {
            "wrong_thread" => assert!(o
                .stdout
                .contains("(400, 'received unexpected thread id 1024 (expected ")),
            "low_thread" => assert!(o.stdout.ends_with("(200, 'OK')\t1\t0\n") && o.code == 0),
            "no_pv" => assert!(o
                .stdout
                .ends_with("(400, \"Doesn't have fields for a ThreadedMessage.\")\n")),
            "no_code" => assert!(o
                .stdout
                .ends_with("(400, \"doesn't have fields for a Response\")\n")),
            "quote_in_diag" => assert!(o.stdout.ends_with("(401, \"it's bad\")\t\n")),
            _ => unreachable!(),
        }
        assert!(
            o.stderr.is_empty(),
            "{name}: stderr stays silent without -d: {}",
            o.stderr
        );
    }
    // Crashes of the reference (traceback, exit 1, no stdout): an error
    // line and exit 1 from us.
    let crashers: Vec<(&str, Responder)> = vec![
        (
            "empty_thread",
            Box::new(|_: &str, _: &str| {
                Some(b"Code: 400\nDiag: Bad request: Protocol Version not specified in request\nPV: 2.1\nThread: \n\n".to_vec())
            }),
        ),
        (
            "thread_70000",
            Box::new(|_: &str, _: &str| {
                Some(b"Code: 200\nDiag: OK\nPV: 2.1\nThread: 70000\n\n".to_vec())
            }),
        ),
        (
            "no_count",
            Box::new(|_: &str, t: &str| {
                Some(format!("Code: 200\nDiag: OK\nPV: 2.1\nThread: {t}\n\n").into_bytes())
            }),
        ),
        (
            "code_not_int",
            Box::new(|_: &str, t: &str| {
                Some(format!("Code: OK\nDiag: OK\nPV: 2.1\nThread: {t}\n\n").into_bytes())
            }),
        ),
    ];
    for (name, reply) in crashers {
        let f = Fake::start("127.0.0.1:0", reply).unwrap();
        let home = ClientHome::new(&[format!("127.0.0.1:{}", f.port)], &[]);
        let o = run_client(&ours(), home.path(), &["-s", "digests", "check"], b"d\n");
        assert_eq!(o.code, 1, "{name}");
        assert!(
            o.stdout
                .starts_with(&format!("127.0.0.1:{}\t(400, ", f.port)),
            "{name}: {}",
            o.stdout
        );
        assert!(o.stderr.is_empty(), "{name}");
        if let Some(c) = &clients {
            let r = run_client(
                &c.reference,
                home.path(),
                &["-s", "digests", "check"],
                b"d\n",
            );
            assert_eq!(r.code, 1, "{name}: the reference crashes");
            assert!(r.stderr.contains("Traceback"), "{name}");
        }
    }
}

#[test]
fn debug_goes_to_stderr_and_log_file() {
    let f = Fake::start("127.0.0.1:0", counts(0, 0)).unwrap();
    let home = ClientHome::new(&[format!("127.0.0.1:{}", f.port)], &[]);
    let log = home.path().join("client.log");
    let out = run_client(
        &ours(),
        home.path(),
        &["-d", "--log-file", log.to_str().unwrap(), "ping"],
        b"",
    );
    assert_eq!(out.code, 0);
    assert!(out.stderr.contains(") DEBUG sending: "), "{}", out.stderr);
    assert!(out.stderr.contains("WARNING No accounts are setup."));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains(") DEBUG received: "));
    // Without -d: INFO and above to the file only, stderr silent.
    std::fs::remove_file(&log).unwrap();
    let out = run_client(
        &ours(),
        home.path(),
        &["--log-file", log.to_str().unwrap(), "ping", "nope"],
        b"",
    );
    assert_eq!(out.code, 0);
    assert_eq!(
        out.stderr.lines().count(),
        1,
        "only the CRITICAL line: {}",
        out.stderr
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("DEBUG"));
    assert!(text.contains("CRITICAL Unknown command: nope"));
}

#[test]
fn genkey_from_a_pipe() {
    let home = ClientHome::new(&[], &[]);
    let out = run_client(&ours(), home.path(), &["genkey"], b"secret\nsecret\n");
    assert_eq!(out.code, 0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "salt,key:");
    let (salt, key) = lines[1].split_once(',').unwrap();
    assert!(salt.len() == 40 && key.len() == 40);
    assert!(out.stderr.is_empty(), "no prompts when stdin is a pipe");
    let out = run_client(&ours(), home.path(), &["genkey"], b"a\nb\n");
    assert_eq!((out.stdout.as_str(), out.code), ("", 1));
    // The key works with a server that knows it (the key is what the
    // server's pyzord.passwd holds).
    let f = Fake::start("127.0.0.1:0", counts(0, 0)).unwrap();
    let signed = ClientHome::new(
        &[format!("127.0.0.1:{}", f.port)],
        &[("127.0.0.1".into(), f.port, "alice", key)],
    );
    run_client(&ours(), signed.path(), &["ping"], b"");
    let seen = f.finish();
    assert!(seen[0].contains("\nUser: alice\n"));
}

#[test]
fn bad_files_give_an_error_line_and_exit_1() {
    let home = ClientHome::new(&["host:24441x".to_string()], &[]);
    let out = run_client(&ours(), home.path(), &["ping"], b"");
    assert_eq!(out.code, 1);
    assert!(out.stdout.is_empty());
    assert!(out.stderr.starts_with("pyzor: error: "), "{}", out.stderr);
    assert!(out.stderr.contains("line 1"));
    std::fs::write(home.path().join("servers"), "127.0.0.1:9\n").unwrap();
    std::fs::write(
        home.path().join("config"),
        "[client]\nTimeout = 5 # seconds\n",
    )
    .unwrap();
    let out = run_client(&ours(), home.path(), &["ping"], b"");
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("Timeout"), "{}", out.stderr);
    std::fs::write(home.path().join("config"), "[client]\nTimeout = 0.5\n").unwrap();
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    std::fs::write(
        home.path().join("servers"),
        format!("127.0.0.1:{}\n", silent.local_addr().unwrap().port()),
    )
    .unwrap();
    let t0 = std::time::Instant::now();
    let out = run_client(&ours(), home.path(), &["ping"], b"");
    assert!(out
        .stdout
        .ends_with("\t(504, 'Reading response timed-out.')\n"));
    assert_eq!(out.code, 1);
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "fractional timeout honoured"
    );
}

/// On a terminal: prompts shown, passphrase not echoed (util-linux
/// `script` provides the pseudo-terminal).
#[test]
fn genkey_on_a_terminal_does_not_echo() {
    let test = "genkey_on_a_terminal_does_not_echo";
    if !std::path::Path::new("/usr/bin/script").is_file() {
        pyzor_testkit::skip(test, "util-linux script(1) not installed");
        return;
    }
    let home = pyzor_testkit::temp_home();
    let cmd = format!(
        "(sleep 1; printf 'hunter22\\n'; sleep 0.5; printf 'hunter22\\n'; sleep 0.5) | timeout 20 script -qec '{} --homedir {} genkey' /dev/null",
        ours().display(),
        home.path().display()
    );
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(&cmd)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Enter passphrase: "), "{text:?}");
    assert!(text.contains("Enter passphrase again: "), "{text:?}");
    assert!(text.contains("salt,key:"), "{text:?}");
    assert!(!text.contains("hunter22"), "echo must be off: {text:?}");
}
