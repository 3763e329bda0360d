//! The HTTP listener against a live pyzord (docs/server.md, "The HTTP
//! listener"): the lookup API, the whitelist-request page's refusals
//! (CSRF, escaping, sizes, rate limits, unreported and duplicate digests)
//! and the operator's `pyzor-requests` approving through the server.
//! The browser's view is in web_browser.rs.
//!
//! Every server is killed by `Proc`'s drop; every wait is bounded.

mod common;
mod web_support;

use web_support::{form, http, message, start, Web};

fn json(r: &web_support::Reply) -> serde_json::Value {
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.body))
}

#[test]
fn the_api_answers_records_explanations_and_refusals() {
    let w = start("RateLimitAllow =");
    let (msg, d) = message("api");
    let get = |path: &str| http(w.http_port, "GET", path, &[], b"");
    assert_eq!(get(&format!("/v1/digests/{d}")).status, 404);
    w.report(&d);
    w.report(&d);
    let r = get(&format!("/v1/digests/{d}"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.head.contains("content-type: application/json"));
    let v = json(&r);
    assert_eq!(
        (v["r_count"].as_i64(), v["wl_count"].as_i64()),
        (Some(2), Some(0))
    );
    assert!(v["r_entered"]["iso8601"].as_str().unwrap().ends_with('Z'));
    let bad = get("/v1/digests/not-a-digest");
    assert_eq!(bad.status, 400);
    assert!(json(&bad)["error"].as_str().unwrap().contains("40 hex"));
    let e = http(w.http_port, "POST", "/v1/explain", &[], msg.as_bytes());
    assert_eq!(e.status, 200, "{}", e.body);
    let v = json(&e);
    assert_eq!(v["digest"], d.as_str());
    assert_eq!(v["record"]["r_count"], 2);
    // Normalised as Pyzor does: blanks and long words gone.
    assert_eq!(
        v["lines"][0], "Dearreader,thisisourmonthlyaboutgardening",
        "{v}"
    );
    // 256 KiB at most, refused from Content-Length before reading.
    let big = vec![b'x'; 256 * 1024 + 1];
    assert_eq!(
        http(w.http_port, "POST", "/v1/explain", &[], &big).status,
        413
    );
    // Counted (the malformed one read nothing).
    let m = get("/metrics").body;
    assert!(
        m.contains("pyzord_http_lookups_total{kind=\"digest\"} 2"),
        "{m}"
    );
    assert!(
        m.contains("pyzord_http_lookups_total{kind=\"explain\"} 1"),
        "{m}"
    );
    // Read-only: no other method.
    assert_eq!(
        http(w.http_port, "DELETE", &format!("/v1/digests/{d}"), &[], b"").status,
        405
    );
}

#[test]
fn the_api_is_off_unless_turned_on() {
    let home = pyzor_testkit::temp_home();
    let port = pyzor_testkit::free_tcp_port();
    let _s = common::start_ours(
        home.path(),
        &["--metrics-address", &format!("127.0.0.1:{port}")],
    );
    assert!(pyzor_testkit::wait_tcp(
        port,
        std::time::Duration::from_secs(10)
    ));
    assert_eq!(http(port, "GET", "/metrics", &[], b"").status, 200);
    assert_eq!(
        http(
            port,
            "GET",
            &format!("/v1/digests/{}", "a".repeat(40)),
            &[],
            b""
        )
        .status,
        404
    );
    assert_eq!(http(port, "GET", "/", &[], b"").status, 404);
    assert_eq!(http(port, "POST", "/request", &[], b"").status, 404);
}

#[test]
fn lookups_are_rate_limited_per_network() {
    let w = start("RateLimitAllow =\nHttpRateLimit = 3");
    let path = format!("/v1/digests/{}", "b".repeat(40));
    let codes: Vec<u16> = (0..6)
        .map(|_| http(w.http_port, "GET", &path, &[], b"").status)
        .collect();
    assert_eq!(&codes[..3], &[404, 404, 404], "{codes:?}");
    assert!(codes[3..].iter().all(|c| *c == 429), "{codes:?}");
    let m = http(w.http_port, "GET", "/metrics", &[], b"").body;
    assert!(m.contains("pyzord_http_rate_limited_total 3"), "{m}");
    // The UDP side is not touched by the HTTP limits.
    assert_eq!(w.check(&"b".repeat(40)), (0, 0));
}

#[test]
fn forms_need_a_valid_token_and_the_same_origin() {
    let w = start("RateLimitAllow =");
    let (msg, _) = message("csrf");
    let token = w.token();
    assert_eq!(
        w.post_form("/lookup", &[("message", &msg)]).status,
        403,
        "no token"
    );
    let last = if token.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &token[..token.len() - 1]);
    assert_eq!(
        w.post_form("/lookup", &[("token", &forged), ("message", &msg)])
            .status,
        403
    );
    let cross = http(
        w.http_port,
        "POST",
        "/lookup",
        &[
            ("Origin", "http://evil.example"),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        &form(&[("token", &token), ("message", &msg)]),
    );
    assert_eq!(cross.status, 403, "another site's form");
    let ok = w.post_form("/lookup", &[("token", &token), ("message", &msg)]);
    assert_eq!(ok.status, 200, "{}", ok.body);
    for h in [
        "content-security-policy: default-src 'none'",
        "frame-ancestors 'none'",
        "x-content-type-options: nosniff",
    ] {
        assert!(ok.head.contains(h), "{h} missing in {}", ok.head);
    }
    assert!(!ok.head.contains("set-cookie"));
}

#[test]
fn hostile_messages_and_reasons_are_escaped_and_bounded() {
    let w = start("RateLimitAllow =");
    let token = w.token();
    let evil = "Subject: x\n\n<script>alert(1)</script> \"quoted\" and <img src=x onerror=alert(2)> words here\n";
    let r = w.post_form("/lookup", &[("token", &token), ("message", evil)]);
    assert_eq!(r.status, 200);
    assert!(
        !r.body.contains("<script>") && !r.body.contains("<img"),
        "{}",
        r.body
    );
    // A reported digest, a hostile reason: filed, and shown escaped.
    let (_, d) = message("escape");
    w.report(&d);
    let reason = "<script>document.location='http://evil'</script>\u{1b}[2J";
    let r = w.post_form(
        "/request",
        &[
            ("token", &token),
            ("digest", &d),
            ("reason", reason),
            ("contact", "a@example.org"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let (code, out, _) = w.requests_cmd(&["list"]);
    assert_eq!(code, 0);
    assert!(out.contains(&d) && !out.contains('\u{1b}'), "{out}");
    // Oversized: a message beyond 256 KiB, a form body beyond its bound.
    let big = "x".repeat(256 * 1024 + 10);
    assert_eq!(
        w.post_form("/lookup", &[("token", &token), ("message", &big)])
            .status,
        413
    );
    let huge = "y".repeat(20 * 1024);
    assert_eq!(
        w.post_form(
            "/request",
            &[("token", &token), ("digest", &d), ("reason", &huge)]
        )
        .status,
        413
    );
}

#[test]
fn only_reported_digests_once_each_and_filings_are_rate_limited() {
    let w = start("RateLimitAllow =\nWhitelistRequestRateLimit = 2");
    let token = w.token();
    let file = |w: &Web, d: &str| {
        w.post_form(
            "/request",
            &[
                ("token", &token),
                ("digest", d),
                ("reason", "our newsletter"),
                ("contact", "n@example.org"),
            ],
        )
    };
    let (_, never) = message("never reported");
    let r = file(&w, &never);
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("never reported"));
    let (_, d) = message("reported");
    w.report(&d);
    assert_eq!(file(&w, &d).status, 200, "filed");
    // Two filings per minute were spent (the refused one counts too).
    let r = file(&w, &d);
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.head.contains("retry-after: 60"));
    // A fresh server (same home): the request survived, a duplicate is refused.
    let home = w.home;
    drop(w.server);
    let port = pyzor_testkit::free_tcp_port();
    let s = common::start_ours(
        home.path(),
        &[
            "--http-address",
            &format!("127.0.0.1:{port}"),
            "--whitelist-requests",
        ],
    );
    assert!(pyzor_testkit::wait_tcp(
        port,
        std::time::Duration::from_secs(10)
    ));
    let w2 = Web {
        server: s,
        http_port: port,
        home,
        client_home: std::path::PathBuf::new(),
    };
    let t2 = w2.token();
    let r = w2.post_form(
        "/request",
        &[
            ("token", &t2),
            ("digest", &d),
            ("reason", "again"),
            ("contact", "n@example.org"),
        ],
    );
    assert_eq!(r.status, 409, "{}", r.body);
    let m = http(port, "GET", "/metrics", &[], b"").body;
    assert!(m.contains("pyzord_whitelist_requests_filed_total 0"), "{m}");
}

#[test]
fn approval_whitelists_through_the_server_and_rejection_does_not() {
    let w = start("");
    let token = w.token();
    let (_, d) = message("approve");
    let (_, d2) = message("reject");
    for x in [&d, &d2] {
        w.report(x);
        let r = w.post_form(
            "/request",
            &[
                ("token", &token),
                ("digest", x),
                ("reason", "mine"),
                ("contact", "me@example.org"),
            ],
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let (code, out, err) = w.requests_cmd(&["list"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.lines().filter(|l| l.contains("pending")).count(),
        2,
        "{out}"
    );
    let (code, out, err) = w.approve(&d);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(w.check(&d), (1, 1));
    let (code, _, err) = w.approve(&d);
    assert_eq!(code, 1);
    assert!(err.contains("approved already"), "{err}");
    assert_eq!(w.check(&d), (1, 1), "not whitelisted twice");
    let (code, _, _) = w.requests_cmd(&["reject", &d2]);
    assert_eq!(code, 0);
    assert_eq!(w.check(&d2), (1, 0));
    let (_, out, _) = w.requests_cmd(&["list", "--all", "--json"]);
    let statuses: Vec<String> = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["status"].to_string())
        .collect();
    assert_eq!(statuses, ["\"approved\"", "\"rejected\""]);
    // An account without whitelist rights: refused, the request stays pending.
    let (_, d3) = message("refused");
    w.report(&d3);
    let r = w.post_form(
        "/request",
        &[
            ("token", &token),
            ("digest", &d3),
            ("reason", "r"),
            ("contact", "me@example.org"),
        ],
    );
    assert_eq!(r.status, 200);
    let anon = w.home.path().join("anon");
    common::client_home(&anon, w.server.port, &[]);
    let (code, _, err) = w.requests_cmd(&[
        "approve",
        &d3,
        "--server",
        &format!("127.0.0.1:{}", w.server.port),
        "--client-homedir",
        &anon.to_string_lossy(),
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("refused") && err.contains("stays pending"),
        "{err}"
    );
    assert_eq!(w.check(&d3), (1, 0));
    let (_, out, _) = w.requests_cmd(&["purge"]);
    assert!(out.starts_with("2 decided"), "{out}");
}
