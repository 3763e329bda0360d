//! Differential test of `digest::html::strip_html` against pyzor's real
//! `HTMLStripper` on the reference Python (/usr/bin/python3, CPython
//! 3.11.2): thousands of random HTML-ish strings from a fixed seed, all
//! run through ONE Python subprocess. Any difference in the text, or error
//! versus no error, fails the test. Skips loudly without that Python.

mod html_support;

use std::path::{Path, PathBuf};

use pyzor_digest::html::{strip_html, unescape, HtmlError};
use pyzor_testkit::{Oracle, XorShift};

/// The driver: imports pyzor's `HTMLStripper` from the reference venv when
/// there is one, else declares the same ten lines (pyzor 1.1.2
/// `pyzor/digest.py`). Input: one case per line, UTF-8 hex. Output per
/// line: `OK <hex of " ".join(data)>`, `ERR <exception class>`, or for
/// `U <hex>` cases the hex of `html.unescape`.
const DRIVER: &str = r#"
import sys, html
from html.parser import HTMLParser
try:
    sys.path.insert(0, sys.argv[1])
    from pyzor.digest import HTMLStripper
    origin = "pyzor.digest"
except Exception:
    origin = "re-declared"
    class HTMLStripper(HTMLParser):
        def __init__(self, collector):
            HTMLParser.__init__(self)
            self.reset()
            self.collector = collector
            self.collect = True
        def handle_data(self, data):
            data = data.strip()
            if data and self.collect:
                self.collector.append(data)
        def handle_starttag(self, tag, attrs):
            if tag.lower() in ("script", "style"):
                self.collect = False
        def handle_endtag(self, tag):
            if tag.lower() in ("script", "style"):
                self.collect = True
print("READY %s %s" % (sys.version.split()[0], origin), flush=True)
out = sys.stdout
for line in sys.stdin:
    kind, _, hx = line.rstrip("\n").partition(" ")
    text = bytes.fromhex(hx).decode("utf-8")
    if kind == "U":
        out.write(html.unescape(text).encode("utf-8").hex() + "\n")
        continue
    data = []
    try:
        HTMLStripper(data).feed(text)
        out.write("OK " + " ".join(data).encode("utf-8").hex() + "\n")
    except Exception as e:
        out.write("ERR " + type(e).__name__ + "\n")
out.flush()
"#;

