//! Accounts, signatures and access control (docs/protocol.md §4.2, §5).
//!
//! * [`hash_key`] — `lower(hex(SHA1(user + ":" + lower(key))))`;
//! * [`sign`] / `sign_digest` — `lower(hex(SHA1(SHA1(M) + ":" + T + ":" + hash_key)))`;
//! * `timestamp_ok` — the ±300 s window (inclusive);
//! * `sig_eq` — constant-time comparison of the received signature
//!   (the reference compares with `!=`; see docs/compatibility.md);
//! * [`files`] — `pyzord.passwd` → [`Accounts`], `pyzord.access` → [`Acl`].
//!
//! Signing the canonical text `M` of a request is the wire module's job
//! (`wire::client::build_request`, `wire::server`).

pub mod files;

pub use files::{parse_access, parse_passwd, Accounts, Acl};

use sha1::{Digest, Sha1};

/// `pyzor.MAX_TIMESTAMP_DIFFERENCE`: a signed request's `Time` may differ
/// from the server's clock by this many seconds (inclusive).
pub(crate) const MAX_TIMESTAMP_DIFFERENCE: f64 = 300.0;

/// The user name of unsigned requests.
pub const ANONYMOUS: &str = "anonymous";

/// 40 lower-case hex digits (a SHA1 in the form Pyzor writes it).
pub type Hex40 = [u8; 40];

fn hex40(d: &[u8]) -> Hex40 {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 40];
    for (i, b) in d.iter().take(20).enumerate() {
        out[2 * i] = H[(b >> 4) as usize];
        out[2 * i + 1] = H[(b & 15) as usize];
    }
    out
}

/// `pyzor.account.hash_key(key, user)`. The key is lower-cased as Python's
/// `str.lower()` does (ASCII keys, the only ones `genkey` makes, exactly).
pub fn hash_key(key: &str, user: &str) -> Hex40 {
    let mut h = Sha1::new();
    h.update(user.as_bytes());
    h.update(b":");
    if key.is_ascii() {
        for chunk in key.as_bytes().chunks(64) {
            let mut buf = [0u8; 64];
            let n = chunk.len();
            buf[..n].copy_from_slice(chunk);
            buf[..n].make_ascii_lowercase();
            h.update(&buf[..n]);
        }
    } else {
        h.update(key.to_lowercase().as_bytes());
    }
    hex40(&h.finalize())
}

/// `pyzor.account.sign_msg` given the canonical text `msg` (already
/// `strip()`ped, UTF-8).
pub fn sign(hashed_key: &Hex40, timestamp: i64, msg: &[u8]) -> Hex40 {
    let inner: [u8; 20] = Sha1::digest(msg).into();
    sign_digest(hashed_key, timestamp, &inner)
}

/// [`sign`] when `SHA1(M)` is already known.
pub(crate) fn sign_digest(hashed_key: &Hex40, timestamp: i64, msg_sha1: &[u8; 20]) -> Hex40 {
    let mut h = Sha1::new();
    h.update(msg_sha1);
    h.update(b":");
    let ts = crate::py::py_str_int(timestamp);
    h.update(ts.as_bytes());
    h.update(b":");
    h.update(hashed_key);
    hex40(&h.finalize())
}

/// `abs(time.time() - timestamp) > 300` is the reference's rejection test.
pub(crate) fn timestamp_ok(now: f64, timestamp: i64) -> bool {
    (now - timestamp as f64).abs() <= MAX_TIMESTAMP_DIFFERENCE
}

/// Constant-time equality of the expected signature and the received
/// `Sig` value (same result as Python's `!=`, no timing leak).
pub(crate) fn sig_eq(expected: &Hex40, received: &[u8]) -> bool {
    if received.len() != expected.len() {
        return false;
    }
    let mut diff = 0u8;
    for (a, b) in expected.iter().zip(received) {
        diff |= a ^ b;
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worked_example_from_the_spec() {
        // docs/protocol.md §4.2
        let hk = hash_key("cf88277c5d4abdc0a3f56f416011966d04a3f462", "bob");
        assert_eq!(&hk, b"6919bdf67c7e0fe558e00bd71c2a9659522a6e8f");
        let m = b"Op: check\nOp-Digest: 7421216f915a87e02da034cc483f5c876e1a1338\nThread: 12345\nPV: 2.1\nUser: bob\nTime: 1700000000";
        assert_eq!(
            &sign(&hk, 1700000000, m),
            b"ca0c1d537e3234782f24c1418426f67caa48fe51"
        );
        // Upper-case key in pyzord.passwd works: keys are lower-cased.
        assert_eq!(
            hash_key("CF88277C5D4ABDC0A3F56F416011966D04A3F462", "bob"),
            hk
        );
    }

    #[test]
    fn anonymous_hash_key() {
        assert_eq!(
            &hash_key("", "anonymous"),
            b"993fddad78000f2246ee74c4b1b9edcb89f91937"
        );
        let hk = hash_key("", "anonymous");
        let m = b"Op: ping\nThread: 4242\nPV: 2.1\nUser: anonymous\nTime: 1700000000";
        assert_eq!(
            &sign(&hk, 1700000000, m),
            b"6c75b1ab69b38151e681e4ac6b3d93727f9212b5"
        );
    }

    #[test]
    fn window_is_inclusive_300() {
        assert!(timestamp_ok(1000.0, 700));
        assert!(timestamp_ok(1000.0, 1300));
        assert!(!timestamp_ok(1000.5, 700));
        assert!(!timestamp_ok(1000.0, 1301));
        assert!(!timestamp_ok(1000.0, i64::MIN));
    }

    #[test]
    fn sig_compare() {
        let s = *b"ca0c1d537e3234782f24c1418426f67caa48fe51";
        assert!(sig_eq(&s, b"ca0c1d537e3234782f24c1418426f67caa48fe51"));
        assert!(!sig_eq(&s, b"CA0C1D537E3234782F24C1418426F67CAA48FE51"));
        assert!(!sig_eq(&s, b""));
        assert_eq!(crate::py::py_str_int(-12).as_bytes(), b"-12");
        assert_eq!(
            crate::py::py_str_int(i64::MIN).as_bytes(),
            b"-9223372036854775808"
        );
    }
}
