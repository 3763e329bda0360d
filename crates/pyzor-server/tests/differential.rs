//! The same datagrams, in the same order, to the reference pyzord (gdbm)
//! and to ours (lmdb): the replies must be byte-identical (info times are
//! compared as "zero / non-zero", since the two servers store at slightly
//! different instants). Covers the header parser, the legacy rewrite, every
//! error code, authentication order, PV parsing, odd digests and sizes.

mod common;
use common::*;

use pyzor_protocol::wire::client::{build_request, Credentials, Layout};
use pyzor_protocol::wire::Op;

const BOB_KEY: &str = "cf88277c5d4abdc0a3f56f416011966d04a3f462";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn signed(op: Op, digests: &[&str], user: &str, key: &str, t: i64) -> Vec<u8> {
    let mut out = Vec::new();
    build_request(
        op,
        digests,
        5555,
        &Credentials::new(user, key),
        t,
        Layout::Single,
        &mut out,
    )
    .unwrap();
    out
}

fn cases() -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = Vec::new();
    let mut add = |name: &str, d: &[u8]| v.push((name.to_owned(), d.to_vec()));
    add("ping", b"Op: ping\nThread: 1234\nPV: 2.1\n\n");
    add("empty", b"");
    add("only_newlines", b"\n\n\n");
    add("binary", b"\x00\xff\xfe\x01\x02garbage");
    add("thread_missing", b"Op: ping\nPV: 2.1\n\n");
    add(
        "legacy_double_newline",
        b"Op: ping\n\nThread: 7\nPV: 2.1\n\n",
    );
    add("triple_newline", b"Op: ping\nThread: 7\n\n\nPV: 2.1\n");
    add(
        "crlf_blank_middle",
        b"Op: ping\r\n\r\nThread: 7\r\nPV: 2.1\r\n",
    );
    add("crlf", b"Op: ping\r\nThread: 7\r\nPV: 2.1\r\n\r\n");
    add("cr_only", b"Op: ping\rThread: 7\rPV: 2.1\r");
    add("no_trailing_newline", b"Op: ping\nThread: 7\nPV: 2.1");
    add("hdr_space_before_colon", b"Op : ping\nThread: 7\nPV: 2.1\n");
    add(
        "hdr_garbage_line",
        b"Op: ping\nGARBAGE\nThread: 7\nPV: 2.1\n",
    );
    add("hdr_unix_from", b"From x\nOp: ping\nThread: 7\nPV: 2.1\n");
    add("hdr_leading_space", b" Op: ping\nThread: 7\nPV: 2.1\n");
    add("leading_blank_line", b"\nOp: ping\nThread: 7\nPV: 2.1\n");
    add("colon_line", b"Op: ping\n: x\nThread: 7\nPV: 2.1\n");
    add("from_middle", b"Op: ping\nFrom x\nThread: 7\nPV: 2.1\n");
    add("from_last", b"Op: ping\nThread: 7\nPV: 2.1\nFrom x\n");
    add(
        "nul_between_headers",
        b"Op: ping\n\x00\nThread: 7\nPV: 2.1\n",
    );
    add("lowercase", b"op: ping\nthread: 7\npv: 2.1\n");
    add("uppercase", b"OP: ping\nTHREAD: 7\nPV: 2.1\n");
    add("no_space_tab", b"Op:ping\nThread:\t7\nPV:2.1\n");
    add("op_trailing_blanks", b"Op: ping  \nThread: 7\nPV: 2.1\n");
    add("thread_blanks", b"Op: ping\nThread: 7  \nPV: 2.1\n");
    add("thread_folded", b"Op: ping\nThread: 1234\n 5678\nPV: 2.1\n");
    add("thread_folded_blank", b"Op: ping\nThread: 12\n \nPV: 2.1\n");
    add("thread_folded_tab", b"Op: ping\nThread: 12\n\t\nPV: 2.1\n");
    add("thread_empty_first", b"Op: ping\nThread:\n 5678\nPV: 2.1\n");
    add("thread_nul", b"Op: ping\nThread: 12\x0034\nPV: 2.1\n");
    add("thread_non_utf8", b"Op: ping\nThread: \xff\xfe7\nPV: 2.1\n");
    add("thread_utf8", b"Op: ping\nThread: 12 \xc3\xa9 x\nPV: 2.1\n");
    add(
        "thread_utf8_folded",
        b"Op: ping\nThread: 12 \xc3\xa9\n 5\nPV: 2.1\n",
    );
    add(
        "thread_vt_embedded",
        b"Op: ping\nThread: 1\x0bX: y\nPV: 2.1\n",
    );
    add("thread_ff", b"Op: ping\nThread: 1\x0c2\nPV: 2.1\n");
    add("thread_big", b"Op: ping\nThread: 99999\nPV: 2.1\n");
    add("thread_neg", b"Op: ping\nThread: -1\nPV: 2.1\n");
    add("thread_abc", b"Op: ping\nThread: abc\nPV: 2.1\n");
    add("thread_dup", b"Op: ping\nThread: 1\nThread: 2\nPV: 2.1\n");
    let long = format!("Op: ping\nThread: {}\nPV: 2.1\n", "9".repeat(300));
    add("thread_300", long.as_bytes());
    for (n, pv) in [
        ("pv_3_0", "3.0"),
        ("pv_1_9", "1.9"),
        ("pv_neg", "-2"),
        ("pv_2_1u", "2_1"),
        ("pv_garbage", "abc"),
        ("pv_empty", ""),
        ("pv_nan", "nan"),
        ("pv_two_dots", "2..1"),
        ("pv_inf", "inf"),
        ("pv_2_0", "2.0"),
        ("pv_2_9", "2.9"),
        ("pv_2", "2"),
        ("pv_2e0", "2e0"),
        ("pv_blanks", " 2.1 "),
        ("pv_infinity", "-Infinity"),
    ] {
        add(n, format!("Op: ping\nThread: 9\nPV: {pv}\n").as_bytes());
    }
    add("pv_non_utf8", b"Op: ping\nThread: 9\nPV: \xef\xbc\x92\n");
    add("pv_duplicate", b"Op: ping\nThread: 9\nPV: 2.1\nPV: 3.0\n");
    add("op_missing", b"Thread: 9\nPV: 2.1\n");
    add("op_missing_no_pv", b"Thread: 9\n");
    add("op_unknown", b"Op: frobnicate\nThread: 9\nPV: 2.1\n");
    add("op_uppercase", b"Op: PING\nThread: 9\nPV: 2.1\n");
    add("op_duplicate", b"Op: ping\nOp: check\nThread: 9\nPV: 2.1\n");
    add("utf8_op", b"Op: p\xc3\xafng\nThread: 9\nPV: 2.1\n");
    add("nul_in_op", b"Op: pi\x00ng\nThread: 9\nPV: 2.1\n");
    add(
        "anon_whitelist",
        b"Op: whitelist\nOp-Digest: abc\nThread: 9\nPV: 2.1\n",
    );
    for op in ["check", "pong", "info", "report"] {
        add(
            &format!("{op}_no_digest"),
            format!("Op: {op}\nThread: 9\nPV: 2.1\n").as_bytes(),
        );
    }
    add(
        "ping_with_digest",
        b"Op: ping\nOp-Digest: abc\nThread: 9\nPV: 2.1\n",
    );
    add(
        "pong_digest",
        b"Op: pong\nOp-Digest: abc\nThread: 9\nPV: 2.1\n",
    );
    add(
        "check_unseen",
        b"Op: check\nOp-Digest: 1747e4e9000000000000000000000000000000aa\nThread: 9\nPV: 2.1\n",
    );
    add(
        "info_unseen",
        b"Op: info\nOp-Digest: 1747e4e9000000000000000000000000000000aa\nThread: 9\nPV: 2.1\n",
    );
    let odd: [&[u8]; 7] = [
        b"not a digest 1c87",
        b"",
        b"bc66f1b4  ",
        b"01453F1A",
        b"e17c\x0070b3",
        b"d1",
        b"x",
    ];
    for (i, d) in odd.iter().enumerate() {
        let mut r = b"Op: report\nOp-Digest: ".to_vec();
        r.extend_from_slice(d);
        r.extend_from_slice(b"\nOp-Digest: d1\nThread: 9\nPV: 2.1\n");
        add(&format!("report_odd_{i}"), &r);
    }
    for (i, d) in odd.iter().enumerate() {
        let mut r = b"Op: check\nOp-Digest: ".to_vec();
        r.extend_from_slice(d);
        r.extend_from_slice(b"\nThread: 9\nPV: 2.1\n");
        add(&format!("check_odd_{i}"), &r);
        let mut r = b"Op: info\nOp-Digest: ".to_vec();
        r.extend_from_slice(d);
        r.extend_from_slice(b"\nThread: 9\nPV: 2.1\n");
        add(&format!("info_odd_{i}"), &r);
    }
    add(
        "check_lowercase_digest_name",
        b"op: check\nop-digest: d1\nThread: 9\nPV: 2.1\n",
    );
    add(
        "check_multi_digest",
        b"Op: check\nOp-Digest: x\nOp-Digest: d1\nThread: 9\nPV: 2.1\n",
    );
    add(
        "report_duplicate_digest",
        b"Op: report\nOp-Digest: dup\nOp-Digest: dup\nThread: 9\nPV: 2.1\n",
    );
    add(
        "check_dup",
        b"Op: check\nOp-Digest: dup\nThread: 9\nPV: 2.1\n",
    );
    add(
        "digest_non_utf8_check",
        b"Op: check\nOp-Digest: \xff\nThread: 9\nPV: 2.1\n",
    );
    add(
        "digest_non_utf8_pong",
        b"Op: pong\nOp-Digest: \xff\nThread: 9\nPV: 2.1\n",
    );
    add(
        "trailing_headers_after_blank",
        b"Op: report\nOp-Digest: t1\nThread: 9\nPV: 2.1\n\nOp-Digest: t2\n",
    );
    add(
        "check_t2",
        b"Op: check\nOp-Digest: t2\nThread: 9\nPV: 2.1\n",
    );
    add(
        "trailing_garbage",
        b"Op: ping\nThread: 9\nPV: 2.1\n\n\x00\xff\xfetrailing garbage",
    );
    let many: String = (0..150)
        .map(|i| format!("Op-Digest: m{}\n", i % 3))
        .collect();
    add(
        "report_many_digests",
        format!("Op: report\n{many}Thread: 9\nPV: 2.1\n").as_bytes(),
    );
    add(
        "check_m0",
        b"Op: check\nOp-Digest: m0\nThread: 9\nPV: 2.1\n",
    );
    let many_hdrs: String = (0..1500).map(|i| format!("X-{i}: y\n")).collect();
    add(
        "thousands_of_headers",
        format!("Op: ping\nThread: 9\n{many_hdrs}PV: 2.1\n").as_bytes(),
    );
    // sizes
    let mut d = b"Op: ping\nThread: 5\nPV: 2.1\nPad: ".to_vec();
    d.resize(8192 - 1, b'a');
    d.push(b'\n');
    add("size_8192", &d);
    let mut d = b"Pad: ".to_vec();
    d.resize(8194 - 10, b'a');
    d.extend_from_slice(b"\nOp: ping\n");
    add("size_8194_op_cut", &d);
    let mut d = b"Op: ping\nThread: 5\nPV: 2.1\nPad: ".to_vec();
    d.resize(65000, b'b');
    add("size_64k", &d);
    // authentication (bob and alice exist; no access file → only anonymous has rights)
    let t = now();
    add(
        "auth_ok_then_403",
        &signed(Op::Check, &["d1"], "bob", BOB_KEY, t),
    );
    add(
        "auth_bad_signature",
        &signed(Op::Check, &["d1"], "bob", "00", t),
    );
    add(
        "auth_unknown_user",
        &signed(Op::Check, &["d1"], "carol", "00", t),
    );
    add(
        "auth_user_Anonymous",
        &signed(Op::Ping, &[], "Anonymous", "", t),
    );
    add(
        "auth_lowercase_user",
        &signed(Op::Ping, &[], "BOB", BOB_KEY, t),
    );
    add(
        "auth_time_old",
        &signed(Op::Ping, &[], "bob", BOB_KEY, t - 400),
    );
    add(
        "auth_time_future",
        &signed(Op::Ping, &[], "bob", BOB_KEY, t + 400),
    );
    add(
        "auth_time_old_ok",
        &signed(Op::Ping, &[], "bob", BOB_KEY, t - 250),
    );
    add("auth_user_empty", b"Op: ping\nThread: 9\nPV: 2.1\nUser: \n");
    add(
        "auth_time_missing",
        b"Op: ping\nThread: 9\nPV: 2.1\nUser: bob\n",
    );
    add(
        "auth_time_nonnumeric",
        b"Op: ping\nThread: 9\nPV: 2.1\nUser: bob\nTime: 12a\n",
    );
    add(
        "auth_time_plus",
        format!("Op: ping\nThread: 9\nPV: 2.1\nUser: bob\nTime: +{t}\n").as_bytes(),
    );
    add(
        "auth_sig_missing",
        format!("Op: ping\nThread: 9\nPV: 2.1\nUser: bob\nTime: {t}\n").as_bytes(),
    );
    add(
        "auth_unknown_user_bad_pv",
        b"Op: ping\nThread: 9\nPV: 3.0\nUser: carol\n",
    );
    add(
        "auth_user_non_ascii",
        b"Op: ping\nThread: 9\nPV: 2.1\nUser: b\xc3\xb6b\n",
    );
    let s = String::from_utf8(signed(Op::Ping, &[], "bob", BOB_KEY, t)).unwrap();
    add(
        "auth_sig_uppercase",
        s.lines()
            .map(|l| match l.strip_prefix("Sig: ") {
                Some(h) => format!("Sig: {}\n", h.to_uppercase()),
                None => format!("{l}\n"),
            })
            .collect::<String>()
            .as_bytes(),
    );
    add("auth_signed_crlf", s.replace('\n', "\r\n").as_bytes());
    add(
        "auth_signed_trailing_body",
        format!("{s}trailing\n").as_bytes(),
    );
    add(
        "auth_signed_nospace_raw",
        s.replace("Op: ping", "Op:ping").as_bytes(),
    );
    add(
        "auth_sig_vt",
        format!(
            "Op: ping\nOp-Digest: 1\x0bX: y\nThread: 1\nPV: 2.1\nUser: bob\nTime: {t}\nSig: x\n"
        )
        .as_bytes(),
    );
    add(
        "auth_sig_ff",
        format!("Op: ping\nOp-Digest: 1\x0c2\nThread: 1\nPV: 2.1\nUser: bob\nTime: {t}\nSig: x\n")
            .as_bytes(),
    );
    let mut nb =
        format!("Op: ping\nThread: 1\nPV: 2.1\nUser: bob\nTime: {t}\nSig: x\n\n").into_bytes();
    nb.extend_from_slice(b"\xff\xfe body\n");
    add("auth_sig_body_non_ascii", &nb);
    add(
        "auth_time_huge",
        format!(
            "Op: ping\nThread: 1\nPV: 2.1\nUser: bob\nTime: {}\n",
            "9".repeat(400)
        )
        .as_bytes(),
    );
    add(
        "auth_time_5000",
        format!(
            "Op: ping\nThread: 1\nPV: 2.1\nUser: bob\nTime: {}\n",
            "9".repeat(5000)
        )
        .as_bytes(),
    );
    let legacy: String = s.lines().map(|l| format!("{l}\n\n")).collect();
    add("auth_legacy_double_newline_sig", legacy.as_bytes());
    v
}

#[test]
fn replies_match_the_reference_server() {
    let Some(venv) = venv("replies_match_the_reference_server") else {
        return;
    };
    let passwd = format!("bob : {BOB_KEY}\nalice : 1234\n");
    let ref_home = pyzor_testkit::temp_home();
    let our_home = pyzor_testkit::temp_home();
    for h in [&ref_home, &our_home] {
        std::fs::write(h.path().join("pyzord.passwd"), &passwd).unwrap();
    }
    let reference = start_reference(&venv, ref_home.path(), &[]);
    let ours = start_ours(our_home.path(), &["-e", "lmdb"]);
    let mut mismatches = Vec::new();
    let cases = cases();
    for (name, d) in &cases {
        let a = raw(reference.port, d);
        let b = raw(ours.port, d);
        if mask(&a) != mask(&b) {
            mismatches.push(format!(
                "{name}:\n  reference: {:?}\n  ours:      {:?}",
                String::from_utf8_lossy(&a),
                String::from_utf8_lossy(&b)
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} cases differ:\n{}",
        mismatches.len(),
        cases.len(),
        mismatches.join("\n")
    );
    assert_eq!(ours.stop(), Some(0));
}
