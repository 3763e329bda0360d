//! `pyzor explain` and `pyzor doctor` against live servers: our pyzord
//! with an account, the reference pyzord with a shifted clock, a dead port,
//! and a hostile responder sending garbage and huge datagrams.

mod common;

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{run_client, start_server, start_server_via, ClientHome, Fake, Run, Server, BOB_KEY};
use serde_json::Value;

const GTUBE_MSG: &[u8] =
    b"Subject: GTUBE\n\nXJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\n";
const NORMAL_MSG: &[u8] = b"Subject: dinner\n\nDear friend,\nthank you for the lovely dinner last night.\nThe garden looked wonderful in the evening light.\n";

fn long_msg() -> Vec<u8> {
    let mut m = b"Subject: long\n\n".to_vec();
    for i in 0..40 {
        m.extend_from_slice(format!("this is line number {i} of a long newsletter\n").as_bytes());
    }
    m
}

fn ours() -> PathBuf {
    pyzor_testkit::our_bin("pyzor")
}

/// Our pyzord with bob's account, or a loud skip when it is not built.
fn our_server(test: &str) -> Option<Server> {
    let bin = ours().with_file_name("pyzord");
    if !bin.is_file() {
        pyzor_testkit::skip(
            test,
            &format!(
                "{} is not built (cargo build -p pyzor-server)",
                bin.display()
            ),
        );
        return None;
    }
    Some(start_server(&bin, &[], true).expect("our pyzord starts"))
}

/// A client home for one server with bob's account (accounts file 0600).
fn home_with_bob(port: u16) -> ClientHome {
    let home = ClientHome::new(
        &[format!("127.0.0.1:{port}")],
        &[("127.0.0.1".to_string(), port, "bob", BOB_KEY)],
    );
    chmod(&home.path().join("accounts"), 0o600);
    home
}

fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn json_lines(r: &Run) -> Vec<Value> {
    r.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn pyzor(home: &Path, args: &[&str], stdin: &[u8]) -> Run {
    run_client(&ours(), home, args, stdin)
}

#[test]
fn explain_shows_counts_dates_lines_and_local_whitelist() {
    let Some(server) = our_server("explain_shows_counts_dates_lines_and_local_whitelist") else {
        return;
    };
    let home = home_with_bob(server.port);
    let h = home.path();
    let msg = long_msg();
    // Two reports and one whitelisting (bob may whitelist).
    for _ in 0..2 {
        assert_eq!(pyzor(h, &["report"], &msg).code, 0);
    }
    assert_eq!(pyzor(h, &["whitelist"], &msg).code, 0);
    let digest = pyzor(h, &["digest"], &msg).stdout.trim().to_string();

    let r = pyzor(h, &["explain"], &msg);
    assert_eq!(r.code, 0, "{r:?}");
    let t = &r.stdout;
    assert!(t.contains(&format!("digest: {digest}")), "{t}");
    assert!(t.contains("6 of 40 usable lines are hashed"), "{t}");
    assert!(
        t.contains("usable line 9: part 1 line 9: \"this is line number 8 of a long newsletter\""),
        "{t}"
    );
    assert!(
        t.contains("reported 2 time(s), whitelisted 1 time(s)"),
        "{t}"
    );
    assert!(!t.contains("first report never"), "{t}");
    assert!(t.contains("warning (sampled)"), "{t}");
    assert!(t.contains("local whitelist: not listed"), "{t}");
    assert!(t.contains("verdict: whitelisted on"), "{t}");

    let r = pyzor(h, &["--json", "explain"], &msg);
    assert_eq!(r.code, 0);
    let v = &json_lines(&r)[0];
    assert_eq!(v["digest"], digest.as_str());
    assert_eq!(v["kept_lines"], 40);
    assert_eq!(v["sampling"]["skipped"], 34);
    assert_eq!(v["lines"].as_array().unwrap().len(), 6);
    let s = &v["servers"][0];
    assert_eq!(
        (s["count"].as_i64(), s["wl_count"].as_i64()),
        (Some(2), Some(1))
    );
    let entered = s["entered"].as_i64().unwrap();
    assert!(entered > 1_600_000_000 && s["updated"].as_i64().unwrap() >= entered);
    assert!(s["wl_entered"].as_i64().unwrap() > 1_600_000_000);
    assert_eq!(v["local_whitelist"], false);
    assert_eq!(v["warnings"][0]["code"], "sampled");

    // The local whitelist, as `local_whitelist` writes it.
    assert_eq!(pyzor(h, &["local_whitelist"], &msg).code, 0);
    let r = pyzor(h, &["--json", "explain"], &msg);
    assert_eq!(json_lines(&r)[0]["local_whitelist"], true);
    assert!(pyzor(h, &["explain"], &msg)
        .stdout
        .contains("local whitelist: listed"));

    // Every input style: an mbox of two messages, then digests.
    let mut mbox = b"From a@b Sat Jan  1 00:00:00 2000\n".to_vec();
    mbox.extend_from_slice(&msg);
    mbox.extend_from_slice(b"\nFrom c@d Sat Jan  1 00:00:00 2000\n");
    mbox.extend_from_slice(NORMAL_MSG);
    let r = pyzor(h, &["-s", "mbox", "--json", "explain"], &mbox);
    let v = json_lines(&r);
    assert_eq!(v.len(), 2, "{r:?}");
    assert_eq!(v[0]["digest"], digest.as_str());
    assert_eq!(v[1]["servers"][0]["count"], 0);
    assert_eq!(v[1]["message"], 2);
    let r = pyzor(
        h,
        &["-s", "digests", "--json", "explain"],
        format!("{digest}\n\n").as_bytes(),
    );
    let v = json_lines(&r);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0]["input"], "digest");
    assert_eq!(v[0]["servers"][0]["count"], 2);
}

