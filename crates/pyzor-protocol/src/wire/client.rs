//! The client side of the protocol: building a signed request datagram
//! (docs/protocol.md §2.1) and reading a reply as the reference client
//! does (§7).
//!
//! ```
//! use pyzor_protocol::wire::{client::{build_request, parse_reply, Credentials, Layout}, Op};
//! let creds = Credentials::anonymous();
//! let mut dgram = Vec::new();
//! build_request(Op::Ping, &[], 4242, &creds, 1700000000, Layout::Single, &mut dgram).unwrap();
//! assert_eq!(dgram, b"Op: ping\nThread: 4242\nPV: 2.1\nUser: anonymous\nTime: 1700000000\nSig: 6c75b1ab69b38151e681e4ac6b3d93727f9212b5\n\n");
//! let reply = parse_reply(b"Code: 200\nDiag: OK\nPV: 2.1\nThread: 4242\n\n", 4242).unwrap();
//! assert_eq!(reply.head_tuple(), "(200, 'OK')");
//! ```

use super::email::{slice, Headers};
use super::render::{render_str, EmbeddedHeader};
use super::{Op, DIGEST_SPEC, PROTO_VERSION};
use crate::auth::{hash_key, sign, Hex40, ANONYMOUS};
use crate::py::{py_int, py_str_int_str_tuple, py_strip_ascii};

/// Who signs a request: the user name and its `hash_key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub hashed_key: Hex40,
}

impl Credentials {
    /// An account from the client's `accounts` file (`salt,key`: pass the key).
    pub fn new(user: &str, key: &str) -> Self {
        Credentials {
            user: user.to_owned(),
            hashed_key: hash_key(key, user),
        }
    }
    /// The reference's `AnonymousAccount`: user `anonymous`, key `""`
    /// (requests are signed all the same).
    pub fn anonymous() -> Self {
        Self::new(ANONYMOUS, "")
    }
}

/// Header order of the digests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `Client`: `Op`, `Op-Digest`(s), `Op-Spec`.
    Single,
    /// `BatchClient` (the forwarder): `Op`, `Op-Spec`, `Op-Digest`s.
    Batch,
}

/// Build the datagram the reference client sends for `op` on `digests`
/// (ignored for ping), with `Thread: thread`, `Time: time`, signed with
/// `creds`. `out` is cleared first. `Op-Spec: 20,3,60,3` is added for
/// report and whitelist.
///
/// Fails only when a digest holds text that Python's email package refuses
/// to serialise (a line break followed by `name:`).
pub fn build_request(
    op: Op,
    digests: &[&str],
    thread: u32,
    creds: &Credentials,
    time: i64,
    layout: Layout,
    out: &mut Vec<u8>,
) -> Result<(), EmbeddedHeader> {
    out.clear();
    let with_spec = matches!(op, Op::Report | Op::Whitelist);
    let field = |out: &mut Vec<u8>, name: &str, value: &str| -> Result<(), EmbeddedHeader> {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        render_str(value, out)?;
        out.push(b'\n');
        Ok(())
    };
    field(out, "Op", op.as_str())?;
    let digests: &[&str] = if op == Op::Ping { &[] } else { digests };
    if layout == Layout::Batch && with_spec {
        field(out, "Op-Spec", DIGEST_SPEC)?;
    }
    for d in digests {
        field(out, "Op-Digest", d)?;
    }
    if layout == Layout::Single && with_spec {
        field(out, "Op-Spec", DIGEST_SPEC)?;
    }
    field(out, "Thread", &thread.to_string())?;
    field(out, "PV", PROTO_VERSION)?;
    field(out, "User", &creds.user)?;
    field(out, "Time", &time.to_string())?;
    // M = msg.as_string().strip()
    let m = py_strip_ascii(out);
    let sig = sign(&creds.hashed_key, time, m);
    out.extend_from_slice(b"Sig: ");
    out.extend_from_slice(&sig);
    out.extend_from_slice(b"\n\n");
    Ok(())
}

