//! The whitelist-request page in a real browser: Debian's `chromium`,
//! headless, driven through `chromedriver` (the W3C WebDriver protocol,
//! spoken with the tests' small HTTP client: eight kinds of JSON calls,
//! no WebDriver crate needed). A sender pastes a reported message, sees
//! its counts, files a request; the operator sees it with
//! `pyzor-requests list`, approves it, and a real UDP check shows the
//! WL-Count. Skips loudly without chromium/chromedriver (scripts/test
//! installs them).
//!
//! chromedriver and pyzord are killed on every exit path; every wait is
//! bounded.

mod common;
mod web_support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use web_support::{http, message, start};

/// chromedriver, killed on drop.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A WebDriver session, deleted on drop (which closes the browser).
struct Session<'d> {
    driver: &'d Driver,
    id: String,
}

/// The element reference key of the W3C protocol.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn call(port: u16, method: &str, path: &str, body: &Value) -> Value {
    let body = if method == "GET" {
        String::new()
    } else {
        body.to_string()
    };
    let r = http(
        port,
        method,
        path,
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    );
    let v: Value = serde_json::from_str(&r.body)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}: {} {}", r.status, r.body));
    assert_eq!(r.status, 200, "{method} {path}: {v}");
    v["value"].clone()
}

impl<'d> Session<'d> {
    fn new(driver: &'d Driver) -> Self {
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
            }
        }}});
        let v = call(driver.port, "POST", "/session", &caps);
        let id = v["sessionId"].as_str().expect("a session id").to_owned();
        let s = Session { driver, id };
        // A form's submission may still be loading when the next command
        // comes (seen: `#filed` not found right after the click on a
        // loaded machine): let element lookups wait for it, bounded.
        s.cmd(
            "POST",
            "/timeouts",
            &json!({ "implicit": 10_000, "pageLoad": 20_000 }),
        );
        s
    }

    fn cmd(&self, method: &str, what: &str, body: &Value) -> Value {
        call(
            self.driver.port,
            method,
            &format!("/session/{}{what}", self.id),
            body,
        )
    }

    fn go(&self, url: &str) {
        self.cmd("POST", "/url", &json!({ "url": url }));
    }

    fn find(&self, css: &str) -> String {
        let v = self.cmd(
            "POST",
            "/element",
            &json!({"using": "css selector", "value": css}),
        );
        match v[ELEMENT].as_str() {
            Some(e) => e.to_owned(),
            None => {
                let page = self.cmd("GET", "/source", &Value::Null);
                let page: String = page
                    .as_str()
                    .unwrap_or_default()
                    .chars()
                    .take(4000)
                    .collect();
                panic!("no {css}: {v}\npage now:\n{page}")
            }
        }
    }

    fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.cmd(
            "POST",
            &format!("/element/{e}/value"),
            &json!({ "text": text }),
        );
    }

    fn click(&self, css: &str) {
        let e = self.find(css);
        self.cmd("POST", &format!("/element/{e}/click"), &json!({}));
    }

    fn text(&self, css: &str) -> String {
        let e = self.find(css);
        self.cmd("GET", &format!("/element/{e}/text"), &Value::Null)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    fn title(&self) -> String {
        self.cmd("GET", "/title", &Value::Null)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        let _ = http(
            self.driver.port,
            "DELETE",
            &format!("/session/{}", self.id),
            &[],
            b"",
        );
    }
}

fn start_driver() -> Driver {
    let port = pyzor_testkit::free_tcp_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let d = Driver { child, port };
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(20) {
        if pyzor_testkit::wait_tcp(port, Duration::from_millis(200))
            && http(port, "GET", "/status", &[], b"")
                .body
                .contains("\"ready\":true")
        {
            return d;
        }
    }
    panic!("chromedriver did not become ready within 20 s");
}

#[test]
fn a_sender_files_a_request_in_a_browser_and_the_operator_approves_it() {
    let test = "web_browser::a_sender_files_a_request_in_a_browser_and_the_operator_approves_it";
    if !pyzor_testkit::programs_available(test, &["chromium", "chromedriver"]) {
        return;
    }
    let w = start("");
    let (msg, d) = message("browser");
    w.report(&d);
    w.report(&d);
    let driver = start_driver();
    let s = Session::new(&driver);
    s.go(&format!("http://127.0.0.1:{}/", w.http_port));
    assert_eq!(s.title(), "Why is my message listed?");
    s.type_into("#message", &msg);
    s.click("#lookup");
    // The browser sent the text area with CR LF line ends: same digest.
    assert_eq!(s.text("#digest"), d);
    assert_eq!(s.text("#r-count"), "2");
    assert_eq!(s.text("#wl-count"), "0");
    assert!(s
        .text("#lines")
        .contains("Dearreader,thisisourmonthlyaboutgardening"));
    s.type_into(
        "#reason",
        "This is our monthly club newsletter <b>not spam</b>",
    );
    s.type_into("#contact", "club@example.org");
    s.click("#file");
    assert!(s.text("#filed").contains(&d), "{}", s.text("#filed"));
    // The operator's view.
    let (code, out, err) = w.requests_cmd(&["list"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&d) && out.contains("club@example.org") && out.contains("pending"),
        "{out}"
    );
    assert!(
        out.contains("<b>not spam</b>"),
        "kept as written, escaped only when shown: {out}"
    );
    let (code, out, err) = w.approve(&d);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(w.check(&d), (2, 1), "WL-Count through a real UDP check");
    // The page now says so.
    s.go(&format!("http://127.0.0.1:{}/", w.http_port));
    s.type_into("#message", &d);
    s.click("#lookup");
    assert_eq!(s.text("#wl-count"), "1");
    assert!(s.text("#request-status").contains("approved"));
}
