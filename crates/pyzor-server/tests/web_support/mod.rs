//! Shared by the HTTP listener's tests (web.rs, web_browser.rs): a pyzord
//! with the API and the whitelist-request page on a free TCP port, an
//! account allowed to whitelist (for `pyzor-requests approve`), a minimal
//! HTTP/1.1 client (also the browser test's WebDriver client), and UDP
//! report/check helpers.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::common::{client_home, raw, start_ours, Proc};

/// The account allowed to whitelist, in pyzord.passwd and the client's
/// accounts file.
pub const USER: &str = "operator";
pub const KEY: &str = "6e1c0b3ddbbc8ed4b9a15c2f2c3e3a14";

/// A running pyzord with its HTTP listener.
pub struct Web {
    pub server: Proc,
    pub http_port: u16,
    pub home: tempfile::TempDir,
    pub client_home: PathBuf,
}

/// Start pyzord with `--http-api --whitelist-requests` and `config` as
/// the `[server]` section's extra lines.
pub fn start(config: &str) -> Web {
    let home = pyzor_testkit::temp_home();
    std::fs::write(home.path().join("config"), format!("[server]\n{config}\n")).unwrap();
    std::fs::write(
        home.path().join("pyzord.passwd"),
        format!("{USER} : {KEY}\n"),
    )
    .unwrap();
    std::fs::write(
        home.path().join("pyzord.access"),
        format!("check report ping pong info : anonymous : allow\nall : {USER} : allow\n"),
    )
    .unwrap();
    let http_port = pyzor_testkit::free_tcp_port();
    let addr = format!("127.0.0.1:{http_port}");
    let server = start_ours(
        home.path(),
        &[
            "--http-address",
            &addr,
            "--http-api",
            "--whitelist-requests",
        ],
    );
    assert!(
        pyzor_testkit::wait_tcp(http_port, Duration::from_secs(10)),
        "the HTTP listener did not come up"
    );
    let client_home = client_home(&home.path().join("client"), server.port, &[(USER, KEY)]);
    Web {
        server,
        http_port,
        home,
        client_home,
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// The head, lower-cased.
    pub head: String,
    pub body: String,
}

/// One HTTP/1.1 request to 127.0.0.1:`port` (`Connection: close`), read
/// to the end (at most 10 s).
pub fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    // The server may answer (413) before reading all of a large body.
    let _ = s.write_all(body);
    let out = read_reply(&mut s);
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Reply {
        status,
        head: head.to_ascii_lowercase(),
        body: body.to_owned(),
    }
}

/// The reply's bytes: up to the end of its `Content-Length` body (some
/// servers, chromedriver among them, keep the connection open after the
/// reply despite `Connection: close`), else up to the end of the stream.
fn read_reply(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        if let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&out[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if len.is_some_and(|n| out.len() >= end + 4 + n) {
                return out;
            }
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// `pairs` form-encoded.
pub fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
        .into_bytes()
}

impl Web {
    /// POST a form to the page, as the page's own form does.
    pub fn post_form(&self, path: &str, pairs: &[(&str, &str)]) -> Reply {
        let origin = format!("http://127.0.0.1:{}", self.http_port);
        http(
            self.http_port,
            "POST",
            path,
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Origin", &origin),
            ],
            &form(pairs),
        )
    }

    /// A fresh form token from the page.
    pub fn token(&self) -> String {
        let page = http(self.http_port, "GET", "/", &[], b"");
        let at = page.body.find("name=\"token\" value=\"").expect("a token") + 20;
        page.body[at..].split('"').next().unwrap().to_owned()
    }

    /// Report `digest` once over UDP (anonymous).
    pub fn report(&self, digest: &str) {
        let r = raw(
            self.server.port,
            format!("Op: report\nOp-Digest: {digest}\nThread: 4001\nPV: 2.1\n\n").as_bytes(),
        );
        assert!(
            r.starts_with(b"Code: 200"),
            "{}",
            String::from_utf8_lossy(&r)
        );
    }

    /// (Count, WL-Count) of a UDP check.
    pub fn check(&self, digest: &str) -> (i64, i64) {
        let r = raw(
            self.server.port,
            format!("Op: check\nOp-Digest: {digest}\nThread: 4002\nPV: 2.1\n\n").as_bytes(),
        );
        let r = String::from_utf8_lossy(&r).into_owned();
        let field = |name: &str| {
            r.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("no {name} in {r}"))
        };
        (field("Count:"), field("WL-Count:"))
    }

    /// Run `pyzor-requests --homedir HOME args…`: (exit code, stdout, stderr).
    pub fn requests_cmd(&self, args: &[&str]) -> (i32, String, String) {
        requests_cmd(self.home.path(), args)
    }

    /// `approve DIGEST` against this server, signed with [`USER`].
    pub fn approve(&self, digest: &str) -> (i32, String, String) {
        let server = format!("127.0.0.1:{}", self.server.port);
        let client = self.client_home.to_string_lossy().into_owned();
        self.requests_cmd(&[
            "approve",
            digest,
            "--server",
            &server,
            "--client-homedir",
            &client,
        ])
    }
}

/// Run `pyzor-requests --homedir home args…`.
pub fn requests_cmd(home: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pyzor-requests"))
        .arg("--homedir")
        .arg(home)
        .args(args)
        .output()
        .expect("run pyzor-requests");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A message and its digest (as every Pyzor client computes it).
pub fn message(tag: &str) -> (String, String) {
    let m = format!(
        "From: news@example.org\nSubject: {tag}\n\nDear reader, this is our monthly newsletter about gardening\n\
tomatoes like warm weather and a lot of water in summer\nsee you next month at the garden club meeting\nthis one is about the {tag} case\n"
    );
    let d = pyzor_digest::digest_message(m.as_bytes()).unwrap().hex();
    (m, d)
}
