//! The lookup API (`HttpApi = true`, off by default), read-only:
//!
//! * `GET /v1/digests/<40 hex digits>`: the record as JSON (200), 404 when
//!   the digest is unknown, 400 for anything but 40 hex digits;
//! * `POST /v1/explain` with a raw message as the body (at most
//!   [`EXPLAIN_LIMIT`] bytes, 413 beyond): its digest, the lines that
//!   went into it, in hashing order, and its record (`null` when unknown).
//!
//! ```text
//! $ curl -s http://127.0.0.1:8080/v1/digests/2aedaac999d71421c9ee49b9d81f627a7bc570aa
//! {"digest":"2aedaac999d71421c9ee49b9d81f627a7bc570aa","r_count":3,"wl_count":0,
//!  "r_entered":{"epoch":1765004400,"info":"Sat Dec  6 07:00:00 2025","iso8601":"2025-12-06T07:00:00Z"},
//!  "r_updated":{…},"wl_entered":{"epoch":0,"info":"Thu Jan  1 00:00:00 1970","iso8601":null},"wl_updated":{…}}
//! ```
//!
//! A date is given three ways: `epoch`, what the server sends in an
//! `info` reply (`handle_info`'s `time_output`: 0 when never set),
//! `info`, what the reference's `pyzor info` prints for it (`time.ctime`
//! in pyzord's local time zone, so the epoch for "never"), and `iso8601`
//! in UTC (`null` when never set). Every call counts against its
//! network's `HttpRateLimit` (429 beyond) and in
//! `pyzord_http_lookups_total`; an engine failure is a 503, never a 404.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use pyzor_protocol::record::Timestamp;
use pyzor_protocol::Record;
use pyzor_store::Engine;
use serde_json::{json, Value};

use super::{Answer, Guard, HttpRequest, Router};
use crate::metrics::Metrics;
use crate::requests::iso8601;

/// Largest message `POST /v1/explain` takes.
pub(crate) const EXPLAIN_LIMIT: usize = 256 * 1024;

/// Which counter of `pyzord_http_lookups_total` a lookup adds to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Digest = 0,
    Explain = 1,
    Page = 2,
}

/// What the API and the page read records with.
pub(crate) struct Lookup {
    pub(crate) engine: Arc<dyn Engine>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) guard: Guard,
}

impl std::fmt::Debug for Lookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lookup")
            .field("engine", &self.engine.name())
            .field("guard", &self.guard)
            .finish()
    }
}

impl Lookup {
    /// The record of `digest` (40 lower-case hex digits), counted as a
    /// `kind` lookup; an engine failure is a 503 answer.
    pub(crate) fn record(&self, digest: &str, kind: Kind) -> Result<Option<Record>, Answer> {
        self.metrics.http_lookups[kind as usize].fetch_add(1, Relaxed);
        self.engine.get(digest.as_bytes()).map_err(|e| {
            log::warn!("HTTP lookup failed: {e}");
            Answer::plain(
                503,
                "Service Unavailable: the database cannot be read now; try again later",
            )
        })
    }
}

/// `s` if it is 40 hex digits (either case), lower-cased: the form in
/// which every Pyzor client sends digests.
pub(crate) fn parse_digest(s: &str) -> Option<String> {
    (s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())).then(|| s.to_ascii_lowercase())
}

/// A message's digest and the lines that went into it, in hashing order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Explained {
    pub(crate) digest: String,
    /// The lines the digest hashed, in hashing order (all kept lines of a
    /// short body; the sampled ones of a long body).
    pub(crate) lines: Vec<String>,
    /// Lines kept after normalisation (more than `lines` when sampled).
    pub(crate) kept: usize,
    /// `(code, text)` of each warning (`pyzor_digest::explain::Warning`):
    /// the empty-body digest, GTUBE, few lines, sampled.
    pub(crate) warnings: Vec<(&'static str, String)>,
}

/// Explain `raw`: the one place the API and the page digest a message,
/// through `pyzor_digest::explain` (the same explanation `pyzor explain`
/// prints).
pub(crate) fn explain(raw: &[u8]) -> Result<Explained, pyzor_digest::DigestError> {
    let e = pyzor_digest::explain::explain(raw)?;
    Ok(Explained {
        digest: e.digest.hex(),
        lines: e
            .lines
            .iter()
            .map(|l| String::from_utf8_lossy(&l.normalized).into_owned())
            .collect(),
        kept: e.kept,
        warnings: e
            .warnings
            .iter()
            .map(|w| (w.code().as_str(), w.text()))
            .collect(),
    })
}

/// One date of a record, the three ways (module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Date {
    pub(crate) epoch: i64,
    pub(crate) info: String,
    pub(crate) iso8601: Option<String>,
}

