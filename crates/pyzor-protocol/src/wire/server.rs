//! The server side of the protocol: reading a request datagram, deciding
//! what to do with it (authentication, PV, ACL, dispatch — docs/protocol.md
//! §4, in that order) and writing the reply bytes (§2.2).
//!
//! Hot-path design: a worker owns one [`Parsed`] and one reply buffer and
//! reuses them for every datagram; [`Parsed::parse`], [`evaluate`] for an
//! anonymous request and [`format_reply`] allocate nothing once warm.
//!
//! ```
//! use pyzor_protocol::auth::{Accounts, Acl};
//! use pyzor_protocol::wire::{server::*, Op};
//! let mut req = Parsed::new();
//! req.parse(b"Op: check\nOp-Digest: abc\nThread: 77\nPV: 2.1\n\n");
//! let (accounts, acl) = (Accounts::default(), Acl::reference_default());
//! let mut scratch = Vec::new();
//! let ok = evaluate(&req, &accounts, &acl, 1.7e9, &mut scratch).unwrap();
//! assert_eq!((ok.op, ok.user), (Op::Check, &b"anonymous"[..]));
//! assert_eq!(db_key(req.digests().next().unwrap()), Ok(&b"abc"[..]));
//! let mut out = Vec::new();
//! format_reply(&mut out, 200, "OK", req.get("Thread"), ReplyBody::Counts { count: 3, wl_count: 0 });
//! assert_eq!(out, b"Code: 200\nDiag: OK\nPV: 2.1\nThread: 77\nCount: 3\nWL-Count: 0\n\n");
//! ```

use std::borrow::Cow;

use super::email::{slice, Headers};
use super::render::{render_field_value, render_value};
use super::{Op, MAX_PACKET_SIZE, PROTO_VERSION};
use crate::auth::{sig_eq, sign, timestamp_ok, Accounts, Acl, ANONYMOUS};
use crate::py::{
    py_float, py_int_of_float, py_int_outcome, py_repr_str, py_strip_ascii, PyFloatToIntError,
    PyInt,
};

/// How many bytes a reply may be larger than the request that caused it
/// when the request was not signed by a known user (docs/security.md,
/// "Amplification"). The largest legitimate growth is 236 bytes: the
/// `int()` error quoting 200 characters of `Time` (a 298-byte reply) to the
/// 62-byte `User:b\nTime:` + 50 × `\x01`; an `info` reply with 20-digit
/// numbers to the 23-byte `Op:info\nOp-Digest:\nPV:2` grows by 199.
pub const MAX_REPLY_GROWTH: usize = 256;

/// What replaces a reply larger than [`MAX_REPLY_GROWTH`] allows.
pub const REPLY_TOO_LARGE: Failure = Failure::fixed(500, "Internal Server Error: Reply too large.");

/// The amplification guard (docs/security.md, "Amplification"): unless the
/// request was signed by a known user (`signed`), a reply (`out`) larger
/// than the request (`request_len` bytes as received) by more than
/// [`MAX_REPLY_GROWTH`] is replaced by [`REPLY_TOO_LARGE`], echoing the
/// request's `thread` when that still fits, else with an empty `Thread`.
/// Returns whether the reply was replaced.
pub fn bound_reply(
    out: &mut Vec<u8>,
    request_len: usize,
    signed: bool,
    thread: Option<&[u8]>,
) -> bool {
    let limit = request_len.saturating_add(MAX_REPLY_GROWTH);
    if signed || out.len() <= limit {
        return false;
    }
    let f = REPLY_TOO_LARGE;
    format_reply(out, f.code, &f.diag, thread, ReplyBody::Bare);
    if out.is_empty() || out.len() > limit {
        format_reply(out, f.code, &f.diag, None, ReplyBody::Bare);
    }
    true
}

/// A parsed request; reusable (its buffers keep their capacity).
#[derive(Debug, Default)]
pub struct Parsed {
    buf: Vec<u8>,
    headers: Headers,
    received: usize,
}

impl Parsed {
    pub fn new() -> Self {
        Self {
            buf: Vec::with_capacity(MAX_PACKET_SIZE + 2),
            headers: Headers::new(),
            received: 0,
        }
    }

