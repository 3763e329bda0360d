//! Our pyzord driven by the reference `pyzor` client (Pyzor 1.1.2 from
//! PyPI): every op, anonymous and signed (allowed, forbidden, wrong key,
//! unknown user), checking codes, counts and timestamps.

mod common;
use common::*;

const MSG: &[u8] = b"Subject: hi\n\nThis is a test message with enough words to digest, really.\n";
const BOB_KEY: &str = "cf88277c5d4abdc0a3f56f416011966d04a3f462";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn anonymous_every_op() {
    let Some(venv) = venv("anonymous_every_op") else {
        return;
    };
    let home = pyzor_testkit::temp_home();
    let srv = start_ours(home.path(), &["-e", "lmdb"]);
    let c = client_home(&home.path().join("client"), srv.port, &[]);
    let addr = format!("127.0.0.1:{}", srv.port);

    let (out, code) = ref_pyzor(&venv, &c, &["ping"], b"");
    assert_eq!(
        (out.as_str(), code),
        (format!("{addr}\t(200, 'OK')\n").as_str(), 0)
    );

    let (out, code) = ref_pyzor(&venv, &c, &["check"], MSG);
    assert_eq!(out, format!("{addr}\t(200, 'OK')\t0\t0\n"));
    assert_eq!(code, 1, "no hit → exit 1");

    let before = now();
    for _ in 0..2 {
        let (out, code) = ref_pyzor(&venv, &c, &["report"], MSG);
        assert_eq!((out, code), (format!("{addr}\t(200, 'OK')\n"), 0));
    }
    let (out, code) = ref_pyzor(&venv, &c, &["check"], MSG);
    assert_eq!((out, code), (format!("{addr}\t(200, 'OK')\t2\t0\n"), 0));

    let (out, code) = ref_pyzor(&venv, &c, &["pong"], MSG);
    assert_eq!(
        (out, code),
        (format!("{addr}\t(200, 'OK')\t9223372036854775807\t0\n"), 0)
    );

    // info: the raw reply carries epoch seconds; check them directly.
    let (digest, _) = ref_pyzor(&venv, &c, &["digest"], MSG);
    let digest = digest.trim();
    let reply = raw(
        srv.port,
        format!("Op: info\nOp-Digest: {digest}\nThread: 4000\nPV: 2.1\n\n").as_bytes(),
    );
    let text = String::from_utf8(reply).unwrap();
    let field = |n: &str| -> i64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{n}: ")))
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(
        field("Entered") >= before - 1 && field("Entered") <= now() + 1,
        "{text}"
    );
    assert!(field("Updated") >= field("Entered"));
    assert_eq!(
        (
            field("WL-Entered"),
            field("WL-Updated"),
            field("Count"),
            field("WL-Count")
        ),
        (0, 0, 2, 0)
    );
    let (out, code) = ref_pyzor(&venv, &c, &["info"], MSG);
    assert_eq!(code, 0);
    assert!(
        out.starts_with(&format!("{addr}\t(200, 'OK')\n\tCount: 2\n\tEntered: ")),
        "{out}"
    );

    // whitelist is not in the default anonymous ACL.
    let (out, code) = ref_pyzor(&venv, &c, &["whitelist"], MSG);
    assert_eq!(
        out,
        format!("{addr}\t(403, 'Forbidden: User is not authorized to request the operation.')\n")
    );
    assert_eq!(code, 1);

    // -s digests: one request per line, sent verbatim.
    let (out, _) = ref_pyzor(&venv, &c, &["-s", "digests", "report"], b"abc\ndef\n");
    assert_eq!(out.lines().count(), 2);
    let (out, _) = ref_pyzor(&venv, &c, &["-s", "digests", "check"], b"abc\n");
    assert_eq!(out, format!("{addr}\t(200, 'OK')\t1\t0\n"));
    assert_eq!(srv.stop(), Some(0));
}

