//! The whitelist-request page (`WhitelistRequests = true`, off by
//! default): plain HTML forms, no JavaScript, no cookies, no external
//! assets.
//!
//! * `GET /`: a form to paste a message (as received, headers and body)
//!   or its digest;
//! * `POST /lookup`: the digest, its counts and dates, the lines that went
//!   into it, and, for a digest that was reported and has no request yet,
//!   the request form (reason, contact address);
//! * `POST /request`: file the request (kept in `pyzord.requests`, see
//!   [`crate::requests`]); the operator decides with `pyzor-requests`;
//! * `GET /style.css`: the page's only stylesheet.
//!
//! Every POST needs a valid form token and a same-origin `Origin`/
//! `Referer` ([`super::csrf`], 403 otherwise); lookups count against
//! `HttpRateLimit`, filings against `WhitelistRequestRateLimit` (429);
//! a message is at most [`EXPLAIN_LIMIT`] bytes (413); everything shown
//! is escaped ([`super::html::escape`]).

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use pyzor_protocol::Record;

use super::api::{explain, parse_digest, Date, Explained, Kind, Lookup, EXPLAIN_LIMIT};
use super::csrf::{same_origin, Csrf};
use super::html::{error, escape, page, STYLE};
use super::{Answer, HttpRequest, Router};
use crate::requests::{NewRequest, RequestError, RequestLog, WhitelistRequest};

/// Largest body of `POST /lookup`: a message of [`EXPLAIN_LIMIT`] bytes,
/// form-encoded (up to three bytes each), and the token.
pub(crate) const LOOKUP_BODY_LIMIT: usize = 3 * EXPLAIN_LIMIT + 1024;
/// Largest body of `POST /request` (the reason and contact are cut
/// further, see [`crate::requests`]).
pub(crate) const REQUEST_BODY_LIMIT: usize = 16 * 1024;

/// What the page's handlers share.
#[derive(Debug)]
pub(crate) struct Page {
    pub(crate) lookup: Arc<Lookup>,
    pub(crate) csrf: Csrf,
    pub(crate) requests: RequestLog,
}

fn now() -> i64 {
    pyzor_store::now().secs()
}

/// The first value of each of `names` in a form-encoded body.
fn fields<'n>(body: &[u8], names: &[&'n str]) -> HashMap<&'n str, String> {
    let mut out = HashMap::new();
    for (k, v) in form_urlencoded::parse(body) {
        if let Some(n) = names.iter().find(|n| **n == k) {
            out.entry(*n).or_insert_with(|| v.into_owned());
        }
    }
    out
}

impl Page {
    /// The form's hidden token field.
    fn token_field(&self) -> String {
        format!(
            "<input type=\"hidden\" name=\"token\" value=\"{}\">",
            self.csrf.token(now())
        )
    }

    /// 403 unless `req` is a same-origin POST with a valid token.
    fn check_form(&self, req: &HttpRequest, form: &HashMap<&str, String>) -> Result<(), Answer> {
        let token_ok = form.get("token").is_some_and(|t| self.csrf.valid(t, now()));
        if same_origin(req) && token_ok {
            Ok(())
        } else {
            Err(error(
                403,
                "This form has expired or was not sent from this page: open the page again and resend it.",
            ))
        }
    }

    fn index(&self) -> Answer {
        page(
            200,
            "Why is my message listed?",
            &format!(
                "<p>Paste the message as it was received (headers and body), or its Pyzor digest \
(40 hex digits), to see how often it was reported and which lines Pyzor digested. \
A message that was reported by mistake can be submitted for whitelisting.</p>\n\
<form method=\"post\" action=\"/lookup\">{}\
<p><label for=\"message\">Message or digest</label><br>\
<textarea id=\"message\" name=\"message\" rows=\"16\" required></textarea></p>\
<p><button type=\"submit\" id=\"lookup\">Look up</button></p></form>",
                self.token_field()
            ),
        )
    }