#[test]
fn explain_warnings_and_digests_match_the_reference() {
    let test = "explain_warnings_and_digests_match_the_reference";
    let Some(venv) = pyzor_testkit::ref_venv(test) else {
        return;
    };
    let home = ClientHome::new(&["127.0.0.1:9".to_string()], &[]);
    let h = home.path();
    let cases: [(&[u8], &[&str]); 4] = [
        (b"Subject: empty\n\n", &["empty-digest"]),
        (GTUBE_MSG, &["empty-digest", "gtube"]),
        (&long_msg(), &["sampled"]),
        (NORMAL_MSG, &["few-lines"]),
    ];
    for (msg, codes) in cases {
        let reference = run_client(&venv.join("bin/pyzor"), h, &["digest"], msg);
        let r = pyzor(h, &["-t", "0.5", "--json", "explain"], msg);
        assert_eq!(r.code, 1, "the server is down: exit 1");
        let v = &json_lines(&r)[0];
        assert_eq!(v["digest"], reference.stdout.trim(), "{v}");
        let got: Vec<&str> = v["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["code"].as_str().unwrap())
            .collect();
        assert_eq!(got, codes, "{v}");
        // The hashed lines are what the reference's predigest prints.
        let pre = run_client(&venv.join("bin/pyzor"), h, &["predigest"], msg);
        let hashed: Vec<&str> = v["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["hashed"].as_str().unwrap())
            .collect();
        let want: Vec<&str> = pre.stdout.lines().collect();
        assert_eq!(hashed, want);
    }
    // Given as a digest, the empty digest still gets its warning.
    let r = pyzor(
        h,
        &["-t", "0.5", "-s", "digests", "--json", "explain"],
        b"da39a3ee5e6b4b0d3255bfef95601890afd80709\n",
    );
    assert_eq!(json_lines(&r)[0]["warnings"][0]["code"], "empty-digest");
    let r = pyzor(h, &["-t", "0.5", "explain"], b"Subject: empty\n\n");
    assert!(
        r.stdout.contains("matches every empty message"),
        "{}",
        r.stdout
    );
}

#[test]
fn explain_goes_on_after_a_message_the_reference_cannot_digest() {
    let home = ClientHome::new(&["127.0.0.1:9".to_string()], &[]);
    // A NUL in the charset of a non-text part with 8-bit bytes: the
    // reference raises ValueError (docs/digest-rules.md §H.2).
    let mut mbox = b"From a@b Sat Jan  1 00:00:00 2000\nContent-Type: application/x; charset=\"a\0b\"\n\n\xe9\xe9 body\n\n".to_vec();
    mbox.extend_from_slice(b"From c@d Sat Jan  1 00:00:00 2000\n");
    mbox.extend_from_slice(NORMAL_MSG);
    let r = pyzor(
        home.path(),
        &["-t", "0.5", "-s", "mbox", "--json", "explain"],
        &mbox,
    );
    assert_eq!(r.code, 1);
    let v = json_lines(&r);
    assert_eq!(v.len(), 2, "{}", r.stdout);
    assert!(v[0]["digest"].is_null());
    assert!(
        v[0]["error"]
            .as_str()
            .unwrap()
            .contains("Pyzor 1.1.2 raises"),
        "{}",
        v[0]
    );
    assert_eq!(v[1]["kept_lines"], 3);
    let t = pyzor(home.path(), &["-t", "0.5", "-s", "mbox", "explain"], &mbox).stdout;
    assert!(t.contains("error: cannot digest this message"), "{t}");
}

#[test]
fn doctor_healthy_setup_exits_zero_and_flags_a_readable_accounts_file() {
    let test = "doctor_healthy_setup_exits_zero_and_flags_a_readable_accounts_file";
    let Some(server) = our_server(test) else {
        return;
    };
    let home = home_with_bob(server.port);
    let h = home.path();
    let r = pyzor(h, &["doctor"], b"");
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(
        r.stdout.contains("signed ping accepted as user \"bob\""),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("clock skew: the server's clock "),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("doctor: nothing wrong found"));
    let v = json_lines(&pyzor(h, &["--json", "doctor"], b""));
    let skew = v.iter().find(|x| x.get("skew_s").is_some()).unwrap();
    assert!(skew["skew_s"].as_i64().unwrap().abs() <= 2, "{skew}");
    assert_eq!(skew["skew_precision_s"], 1);
    let ping = v.iter().find(|x| x.get("rtt_ms").is_some()).unwrap();
    assert_eq!(ping["auth"], "accepted");

    chmod(&h.join("accounts"), 0o644);
    let r = pyzor(h, &["doctor"], b"");
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.contains("is readable by other users (mode 0644)"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("chmod 600"));

    // A wrong key: reachable, refused, and the skew is still measured
    // (the server checks the time before the signature).
    std::fs::write(
        h.join("accounts"),
        format!("127.0.0.1 : {} : bob : ,{}\n", server.port, "0".repeat(40)),
    )
    .unwrap();
    chmod(&h.join("accounts"), 0o600);
    let r = pyzor(h, &["doctor"], b"");
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("the key does not match"), "{}", r.stdout);
    assert!(
        r.stdout.contains("clock skew: the server's clock "),
        "{}",
        r.stdout
    );
}

/// The reference pyzord, its `time.time` shifted by `skew` seconds.
fn skewed_reference(venv: &Path, skew: i64) -> Server {
    let launcher = "import sys, time, runpy\n\
        s = float(sys.argv[1]); p = sys.argv[2]\n\
        real = time.time\n\
        time.time = lambda: real() + s\n\
        sys.argv = [p] + sys.argv[3:]\n\
        runpy.run_path(p, run_name='__main__')\n";
    let pyzord = venv.join("bin/pyzord");
    let skew = skew.to_string();
    start_server_via(
        &venv.join("bin/python"),
        &["-c", launcher, &skew, pyzord.to_str().unwrap()],
        &[],
        true,
    )
    .expect("reference pyzord with a shifted clock starts")
}

#[test]
fn doctor_estimates_the_skew_of_a_server_with_a_shifted_clock() {
    let test = "doctor_estimates_the_skew_of_a_server_with_a_shifted_clock";
    let Some(venv) = pyzor_testkit::ref_venv(test) else {
        return;
    };
    for (skew, level) in [(1000i64, "error"), (-120, "warning"), (-2500, "error")] {
        let server = skewed_reference(&venv, skew);
        let home = home_with_bob(server.port);
        let r = pyzor(home.path(), &["--json", "doctor"], b"");
        assert_eq!(r.code, 1, "skew {skew}: {}", r.stdout);
        let v = json_lines(&r);
        let k = v
            .iter()
            .find(|x| x.get("skew_s").is_some())
            .unwrap_or_else(|| panic!("skew {skew}: {}", r.stdout));
        let est = k["skew_s"].as_i64().unwrap();
        let precision = k["skew_precision_s"].as_i64().unwrap();
        assert!(
            (est - skew).abs() <= precision + 1,
            "skew {skew}: estimated {est} ± {precision}"
        );
        assert_eq!(k["level"], level, "{k}");
        // Datagrams: the handful the brief allows (plus the search when
        // the first ping is outside the window).
        assert!(k["skew_probes"].as_u64().unwrap() <= 22, "{k}");
        let text = pyzor(home.path(), &["doctor"], b"").stdout;
        let dir = if skew > 0 { "ahead of" } else { "behind" };
        assert!(text.contains(dir), "{text}");
        if skew.abs() > 300 {
            assert!(text.contains("differ by more than 300 s"), "{text}");
        }
    }
}

#[test]
fn doctor_on_a_dead_port_says_unreachable_and_fails() {
    let port = {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let home = ClientHome::new(&[format!("127.0.0.1:{port}")], &[]);
    let r = pyzor(home.path(), &["-t", "1", "doctor"], b"");
    assert_eq!(r.code, 1);
    assert!(
        r.stdout
            .contains(&format!("[ERROR] 127.0.0.1:{port}: unreachable")),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("every request is anonymous"));
}

#[test]
fn doctor_reports_what_the_client_ignores() {
    let home = ClientHome::new(&["x:1".to_string(), "host: 12".to_string()], &[]);
    let h = home.path();
    std::fs::write(
        h.join("config"),
        "[client]\nTimeout = 1\nServerFile = typo\n[extra]\na = b\n",
    )
    .unwrap();
    std::fs::write(h.join("accounts"), "127.0.0.1 : 1 : bob\n").unwrap();
    chmod(&h.join("accounts"), 0o600);
    std::fs::write(h.join("whitelist"), "# mine\nABCDEF\n").unwrap();
    let r = pyzor(h, &["doctor"], b"");
    assert_eq!(r.code, 1);
    let t = &r.stdout;
    assert!(
        t.contains("line 1: \"x:1\" is ignored by the client"),
        "{t}"
    );
    assert!(t.contains("line 2: \"host: 12\" is ignored"), "{t}");
    assert!(
        t.contains("SILENTLY falls back to public.pyzor.org:24441"),
        "{t}"
    );
    assert!(
        t.contains("[client] key \"serverfile\" is not a client setting"),
        "{t}"
    );
    assert!(t.contains("section [extra] is not read"), "{t}");
    assert!(t.contains("invalid line 1: wrong number of parts"), "{t}");
    assert!(t.contains("line 2: \"ABCDEF\" never matches"), "{t}");
    // The server the client really uses is the one checked (whatever the
    // sandbox's network makes of it).
    assert!(
        t.contains("\n[ERROR] public.pyzor.org:24441: ")
            || t.contains("\n[ok] public.pyzor.org:24441: "),
        "{t}"
    );

    // A file of many bad lines gives a bounded report.
    let junk: String = (0..5000).map(|i| format!("junk line {i}\n")).collect();
    std::fs::write(h.join("whitelist"), &junk).unwrap();
    std::fs::write(h.join("servers"), &junk).unwrap();
    let r = pyzor(h, &["-t", "0.5", "doctor"], b"");
    assert_eq!(r.code, 1);
    assert!(r.stdout.lines().count() < 70, "{}", r.stdout);
    assert!(
        r.stdout.contains("… and 4980 more such lines"),
        "{}",
        r.stdout
    );

    // A bad port stops every other command; doctor still reports it.
    std::fs::write(h.join("servers"), "127.0.0.1:99999\n").unwrap();
    let r = pyzor(h, &["doctor"], b"");
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("has an invalid port"), "{}", r.stdout);
    assert_eq!(pyzor(h, &["ping"], b"").code, 1);
}

/// Answers every datagram with garbage, a 60 000-byte datagram, or a
/// well-formed reply full of terminal escapes and absurd numbers, in turn.
fn hostile_reply() -> impl Fn(&str, &str) -> Option<Vec<u8>> {
    let n = AtomicUsize::new(0);
    move |_req, thread| {
        Some(match n.fetch_add(1, Ordering::Relaxed) % 3 {
            0 => (0..2000u32).map(|i| (i * 7 + 13) as u8).collect(),
            1 => vec![b'A'; 60_000],
            _ => format!(
                "Code: 200\nDiag: \x1b[2J\x1b[31mOK\nPV: 2.1\nThread: {thread}\nCount: 99999999999999999999999\nWL-Count: -5\nEntered: 99999999999999\nUpdated: x\n\n"
            )
            .into_bytes(),
        })
    }
}

#[test]
fn hostile_server_replies_are_contained() {
    let hostile = Fake::start("127.0.0.1:0", hostile_reply()).unwrap();
    let home = ClientHome::new(
        &[format!("127.0.0.1:{}", hostile.port)],
        &[("127.0.0.1".to_string(), hostile.port, "bob", BOB_KEY)],
    );
    chmod(&home.path().join("accounts"), 0o600);
    let h = home.path();
    for _ in 0..3 {
        // Each run meets another mix of the three replies.
        let r = pyzor(h, &["-t", "1", "explain"], NORMAL_MSG);
        assert_eq!(r.code, 1, "{}", r.stdout);
        assert!(
            !r.stdout.contains('\x1b'),
            "escapes reach the terminal: {:?}",
            r.stdout
        );
        assert!(r.stdout.len() < 8000, "{}", r.stdout.len());
        let r = pyzor(h, &["-t", "1", "--json", "explain"], NORMAL_MSG);
        assert_eq!(r.code, 1);
        assert_eq!(json_lines(&r).len(), 1);
        let r = pyzor(h, &["-t", "1", "doctor"], b"");
        assert_eq!(r.code, 1, "{}", r.stdout);
        assert!(!r.stdout.contains('\x1b'), "{:?}", r.stdout);
        assert!(r.stdout.len() < 8000, "{}", r.stdout.len());
    }
}
