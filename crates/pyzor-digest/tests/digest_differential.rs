//! Differential test against the reference: random MIME messages aimed at
//! the parser and normaliser quirks of docs/digest-rules.md (header block ends,
//! folding, From_ lines, content-type/parameter syntax, RFC 2231 pieces,
//! boundaries with whitespace/close/nesting/missing, delivery-status,
//! message/rfc822, multipart/digest, transfer encodings with broken input,
//! Python whitespace and line boundaries, e-mail/URL/long tokens) are
//! digested by pyzor 1.1.2 (tests/ref_digest.py, one Python process) and by
//! us, and the selected lines, digests and crash/no-crash must agree.
//!
//! Bounded: a fixed number of messages per seed. Skips loudly without the
//! reference virtualenv. Messages that need a codec `digest::codecs` does
//! not implement are not compared (none are generated on purpose).

mod ref_digest_support;

use pyzor_digest as digest;
use pyzor_testkit::XorShift;
use ref_digest_support::ref_digest;

const WORDS: &[&str] = &[
    "hello",
    "world",
    "this",
    "is",
    "a",
    "message",
    "offer",
    "free",
    "money",
    "click",
    "here",
    "now",
    "user@example.com",
    "a@b",
    "@@",
    "a@",
    "@@@",
    "http://example.com/x",
    "mailto:x@y.z",
    "Note:this",
    "12:30",
    "re:x",
    "x:",
    "averyveryverylongtokenindeed",
    "abcdefghi",
    "abcdefghij",
    "ıx:y",
    "Kx:1",
    "ſ:a",
    "İ:b",
    "ñ:x",
    "a\0b\0c",
    "tab\there",
    "x\x1fy",
    "p\x1cq",
    "v\x0bw",
    "f\x0cg",
    "=3D",
    "=\r",
    "=41",
    "==",
    "\u{a0}nb",
    "\u{2028}ls",
    "\u{85}nel",
    "\u{3000}id",
    "\u{200b}zw",
    "café",
    "日本語テキスト",
    "QUJD",
    "SGVsbG8=",
    "begin",
    "end",
    "--",
    "--b",
    "From",
    ">From",
    ";",
    "\"",
    "=",
    "é",
    "\r",
    "<p>",
    "</p>",
    "<b>bold</b>",
    "&amp;",
    "&nbsp;",
    "&#10;",
    "<br>",
    "<script>var x;</script>",
    "<!-- c -->",
    "<a href=\"x\">",
    "&lt3",
    "<style>p{}</style>",
];

fn words(r: &mut XorShift, utf8: bool) -> String {
    let n = 1 + r.below(12);
    let mut s = String::new();
    for i in 0..n {
        if i > 0 {
            s.push_str(r.pick(&[" ", " ", " ", "  ", "\t", "\x1f"]));
        }
        let w = r.pick(WORDS);
        if !utf8 && !w.is_ascii() {
            s.push_str("word");
        } else {
            s.push_str(w);
        }
    }
    s
}