    /// Read a datagram as the reference server does: only its first 8192
    /// bytes (§1), every `\n\n` replaced by `\n` and a `\n` appended (§3.1,
    /// the legacy-client rewrite), then parsed as email headers (§3.2).
    pub fn parse(&mut self, datagram: &[u8]) {
        self.received = datagram.len();
        let d = &datagram[..datagram.len().min(MAX_PACKET_SIZE)];
        self.buf.clear();
        legacy_rewrite(d, &mut self.buf);
        self.headers.parse(&self.buf);
    }

    /// The datagram's length as received (before the 8192-byte cut).
    pub fn received_len(&self) -> usize {
        self.received
    }

    /// `request[name]`: first occurrence, ASCII case-insensitive.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.headers.get(&self.buf, name)
    }

    /// `request.get_all(name)`.
    pub(crate) fn get_all<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s [u8]> + 's {
        self.headers.get_all(&self.buf, name)
    }

    /// The `Op-Digest` values in order.
    pub fn digests(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.get_all("Op-Digest")
    }

    /// The rewritten buffer the headers point into.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn headers(&self) -> &Headers {
        &self.headers
    }
}

/// docs/protocol.md §3.1 (legacy clients): `packet.replace(b"\n\n", b"\n")
/// + b"\n"` — all non-overlapping pairs, left to right.
fn legacy_rewrite(d: &[u8], out: &mut Vec<u8>) {
    let mut start = 0;
    // A `\n` scan rather than `memmem::find_iter`, which builds a searcher
    // on every call (measurable per request for a two-byte needle).
    for i in memchr::memchr_iter(b'\n', d) {
        // Non-overlapping, left to right, as Python's `replace`.
        if i < start || d.get(i + 1) != Some(&b'\n') {
            continue;
        }
        out.extend_from_slice(&d[start..=i]);
        start = i + 2;
    }
    out.extend_from_slice(&d[start..]);
    out.push(b'\n');
}

/// An error reply: code and `Diag` text (§4.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub code: u16,
    pub diag: Cow<'static, str>,
}

impl Failure {
    const fn fixed(code: u16, diag: &'static str) -> Self {
        Failure {
            code,
            diag: Cow::Borrowed(diag),
        }
    }
    /// 500 `Internal Server Error: <text>`.
    pub fn internal(text: impl std::fmt::Display) -> Self {
        Failure {
            code: 500,
            diag: Cow::Owned(format!("Internal Server Error: {text}")),
        }
    }
    pub(crate) const PV_MISSING: Failure = Failure::fixed(
        400,
        "Bad request: Protocol Version not specified in request",
    );
    pub(crate) const PV_INVALID: Failure =
        Failure::fixed(400, "Bad request: Invalid Protocol Version");
    pub(crate) const UNKNOWN_USER: Failure =
        Failure::fixed(401, "Unauthorized: Signature Error: Unknown user.");
    pub(crate) const BAD_TIME: Failure = Failure::fixed(
        401,
        "Unauthorized: Signature Error: Timestamp not within allowed range.",
    );
    pub(crate) const BAD_SIGNATURE: Failure =
        Failure::fixed(401, "Unauthorized: Signature Error: Invalid signature.");
    pub const FORBIDDEN: Failure = Failure::fixed(
        403,
        "Forbidden: User is not authorized to request the operation.",
    );
    pub(crate) const NOT_IMPLEMENTED: Failure = Failure::fixed(
        501,
        "Not implemented: Requested operation is not implemented.",
    );
    pub const VERSION: Failure = Failure::fixed(505, "Version Not Supported: ");
    /// What redis/mysql engines answer on a database error.
    pub const DB_UNAVAILABLE: Failure = Failure::fixed(
        500,
        "Internal Server Error: Database temporarily unavailable.",
    );
}

/// A request that passed authentication, PV, ACL and dispatch (§4 steps
/// 2–5). What the op then does with its `Op-Digest`s (and the op's own
/// refusals) is the server's per-op code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accepted<'a> {
    /// The user (as sent, or `anonymous`), as the usage log writes it.
    pub user: &'a [u8],
    /// The operation.
    pub op: Op,
}

