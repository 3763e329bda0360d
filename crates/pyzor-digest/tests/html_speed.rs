//! Throughput of `strip_html` next to the reference `HTMLStripper`, on a
//! synthetic HTML newsletter. Prints figures only; run it in release mode:
//!
//! ```text
//! cargo test --release -p pyzor-digest --test html_speed -- --ignored --nocapture
//! ```
//!
//! The reference venv is `$PYZOR_REF_VENV`, else `target/ref-venv` (built by
//! `scripts/setup-ref-env`).

use std::hint::black_box;
use std::time::Instant;

use pyzor_digest::html::strip_html;

/// A mail-like HTML document of about `blocks` × 600 bytes.
fn newsletter(blocks: usize) -> String {
    let mut s = String::from(
        "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Transitional//EN\">\n<html><head>\
         <meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\">\
         <style type=\"text/css\">body{margin:0} .x td{padding:4px}</style></head>\n<body>\n",
    );
    for i in 0..blocks {
        s.push_str(&format!(
            "<table class=\"x\" width=\"100%\" cellpadding=0><tr><td align='left' \
             style=\"font-family:Arial, sans-serif;color:#333\">\n<!-- block {i} -->\
             <p>Dear customer, our <b>offer&nbsp;#{i}</b> is here &amp; it&#8217;s \
             &quot;great&quot;.<br/>Visit <a href=\"http://example.com/p?id={i}&amp;u=42\">\
             our shop</a> today!</p>\n<img src=\"cid:img{i}\" alt=\"\" /></td></tr></table>\
             <script type=\"text/javascript\">var t{i} = '<b>' + {i};</script>\n"
        ));
    }
    s.push_str("<p>Unsubscribe &copy; 2026</p></body></html>\n");
    s
}

const PY_BENCH: &str = r#"
import sys, time
sys.path.insert(0, sys.argv[1])
from pyzor.digest import HTMLStripper
text = sys.stdin.read()
runs = int(sys.argv[2])
t = time.perf_counter()
for _ in range(runs):
    data = []
    HTMLStripper(data).feed(text)
    out = " ".join(data)
print(time.perf_counter() - t, len(out))
"#;

#[test]
#[ignore = "benchmark: run with --release --ignored --nocapture"]
fn html_strip_throughput() {
    let doc = newsletter(400);
    let mb = doc.len() as f64 / 1e6;
    let runs = 50;
    let out = strip_html(&doc).expect("valid HTML");
    let t = Instant::now();
    for _ in 0..runs {
        black_box(strip_html(black_box(&doc)).expect("valid HTML"));
    }
    let ours = t.elapsed().as_secs_f64() / runs as f64;
    eprintln!(
        "strip_html: {:.0} KB document, {:.3} ms/doc, {:.1} MB/s (output {} bytes)",
        doc.len() as f64 / 1e3,
        ours * 1e3,
        mb / ours,
        out.len()
    );
    let Some(venv) = pyzor_testkit::ref_venv("html_strip_throughput (python part)") else {
        return;
    };
    let site = venv.join("lib/python3.11/site-packages");
    let Some(python) = pyzor_testkit::system_python("html_strip_throughput (python part)") else {
        return;
    };
    if !site.join("pyzor").is_dir() {
        pyzor_testkit::skip(
            "html_strip_throughput (python part)",
            "the reference pyzor is missing",
        );
        return;
    }
    let py_runs = 10;
    let res = pyzor_testkit::Oracle::new(python)
        .args(["-c", PY_BENCH])
        .arg(&site)
        .arg(py_runs.to_string())
        .run(doc.into_bytes());
    let line = String::from_utf8_lossy(&res);
    let mut f = line.split_whitespace();
    let secs: f64 = f.next().and_then(|v| v.parse().ok()).expect("seconds");
    let py_len: usize = f.next().and_then(|v| v.parse().ok()).expect("length");
    let theirs = secs / py_runs as f64;
    eprintln!(
        "HTMLStripper (CPython 3.11.2): {:.3} ms/doc, {:.1} MB/s (output {} chars); speed-up {:.1}x",
        theirs * 1e3,
        mb / theirs,
        py_len,
        theirs / ours
    );
}