const WORDS: &[&str] = &[
    "hello",
    "World",
    "a",
    "x y",
    "caf\u{e9}",
    "\u{65e5}\u{672c}",
    "buy now",
    "foo@example.com",
    "http://x.example/p?q=1&r=2",
    "\u{17f}",
    "\u{130}",
    "\u{131}",
    "\u{212a}",
    "0123456789",
    "=",
    "'",
    "\"",
    ">",
    "/",
    ";",
    "#",
    "-",
    "--",
    "]",
    "]]",
    "]>",
    "\u{10f800}",
    "\u{fffd}",
];
const SPACES: &[&str] = &[
    " ", "  ", "\t", "\n", "\r\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f", "\u{85}",
    "\u{a0}", "\u{2028}", "\u{2029}", "\u{3000}", "\u{200b}", "\x00",
];
const ENTITIES: &[&str] = &[
    "&amp;",
    "&amp",
    "&AMP;",
    "&notit;",
    "&notin;",
    "&#65;",
    "&#x41",
    "&#X4a;",
    "&#0;",
    "&#133;",
    "&#x80;",
    "&#x81;",
    "&",
    "&#",
    "&#x",
    "&#;",
    "&lt",
    "&gt;",
    "&nbsp;",
    "&nbsp",
    "&#10;",
    "&#13;",
    "&#8232;",
    "&#x2029;",
    "&copy",
    "&copyright",
    "&ampfoo",
    "&xyz;",
    "&#99999999;",
    "&#xD800;",
    "&#1;",
    "&#x0b;",
    "&#xFFFE;",
    "&hellip;",
    "&hellip",
    "&NotEqualTilde;",
    "& ",
    "&;",
    "&a",
    "&#0065",
    "&\u{e9};",
];
const TAG_NAMES: &[&str] = &[
    "a",
    "b",
    "p",
    "br",
    "div",
    "script",
    "style",
    "SCRIPT",
    "Style",
    "sCrIpT",
    "title",
    "textarea",
    "scr\u{130}pt",
    "\u{17f}cript",
    "x:y",
    "a1",
    "a\x0b",
    "a\u{a0}b",
    "img",
    "font",
    "a\"",
    "a'",
    "plaintext",
    "xmp",
];
const ATTRS: &[&str] = &[
    " href=\"x\"",
    " a='y'",
    " c=d",
    " e",
    " f = 'g' ",
    " h=\"",
    " i='",
    " j==\"k",
    "/",
    " /",
    " k=\"&#65;\"",
    " l=>",
    " m=\"a>b\"",
    " n='a\"b'",
    " o=\"\"",
    " p=",
    " q = ",
    "\tr\n=\ns",
    " s=\"x\"t",
    " u=v/w",
    "//",
    " =x",
    " \"y\"",
    " 'z'=1",
    " v==w",
    " x=&amp;",
    " y=\u{a0}z",
    " z\x00=1",
    "\x00",
    " aa = \"x",
    " bb= 'y",
    "\u{a0}cc",
    " dd=\u{2028}\"e\"",
];
const TAG_ENDS: &[&str] = &[
    ">", ">", ">", "/>", " />", "", " >", "\x00>", "/", " / >", "\n>",
];
const END_TAGS: &[&str] = &[
    "</a>",
    "</b >",
    "</script>",
    "</ script >",
    "</SCRIPT>",
    "</script foo>",
    "</scr\u{130}pt>",
    "</\u{17f}cript>",
    "</scr\u{131}pt>",
    "</>",
    "</ p>",
    "</3>",
    "</",
    "</style>",
    "</STYLE >",
    "</script\x0b>",
    "</script\n>",
    "</scriptx>",
    "</a b=\">\">",
    "</\u{a0}style>",
    "</a\x00>",
    "</ \u{212a}>",
    "</style/>",
];
const MARKUP: &[&str] = &[
    "<!-- c -->",
    "<!--x--!>",
    "<!-- -- >",
    "<!--",
    "<!--->",
    "<!---->",
    "<!-- a -\n->",
    "<!--a--\u{2028}>",
    "<![CDATA[x]]>",
    "<![cdata[x] ]>",
    "<![CDATA[a]\n]\n>",
    "<![if !mso]>",
    "<![endif]>",
    "<![ELSE]>",
    "<![CDATA[ no end",
    "<![temp[ ]]>",
    "<!DOCTYPE html>",
    "<!doctype",
    "<!DocType x>",
    "<!x>",
    "<!>",
    "<!",
    "<?php x ?>",
    "<?xml",
    "<",
    "< b",
    "<3",
    "<<",
    ">",
    "<!-x>",
    "<!DOCTYP",
    "<![include",
    "<![if",
    "<![if ",
];
const CRASHERS: &[&str] = &[
    "<![foo[",
    "<![ CDATA[",
    "<![123[",
    "<![",
    "<![x-y[",
    "<![ if]>",
];

fn gen_case(rng: &mut XorShift) -> String {
    let mut s = String::new();
    let pieces = 1 + rng.below(14);
    for _ in 0..pieces {
        match rng.below(100) {
            0..=21 => s.push_str(rng.pick(WORDS)),
            22..=33 => s.push_str(rng.pick(SPACES)),
            34..=46 => s.push_str(rng.pick(ENTITIES)),
            47..=69 => {
                s.push('<');
                s.push_str(rng.pick(TAG_NAMES));
                for _ in 0..rng.below(4) {
                    s.push_str(rng.pick(ATTRS));
                }
                s.push_str(rng.pick(TAG_ENDS));
            }
            70..=82 => s.push_str(rng.pick(END_TAGS)),
            83..=98 => s.push_str(rng.pick(MARKUP)),
            _ => {
                if rng.chance(40) {
                    s.push_str(rng.pick(CRASHERS));
                } else {
                    // random printable ASCII soup, heavy in markup characters
                    const SOUP: &[u8] = b"<>/=\"'&#;!-[] ax1\t\n";
                    for _ in 0..rng.below(12) {
                        s.push(rng.pick(SOUP) as char);
                    }
                }
            }
        }
    }
    s
}

