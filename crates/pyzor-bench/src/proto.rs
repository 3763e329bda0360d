//! Pyzor datagrams as the load generator writes and reads them.
//!
//! Requests follow the reference client's exact layout (docs/protocol.md
//! §2.1): `Op`, `Op-Digest`, `Op-Spec` (report/whitelist only), `Thread`,
//! `PV: 2.1`, `User`, `Time`, `Sig`, blank line. They are written straight
//! into the send buffers instead of going through a message type, because the
//! generator builds one per request at a few hundred thousand per second and
//! must not be the bottleneck; only Thread, Time, digest and Sig change.
//! The signature itself is `pyzor_protocol::auth::sign`, and a test checks the
//! bytes against `pyzor_protocol::wire::client::build_request`.

use pyzor_protocol::auth::{hash_key, sign, Hex40};
use sha1::{Digest, Sha1};
use std::fmt::Write as _;
use std::io::Write as _;

/// A Pyzor operation the generator can send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    Check,
    Report,
    Whitelist,
    Info,
    Ping,
    Pong,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Check => "check",
            Op::Report => "report",
            Op::Whitelist => "whitelist",
            Op::Info => "info",
            Op::Ping => "ping",
            Op::Pong => "pong",
        }
    }

    pub fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "check" => Op::Check,
            "report" => Op::Report,
            "whitelist" => Op::Whitelist,
            "info" => Op::Info,
            "ping" => Op::Ping,
            "pong" => Op::Pong,
            _ => return None,
        })
    }

    pub const ALL: [Op; 6] = [
        Op::Check,
        Op::Report,
        Op::Whitelist,
        Op::Info,
        Op::Ping,
        Op::Pong,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    fn has_digest(self) -> bool {
        self != Op::Ping
    }

    /// The reference client adds `Op-Spec` to report and whitelist only.
    fn has_op_spec(self) -> bool {
        matches!(self, Op::Report | Op::Whitelist)
    }

    /// A 200 answer to these must carry `Count` and `WL-Count`.
    pub(crate) fn answer_has_counts(self) -> bool {
        matches!(self, Op::Check | Op::Info | Op::Pong)
    }
}

fn hex40(bytes: &[u8; 20], out: &mut [u8; 40]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = HEX[(b >> 4) as usize];
        out[2 * i + 1] = HEX[(b & 15) as usize];
    }
}

/// The digest number `i` of the population with `seed`: the lower-case hex
/// SHA-1 of `"pyzor-bench:<seed>:<i>"`. The same seed gives the same
/// digests, so a prefill run (`seq`) and a measured run (`pool`) agree.
pub(crate) fn population_digest(seed: u64, i: u64) -> [u8; 40] {
    let mut h = Sha1::new();
    let mut text = [0u8; 64];
    let mut cur = std::io::Cursor::new(&mut text[..]);
    write!(cur, "pyzor-bench:{seed}:{i}").expect("fits in 64 bytes");
    let n = cur.position() as usize;
    h.update(&text[..n]);
    let d: [u8; 20] = h.finalize().into();
    let mut out = [0u8; 40];
    hex40(&d, &mut out);
    out
}

/// Writes requests into caller buffers.
pub(crate) struct RequestWriter {
    user: String,
    hash_key: Hex40,
}

impl RequestWriter {
    pub fn new(user: &str, key: &str) -> RequestWriter {
        RequestWriter {
            user: user.to_owned(),
            hash_key: hash_key(key, user),
        }
    }

    /// Write the request into `buf`, return its length. `time` is the Unix
    /// time and `time_str` its decimal text (formatted once per batch).
    pub fn write(
        &self,
        buf: &mut [u8],
        op: Op,
        digest: &[u8; 40],
        thread: u64,
        time: i64,
        time_str: &str,
    ) -> usize {
        let mut cur = std::io::Cursor::new(&mut buf[..]);
        // Writes to a Cursor over a buffer of MAX_REQUEST bytes cannot fail
        // for the bounded field sizes used here (user is limited at parse time).
        let _ = writeln!(cur, "Op: {}", op.name());
        if op.has_digest() {
            let _ = cur.write_all(b"Op-Digest: ");
            let _ = cur.write_all(digest);
            let _ = cur.write_all(b"\n");
        }
        if op.has_op_spec() {
            let _ = cur.write_all(b"Op-Spec: 20,3,60,3\n");
        }
        let _ = write!(
            cur,
            "Thread: {thread}\nPV: 2.1\nUser: {}\nTime: {time_str}",
            self.user
        );
        // M is the header block without its final newline (docs/protocol.md §4.2).
        let m_len = cur.position() as usize;
        let sig = sign(&self.hash_key, time, &cur.get_ref()[..m_len]);
        let _ = cur.write_all(b"\nSig: ");
        let _ = cur.write_all(&sig);
        let _ = cur.write_all(b"\n\n");
        cur.position() as usize
    }
}