/// Python's `TypeError` texts for a header value that the email package
/// returned as a `Header` object (bytes ≥ 0x80, §3.2 bug 3): one function
/// per use site, each naming the operation Python attempted.
mod header_object {
    pub(crate) const UNHASHABLE: &str = "unhashable type: 'Header'";
    pub(crate) const INT: &str =
        "int() argument must be a string, a bytes-like object or a real number, not 'Header'";
    pub(crate) const FLOAT: &str =
        "float() argument must be a string or a real number, not 'Header'";
    pub(crate) const DB_KEY: &str = "a bytes-like object is required, not 'Header'";
}

/// Decide a request (§4 steps 2–5: authentication, PV, ACL, dispatch).
/// `now` is the server's clock in seconds (float, like `time.time()`);
/// `scratch` is a reusable buffer for the signed text of non-anonymous
/// requests.
pub fn evaluate<'a>(
    req: &'a Parsed,
    accounts: &Accounts,
    acl: &Acl,
    now: f64,
    scratch: &mut Vec<u8>,
) -> Result<Accepted<'a>, Failure> {
    // 2. Authentication: `request["User"] or "anonymous"`.
    let user: &[u8] = match req.get("User") {
        Some(u) if !u.is_empty() => u,
        _ => ANONYMOUS.as_bytes(),
    };
    if user != ANONYMOUS.as_bytes() {
        if !user.is_ascii() {
            return Err(Failure::internal(header_object::UNHASHABLE));
        }
        let Some(hashed) = accounts.hashed_key(user) else {
            return Err(Failure::UNKNOWN_USER);
        };
        let ts = parse_time(req.get("Time"))?;
        let Some(ts) = ts else {
            return Err(Failure::BAD_TIME);
        };
        if !timestamp_ok(now, ts) {
            return Err(Failure::BAD_TIME);
        }
        let expected = match signed_text(req, scratch)? {
            Some(m) => sign(hashed, ts, m),
            None => return Err(Failure::BAD_SIGNATURE),
        };
        if !req.get("Sig").is_some_and(|s| sig_eq(&expected, s)) {
            return Err(Failure::BAD_SIGNATURE);
        }
    }
    // 3. Protocol version.
    check_pv(req.get("PV"))?;
    // 4. ACL (before "is it a known op").
    let op_raw = req.get("Op");
    match op_raw {
        None => return Err(Failure::FORBIDDEN),
        Some(o) if !o.is_ascii() => return Err(Failure::internal(header_object::UNHASHABLE)),
        Some(o) if !acl.allows(user, o) => return Err(Failure::FORBIDDEN),
        _ => {}
    }
    // 5. Dispatch.
    let op = Op::from_bytes(op_raw.unwrap_or_default()).ok_or(Failure::NOT_IMPLEMENTED)?;
    Ok(Accepted { user, op })
}

/// A digest as the reference's database key (§4 step 6): a digest with a
/// byte ≥ 0x80 is an email `Header` object (§3.2 bug 3), which the
/// reference's default engine (gdbm) refuses as a key with Python's
/// `TypeError`. Which of a request's digests become keys is the op's
/// business; a request with a refused one is refused whole, before
/// anything is stored (gdbm would have stored the digests before it).
pub fn db_key(digest: &[u8]) -> Result<&[u8], Failure> {
    if digest.is_ascii() {
        Ok(digest)
    } else {
        Err(Failure::internal(header_object::DB_KEY))
    }
}

/// `int(msg["Time"])` with Python's outcomes: `Ok(Some(t))`; `Ok(None)` for
/// an integer beyond i64 that still converts to float (always outside the
/// window → 401); `Err(500)` with Python's exception text otherwise
/// (§4 step 2.2, bug 4): `int()`'s `ValueError`, or the `OverflowError` of
/// the float conversion in the window check.
fn parse_time(v: Option<&[u8]>) -> Result<Option<i64>, Failure> {
    let Some(v) = v else {
        return Err(Failure::internal(
            "int() argument must be a string, a bytes-like object or a real number, not 'NoneType'",
        ));
    };
    if !v.is_ascii() {
        return Err(Failure::internal(header_object::INT));
    }
    let s = std::str::from_utf8(v).unwrap_or_default();
    match py_int_outcome(s).map_err(Failure::internal)? {
        PyInt::I64(t) => Ok(Some(t)),
        big => big.to_f64().map(|_| None).map_err(Failure::internal),
    }
}