impl Date {
    pub(crate) fn new(t: Option<Timestamp>) -> Self {
        // `handle_info`'s time_output: 0 when never set.
        let epoch = t.map_or(0, |t| t.secs());
        Date {
            epoch,
            // `pyzor info`: time.ctime(int(value)).
            info: pyzor_config::localtime::localtime(epoch)
                .and_then(|tm| pyzor_protocol::py::py_ctime(&tm))
                .unwrap_or_else(|| epoch.to_string()),
            iso8601: t.and_then(|t| iso8601(t.secs())),
        }
    }

    fn json(&self) -> Value {
        json!({"epoch": self.epoch, "info": self.info, "iso8601": self.iso8601})
    }
}

/// The record of `digest` as the API gives it.
pub(crate) fn record_json(digest: &str, r: &Record) -> Value {
    json!({
        "digest": digest,
        "r_count": r.r_count,
        "wl_count": r.wl_count,
        "r_entered": Date::new(r.r_entered).json(),
        "r_updated": Date::new(r.r_updated).json(),
        "wl_entered": Date::new(r.wl_entered).json(),
        "wl_updated": Date::new(r.wl_updated).json(),
    })
}

/// The API's error body.
fn error(status: u16, text: &str) -> Answer {
    Answer::json(status, &json!({ "error": text }))
}

/// `GET /v1/digests/<digest>`.
fn get_digest(l: &Lookup, req: &HttpRequest) -> Answer {
    if let Err(a) = l.guard.lookup(req.peer, &l.metrics) {
        return a;
    }
    let raw = req.path.strip_prefix("/v1/digests/").unwrap_or_default();
    let Some(digest) = parse_digest(raw) else {
        return error(400, "a digest is 40 hex digits");
    };
    match l.record(&digest, Kind::Digest) {
        Err(a) => a,
        Ok(None) => error(404, "digest not found"),
        Ok(Some(r)) => Answer::json(200, &record_json(&digest, &r)),
    }
}

/// `POST /v1/explain`.
fn post_explain(l: &Lookup, req: &HttpRequest) -> Answer {
    if let Err(a) = l.guard.lookup(req.peer, &l.metrics) {
        return a;
    }
    let e = match explain(&req.body) {
        Ok(e) => e,
        Err(e) => return error(422, &e.to_string()),
    };
    match l.record(&e.digest, Kind::Explain) {
        Err(a) => a,
        Ok(r) => Answer::json(
            200,
            &json!({
                "digest": e.digest,
                "lines": e.lines,
                "kept_lines": e.kept,
                "warnings": e.warnings.iter().map(|(code, text)| json!({"code": code, "text": text})).collect::<Vec<_>>(),
                "record": r.map(|r| record_json(&e.digest, &r)),
            }),
        ),
    }
}

/// Add the API's routes to `router`.
pub(crate) fn route(router: Router, lookup: Arc<Lookup>) -> Router {
    let l = Arc::clone(&lookup);
    router
        .get_under("/v1/digests/", Box::new(move |req| get_digest(&l, req)))
        .post(
            "/v1/explain",
            EXPLAIN_LIMIT,
            Box::new(move |req| post_explain(&lookup, req)),
        )
}

#[cfg(test)]
mod tests {
    use hyper::Method;
    use pyzor_config::RateLimitConfig;
    use pyzor_store::memory::MemoryEngine;

    use super::*;
    use crate::http::tests::request;

    const MSG: &[u8] = b"Subject: hi\n\nHello there, this is a message with some words\nand another line of text here\n";

    fn api(read_rate: u32) -> (Router, Arc<Lookup>) {
        let lookup = Arc::new(Lookup {
            engine: Arc::new(MemoryEngine::new()),
            metrics: Arc::default(),
            guard: Guard::new(&RateLimitConfig::off(), read_rate, 0),
        });
        (route(Router::new(), Arc::clone(&lookup)), lookup)
    }

    fn body(a: &Answer) -> Value {
        serde_json::from_str(&a.body).unwrap()
    }

    #[test]
    fn digests_known_unknown_and_malformed() {
        let (r, l) = api(0);
        let d = explain(MSG).unwrap().digest;
        let now = Timestamp::from_secs(1_700_000_000);
        l.engine
            .execute(
                &[pyzor_store::Op::Report(d.as_bytes())],
                now,
                &mut Vec::new(),
            )
            .unwrap();
        let get = |path: &str| r.answer(&Method::GET, &request(path, b""));
        let a = get(&format!("/v1/digests/{}", d.to_uppercase()));
        assert_eq!(a.status, 200, "{}", a.body);
        let v = body(&a);
        assert_eq!(v["r_count"], 1);
        assert_eq!(v["wl_count"], 0);
        assert_eq!(v["r_entered"]["epoch"], 1_700_000_000);
        assert_eq!(v["r_entered"]["iso8601"], "2023-11-14T22:13:20Z");
        assert_eq!(v["wl_entered"]["epoch"], 0);
        assert_eq!(v["wl_entered"]["iso8601"], Value::Null);
        let unknown = format!("/v1/digests/{}", "0".repeat(40));
        assert_eq!(get(&unknown).status, 404);
        for bad in [
            "",
            "abc",
            &"g".repeat(40),
            &"a".repeat(41),
            "%00",
            "../../etc/passwd",
        ] {
            let a = get(&format!("/v1/digests/{bad}"));
            assert_eq!(a.status, 400, "{bad}");
            assert!(a.body.len() < 100);
        }
        assert_eq!(
            l.metrics.http_lookups[Kind::Digest as usize].load(Relaxed),
            2
        );
    }