/// Upper bound of a request's size (user names are limited to 256 bytes).
pub(crate) const MAX_REQUEST: usize = 512;

/// What the generator needs from a reply.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub thread: Option<u64>,
    pub count: Option<i64>,
    pub wl_count: Option<i64>,
}

/// Parse a reply datagram: `Name: value` lines up to the blank line. Only
/// `Code`, `Thread`, `Count` and `WL-Count` are read; a missing or
/// non-numeric `Code` makes the reply malformed (`None`). A `Thread` that is
/// not a decimal number is returned as `None` (counted as stray).
pub fn parse_reply(d: &[u8]) -> Option<Reply> {
    let mut r = Reply::default();
    let mut code = None;
    for line in d.split(|&b| b == b'\n') {
        if line.is_empty() {
            break;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = &line[..colon];
        let value = line[colon + 1..]
            .strip_prefix(b" ")
            .unwrap_or(&line[colon + 1..]);
        match name {
            b"Code" => code = parse_dec(value).and_then(|c| u16::try_from(c).ok()),
            b"Thread" if r.thread.is_none() => r.thread = parse_dec(value),
            b"Count" => r.count = parse_signed(value),
            b"WL-Count" => r.wl_count = parse_signed(value),
            _ => {}
        }
    }
    r.code = code?;
    Some(r)
}

fn parse_dec(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 {
        return None;
    }
    let mut n = 0u64;
    for &b in v {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(b - b'0');
    }
    Some(n)
}

fn parse_signed(v: &[u8]) -> Option<i64> {
    match v.strip_prefix(b"-") {
        Some(rest) => parse_dec(rest).map(|n| -(n as i64)),
        None => parse_dec(v).map(|n| n as i64),
    }
}

/// The Thread of a request, for the echo responder (first `Thread:` line).
pub(crate) fn request_thread(d: &[u8]) -> &[u8] {
    for line in d.split(|&b| b == b'\n') {
        if let Some(v) = line.strip_prefix(b"Thread:") {
            let start = v
                .iter()
                .position(|&b| b != b' ' && b != b'\t')
                .unwrap_or(v.len());
            return &v[start..];
        }
        if line.is_empty() {
            break;
        }
    }
    b""
}

/// Write the echo responder's Pyzor-shaped reply (the layout of a check
/// answer, docs/protocol.md §2.2) for a request with `thread`.
pub(crate) fn write_echo_reply(buf: &mut [u8], thread: &[u8]) -> usize {
    let mut cur = std::io::Cursor::new(&mut buf[..]);
    let _ = cur.write_all(b"Code: 200\nDiag: OK\nPV: 2.1\nThread: ");
    let room = cur
        .get_ref()
        .len()
        .saturating_sub(cur.position() as usize + 32);
    let _ = cur.write_all(&thread[..thread.len().min(room)]);
    let _ = cur.write_all(b"\nCount: 0\nWL-Count: 0\n\n");
    cur.position() as usize
}

/// Format a Unix time in seconds as the decimal string the `Time` header uses.
pub(crate) fn time_string(secs: u64) -> String {
    let mut s = String::with_capacity(12);
    let _ = write!(s, "{secs}");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of docs/protocol.md §4.2.
    #[test]
    fn signature_matches_spec_worked_example() {
        let w = RequestWriter::new("bob", "cf88277c5d4abdc0a3f56f416011966d04a3f462");
        let mut buf = [0u8; MAX_REQUEST];
        let digest: [u8; 40] = *b"7421216f915a87e02da034cc483f5c876e1a1338";
        let n = w.write(
            &mut buf,
            Op::Check,
            &digest,
            12345,
            1700000000,
            "1700000000",
        );
        assert_eq!(
            &buf[..n],
            &b"Op: check\nOp-Digest: 7421216f915a87e02da034cc483f5c876e1a1338\nThread: 12345\nPV: 2.1\nUser: bob\nTime: 1700000000\nSig: ca0c1d537e3234782f24c1418426f67caa48fe51\n\n"[..]
        );
    }

    #[test]
    fn anonymous_ping_matches_spec_example() {
        assert_eq!(
            &hash_key("", "anonymous"),
            b"993fddad78000f2246ee74c4b1b9edcb89f91937"
        );
        let w = RequestWriter::new("anonymous", "");
        let mut buf = [0u8; MAX_REQUEST];
        let n = w.write(
            &mut buf,
            Op::Ping,
            &[b'0'; 40],
            4242,
            1700000000,
            "1700000000",
        );
        assert_eq!(
            &buf[..n],
            &b"Op: ping\nThread: 4242\nPV: 2.1\nUser: anonymous\nTime: 1700000000\nSig: 6c75b1ab69b38151e681e4ac6b3d93727f9212b5\n\n"[..]
        );
    }

    #[test]
    fn report_carries_op_spec_after_digest() {
        let w = RequestWriter::new("anonymous", "");
        let mut buf = [0u8; MAX_REQUEST];
        let n = w.write(&mut buf, Op::Report, &[b'a'; 40], 1024, 1, "1");
        let s = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(s.starts_with("Op: report\nOp-Digest: aaaa"), "{s}");
        assert!(s.contains("\nOp-Spec: 20,3,60,3\nThread: 1024\n"), "{s}");
    }

    /// The hot-loop writer and the core's reference-layout builder agree
    /// byte for byte on every op, anonymous and signed.
    #[test]
    fn same_bytes_as_core_build_request() {
        use pyzor_protocol::wire::client::{build_request, Credentials, Layout};
        use pyzor_protocol::wire::Op as CoreOp;
        let pairs = [
            (Op::Check, CoreOp::Check),
            (Op::Report, CoreOp::Report),
            (Op::Whitelist, CoreOp::Whitelist),
            (Op::Info, CoreOp::Info),
            (Op::Ping, CoreOp::Ping),
            (Op::Pong, CoreOp::Pong),
        ];
        let digest = population_digest(3, 99);
        let digest_str = std::str::from_utf8(&digest).unwrap();
        for (user, key) in [
            ("anonymous", ""),
            ("bench", "5F1D0E3C7A9B2468ACE13579BDF02468ACE13579"),
        ] {
            let w = RequestWriter::new(user, key);
            let creds = Credentials::new(user, key);
            for (ours, core) in pairs {
                let mut buf = [0u8; MAX_REQUEST];
                let n = w.write(&mut buf, ours, &digest, 65535, 1764240000, "1764240000");
                let mut want = Vec::new();
                build_request(
                    core,
                    &[digest_str],
                    65535,
                    &creds,
                    1764240000,
                    Layout::Single,
                    &mut want,
                )
                .unwrap();
                assert_eq!(&buf[..n], &want[..], "{user} {}", ours.name());
            }
        }
    }

    #[test]
    fn parses_replies() {
        let r =
            parse_reply(b"Code: 200\nDiag: OK\nPV: 2.1\nThread: 1234\nCount: 2\nWL-Count: 0\n\n")
                .unwrap();
        assert_eq!(
            r,
            Reply {
                code: 200,
                thread: Some(1234),
                count: Some(2),
                wl_count: Some(0)
            }
        );
        let r = parse_reply(b"Code: 400\nDiag: Bad request\nPV: 2.1\nThread: \n\n").unwrap();
        assert_eq!((r.code, r.thread, r.count), (400, None, None));
        assert_eq!(parse_reply(b"Diag: OK\nThread: 5\n\n"), None);
        assert_eq!(parse_reply(b"\xff\xfe garbage"), None);
        assert_eq!(parse_reply(b""), None);
    }

    #[test]
    fn echo_reply_echoes_thread() {
        let req = b"Op: check\nOp-Digest: x\nThread:  987\nPV: 2.1\n\n";
        assert_eq!(request_thread(req), b"987");
        let mut buf = [0u8; 256];
        let n = write_echo_reply(&mut buf, request_thread(req));
        let r = parse_reply(&buf[..n]).unwrap();
        assert_eq!(
            (r.code, r.thread, r.count, r.wl_count),
            (200, Some(987), Some(0), Some(0))
        );
        assert_eq!(request_thread(b"Op: ping\n\nThread: 5\n"), b"");
    }

    #[test]
    fn population_is_deterministic_hex() {
        let a = population_digest(1, 7);
        assert_eq!(a, population_digest(1, 7));
        assert_ne!(a, population_digest(2, 7));
        assert!(a
            .iter()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }
}