/// A reply as the reference client sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// `int(Code)`.
    pub code: i64,
    /// `Diag`, exactly (lossy UTF-8 for non-UTF-8 bytes).
    pub diag: String,
    /// `int(Thread)`, in 0..65535.
    pub thread: u32,
    /// Set when the reply's thread is in 0..1023 and differs from the
    /// request's: the reference logs `received error thread id %d
    /// (expected %d)` and accepts the reply.
    pub thread_warning: Option<String>,
    /// Every header (first occurrence semantics via [`Reply::get`]).
    pub fields: Vec<(String, String)>,
}

impl Reply {
    /// `response[name]`: first field of that name, case-insensitive.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// `int(response[name])` as the client's runners use it; `None` if the
    /// field is missing or not an integer (the reference crashes there).
    pub fn get_int(&self, name: &str) -> Option<i64> {
        self.get(name).and_then(py_int)
    }
    pub fn is_ok(&self) -> bool {
        self.code == 200
    }
    /// `str(response.head_tuple())`, e.g. `(200, 'OK')`.
    pub fn head_tuple(&self) -> String {
        py_str_int_str_tuple(self.code, &self.diag)
    }
}

/// Why a reply is not usable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// The reference raises `pyzor.ProtocolError` (code 400) and prints
    /// `host:port\t(400, '<message>')`.
    #[error("{0}")]
    Protocol(String),
    /// The reference client crashes here (ValueError/TypeError while reading
    /// the reply, docs/protocol.md §7 and §9 bug 1/14); the text says why.
    #[error("unusable reply: {0}")]
    Malformed(String),
}

impl ReplyError {
    /// The code the reference prints for a [`ReplyError::Protocol`] (400).
    pub fn code(&self) -> i64 {
        400
    }
}