    fn lookup(&self, req: &HttpRequest) -> Answer {
        let form = fields(&req.body, &["token", "message"]);
        if let Err(a) = self.check_form(req, &form) {
            return a;
        }
        if let Err(a) = self.lookup.guard.lookup(req.peer, &self.lookup.metrics) {
            return a;
        }
        let message = form.get("message").map_or("", String::as_str);
        if message.len() > EXPLAIN_LIMIT {
            return error(
                413,
                &format!("The message is larger than {EXPLAIN_LIMIT} bytes."),
            );
        }
        let (digest, explained) = match parse_digest(message.trim()) {
            Some(d) => (d, None),
            // A browser sends a text area's lines ended by CR LF; the
            // message as received ends them with LF.
            None => match explain(message.replace("\r\n", "\n").as_bytes()) {
                Ok(e) => (e.digest.clone(), Some(e)),
                Err(e) => return error(422, &e.to_string()),
            },
        };
        let record = match self.lookup.record(&digest, Kind::Page) {
            Ok(r) => r,
            Err(a) => return a,
        };
        let filed = match self.requests.load() {
            Ok(r) => r.get(&digest).cloned(),
            Err(e) => return self.unavailable(&e),
        };
        let mut body = format!(
            "<p>Digest: <code id=\"digest\">{}</code></p>\n{}",
            escape(&digest),
            counts_table(record.as_ref())
        );
        if let Some(e) = &explained {
            body.push_str(&lines_section(e));
        }
        body.push_str(&self.request_section(&digest, record.as_ref(), filed.as_ref()));
        page(200, "Lookup", &body)
    }

    fn request_section(
        &self,
        digest: &str,
        record: Option<&Record>,
        filed: Option<&WhitelistRequest>,
    ) -> String {
        if let Some(f) = filed {
            return format!(
                "<p id=\"request-status\">A whitelist request for this digest was filed already; it is {}.</p>",
                f.status
            );
        }
        if record.is_none_or(|r| r.r_count <= 0) {
            return "<p id=\"request-status\">This digest was never reported: there is nothing to whitelist.</p>".into();
        }
        format!(
            "<h2>Ask for whitelisting</h2>\n<p>If this message is not spam, say why and how the \
operator can reach you.</p>\n<form method=\"post\" action=\"/request\">{}\
<input type=\"hidden\" name=\"digest\" value=\"{}\">\
<p><label for=\"reason\">Why this message is not spam</label><br>\
<textarea id=\"reason\" name=\"reason\" rows=\"5\" maxlength=\"{}\" required></textarea></p>\
<p><label for=\"contact\">Your e-mail address</label><br>\
<input type=\"email\" id=\"contact\" name=\"contact\" maxlength=\"{}\" required></p>\
<p><button type=\"submit\" id=\"file\">File whitelist request</button></p></form>",
            self.token_field(),
            escape(digest),
            crate::requests::MAX_REASON_CHARS,
            crate::requests::MAX_CONTACT_CHARS,
        )
    }

    fn file(&self, req: &HttpRequest) -> Answer {
        let form = fields(&req.body, &["token", "digest", "reason", "contact"]);
        if let Err(a) = self.check_form(req, &form) {
            return a;
        }
        if let Err(a) = self.lookup.guard.filing(req.peer, &self.lookup.metrics) {
            return a;
        }
        let field = |k| form.get(k).map_or("", String::as_str);
        let Some(digest) = parse_digest(field("digest").trim()) else {
            return error(400, "A digest is 40 hex digits.");
        };
        let new = NewRequest::new(
            &digest,
            field("reason"),
            field("contact"),
            &req.peer.to_string(),
        );
        if new.reason().is_empty() {
            return error(400, "Say why this message is not spam.");
        }
        if !plausible_address(new.contact()) {
            return error(400, "The contact must be an e-mail address (name@domain).");
        }
        match self.lookup.record(&digest, Kind::Page) {
            Err(a) => return a,
            Ok(r) if r.is_some_and(|r| r.r_count > 0) => {}
            Ok(_) => {
                return error(
                    422,
                    "This digest was never reported: there is nothing to whitelist.",
                )
            }
        }
        match self.requests.file(&new, now()) {
            Ok(()) => {
                self.lookup.metrics.requests_filed.fetch_add(1, Relaxed);
                log::info!("Whitelist request filed for {digest} from {}", req.peer);
                page(
                    200,
                    "Request filed",
                    &format!(
                        "<p id=\"filed\">Your whitelist request for <code>{}</code> was filed. \
The operator will review it.</p>",
                        escape(&digest)
                    ),
                )
            }
            Err(RequestError::Duplicate(status)) => error(
                409,
                &format!("A whitelist request for this digest was filed already; it is {status}."),
            ),
            Err(e) => self.unavailable(&e),
        }
    }