#[test]
fn signed_users() {
    let Some(venv) = venv("signed_users") else {
        return;
    };
    let home = pyzor_testkit::temp_home();
    std::fs::write(
        home.path().join("pyzord.passwd"),
        format!(
            "bob : {}\nalice : 0123456789abcdef\ndan : dddd\n",
            BOB_KEY.to_uppercase()
        ),
    )
    .unwrap();
    std::fs::write(
        home.path().join("pyzord.access"),
        "all : bob : allow\nping check : alice : allow\nall : dan : allow\npong info whitelist : dan : deny\ncheck ping : anonymous : allow\n",
    )
    .unwrap();
    let srv = start_ours(home.path(), &["-e", "memory"]);
    let addr = format!("127.0.0.1:{}", srv.port);
    let bob = client_home(&home.path().join("bob"), srv.port, &[("bob", BOB_KEY)]);
    let alice = client_home(
        &home.path().join("alice"),
        srv.port,
        &[("alice", "0123456789abcdef")],
    );
    let dan = client_home(&home.path().join("dan"), srv.port, &[("dan", "dddd")]);
    let wrong = client_home(&home.path().join("wrong"), srv.port, &[("bob", "00")]);
    let carol = client_home(&home.path().join("carol"), srv.port, &[("carol", "00")]);
    let anon = client_home(&home.path().join("anon"), srv.port, &[]);
    let ok = format!("{addr}\t(200, 'OK')\n");
    let forbidden =
        format!("{addr}\t(403, 'Forbidden: User is not authorized to request the operation.')\n");

    // bob: everything, including whitelist.
    assert_eq!(ref_pyzor(&venv, &bob, &["report"], MSG), (ok.clone(), 0));
    assert_eq!(ref_pyzor(&venv, &bob, &["whitelist"], MSG), (ok.clone(), 0));
    assert_eq!(
        ref_pyzor(&venv, &bob, &["check"], MSG).0,
        format!("{addr}\t(200, 'OK')\t1\t1\n")
    );
    // alice: ping and check only.
    assert_eq!(ref_pyzor(&venv, &alice, &["ping"], b""), (ok.clone(), 0));
    assert_eq!(
        ref_pyzor(&venv, &alice, &["report"], MSG),
        (forbidden.clone(), 1)
    );
    // dan: all minus pong/info/whitelist.
    assert_eq!(ref_pyzor(&venv, &dan, &["report"], MSG), (ok.clone(), 0));
    assert_eq!(
        ref_pyzor(&venv, &dan, &["info"], MSG).0,
        format!("{forbidden}\n")
    );
    // wrong key, unknown user.
    assert_eq!(
        ref_pyzor(&venv, &wrong, &["ping"], b""),
        (
            format!("{addr}\t(401, 'Unauthorized: Signature Error: Invalid signature.')\n"),
            1
        )
    );
    assert_eq!(
        ref_pyzor(&venv, &carol, &["ping"], b""),
        (
            format!("{addr}\t(401, 'Unauthorized: Signature Error: Unknown user.')\n"),
            1
        )
    );
    // anonymous: only what the access file grants.
    assert_eq!(ref_pyzor(&venv, &anon, &["ping"], b""), (ok.clone(), 0));
    assert_eq!(ref_pyzor(&venv, &anon, &["report"], MSG), (forbidden, 1));
    assert_eq!(
        ref_pyzor(&venv, &anon, &["check"], MSG).0,
        format!("{addr}\t(200, 'OK')\t2\t1\n")
    );
    assert_eq!(srv.stop(), Some(0));
}

/// The operator's switch: the reference pyzord (gdbm) has data; stop it,
/// start ours on the same home directory with `Engine = gdbm` in the
/// config, and every count and timestamp is there; new reports add to them.
#[test]
fn takes_over_a_reference_gdbm_home() {
    let Some(venv) = venv("takes_over_a_reference_gdbm_home") else {
        return;
    };
    let home = pyzor_testkit::temp_home();
    std::fs::write(
        home.path().join("pyzord.passwd"),
        format!("bob : {BOB_KEY}\n"),
    )
    .unwrap();
    std::fs::write(
        home.path().join("pyzord.access"),
        "all : bob : allow\ncheck ping : anonymous : allow\n",
    )
    .unwrap();
    let reference = start_reference(&venv, home.path(), &[]);
    let c = client_home(
        &home.path().join("client"),
        reference.port,
        &[("bob", BOB_KEY)],
    );
    for _ in 0..3 {
        assert_eq!(ref_pyzor(&venv, &c, &["report"], MSG).1, 0);
    }
    assert_eq!(ref_pyzor(&venv, &c, &["whitelist"], MSG).1, 0);
    let (digest, _) = ref_pyzor(&venv, &c, &["digest"], MSG);
    // Anonymous may check; bob reads info through the reference client.
    let check = |port: u16| {
        String::from_utf8(raw(
            port,
            format!(
                "Op: check\nOp-Digest: {}\nThread: 4000\nPV: 2.1\n\n",
                digest.trim()
            )
            .as_bytes(),
        ))
        .unwrap()
    };
    let ref_check = check(reference.port);
    let (ref_info_printed, _) = ref_pyzor(&venv, &c, &["info"], MSG);
    assert_eq!(reference.stop(), Some(0));
    std::fs::write(home.path().join("config"), "[server]\nEngine = gdbm\n").unwrap();
    let ours = start_ours(home.path(), &[]);
    let c = client_home(&home.path().join("client"), ours.port, &[("bob", BOB_KEY)]);
    assert_eq!(check(ours.port), ref_check);
    assert!(ref_check.contains("Count: 3\nWL-Count: 1\n"), "{ref_check}");
    let (our_info_printed, _) = ref_pyzor(&venv, &c, &["info"], MSG);
    let strip_addr = |s: &str| {
        s.split_once('\t')
            .map(|x| x.1.to_owned())
            .unwrap_or_default()
    };
    assert_eq!(
        strip_addr(&our_info_printed),
        strip_addr(&ref_info_printed),
        "same counts and timestamps"
    );
    assert_eq!(ref_pyzor(&venv, &c, &["report"], MSG).1, 0);
    assert!(check(ours.port).contains("Count: 4\nWL-Count: 1\n"));
    assert_eq!(ours.stop(), Some(0));
}