/// Short random strings over the characters that matter to the parser,
/// starting with `<` most of the time.
fn gen_soup(rng: &mut XorShift) -> String {
    const SOUP: &[&str] = &[
        "<", "<", "<", ">", ">", "/", "/", "=", "=", "\"", "'", "&", "#", ";", "!", "-", "-", "[",
        "]", "?", "a", "b", "x", "S", "script", "style", "cdata", "if", "doctype", "amp", " ", " ",
        "\t", "\n", "\r", "\x0b", "\x0c", "\x1f", "\x00", "\u{a0}", "\u{2028}", "\u{85}", "\u{e9}",
        "\u{130}", "\u{17f}", "1", ":", "_", ".",
    ];
    let mut s = String::new();
    if rng.chance(80) {
        s.push('<');
    }
    for _ in 0..1 + rng.below(24) {
        s.push_str(rng.pick(SOUP));
    }
    s
}

/// Cases written by hand: the examples of docs/digest-rules.md and known traps.
fn fixed_cases() -> Vec<String> {
    let mut v: Vec<String> = [
        "Fish &amp; chips &amp",
        "trailing entity &copy",
        "<p>Hello</p><p>World</p>",
        "a<b>c</b>d",
        "<a href=\"x>never closed",
        "<script>var a = '<b>';</script>after",
        "<style>p{}</style >x",
        "<script>no end",
        "x</script>y",
        "<script/>kept",
        "<title>T <b>bold</b></title>",
        "&#10;one&#13;two&#8232;three",
        "<![foo[ bar",
        "text &amp; more; ok",
        "tail & ok",
        "tail &amp",
        "<a b='&#65;'>x",
        "</scr\u{130}pt>",
        "<script>a</scr\u{130}pt>b</script>c",
        "<script>a</\u{17f}cript>b</SCRIPT>c",
        "<style>a</STYLE\x0b>b",
        "<a\x00>b",
        "<a\"\x00=b>c",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // the 34-character window and the Python int() digit limit
    for k in [30, 33, 34, 35, 40] {
        v.push(format!("word{} &amp", "x".repeat(k)));
        v.push(format!("&amp{}", "x".repeat(k)));
        v.push(format!("& {}", "\u{e9}".repeat(k)));
    }
    for n in [1, 2, 3, 50, 700] {
        v.extend(
            html_support::pathological(n)
                .into_iter()
                .map(|(_, input, _)| input),
        );
    }
    for digits in [4299, 4300, 4301] {
        v.push(format!("a &#{}; b", "1".repeat(digits)));
        v.push(format!("<p title=\"&#{}\">x</p>", "0".repeat(digits)));
        v.push(format!("tail &#{}", "1".repeat(digits)));
    }
    v
}

/// The system Python and the reference's site-packages, or `None` after a
/// loud skip.
fn python_ok() -> Option<(PathBuf, PathBuf)> {
    let test = "strip_html_matches_cpython_on_random_html";
    let python = pyzor_testkit::system_python(test)?;
    let venv = pyzor_testkit::ref_venv(test)?;
    Some((python, venv.join("lib/python3.11/site-packages")))
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(h: &str) -> String {
    let bytes: Vec<u8> = (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).expect("hex from the driver"))
        .collect();
    String::from_utf8(bytes).expect("UTF-8 from the driver")
}

/// Run all `(kind, text)` cases through one Python process; one answer line
/// per case.
fn run_python(python: &Path, site: &Path, cases: &[(char, String)]) -> Vec<String> {
    let mut lines = Oracle::new(python)
        .arg("-c")
        .arg(DRIVER)
        .arg(site)
        .lines(cases.iter().map(|(k, t)| format!("{k} {}", hex(t))));
    assert!(!lines.is_empty(), "no banner from the driver");
    let ready = lines.remove(0);
    eprintln!("python driver: {ready}");
    assert!(
        ready.starts_with("READY 3.11.2 "),
        "the reference is CPython 3.11.2 (pre-2025 html.parser); {} says {ready}",
        python.display()
    );
    assert_eq!(lines.len(), cases.len(), "one answer per case");
    lines
}

fn ours(text: &str) -> String {
    match strip_html(text) {
        Ok(s) => format!("OK {}", hex(&s)),
        Err(HtmlError::MarkedSection { .. } | HtmlError::MarkedSectionName { .. }) => {
            "ERR AssertionError".to_string()
        }
        Err(HtmlError::CharrefTooLong { .. }) => "ERR ValueError".to_string(),
    }
}

fn show(answer: &str) -> String {
    match answer.strip_prefix("OK ") {
        Some(h) => format!("OK {:?}", unhex(h)),
        None => answer.to_string(),
    }
}

#[test]
fn strip_html_matches_cpython_on_random_html() {
    let Some((python, site)) = python_ok() else {
        return;
    };
    // PYZOR_HTML_DIFF_SEED / PYZOR_HTML_DIFF_SCALE: optional, for longer
    // fuzzing sessions; the default run is fixed and takes about a second.
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let seed = env("PYZOR_HTML_DIFF_SEED").unwrap_or(0x5079_7a6f_7273_2021);
    let scale = env("PYZOR_HTML_DIFF_SCALE").unwrap_or(1).max(1) as usize;
    let mut rng = XorShift::new(seed);
    let mut cases: Vec<(char, String)> = fixed_cases().into_iter().map(|t| ('S', t)).collect();
    for _ in 0..6000 * scale {
        cases.push(('S', gen_case(&mut rng)));
    }
    // character soup over the characters the scanners care about
    for _ in 0..15000 * scale {
        cases.push(('S', gen_soup(&mut rng)));
    }
    // a few long documents
    for _ in 0..300 * scale {
        let mut t = String::new();
        for _ in 0..10 {
            t.push_str(&gen_case(&mut rng));
        }
        cases.push(('S', t));
    }
    // unescape on its own, on entity-dense strings
    for _ in 0..1500 * scale {
        let mut t = String::new();
        for _ in 0..1 + rng.below(6) {
            t.push_str(if rng.chance(60) {
                rng.pick(ENTITIES)
            } else {
                rng.pick(WORDS)
            });
        }
        cases.push(('U', t));
    }
    let answers = run_python(&python, &site, &cases);
    let mut failures = Vec::new();
    let mut errors = 0;
    for ((kind, text), want) in cases.iter().zip(&answers) {
        let got = if *kind == 'U' {
            hex(&unescape(text))
        } else {
            ours(text)
        };
        errors += usize::from(want.starts_with("ERR"));
        if &got != want {
            failures.push(format!(
                "{kind} input {:?}\n   python {}\n   ours   {}",
                text.chars().take(300).collect::<String>(),
                if *kind == 'U' {
                    format!("{:?}", unhex(want))
                } else {
                    show(want)
                },
                if *kind == 'U' {
                    format!("{:?}", unhex(&got))
                } else {
                    show(&got)
                },
            ));
        }
    }
    eprintln!(
        "{} cases compared, {} of them errors in Python",
        cases.len(),
        errors
    );
    assert!(
        failures.is_empty(),
        "{} mismatches with CPython, first ones:\n{}",
        failures.len(),
        failures
            .iter()
            .take(15)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