    #[test]
    fn explain_gives_lines_digest_and_record() {
        let (r, l) = api(0);
        let a = r.answer(&Method::POST, &request("/v1/explain", MSG));
        assert_eq!(a.status, 200);
        let v = body(&a);
        let want = pyzor_digest::digest_message(MSG).unwrap().hex();
        assert_eq!(v["digest"], want);
        let lines: Vec<String> = pyzor_digest::predigest_lines(MSG)
            .unwrap()
            .into_iter()
            .map(|l| String::from_utf8(l).unwrap())
            .collect();
        assert_eq!(v["lines"], json!(lines));
        assert_eq!(v["record"], Value::Null);
        assert_eq!(
            l.metrics.http_lookups[Kind::Explain as usize].load(Relaxed),
            1
        );
        let big = vec![b'a'; EXPLAIN_LIMIT + 1];
        assert_eq!(
            r.answer(&Method::POST, &request("/v1/explain", &big))
                .status,
            413
        );
    }

    /// The warnings of `pyzor explain` reach the API: the empty-body digest
    /// and GTUBE are named by their codes, a two-line body is "few lines",
    /// and a long body reports how many kept lines the sampled digest skipped.
    #[test]
    fn explain_carries_the_digest_crates_warnings() {
        let (r, _) = api(0);
        let codes = |raw: &[u8]| -> (Value, Vec<String>) {
            let a = r.answer(&Method::POST, &request("/v1/explain", raw));
            assert_eq!(a.status, 200, "{}", a.body);
            let v = body(&a);
            let codes = v["warnings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| {
                    assert!(!w["text"].as_str().unwrap().is_empty());
                    w["code"].as_str().unwrap().to_owned()
                })
                .collect();
            (v, codes)
        };
        assert_eq!(codes(MSG).1, ["few-lines"]);
        let (v, c) = codes(b"Subject: empty\n\n");
        assert_eq!(v["digest"], "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(c, ["empty-digest"]);
        let gtube =
            b"Subject: t\n\nXJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\n";
        assert!(codes(gtube).1.contains(&"gtube".to_owned()));
        let long: String = (0..40)
            .map(|i| format!("line number {i} of a long body here\n"))
            .collect();
        let (v, c) = codes(format!("Subject: long\n\n{long}").as_bytes());
        assert!(c.contains(&"sampled".to_owned()), "{c:?}");
        assert_eq!(v["kept_lines"], 40);
        assert!(v["lines"].as_array().unwrap().len() < 40);
    }

    /// Random and mutated messages: every answer is a 200 or a 422 naming
    /// why, never a crash or a 5xx.
    #[test]
    fn hostile_messages_get_an_answer() {
        let (r, _) = api(0);
        let mut rng = pyzor_testkit::XorShift::new(14);
        let seeds: [&[u8]; 3] = [
            MSG,
            b"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/html\n\n<p>x</p>\n--b--\n",
            b"Content-Transfer-Encoding: base64\n\n////\n",
        ];
        for i in 0..300 {
            let mut m = if i % 3 == 0 {
                let n = rng.below(4096);
                rng.bytes(n)
            } else {
                rng.pick(&seeds).to_vec()
            };
            let flips = rng.below(20);
            for _ in 0..flips {
                if !m.is_empty() {
                    let at = rng.below(m.len());
                    m[at] = rng.byte();
                }
            }
            let a = r.answer(&Method::POST, &request("/v1/explain", &m));
            assert!(matches!(a.status, 200 | 422), "{}: {}", a.status, a.body);
            assert!(serde_json::from_str::<Value>(&a.body).is_ok());
        }
    }

    #[test]
    fn rate_limited_per_network() {
        let (r, l) = api(2);
        let path = format!("/v1/digests/{}", "0".repeat(40));
        let statuses: Vec<u16> = (0..4)
            .map(|_| r.answer(&Method::GET, &request(&path, b"")).status)
            .collect();
        assert_eq!(statuses, [404, 404, 429, 429]);
        assert_eq!(l.metrics.http_rate_limited.load(Relaxed), 2);
    }
}