    fn unavailable(&self, e: &RequestError) -> Answer {
        log::error!("Whitelist requests: {e}");
        let text = if matches!(e, RequestError::Full) {
            "No more requests can be taken now; try again later."
        } else {
            "Requests cannot be read or filed now; try again later."
        };
        error(503, text)
    }
}

/// `local@domain`, one `@`, a dot-free or dotted domain of letters,
/// digits, `-` and `.`.
fn plausible_address(a: &str) -> bool {
    match a.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && domain
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '-' || c == '.')
        }
        None => false,
    }
}

/// The counts and dates of `record` (zeros when unknown).
fn counts_table(record: Option<&Record>) -> String {
    let r = record.copied().unwrap_or_default();
    let date = |t| {
        let d = Date::new(t);
        match d.iso8601 {
            Some(iso) => format!("{} ({})", escape(&d.info), escape(&iso)),
            None => "never".to_owned(),
        }
    };
    format!(
        "<table>\
<tr><th>Reports (Count)</th><td id=\"r-count\">{}</td></tr>\
<tr><th>First reported</th><td>{}</td></tr>\
<tr><th>Last reported</th><td>{}</td></tr>\
<tr><th>Whitelistings (WL-Count)</th><td id=\"wl-count\">{}</td></tr>\
<tr><th>First whitelisted</th><td>{}</td></tr>\
<tr><th>Last whitelisted</th><td>{}</td></tr></table>\n",
        r.r_count,
        date(r.r_entered),
        date(r.r_updated),
        r.wl_count,
        date(r.wl_entered),
        date(r.wl_updated),
    )
}

/// The lines that went into the digest.
fn lines_section(e: &Explained) -> String {
    let warnings: String = e
        .warnings
        .iter()
        .map(|(code, text)| {
            format!(
                "<li class=\"warning\" id=\"warning-{code}\">{}</li>",
                escape(text)
            )
        })
        .collect();
    let warnings = if warnings.is_empty() {
        String::new()
    } else {
        format!("<h2>Warnings</h2>\n<ul id=\"warnings\">{warnings}</ul>\n")
    };
    if e.lines.is_empty() {
        return format!(
            "<p id=\"lines\">No line of the message went into the digest: this is the digest \
of an empty body, shared by every message without digestible text.</p>\n{warnings}"
        );
    }
    let lines: Vec<String> = e.lines.iter().map(|l| escape(l)).collect();
    format!(
        "<h2>Lines that went into the digest</h2>\n<pre id=\"lines\">{}</pre>\n{warnings}",
        lines.join("\n")
    )
}

/// Add the page's routes to `router`.
pub(crate) fn route(router: Router, page: Arc<Page>) -> Router {
    let (p1, p2) = (Arc::clone(&page), Arc::clone(&page));
    router
        .get("/", Box::new(move |_| p1.index()))
        .get(
            "/style.css",
            Box::new(|_| Answer::ok("text/css; charset=utf-8", STYLE.to_owned())),
        )
        .post(
            "/lookup",
            LOOKUP_BODY_LIMIT,
            Box::new(move |req| p2.lookup(req)),
        )
        .post(
            "/request",
            REQUEST_BODY_LIMIT,
            Box::new(move |req| page.file(req)),
        )
}

#[cfg(test)]
mod tests {
    use hyper::header::HeaderValue;
    use hyper::Method;
    use pyzor_config::RateLimitConfig;
    use pyzor_protocol::Timestamp;
    use pyzor_store::memory::MemoryEngine;

    use super::*;
    use crate::http::tests::request;
    use crate::http::Guard;
    use crate::requests::Status;

    const MSG: &str = "Subject: hi\n\nBuy <b>cheap</b> things now, the best offer of the year\nsecond line of the offer\n";

    struct Fixture {
        router: Router,
        page: Arc<Page>,
        _home: tempfile::TempDir,
    }

    fn fixture() -> Fixture {
        let home = tempfile::tempdir().unwrap();
        let lookup = Arc::new(Lookup {
            engine: Arc::new(MemoryEngine::new()),
            metrics: Arc::default(),
            guard: Guard::new(&RateLimitConfig::off(), 0, 0),
        });
        let page = Arc::new(Page {
            lookup,
            csrf: Csrf::new(),
            requests: RequestLog::in_dir(home.path()),
        });
        Fixture {
            router: route(Router::new(), Arc::clone(&page)),
            page,
            _home: home,
        }
    }

