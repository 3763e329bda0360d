#![allow(dead_code)] // each user (test, fuzz target) takes what it needs
//! One server request, as `pyzord`'s worker handles it, for the wire
//! fuzzers (tests/wire_server_fuzz.rs and fuzz/fuzz_targets/wire_server.rs):
//! `Parsed::parse` → `evaluate` → `format_reply` (+ `usage_line`), and the
//! check that the reply is well formed. The per-op rules (which digests
//! become keys, which ops answer counts) are pyzor-server's `cmd` modules;
//! here an accepted op's reply is only shaped like theirs, with extreme
//! values.

use pyzor_protocol::auth::{parse_access, parse_passwd, Accounts, Acl};
use pyzor_protocol::wire::server::{evaluate, format_reply, usage_line, Parsed, ReplyBody};
use pyzor_protocol::wire::Op;

/// Server clock used by the fuzzers (requests in the seeds are signed for it).
pub const NOW: i64 = 1_700_000_000;

/// Accounts and ACL with a user that may check and one that may report, so
/// signed requests reach every branch of `evaluate`.
pub struct Rules {
    pub accounts: Accounts,
    pub acl: Acl,
}

impl Rules {
    pub fn new() -> Self {
        let (accounts, _) = parse_passwd("alice : 0123456789abcdef\nbob:key2\n");
        let (acl, _) = parse_access(
            "check info ping pong : alice : allow\nall : bob : allow\nreport : anonymous : deny\n",
            &accounts,
        );
        Rules { accounts, acl }
    }
}

/// Scratch state reused across requests, as a worker reuses it.
#[derive(Default)]
pub struct Worker {
    parsed: Parsed,
    scratch: Vec<u8>,
    reply: Vec<u8>,
}

/// Handle one datagram; returns the reply bytes (empty only when the
/// request's `Thread` cannot be written back, where the reference sends an
/// empty datagram too). Panics if the reply is malformed.
pub fn handle<'w>(w: &'w mut Worker, rules: &Rules, datagram: &[u8]) -> &'w [u8] {
    w.parsed.parse(datagram);
    let p = &w.parsed;
    let thread = p.get("Thread");
    let code;
    let has_digests = p.digests().next().is_some();
    match evaluate(p, &rules.accounts, &rules.acl, NOW as f64, &mut w.scratch) {
        Err(f) => {
            code = f.code;
            format_reply(&mut w.reply, f.code, &f.diag, thread, ReplyBody::Bare);
        }
        Ok(a) => {
            code = 200;
            let body = match a.op {
                Op::Check | Op::Pong if has_digests => ReplyBody::Counts {
                    count: 7,
                    wl_count: -1,
                },
                Op::Info if has_digests => ReplyBody::Info {
                    entered: NOW,
                    updated: 0,
                    wl_entered: -5,
                    wl_updated: i64::MAX,
                    count: i64::MIN,
                    wl_count: 0,
                },
                _ => ReplyBody::Bare,
            };
            format_reply(&mut w.reply, 200, "OK", thread, body);
            let line = usage_line(a.user, "127.0.0.1", p.get("Op"), p, 200);
            assert!(line.ends_with(",200"), "usage line {line:?}");
        }
    }
    check_reply(&w.reply, code, thread.is_some());
    &w.reply
}

/// `Code: <code>\nDiag: ...\nPV: 2.1\nThread: ...\n<fields>\n` with every
/// field `Name: value` on one line, or empty when a Thread was present but
/// not serialisable.
pub fn check_reply(reply: &[u8], code: u16, had_thread: bool) {
    if reply.is_empty() {
        assert!(had_thread, "empty reply without a Thread header");
        return;
    }
    let text = String::from_utf8_lossy(reply);
    assert!(
        reply.ends_with(b"\n\n"),
        "reply not ended by a blank line: {text:?}"
    );
    let body = &reply[..reply.len() - 1];
    let lines: Vec<&[u8]> = body[..body.len() - 1].split(|&b| b == b'\n').collect();
    assert!(lines.len() >= 4, "short reply {text:?}");
    assert_eq!(lines[0], format!("Code: {code}").as_bytes(), "{text:?}");
    assert!(lines[1].starts_with(b"Diag: "), "{text:?}");
    assert_eq!(lines[2], b"PV: 2.1", "{text:?}");
    assert!(lines[3].starts_with(b"Thread: "), "{text:?}");
    // The Thread value may be folded (continuation lines start with a
    // space or tab); other fields are `Name: integer`.
    let mut i = 4;
    while i < lines.len() && matches!(lines[i].first(), Some(b' ' | b'\t')) {
        i += 1;
    }
    for l in &lines[i..] {
        let s = std::str::from_utf8(l).expect("ASCII field");
        let (name, value) = s.split_once(": ").expect("Name: value");
        assert!(
            matches!(
                name,
                "Count" | "WL-Count" | "Entered" | "Updated" | "WL-Entered" | "WL-Updated"
            ),
            "unexpected field {s:?} in {text:?}"
        );
        value.parse::<i64>().expect("integer field");
    }
    assert!(
        code == 200 || i == lines.len(),
        "fields on an error reply: {text:?}"
    );
}

/// Seed datagrams: every op, anonymous and signed (good and bad
/// signatures), legacy `\n\n` forms, bad PV, odd headers.
pub fn seeds() -> Vec<Vec<u8>> {
    use pyzor_protocol::wire::client::{build_request, Credentials, Layout};
    let d = "da39a3ee5e6b4b0d3255bfef95601890afd80709";
    let mut v: Vec<Vec<u8>> = Vec::new();
    let users = [
        Credentials::new("alice", "0123456789abcdef"),
        Credentials::new("bob", "key2"),
        Credentials::new("bob", "wrong"),
        Credentials::new("eve", "x"),
    ];
    for op in Op::ALL {
        for (k, c) in users.iter().enumerate() {
            for layout in [Layout::Single, Layout::Batch] {
                let mut out = Vec::new();
                let time = NOW + [0, 10, -4000, 100_000][k];
                if build_request(op, &[d, d], 42 + k as u32, c, time, layout, &mut out).is_ok() {
                    v.push(out);
                }
            }
        }
        v.push(
            format!(
                "Op: {}\nOp-Digest: {d}\nThread: 9\nPV: 2.1\n\n",
                op.as_str()
            )
            .into_bytes(),
        );
    }
    v.extend(
        [
            &b"Op: check\n\nOp-Digest: abc\n\nThread: 1\n\nPV: 2.1\n\n"[..],
            b"Op: check\nPV: 3.0\nThread: 5\n\n",
            b"Op: check\nPV: x\nThread: 5\n\n",
            b"Op: check\nThread: 5\n\n",
            b"Op: nope\nPV: 2.1\nThread: \xff\xfe\n\n",
            b"Op: check\nPV: 2.1\nThread: a\n folded\n\tmore\n\n",
            b"User: alice\nTime: 1e309\nSig: 00\nOp: check\nPV: 2.1\n\n",
            b"User: \xe9\nOp: ping\nPV: 2.1\n\n",
            b"Op-Digest: \xc3\xa9\nOp: report\nPV: 2.1\nThread: 3\n\n",
            b"",
            b"\n\n\n",
            b": x\nOp: ping\nPV: 2.1\n\n",
        ]
        .iter()
        .map(|s| s.to_vec()),
    );
    v
}