/// §4 step 3: `int(float(PV)) != 2` → 505; `float()` failing or NaN
/// (`ValueError`) → 400; infinity → 500 (`OverflowError`).
fn check_pv(pv: Option<&[u8]>) -> Result<(), Failure> {
    let Some(pv) = pv else {
        return Err(Failure::PV_MISSING);
    };
    if !pv.is_ascii() {
        return Err(Failure::internal(header_object::FLOAT));
    }
    let f = py_float(std::str::from_utf8(pv).unwrap_or_default()).ok_or(Failure::PV_INVALID)?;
    match py_int_of_float(f) {
        Ok(2.0) => Ok(()),
        Ok(_) => Err(Failure::VERSION),
        Err(PyFloatToIntError::NaN) => Err(Failure::PV_INVALID),
        Err(e @ PyFloatToIntError::Infinity) => Err(Failure::internal(e)),
    }
}

/// The text the reference signs on the server (§4.2): the request
/// re-serialised without `Sig` headers, `strip()`ped. `Ok(None)` when the
/// text cannot equal what any client signed (a body with non-ASCII bytes);
/// `Err(500)` when Python's serialiser raises (embedded header).
fn signed_text<'s>(req: &Parsed, scratch: &'s mut Vec<u8>) -> Result<Option<&'s [u8]>, Failure> {
    scratch.clear();
    let buf = req.bytes();
    for f in req.headers().fields() {
        let name = slice(buf, &f.name);
        if name.eq_ignore_ascii_case(b"Sig") {
            continue;
        }
        scratch.extend_from_slice(name);
        scratch.extend_from_slice(b": ");
        render_field_value(name, slice(buf, &f.value), scratch).map_err(Failure::internal)?;
        scratch.push(b'\n');
    }
    scratch.push(b'\n');
    for piece in req.headers().body(buf) {
        if !piece.is_ascii() {
            return Ok(None);
        }
        // Generator._write_lines: line ends become "\n".
        let mut i = 0;
        while i < piece.len() {
            match piece[i] {
                b'\r' => {
                    scratch.push(b'\n');
                    if piece.get(i + 1) == Some(&b'\n') {
                        i += 1;
                    }
                }
                c => scratch.push(c),
            }
            i += 1;
        }
    }
    Ok(Some(py_strip_ascii(scratch)))
}

/// The op-specific fields of a 200 reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyBody {
    /// ping, report, whitelist, errors, and every op without digests.
    Bare,
    /// check and pong.
    Counts { count: i64, wl_count: i64 },
    /// info: epoch seconds, 0 for never.
    Info {
        entered: i64,
        updated: i64,
        wl_entered: i64,
        wl_updated: i64,
        count: i64,
        wl_count: i64,
    },
}

/// Write a reply datagram into `out` (cleared first): `Code`, `Diag`,
/// `PV: 2.1`, `Thread` (the request's first `Thread` as Python writes it,
/// empty when missing), the op's fields, a blank line.
///
/// If the `Thread` value cannot be serialised (an embedded header, §2.2),
/// `out` is left **empty**: the reference then sends an empty datagram.
pub fn format_reply(
    out: &mut Vec<u8>,
    code: u16,
    diag: &str,
    thread: Option<&[u8]>,
    body: ReplyBody,
) {
    out.clear();
    out.extend_from_slice(b"Code: ");
    push_int(out, code as i64);
    out.extend_from_slice(b"\nDiag: ");
    out.extend_from_slice(diag.as_bytes());
    out.extend_from_slice(b"\nPV: ");
    out.extend_from_slice(PROTO_VERSION.as_bytes());
    out.extend_from_slice(b"\nThread: ");
    if let Some(t) = thread {
        if render_value(t, out).is_err() {
            out.clear();
            return;
        }
    }
    out.push(b'\n');
    let mut field = |name: &[u8], v: i64| {
        out.extend_from_slice(name);
        push_int(out, v);
        out.push(b'\n');
    };
    match body {
        ReplyBody::Bare => {}
        ReplyBody::Counts { count, wl_count } => {
            field(b"Count: ", count);
            field(b"WL-Count: ", wl_count);
        }
        ReplyBody::Info {
            entered,
            updated,
            wl_entered,
            wl_updated,
            count,
            wl_count,
        } => {
            field(b"Entered: ", entered);
            field(b"Updated: ", updated);
            field(b"WL-Entered: ", wl_entered);
            field(b"WL-Updated: ", wl_updated);
            field(b"Count: ", count);
            field(b"WL-Count: ", wl_count);
        }
    }
    out.push(b'\n');
}