/// Read a reply datagram (up to 8192 bytes) for a request sent with
/// `expected_thread`, in the reference client's order of checks.
pub fn parse_reply(packet: &[u8], expected_thread: u32) -> Result<Reply, ReplyError> {
    let mut h = Headers::new();
    h.parse(packet);
    let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
    let fields: Vec<(String, String)> = h
        .fields()
        .iter()
        .map(|f| (text(slice(packet, &f.name)), text(slice(packet, &f.value))))
        .collect();
    let get = |n: &str| h.get(packet, n);
    if get("Code").is_none() || get("Diag").is_none() {
        return Err(ReplyError::Protocol(
            "doesn't have fields for a Response".into(),
        ));
    }
    if get("PV").is_none() || get("Thread").is_none() {
        return Err(ReplyError::Protocol(
            "Doesn't have fields for a ThreadedMessage.".into(),
        ));
    }
    let thread_raw = get("Thread").unwrap_or_default();
    let thread = std::str::from_utf8(thread_raw)
        .ok()
        .filter(|s| s.is_ascii())
        .and_then(py_int)
        .ok_or_else(|| {
            ReplyError::Malformed(format!("Thread {:?} is not an integer", text(thread_raw)))
        })?;
    if !(0..65536).contains(&thread) {
        return Err(ReplyError::Malformed(format!(
            "Thread {thread} is outside 0..65535"
        )));
    }
    let thread = thread as u32;
    let mut thread_warning = None;
    if thread != expected_thread {
        if thread >= 1024 {
            return Err(ReplyError::Protocol(format!(
                "received unexpected thread id {thread} (expected {expected_thread})"
            )));
        }
        thread_warning = Some(format!(
            "received error thread id {thread} (expected {expected_thread})"
        ));
    }
    let code_raw = get("Code").unwrap_or_default();
    let code = std::str::from_utf8(code_raw)
        .ok()
        .filter(|s| s.is_ascii())
        .and_then(py_int)
        .ok_or_else(|| {
            ReplyError::Malformed(format!("Code {:?} is not an integer", text(code_raw)))
        })?;
    let diag = text(get("Diag").unwrap_or_default());
    Ok(Reply {
        code,
        diag,
        thread,
        thread_warning,
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worked_example_signed_check() {
        let creds = Credentials::new("bob", "cf88277c5d4abdc0a3f56f416011966d04a3f462");
        let mut out = Vec::new();
        build_request(
            Op::Check,
            &["7421216f915a87e02da034cc483f5c876e1a1338"],
            12345,
            &creds,
            1700000000,
            Layout::Single,
            &mut out,
        )
        .unwrap();
        assert_eq!(
            out,
            &b"Op: check\nOp-Digest: 7421216f915a87e02da034cc483f5c876e1a1338\nThread: 12345\nPV: 2.1\nUser: bob\nTime: 1700000000\nSig: ca0c1d537e3234782f24c1418426f67caa48fe51\n\n"[..]
        );
    }

    #[test]
    fn layouts() {
        let c = Credentials::anonymous();
        let mut out = Vec::new();
        build_request(
            Op::Report,
            &["d1", "d2"],
            2000,
            &c,
            1,
            Layout::Single,
            &mut out,
        )
        .unwrap();
        assert!(out.starts_with(
            b"Op: report\nOp-Digest: d1\nOp-Digest: d2\nOp-Spec: 20,3,60,3\nThread: 2000\n"
        ));
        build_request(Op::Whitelist, &["d1"], 2000, &c, 1, Layout::Batch, &mut out).unwrap();
        assert!(
            out.starts_with(b"Op: whitelist\nOp-Spec: 20,3,60,3\nOp-Digest: d1\nThread: 2000\n")
        );
        build_request(
            Op::Ping,
            &["ignored"],
            2000,
            &c,
            1,
            Layout::Single,
            &mut out,
        )
        .unwrap();
        assert!(out.starts_with(b"Op: ping\nThread: 2000\n"));
    }

    #[test]
    fn reply_checks_in_reference_order() {
        let ok = parse_reply(
            b"Code: 200\nDiag: OK\nPV: 2.1\nThread: 3000\nCount: 2\nWL-Count: 0\n\n",
            3000,
        )
        .unwrap();
        assert_eq!(
            (ok.code, ok.get_int("Count"), ok.get_int("wl-count")),
            (200, Some(2), Some(0))
        );
        assert_eq!(
            parse_reply(b"Diag: OK\nPV: 2.1\nThread: 1\n", 1),
            Err(ReplyError::Protocol(
                "doesn't have fields for a Response".into()
            ))
        );
        assert_eq!(
            parse_reply(b"Code: 200\nDiag: OK\nThread: 1\n", 1),
            Err(ReplyError::Protocol(
                "Doesn't have fields for a ThreadedMessage.".into()
            ))
        );
        assert_eq!(
            parse_reply(b"Code: 200\nDiag: OK\nPV: 2.1\nThread: 2000\n", 3000),
            Err(ReplyError::Protocol(
                "received unexpected thread id 2000 (expected 3000)".into()
            ))
        );
        let low = parse_reply(b"Code: 200\nDiag: OK\nPV: 2.1\nThread: 5\n", 3000).unwrap();
        assert!(low.thread_warning.is_some());
        assert!(matches!(
            parse_reply(b"Code: 400\nDiag: x\nPV: 2.1\nThread: \n\n", 3000),
            Err(ReplyError::Malformed(_))
        ));
        assert!(matches!(
            parse_reply(b"Code: 200\nDiag: x\nPV: 2.1\nThread: 70000\n", 3000),
            Err(ReplyError::Malformed(_))
        ));
        let q = parse_reply(b"Code: 401\nDiag: it's\nPV: 2.1\nThread: 3000\n", 3000).unwrap();
        assert_eq!(q.head_tuple(), "(401, \"it's\")");
    }
}
