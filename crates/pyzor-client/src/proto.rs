//! Client side of the wire protocol: building the request datagram exactly
//! as the reference client lays it out (wire-protocol.md §2.1, §4.2) and
//! reading a reply the way `pyzor.client.Client.read_response` does (§7).

use sha1::{Digest as _, Sha1};

use crate::files::Account;

/// Protocol version the reference client sends (`str(2.1)`).
pub const PROTO_VERSION: &str = "2.1";
/// The `Op-Spec` of report/whitelist requests (`pyzor.digest.digest_spec`,
/// ignored by servers).
pub const OP_SPEC: &str = "20,3,60,3";
/// The anonymous user name.
pub const ANONYMOUS: &str = "anonymous";
/// Largest reply the reference client reads (`recvfrom(8192)`).
pub const MAX_PACKET: usize = 8192;

/// A client operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `ping`
    Ping,
    /// `pong`
    Pong,
    /// `check`
    Check,
    /// `info`
    Info,
    /// `report`
    Report,
    /// `whitelist`
    Whitelist,
}

impl Op {
    /// The `Op:` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Ping => "ping",
            Op::Pong => "pong",
            Op::Check => "check",
            Op::Info => "info",
            Op::Report => "report",
            Op::Whitelist => "whitelist",
        }
    }

    fn has_spec(self) -> bool {
        matches!(self, Op::Report | Op::Whitelist)
    }
}

/// `lower(hex(SHA1(user ":" lower(key))))` (wire-protocol.md §4.2).
pub fn hash_key(key: &str, user: &str) -> String {
    let mut h = Sha1::new();
    h.update(user.as_bytes());
    h.update(b":");
    h.update(key.to_lowercase().as_bytes());
    hex(&h.finalize())
}

/// `lower(hex(SHA1(SHA1(M) ":" time ":" hash_key)))` over the signed text
/// `M` (wire-protocol.md §4.2).
pub fn sign(hashed_key: &str, time: i64, signed_text: &[u8]) -> String {
    let inner = Sha1::digest(signed_text);
    let mut h = Sha1::new();
    h.update(inner);
    h.update(format!(":{time}:{hashed_key}").as_bytes());
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(40), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Build a request datagram.
///
/// `batch` selects the `BatchClient` layout (Op-Spec before the digests,
/// wire-protocol.md §2.1); otherwise the single-request layout (digest,
/// then Op-Spec). The signature covers the header lines joined by `\n`
/// (the reference's `as_string().strip()`), the datagram ends in `\n\n`.
pub fn build_request(
    op: Op,
    digests: &[&str],
    batch: bool,
    thread: u16,
    account: Option<&Account>,
    time: i64,
) -> Vec<u8> {
    let mut text = String::with_capacity(160 + digests.len() * 55);
    text.push_str("Op: ");
    text.push_str(op.as_str());
    text.push('\n');
    let spec = op.has_spec();
    if spec && batch {
        text.push_str("Op-Spec: ");
        text.push_str(OP_SPEC);
        text.push('\n');
    }
    if op != Op::Ping {
        for d in digests {
            text.push_str("Op-Digest: ");
            text.push_str(d);
            text.push('\n');
        }
    }
    if spec && !batch {
        text.push_str("Op-Spec: ");
        text.push_str(OP_SPEC);
        text.push('\n');
    }
    let (user, key) = match account {
        Some(a) => (a.username.as_str(), a.key.as_str()),
        None => (ANONYMOUS, ""),
    };
    text.push_str(&format!(
        "Thread: {thread}\nPV: {PROTO_VERSION}\nUser: {user}\nTime: {time}"
    ));
    let sig = sign(&hash_key(key, user), time, text.trim().as_bytes());
    text.push_str("\nSig: ");
    text.push_str(&sig);
    text.push_str("\n\n");
    text.into_bytes()
}

/// A reply's header fields, parsed like Python's `email.message_from_bytes`
/// (compat32) for the purposes of the client: the header block ends at the
/// first line that is not `name:` or a continuation; names compare
/// case-insensitively; the first occurrence wins; leading blanks of a
/// value are dropped, continuation lines are kept joined with `\n`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    headers: Vec<(String, String)>,
}

impl Reply {
    /// Parse a datagram (non-UTF-8 bytes are replaced, never a panic).
    pub fn parse(packet: &[u8]) -> Reply {
        let text = String::from_utf8_lossy(packet);
        let mut headers: Vec<(String, String)> = Vec::new();
        let mut first = true;
        for line in split_lines(&text) {
            if first && line.starts_with("From ") {
                first = false;
                continue;
            }
            if line.starts_with([' ', '\t']) {
                if first {
                    first = false;
                    continue;
                }
                if let Some(last) = headers.last_mut() {
                    last.1.push('\n');
                    last.1.push_str(line);
                    continue;
                }
                break;
            }
            first = false;
            let Some(colon) = line.find(':') else { break };
            let name = &line[..colon];
            if !name
                .bytes()
                .all(|b| (0x21..=0x7e).contains(&b) && b != b':')
            {
                break;
            }
            let value = line[colon + 1..].trim_start_matches([' ', '\t']);
            headers.push((name.to_string(), value.to_string()));
        }
        Reply { headers }
    }