    impl Fixture {
        fn post(&self, path: &str, pairs: &[(&str, &str)]) -> Answer {
            let body = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish();
            let mut r = request(path, body.as_bytes());
            r.headers
                .insert("host", HeaderValue::from_static("pyzor.test"));
            r.headers
                .insert("origin", HeaderValue::from_static("http://pyzor.test"));
            self.router.answer(&Method::POST, &r)
        }

        fn token(&self) -> String {
            self.page.csrf.token(now())
        }

        fn report(&self, digest: &str) {
            self.page
                .lookup
                .engine
                .execute(
                    &[pyzor_store::Op::Report(digest.as_bytes())],
                    Timestamp::from_secs(1_700_000_000),
                    &mut Vec::new(),
                )
                .unwrap();
        }
    }

    #[test]
    fn lookup_shows_counts_lines_and_the_form_escaped() {
        let f = fixture();
        let t = f.token();
        let crlf = MSG.replace('\n', "\r\n");
        let a = f.post("/lookup", &[("token", &t), ("message", &crlf)]);
        assert_eq!(a.status, 200, "{}", a.body);
        let d = pyzor_digest::digest_message(MSG.as_bytes()).unwrap().hex();
        assert!(a.body.contains(&format!("<code id=\"digest\">{d}</code>")));
        assert!(a.body.contains("never reported"));
        assert!(!a.body.contains("<b>cheap"), "{}", a.body);
        f.report(&d);
        let a = f.post("/lookup", &[("token", &t), ("message", &d.to_uppercase())]);
        assert!(a.body.contains("<td id=\"r-count\">1</td>"), "{}", a.body);
        assert!(a.body.contains("action=\"/request\""));
        assert!(!a.body.contains("id=\"lines\""), "a digest has no lines");
    }

    #[test]
    fn forms_need_a_token_and_the_same_origin() {
        let f = fixture();
        let a = f.post("/lookup", &[("message", MSG)]);
        assert_eq!(a.status, 403);
        let a = f.post("/lookup", &[("token", "1.00"), ("message", MSG)]);
        assert_eq!(a.status, 403);
        let body = format!("token={}&message=x", f.token());
        let mut r = request("/lookup", body.as_bytes());
        r.headers
            .insert("host", HeaderValue::from_static("pyzor.test"));
        r.headers
            .insert("origin", HeaderValue::from_static("http://evil.test"));
        assert_eq!(f.router.answer(&Method::POST, &r).status, 403);
    }

    #[test]
    fn filing_rules() {
        let f = fixture();
        let t = f.token();
        let d = "2aedaac999d71421c9ee49b9d81f627a7bc570aa";
        let file = |reason: &str, contact: &str| {
            f.post(
                "/request",
                &[
                    ("token", &t),
                    ("digest", d),
                    ("reason", reason),
                    ("contact", contact),
                ],
            )
        };
        assert_eq!(file("mine", "me@example.org").status, 422, "unreported");
        f.report(d);
        assert_eq!(file("", "me@example.org").status, 400);
        assert_eq!(file("mine", "not an address").status, 400);
        let a = file("<script>x</script>", "me@example.org");
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(file("again", "me@example.org").status, 409);
        let r = f.page.requests.load().unwrap();
        let filed = r.get(d).unwrap();
        assert_eq!(filed.status, Status::Pending);
        assert_eq!(filed.reason, "<script>x</script>");
        assert_eq!(f.page.lookup.metrics.requests_filed.load(Relaxed), 1);
        // The lookup now shows the request, not the form.
        let a = f.post("/lookup", &[("token", &t), ("message", d)]);
        assert!(
            a.body.contains("filed already; it is pending"),
            "{}",
            a.body
        );
    }

    #[test]
    fn addresses() {
        assert!(plausible_address("a@b.example"));
        assert!(plausible_address("x@localhost"));
        for bad in ["", "a", "@b", "a@", "a@b@c", "a@b/c", "a@<b>"] {
            assert!(!plausible_address(bad), "{bad}");
        }
    }
}