fn eol(r: &mut XorShift, base: &'static str) -> &'static str {
    if r.chance(90) {
        base
    } else {
        r.pick(&["\n", "\r\n", "\r"])
    }
}

fn body(r: &mut XorShift, out: &mut Vec<u8>, nl: &'static str, charset_bytes: u8) {
    let n = r.below(14);
    for _ in 0..n {
        let w = words(r, charset_bytes == 8);
        out.extend_from_slice(w.as_bytes());
        if charset_bytes == 1 && r.chance(20) {
            out.extend_from_slice(&[0xe9, 0x85, 0xa0, 0x41]); // latin-1: é NEL NBSP A
        }
        out.extend_from_slice(eol(r, nl).as_bytes());
    }
}

fn b64(data: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= c.len() {
                s.push(A[((v >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

fn part(
    r: &mut XorShift,
    out: &mut Vec<u8>,
    depth: usize,
    nl: &'static str,
    bounds: &mut Vec<String>,
) {
    // Headers
    let kinds = if depth < 3 {
        &[
            "text/plain",
            "text/plain",
            "text/plain",
            "multipart/mixed",
            "multipart/alternative",
            "multipart/digest",
            "message/rfc822",
            "message/delivery-status",
            "application/octet-stream",
            "text / plain",
            "image/gif",
            "TEXT/PLAIN",
            "multipart",
            "none",
            "text/html",
        ][..]
    } else {
        &["text/plain", "application/octet-stream", "none"][..]
    };
    let kind = r.pick(kinds);
    if r.chance(30) {
        out.extend_from_slice(format!("Subject: {}{}", words(r, false), eol(r, nl)).as_bytes());
    }
    if r.chance(10) {
        out.extend_from_slice(format!("From someone{}", eol(r, nl)).as_bytes());
    }
    if r.chance(10) {
        out.extend_from_slice(format!(" continuation first{}", eol(r, nl)).as_bytes());
    }
    let charset_bytes = match r.below(6) {
        0 => 1,
        1 | 2 => 8,
        _ => 0,
    };
    let cs = match charset_bytes {
        1 => r.pick(&[
            "; charset=iso-8859-1",
            "; charset=\"latin1\"",
            "; CHARSET=l1",
            "; charset*=''latin1",
            "; x=\"a;b\"; charset=iso-8859-1",
            "; name=\"q\\\"x;\"; Charset = \"ISO-8859-1\"",
        ]),
        8 => r.pick(&[
            "; charset=utf-8",
            "; charset=UTF-8",
            "; charset=\"utf8\"",
            "; charset*0*=utf-8''utf; charset*1=-8",
            "; charset=windows-1252",
            "; charset=koi8-r",
            "; charset=shift_jis",
            "; charset=utf-16",
        ]),
        _ => r.pick(&[
            "",
            "",
            "; charset=us-ascii",
            "; charset=\"\"",
            "; charset=ascii\0",
            "; charset=utf-8\u{e9}",
            "; charset=undefined",
            "; charset=\"quopri\"",
        ]),
    };
    let mut boundary = None;
    if kind != "none" {
        let mut params = cs.to_string();
        if kind.starts_with("multipart") {
            let b = r
                .pick(&[
                    "b0",
                    "b1",
                    "b2",
                    "b3",
                    "=_Part.1+x(y)",
                    "b?*",
                    "b0 b",
                    "b\u{e9}",
                ])
                .to_string();
            boundary = Some(b.clone());
            params.push_str(match r.below(8) {
                0 => "",
                1 => "; boundary*0=b; boundary*1=X",
                _ => "",
            });
            match r.below(7) {
                0 => params.push_str(&format!("; boundary=\"{b}\"")),
                1 => params.push_str(&format!("; boundary=\"{b} \"")),
                2 => params.push_str(&format!(";\r\n\tboundary={b}")),
                3 => params.push_str(&format!("; boundary*={b}")),
                4 => {}
                _ => params.push_str(&format!("; boundary={b}")),
            }
        }
        let sep = r.pick(&[
            "Content-Type: ",
            "Content-Type:",
            "content-type:  ",
            "Content-Type : ",
        ]);
        out.extend_from_slice(format!("{sep}{kind}{params}{}", eol(r, nl)).as_bytes());
    }
    let cte = r.pick(&[
        "",
        "",
        "",
        "base64",
        "quoted-printable",
        "Base64",
        "base64 ",
        "x-uuencode",
        "7bit",
    ]);
    if !cte.is_empty() {
        out.extend_from_slice(format!("Content-Transfer-Encoding: {cte}{}", eol(r, nl)).as_bytes());
    }
    if r.chance(5) {
        out.extend_from_slice(b"X-8bit: \xe9t\xe9");
        out.extend_from_slice(eol(r, nl).as_bytes());
    }
    if !r.chance(5) {
        out.extend_from_slice(eol(r, nl).as_bytes());
    }
    // Body
    if let (Some(b), true) = (boundary, kind.starts_with("multipart")) {
        bounds.push(b.clone());
        if r.chance(50) {
            out.extend_from_slice(format!("preamble {}{}", words(r, false), nl).as_bytes());
        }
        let n = r.below(4);
        for _ in 0..n {
            let b2 = if r.chance(10) {
                bounds[r.below(bounds.len())].clone()
            } else {
                b.clone()
            };
            let ws = r.pick(&["", "", "", " \t", "X"]);
            out.extend_from_slice(format!("--{b2}{ws}{}", eol(r, nl)).as_bytes());
            if r.chance(5) {
                out.extend_from_slice(format!("--{b2}{nl}").as_bytes());
            }
            part(r, out, depth + 1, nl, bounds);
        }
        if r.chance(70) {
            out.extend_from_slice(
                format!("{}--{b}--{}epilogue text here{}", nl, eol(r, nl), nl).as_bytes(),
            );
        }
        bounds.pop();
        return;
    }
    match kind {
        "message/rfc822" => part(r, out, depth + 1, nl, bounds),
        "message/delivery-status" => {
            for _ in 0..1 + r.below(3) {
                out.extend_from_slice(format!("Reporting-MTA: dns; x{nl}").as_bytes());
                if r.chance(50) {
                    out.extend_from_slice(format!("{}{}", words(r, false), nl).as_bytes());
                }
                out.extend_from_slice(nl.as_bytes());
            }
        }
        _ => {
            let mut b = Vec::new();
            body(r, &mut b, nl, charset_bytes);
            match cte {
                "base64" | "Base64" if r.chance(80) => {
                    let enc = b64(&b);
                    let mut cut = enc.len();
                    if r.chance(20) {
                        cut = cut.saturating_sub(r.below(4));
                    }
                    for chunk in enc.as_bytes()[..cut].chunks(76) {
                        out.extend_from_slice(chunk);
                        out.extend_from_slice(nl.as_bytes());
                    }
                }
                "x-uuencode" if r.chance(70) => {
                    let uu = r.pick(&[
                        "begin 644 f\n#86)C\n`\nend\n",
                        "begin 0o6_4 f\n#86)C\nend\n",
                        "begin xyz f\nbegin 644 g\n#86)C\n",
                        "begin 644 f\n#86)C   \n\n",
                        "begin 644 f\n$86)C9\nend\n",
                    ]);
                    out.extend_from_slice(uu.replace('\n', nl).as_bytes());
                    out.extend_from_slice(&b);
                }
                _ => out.extend_from_slice(&b),
            }
        }
    }
}

fn message(r: &mut XorShift) -> Vec<u8> {
    let nl = r.pick(&["\n", "\n", "\r\n", "\r"]);
    let mut out = Vec::new();
    if r.chance(10) {
        out.extend_from_slice(
            format!("From sender@example.com Mon Jan 1 00:00:00 2024{nl}").as_bytes(),
        );
    }
    part(r, &mut out, 0, nl, &mut Vec::new());
    out
}

fn ours(raw: &[u8]) -> Option<String> {
    let (res, shim) = digest::__predigest_flagging_unimplemented_codecs(raw);
    if shim {
        return None;
    }
    Some(match res {
        Ok(p) => {
            let lines: Vec<String> = p
                .iter()
                .map(|l| l.iter().map(|b| format!("{b:02x}")).collect::<String>())
                .collect();
            format!("OK {} {}", p.digest(), lines.join(","))
        }
        Err(_) => "ERR".to_string(),
    })
}

#[test]
fn random_mime_messages_match_reference() {
    let Some(venv) = pyzor_testkit::ref_venv("random_mime_messages_match_reference") else {
        return;
    };
    // PYZOR_DIFF_SEED / PYZOR_DIFF_COUNT explore further (bounded by count).
    let seed = std::env::var("PYZOR_DIFF_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_0001);
    let count = std::env::var("PYZOR_DIFF_COUNT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let mut rng = XorShift::new(seed);
    let msgs: Vec<Vec<u8>> = (0..count).map(|_| message(&mut rng)).collect();
    let refs = ref_digest(&venv, &msgs, None);
    assert_eq!(refs.len(), msgs.len());
    let mut compared = 0;
    let mut fails = Vec::new();
    for (i, (m, want)) in msgs.iter().zip(&refs).enumerate() {
        let Some(got) = ours(m) else { continue };
        compared += 1;
        let want_norm = if want.starts_with("ERR") {
            "ERR".to_string()
        } else {
            want.clone()
        };
        if got != want_norm {
            let dir = std::env::temp_dir().join("pyzor-digest-diff");
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::write(dir.join(format!("case-{i}.eml")), m);
            fails.push(format!("#{i}: ours {got}\n    ref  {want}"));
        }
    }
    eprintln!(
        "differential: {compared} of {} messages compared, {} mismatches",
        msgs.len(),
        fails.len()
    );
    assert!(
        fails.is_empty(),
        "mismatches (inputs in $TMPDIR/pyzor-digest-diff):\n{}",
        fails.join("\n")
    );
    assert!(compared * 10 > count * 9);
}

/// A random mbox: `From ` lines (at starts, inside bodies, `>From `),
/// blank `\n` and `\r\n` lines, junk before the first message, missing
/// final newline.
fn mbox(r: &mut XorShift) -> Vec<u8> {
    let mut out = Vec::new();
    if r.chance(20) {
        out.extend_from_slice(b"junk before\n\n");
    }
    for _ in 0..r.below(5) {
        out.extend_from_slice(b"From x@example.com Mon Jan  1 00:00:00 2024\n");
        out.extend_from_slice(&message(r));
        for _ in 0..r.below(3) {
            out.extend_from_slice(r.pick(&[
                &b"\n"[..],
                b"\r\n",
                b">From quoted line here\n",
                b"From unquoted body line\n",
                b"text line here ok\n",
            ]));
        }
    }
    if r.chance(20) && out.ends_with(b"\n") {
        out.pop();
    }
    out
}

#[test]
fn random_mboxes_match_reference() {
    let Some(venv) = pyzor_testkit::ref_venv("random_mboxes_match_reference") else {
        return;
    };
    let mut rng = XorShift::new(0x5eed_0002);
    let boxes: Vec<Vec<u8>> = (0..300).map(|_| mbox(&mut rng)).collect();
    let refs = ref_digest(&venv, &boxes, Some("mbox"));
    assert_eq!(refs.len(), boxes.len());
    let mut fails = Vec::new();
    for (i, (b, want)) in boxes.iter().zip(&refs).enumerate() {
        let mut got = Vec::new();
        let mut approx = false;
        for m in pyzor_digest::MboxReader::new(&b[..]) {
            let Ok(m) = m else { break }; // non-ASCII From_ line: the reference stops
            let (res, shim) = digest::__predigest_flagging_unimplemented_codecs(&m);
            approx |= shim;
            match res {
                Ok(p) => got.push(p.digest().to_string()),
                Err(_) => break,
            }
        }
        if approx {
            continue;
        }
        let got = format!("MBOX {}", got.join(","));
        if &got != want {
            let dir = std::env::temp_dir().join("pyzor-digest-diff");
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::write(dir.join(format!("mbox-{i}.mbox")), b);
            fails.push(format!("#{i}: ours {got}\n    ref  {want}"));
        }
    }
    assert!(fails.is_empty(), "mbox mismatches:\n{}", fails.join("\n"));
}

#[test]
#[ignore]
fn dump_samples() {
    let mut rng = XorShift::new(0x5eed_0001);
    let msgs: Vec<Vec<u8>> = (0..3000).map(|_| message(&mut rng)).collect();
    let mut errs = 0;
    let mut empty = 0;
    let mut distinct = std::collections::HashSet::new();
    for m in &msgs {
        match ours(m) {
            Some(s) if s == "ERR" => errs += 1,
            Some(s) => {
                if s.contains(digest::EMPTY_DIGEST) {
                    empty += 1
                }
                distinct.insert(s);
            }
            None => {}
        }
    }
    eprintln!("errs {errs} empty {empty} distinct {}", distinct.len());
    std::fs::write("/tmp/sample-7.eml", &msgs[7]).unwrap();
    std::fs::write("/tmp/sample-8.eml", &msgs[8]).unwrap();
}

/// Byte-level mutations of the corpus messages (flips, cut/duplicated
/// slices, inserted MIME/QP/HTML syntax) digested by both.
#[test]
fn mutated_corpus_messages_match_reference() {
    let Some(venv) = pyzor_testkit::ref_venv("mutated_corpus_messages_match_reference") else {
        return;
    };
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/digest-corpus");
    let mut seeds: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|x| x.to_str()) == Some("eml"))
        .collect();
    seeds.sort();
    let seeds: Vec<Vec<u8>> = seeds
        .into_iter()
        .map(|p| std::fs::read(p).unwrap())
        .filter(|d| d.len() < 32 * 1024)
        .collect();
    const TOKENS: &[&[u8]] = &[
        b"\r",
        b"\n",
        b"\r\n",
        b"--",
        b"=",
        b"=\r",
        b";",
        b"\"",
        b"'",
        b"%",
        b"*",
        b":",
        b"@",
        b"\0",
        b"\xe9",
        b"<",
        b"&",
        b"<!--",
        b"</",
        b"From ",
        b"\n--b\n",
        b"Content-Type: multipart/mixed; boundary=b\n\n--b\n",
        b"Content-Type: message/rfc822\n\n",
        b"Content-Transfer-Encoding: base64\n",
        b"; charset=latin1",
    ];
    let count = std::env::var("PYZOR_DIFF_COUNT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500usize);
    let mut r = XorShift::new(
        std::env::var("PYZOR_DIFF_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(77),
    );
    let msgs: Vec<Vec<u8>> = (0..count)
        .map(|_| {
            let mut d = seeds[r.below(seeds.len())].clone();
            for _ in 0..1 + r.below(6) {
                let pos = r.below(d.len() + 1);
                match r.below(4) {
                    0 if !d.is_empty() => {
                        let p = pos.min(d.len() - 1);
                        d[p] ^= 1 << r.below(8);
                    }
                    1 if !d.is_empty() => {
                        let end = (pos + r.below(40)).min(d.len());
                        d.drain(pos.min(end)..end);
                    }
                    _ => {
                        let t = r.pick(TOKENS);
                        d.splice(pos..pos, t.iter().copied());
                    }
                }
            }
            d
        })
        .collect();
    let refs = ref_digest(&venv, &msgs, None);
    let mut fails = Vec::new();
    let mut compared = 0;
    for (i, (m, want)) in msgs.iter().zip(&refs).enumerate() {
        let Some(got) = ours(m) else { continue };
        compared += 1;
        let want_norm = if want.starts_with("ERR") {
            "ERR".to_string()
        } else {
            want.clone()
        };
        if got != want_norm {
            let dir = std::env::temp_dir().join("pyzor-digest-diff");
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::write(dir.join(format!("mutated-{i}.eml")), m);
            fails.push(format!("#{i}: ours {got}\n    ref  {want}"));
        }
    }
    eprintln!(
        "mutated corpus: {compared} of {} compared, {} mismatches",
        msgs.len(),
        fails.len()
    );
    assert!(
        fails.is_empty(),
        "mismatches (inputs in $TMPDIR/pyzor-digest-diff):\n{}",
        fails.join("\n")
    );
}