    /// First value of a header, case-insensitive name.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the header is present.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// Lines split on `\n`, `\r\n` or `\r` without their endings.
fn split_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = rest.find(['\r', '\n']).unwrap_or(rest.len());
        let line = &rest[..end];
        let mut next = end;
        if rest[end..].starts_with("\r\n") {
            next += 2;
        } else if end < rest.len() {
            next += 1;
        }
        rest = &rest[next..];
        Some(line)
    })
}

/// Python's `int(text)` for base-10 strings: surrounding whitespace, one
/// sign, `_` between digits (wire-protocol.md §7: the client converts
/// `Code`, `Thread`, `Count`… with `int()`). `None` where Python raises.
pub fn py_int(text: &str) -> Option<i128> {
    let t = text.trim_matches(|c: char| c.is_whitespace());
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
        || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'_')
    {
        return None;
    }
    let v: i128 = digits.replace('_', "").parse().ok()?;
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_ping_matches_spec_example() {
        let d = build_request(Op::Ping, &[], false, 4242, None, 1_700_000_000);
        assert_eq!(
            d,
            b"Op: ping\nThread: 4242\nPV: 2.1\nUser: anonymous\nTime: 1700000000\nSig: 6c75b1ab69b38151e681e4ac6b3d93727f9212b5\n\n"
        );
    }

    #[test]
    fn signed_check_matches_worked_example() {
        let bob = Account {
            username: "bob".into(),
            salt: String::new(),
            key: "cf88277c5d4abdc0a3f56f416011966d04a3f462".into(),
        };
        assert_eq!(
            hash_key(&bob.key, "bob"),
            "6919bdf67c7e0fe558e00bd71c2a9659522a6e8f"
        );
        let d = build_request(
            Op::Check,
            &["7421216f915a87e02da034cc483f5c876e1a1338"],
            false,
            12345,
            Some(&bob),
            1_700_000_000,
        );
        assert_eq!(d, &b"Op: check\nOp-Digest: 7421216f915a87e02da034cc483f5c876e1a1338\nThread: 12345\nPV: 2.1\nUser: bob\nTime: 1700000000\nSig: ca0c1d537e3234782f24c1418426f67caa48fe51\n\n"[..]);
    }

    #[test]
    fn report_layouts() {
        let single =
            String::from_utf8(build_request(Op::Report, &["d"], false, 2000, None, 1)).unwrap();
        assert!(single.starts_with("Op: report\nOp-Digest: d\nOp-Spec: 20,3,60,3\nThread: 2000\n"));
        let batch = String::from_utf8(build_request(
            Op::Whitelist,
            &["a", "b"],
            true,
            2000,
            None,
            1,
        ))
        .unwrap();
        assert!(batch.starts_with(
            "Op: whitelist\nOp-Spec: 20,3,60,3\nOp-Digest: a\nOp-Digest: b\nThread: 2000\n"
        ));
        assert_eq!(
            hash_key("", "anonymous"),
            "993fddad78000f2246ee74c4b1b9edcb89f91937"
        );
    }

    #[test]
    fn reply_parsing_like_email() {
        let r = Reply::parse(b"code: 200\r\nDiag:\tOK\nPV: 2.1\nThread: 12\n 34\nCount: 1\nCount: 2\n\nWL-Count: 9\n");
        assert_eq!(r.get("Code"), Some("200"));
        assert_eq!(r.get("diag"), Some("OK"));
        assert_eq!(r.get("Thread"), Some("12\n 34"));
        assert_eq!(r.get("Count"), Some("1"));
        assert_eq!(r.get("WL-Count"), None);
        assert!(Reply::parse(b"\nCode: 200\n").get("Code").is_none());
        assert!(Reply::parse(b"Code : 200\n").get("Code").is_none());
        assert_eq!(Reply::parse(&[0xff, 0xfe, b':', b'x']).get("x"), None);
    }

    #[test]
    fn python_int() {
        assert_eq!(py_int(" 12 "), Some(12));
        assert_eq!(py_int("+1_000"), Some(1000));
        assert_eq!(py_int("-5"), Some(-5));
        assert_eq!(py_int(""), None);
        assert_eq!(py_int("1__0"), None);
        assert_eq!(py_int("12\n 34"), None);
        assert_eq!(py_int("abc"), None);
    }
}