/// Decimal formatting without allocation (`str(int)`).
pub(crate) fn push_int(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(crate::py::py_str_int(v).as_bytes());
}

/// The usage-log message of a request that was dispatched
/// (docs/field-notes.md §5.14):
/// `user,client_ip,op,['digest', ...],code` (`%r` of the digest list,
/// `None` when there is no `Op-Digest`).
pub fn usage_line(
    user: &[u8],
    client_ip: &str,
    op: Option<&[u8]>,
    req: &Parsed,
    code: u16,
) -> String {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let op = op.map_or_else(|| "None".to_owned(), text);
    let mut digests = req.digests().peekable();
    let list = if digests.peek().is_none() {
        "None".to_owned()
    } else {
        let items: Vec<String> = digests
            .map(|d| py_repr_str(&String::from_utf8_lossy(d)))
            .collect();
        format!("[{}]", items.join(", "))
    };
    format!("{},{},{},{},{}", text(user), client_ip, op, list, code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::parse_passwd;
    use crate::wire::client::{build_request, Credentials, Layout};

    fn run(dgram: &[u8], accounts: &Accounts, acl: &Acl, now: f64) -> (u16, String, Option<Op>) {
        let mut p = Parsed::new();
        p.parse(dgram);
        let mut s = Vec::new();
        match evaluate(&p, accounts, acl, now, &mut s) {
            Ok(a) => (200, "OK".into(), Some(a.op)),
            Err(f) => (f.code, f.diag.into_owned(), None),
        }
    }

    fn anon(d: &[u8]) -> (u16, String, Option<Op>) {
        run(d, &Accounts::default(), &Acl::reference_default(), 1.7e9)
    }

    #[test]
    fn legacy_rewrite_cases() {
        let mut o = Vec::new();
        legacy_rewrite(b"a\n\n\nb\n\n", &mut o);
        assert_eq!(o, b"a\n\nb\n\n");
        o.clear();
        legacy_rewrite(b"", &mut o);
        assert_eq!(o, b"\n");
    }

    #[test]
    fn pv_and_acl_order() {
        assert_eq!(anon(b"Op: ping\nThread: 1\nPV: 2.1\n\n").0, 200);
        assert_eq!(anon(b"Op: ping\nThread: 1\n\n").0, 400);
        assert_eq!(
            anon(b"").1,
            "Bad request: Protocol Version not specified in request"
        );
        for pv in ["2.0", "2.9", "2", "2e0", " 2.1 ", "2_0.5e-1"] {
            assert_eq!(
                anon(format!("Op: ping\nPV: {pv}\n").as_bytes()).0,
                200,
                "{pv}"
            );
        }
        for (pv, code) in [
            ("3.0", 505),
            ("1.9", 505),
            ("-2", 505),
            ("2_1", 505),
            ("abc", 400),
            ("", 400),
            ("nan", 400),
            ("2..1", 400),
            ("inf", 500),
            ("-inf", 500),
        ] {
            assert_eq!(
                anon(format!("Op: ping\nPV: {pv}\n").as_bytes()).0,
                code,
                "{pv}"
            );
        }
        assert_eq!(anon(b"Op: whitelist\nPV: 2.1\n").0, 403);
        assert_eq!(anon(b"PV: 2.1\n").0, 403);
        assert_eq!(anon(b"Op: PING\nPV: 2.1\n").0, 403);
        assert_eq!(anon(b"Op: ping \nPV: 2.1\n").0, 403);
        assert_eq!(anon(b"Op\n").0, 400);
        assert_eq!(
            anon(b"Op: p\xffng\nPV: 2.1\n").1,
            "Internal Server Error: unhashable type: 'Header'"
        );
        assert_eq!(anon(b"Op: ping\nPV: \xff\n").0, 500);
    }

    #[test]
    fn digests_and_dispatch() {
        assert_eq!(
            anon(b"Op: check\nPV: 2.1\n"),
            (200, "OK".into(), Some(Op::Check))
        );
        assert_eq!(
            anon(b"Op: ping\nOp-Digest: x\nPV: 2.1\n"),
            (200, "OK".into(), Some(Op::Ping))
        );
        // Which digests must be keys is the op's rule (pyzor-server's
        // `cmd`, where the 500s for `\xff` digests are tested); `evaluate`
        // accepts them all.
        assert_eq!(anon(b"Op: pong\nOp-Digest: \xff\nPV: 2.1\n").0, 200);
        assert_eq!(anon(b"Op: check\nOp-Digest: \xff\nPV: 2.1\n").0, 200);
        assert_eq!(
            db_key(b"\xff").unwrap_err().diag,
            "Internal Server Error: a bytes-like object is required, not 'Header'"
        );
        assert_eq!(db_key(b"abc"), Ok(&b"abc"[..]));
        let (acc, _) = parse_passwd("erin : k\n");
        let (acl, _) =
            crate::auth::parse_access("foo : erin : allow\nfoo : anonymous : allow\n", &acc);
        assert_eq!(run(b"Op: foo\nPV: 2.1\n", &acc, &acl, 0.0).0, 501);
    }

    fn signed(user: &str, key: &str, t: i64) -> Vec<u8> {
        let mut out = Vec::new();
        build_request(
            Op::Check,
            &["d"],
            4000,
            &Credentials::new(user, key),
            t,
            Layout::Single,
            &mut out,
        )
        .unwrap();
        out
    }

    #[test]
    fn authentication() {
        let (acc, _) = parse_passwd("bob : ABCDEF\n");
        let (acl, _) = crate::auth::parse_access("all : bob : allow\n", &acc);
        let now = 1_700_000_000.0;
        let t = 1_700_000_000;
        assert_eq!(run(&signed("bob", "abcdef", t), &acc, &acl, now).0, 200);
        assert_eq!(
            run(&signed("bob", "abcdef", t - 300), &acc, &acl, now).0,
            200
        );
        assert_eq!(
            run(&signed("bob", "abcdef", t + 301), &acc, &acl, now).1,
            Failure::BAD_TIME.diag
        );
        assert_eq!(
            run(&signed("bob", "wrong", t), &acc, &acl, now).1,
            Failure::BAD_SIGNATURE.diag
        );
        assert_eq!(
            run(&signed("carol", "abcdef", t), &acc, &acl, now).1,
            Failure::UNKNOWN_USER.diag
        );
        assert_eq!(run(&signed("Anonymous", "", t), &acc, &acl, now).0, 401);
        // Old client: every line followed by a blank line.
        let legacy: Vec<u8> = signed("bob", "abcdef", t)
            .split(|&b| b == b'\n')
            .flat_map(|l| [l, b"\n\n"].concat())
            .collect();
        assert_eq!(run(&legacy, &acc, &acl, now).0, 200);
        // CRLF: signed over the LF form.
        let crlf: Vec<u8> = String::from_utf8(signed("bob", "abcdef", t))
            .unwrap()
            .replace('\n', "\r\n")
            .into_bytes();
        assert_eq!(run(&crlf, &acc, &acl, now).0, 200);
        // Sig in the middle.
        let s = String::from_utf8(signed("bob", "abcdef", t)).unwrap();
        let sig_line = s
            .lines()
            .find(|l| l.starts_with("Sig:"))
            .unwrap()
            .to_owned();
        let moved = s.replace(&format!("{sig_line}\n"), "").replacen(
            "PV: 2.1\n",
            &format!("PV: 2.1\n{sig_line}\n"),
            1,
        );
        assert_eq!(run(moved.as_bytes(), &acc, &acl, now).0, 200);
        // Trailing body breaks it.
        let body = format!("{s}trailing\n");
        assert_eq!(run(body.as_bytes(), &acc, &acl, now).0, 401);
        // Auth comes before PV.
        let nopv = s.replace("PV: 2.1\n", "PV: 3.0\n");
        assert_eq!(run(nopv.as_bytes(), &acc, &acl, now).0, 401);
        // Time problems.
        assert_eq!(
            run(b"Op: ping\nPV: 2.1\nUser: bob\n", &acc, &acl, now).0,
            500
        );
        assert_eq!(
            run(
                b"Op: ping\nPV: 2.1\nUser: bob\nTime: 12a\n",
                &acc,
                &acl,
                now
            )
            .1,
            "Internal Server Error: invalid literal for int() with base 10: '12a'"
        );
        let huge = format!("Op: ping\nPV: 2.1\nUser: bob\nTime: {}\n", "9".repeat(30));
        assert_eq!(run(huge.as_bytes(), &acc, &acl, now).0, 401);
        let huge = format!("Op: ping\nPV: 2.1\nUser: bob\nTime: {}\n", "9".repeat(400));
        assert_eq!(
            run(huge.as_bytes(), &acc, &acl, now).1,
            "Internal Server Error: int too large to convert to float"
        );
        let huge = format!("Op: ping\nPV: 2.1\nUser: bob\nTime: {}\n", "9".repeat(5000));
        assert!(run(huge.as_bytes(), &acc, &acl, now)
            .1
            .contains("value has 5000 digits"));
    }

    #[test]
    fn reply_bytes() {
        let mut o = Vec::new();
        format_reply(&mut o, 200, "OK", Some(b"1234"), ReplyBody::Bare);
        assert_eq!(o, b"Code: 200\nDiag: OK\nPV: 2.1\nThread: 1234\n\n");
        format_reply(
            &mut o,
            505,
            Failure::VERSION.diag.as_ref(),
            None,
            ReplyBody::Bare,
        );
        assert_eq!(
            o,
            b"Code: 505\nDiag: Version Not Supported: \nPV: 2.1\nThread: \n\n"
        );
        format_reply(
            &mut o,
            200,
            "OK",
            Some(b"1"),
            ReplyBody::Counts {
                count: i64::MAX,
                wl_count: 0,
            },
        );
        assert_eq!(
            o,
            b"Code: 200\nDiag: OK\nPV: 2.1\nThread: 1\nCount: 9223372036854775807\nWL-Count: 0\n\n"
        );
        format_reply(
            &mut o,
            200,
            "OK",
            Some(b"\xff\xfe7"),
            ReplyBody::Info {
                entered: 5,
                updated: 6,
                wl_entered: 0,
                wl_updated: 0,
                count: 1,
                wl_count: 0,
            },
        );
        assert_eq!(o, &b"Code: 200\nDiag: OK\nPV: 2.1\nThread: =?unknown-8bit?b?//43?=\nEntered: 5\nUpdated: 6\nWL-Entered: 0\nWL-Updated: 0\nCount: 1\nWL-Count: 0\n\n"[..]);
        format_reply(&mut o, 200, "OK", Some(b"1\x0bX: y"), ReplyBody::Bare);
        assert!(o.is_empty());
    }

    #[test]
    fn usage_lines() {
        let mut p = Parsed::new();
        p.parse(b"Op: check\nOp-Digest: abc\nOp-Digest: it's\nPV: 2.1\n");
        assert_eq!(
            usage_line(b"anonymous", "10.0.0.1", Some(b"check"), &p, 200),
            "anonymous,10.0.0.1,check,['abc', \"it's\"],200"
        );
        p.parse(b"Op: ping\nPV: 2.1\n");
        assert_eq!(
            usage_line(b"anonymous", "::1", Some(b"ping"), &p, 200),
            "anonymous,::1,ping,None,200"
        );
    }

    #[test]
    fn truncation_at_8192() {
        let mut d = vec![b'X'; 0];
        d.extend_from_slice(b"Op: ping\nThread: 5\nPV: 2.1\nPad: ");
        d.resize(8194 - 10, b'a');
        d.extend_from_slice(b"\nOp: ping\n");
        assert_eq!(d.len(), 8194);
        let mut p = Parsed::new();
        p.parse(&d);
        assert_eq!(p.get("Op"), Some(&b"ping"[..]));
        let mut d2 = b"Pad: ".to_vec();
        d2.resize(8194 - 10, b'a');
        d2.extend_from_slice(b"\nOp: ping\n");
        p.parse(&d2);
        assert_eq!(p.get_all("Op").next(), Some(&b"pin"[..]));
    }

    /// The reply of `dgram` as the server formats it (error replies).
    fn error_reply(dgram: &[u8], accounts: &Accounts) -> Vec<u8> {
        let (code, diag, _) = run(dgram, accounts, &Acl::reference_default(), 1.7e9);
        let mut p = Parsed::new();
        p.parse(dgram);
        let mut out = Vec::new();
        format_reply(&mut out, code, &diag, p.get("Thread"), ReplyBody::Bare);
        out
    }

    #[test]
    fn max_reply_growth_covers_every_legitimate_reply() {
        let mut accounts = Accounts::default();
        accounts.insert("b", "k");
        // The int() error quotes at most 200 characters (`%.200R`): the
        // shortest request reaching the cut.
        let mut d = b"User:b\nTime:".to_vec();
        d.extend([1u8; 50]);
        let r = error_reply(&d, &accounts);
        assert_eq!(r.len(), 298);
        assert_eq!(r.len() - d.len(), 236);
        assert!(r.len() - d.len() <= MAX_REPLY_GROWTH);
        // Issue 12's figures: 8184 and 3047 bytes in, 298 and 299 out.
        let mut d = b"User:b\nTime:".to_vec();
        d.extend([1u8; 8172]);
        assert_eq!(error_reply(&d, &accounts).len(), 298);
        let mut d = b"Op: ping\nThread: 1\nPV: 2.1\nUser: b\nTime: 1x".to_vec();
        d.extend(b"abcdefghijklmnopqrstuvwxyz".iter().cycle().take(3000));
        assert_eq!(error_reply(&d, &accounts).len(), 299);
        // The longest fixed text, to an 8-byte request.
        let d = b"User:b\nx";
        assert!(error_reply(d, &accounts).len() - d.len() <= MAX_REPLY_GROWTH);
        // An info reply with 20-digit numbers to a 23-byte request.
        let d = b"Op:info\nOp-Digest:\nPV:2";
        let mut out = Vec::new();
        let n = i64::MIN;
        let body = ReplyBody::Info {
            entered: n,
            updated: n,
            wl_entered: n,
            wl_updated: n,
            count: n,
            wl_count: n,
        };
        format_reply(&mut out, 200, "OK", None, body);
        assert_eq!(out.len() - d.len(), 199);
    }

    #[test]
    fn bound_reply_replaces_oversized_unsigned_replies() {
        let big = vec![0x80u8; 3000];
        let mut out = Vec::new();
        format_reply(&mut out, 200, "OK", Some(&big), ReplyBody::Bare);
        assert!(out.len() > 3000 + MAX_REPLY_GROWTH);
        // Signed: untouched.
        let before = out.clone();
        assert!(!bound_reply(&mut out, 3000, true, Some(&big)));
        assert_eq!(out, before);
        // Unsigned: the fixed reply; the Thread does not fit, so it is empty.
        assert!(bound_reply(&mut out, 3000, false, Some(&big)));
        assert_eq!(
            out,
            b"Code: 500\nDiag: Internal Server Error: Reply too large.\nPV: 2.1\nThread: \n\n"
        );
        // Even to an empty request, the fixed reply fits.
        assert!(out.len() <= MAX_REPLY_GROWTH);
        // A Thread that fits is echoed.
        let mut out = vec![b'x'; 5000];
        assert!(bound_reply(&mut out, 100, false, Some(b"42")));
        assert_eq!(
            out,
            b"Code: 500\nDiag: Internal Server Error: Reply too large.\nPV: 2.1\nThread: 42\n\n"
        );
        // Within the bound: untouched.
        let mut out = vec![b'x'; 356];
        assert!(!bound_reply(&mut out, 100, false, None));
        assert_eq!(out.len(), 356);
        // The length as received counts, not the 8192 bytes read.
        let mut p = Parsed::new();
        p.parse(&[b'a'; 9000]);
        assert_eq!(p.received_len(), 9000);
    }
}
