//! Genuine U+10F800..U+10FFFF characters next to lone surrogates
//! (digest/text.rs, `StandIns`): messages whose parts hold such characters
//! through utf-8, utf-16, HTML character references, utf-7,
//! unicode_escape and raw_unicode_escape, some with lone surrogates in the
//! same text, are digested by pyzor 1.1.2 (tests/ref_digest.py) and by us;
//! the selected lines and digests must agree. Skips loudly without the
//! reference virtualenv.

mod ref_digest_support;

use pyzor_digest as digest;
use pyzor_testkit::XorShift;
use ref_digest_support::ref_digest;

/// One piece of text: a genuine character or a lone surrogate.
#[derive(Clone, Copy)]
enum Unit {
    Char(char),
    Surrogate(u16),
}

/// How a part carries its text.
#[derive(Clone, Copy, Debug)]
enum Carrier {
    Utf8,
    Utf16,
    HtmlEntities,
    Utf7,
    UnicodeEscape,
    RawUnicodeEscape,
    /// `application/octet-stream; charset=utf-8` with 8-bit bytes (the
    /// non-text path, errors=replace).
    NonTextUtf8,
}

impl Carrier {
    const ALL: [Carrier; 7] = [
        Carrier::Utf8,
        Carrier::Utf16,
        Carrier::HtmlEntities,
        Carrier::Utf7,
        Carrier::UnicodeEscape,
        Carrier::RawUnicodeEscape,
        Carrier::NonTextUtf8,
    ];

    fn carries_surrogates(self) -> bool {
        matches!(
            self,
            Carrier::Utf7 | Carrier::UnicodeEscape | Carrier::RawUnicodeEscape
        )
    }
}

fn high_char(r: &mut XorShift) -> char {
    let cp = match r.below(6) {
        0 => 0x10FFFF,
        1 => 0x10F800,
        2 => 0xF0000 + r.below(0x800) as u32, // another candidate block
        _ => 0x10F800 + r.below(0x800) as u32,
    };
    char::from_u32(cp).unwrap()
}

/// Text lines: short words (kept by the normaliser), high characters,
/// lone surrogates when the carrier can hold them.
fn lines(r: &mut XorShift, surrogates: bool) -> Vec<Vec<Unit>> {
    let words = ["alpha", "beta", "gamma", "delta", "eps", "zeta", "x"];
    let n = 1 + r.below(8);
    (0..n)
        .map(|_| {
            let mut line = Vec::new();
            for t in 0..(2 + r.below(6)) {
                if t > 0 {
                    line.push(Unit::Char(' '));
                }
                for _ in 0..(1 + r.below(3)) {
                    match r.below(5) {
                        0 | 1 => line.extend(r.pick(&words).chars().map(Unit::Char)),
                        2 | 3 => line.push(Unit::Char(high_char(r))),
                        _ if surrogates => {
                            line.push(Unit::Surrogate(0xD800 + r.below(0x800) as u16))
                        }
                        _ => line.push(Unit::Char('é')),
                    }
                }
            }
            line
        })
        .collect()
}

fn utf16_units(units: &[Unit]) -> Vec<u16> {
    let mut v = Vec::new();
    for u in units {
        match *u {
            Unit::Char(c) => {
                let mut b = [0u16; 2];
                v.extend_from_slice(c.encode_utf16(&mut b));
            }
            Unit::Surrogate(s) => v.push(s),
        }
    }
    v
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64(data: &[u8], pad: bool) -> String {
    let mut s = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            s.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
        if pad {
            for _ in chunk.len()..3 {
                s.push('=');
            }
        }
    }
    s
}

/// UTF-7 with every non-ASCII run (lone surrogates included) in one
/// `+...-` block.
fn utf7(line: &[Unit]) -> String {
    let mut s = String::new();
    let mut run: Vec<u16> = Vec::new();
    let flush = |run: &mut Vec<u16>, s: &mut String| {
        if !run.is_empty() {
            let bytes: Vec<u8> = run.iter().flat_map(|u| u.to_be_bytes()).collect();
            s.push('+');
            s.push_str(&base64(&bytes, false));
            s.push('-');
            run.clear();
        }
    };
    for u in line {
        match *u {
            Unit::Char(c) if c.is_ascii() && c != '+' => {
                flush(&mut run, &mut s);
                s.push(c);
            }
            _ => run.extend(utf16_units(std::slice::from_ref(u))),
        }
    }
    flush(&mut run, &mut s);
    s
}

fn escaped(line: &[Unit], raw: bool) -> String {
    let mut s = String::new();
    for u in line {
        match *u {
            Unit::Char(c) if c.is_ascii() => s.push(c),
            Unit::Char(c) if (c as u32) < 0x100 && raw => {
                s.push_str(&format!("\\u{:04x}", c as u32))
            }
            Unit::Char(c) if (c as u32) < 0x10000 => s.push_str(&format!("\\u{:04x}", c as u32)),
            Unit::Char(c) => s.push_str(&format!("\\U{:08x}", c as u32)),
            Unit::Surrogate(x) => s.push_str(&format!("\\u{x:04x}")),
        }
    }
    s
}

fn plain(line: &[Unit]) -> String {
    line.iter()
        .map(|u| match *u {
            Unit::Char(c) => c,
            Unit::Surrogate(_) => unreachable!("utf-8 carriers get no surrogates"),
        })
        .collect()
}

fn part(r: &mut XorShift, carrier: Carrier, out: &mut Vec<u8>) {
    let ls = lines(r, carrier.carries_surrogates());
    let (head, body): (String, Vec<u8>) = match carrier {
        Carrier::Utf8 => (
            "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n".into(),
            ls.iter()
                .map(|l| plain(l) + "\n")
                .collect::<String>()
                .into_bytes(),
        ),
        Carrier::NonTextUtf8 => (
            "Content-Type: application/octet-stream; charset=utf-8\n".into(),
            ls.iter()
                .map(|l| plain(l) + "\n")
                .collect::<String>()
                .into_bytes(),
        ),
        Carrier::Utf16 => {
            let text: Vec<Unit> = ls
                .iter()
                .flat_map(|l| l.iter().copied().chain([Unit::Char('\n')]))
                .collect();
            let bytes: Vec<u8> = [0xFEFFu16]
                .into_iter()
                .chain(utf16_units(&text))
                .flat_map(|u| u.to_be_bytes())
                .collect();
            let b = base64(&bytes, true);
            let wrapped: String = b
                .as_bytes()
                .chunks(76)
                .map(|c| String::from_utf8_lossy(c).into_owned() + "\n")
                .collect();
            (
                "Content-Type: text/plain; charset=utf-16\nContent-Transfer-Encoding: base64\n"
                    .into(),
                wrapped.into_bytes(),
            )
        }
        Carrier::HtmlEntities => {
            let body: String = ls
                .iter()
                .map(|l| {
                    let t: String = l
                        .iter()
                        .map(|u| match *u {
                            Unit::Char(c) if c.is_ascii() => c.to_string(),
                            Unit::Char(c) if r.below(2) == 0 => format!("&#x{:X};", c as u32),
                            Unit::Char(c) => format!("&#{};", c as u32),
                            Unit::Surrogate(_) => unreachable!(),
                        })
                        .collect();
                    format!("<p>{t}</p>\n")
                })
                .collect();
            (
                "Content-Type: text/html; charset=us-ascii\n".into(),
                format!("<html><body>\n{body}&#xD800; &#x10FFFF;&#55296;</body></html>\n")
                    .into_bytes(),
            )
        }
        Carrier::Utf7 => (
            "Content-Type: text/plain; charset=utf-7\n".into(),
            ls.iter()
                .map(|l| utf7(l) + "\n")
                .collect::<String>()
                .into_bytes(),
        ),
        Carrier::UnicodeEscape | Carrier::RawUnicodeEscape => {
            let raw = matches!(carrier, Carrier::RawUnicodeEscape);
            let cs = if raw {
                "raw-unicode-escape"
            } else {
                "unicode_escape"
            };
            let sub = if r.below(3) == 0 { "html" } else { "plain" };
            (
                format!("Content-Type: text/{sub}; charset={cs}\n"),
                ls.iter()
                    .map(|l| escaped(l, raw) + "\n")
                    .collect::<String>()
                    .into_bytes(),
            )
        }
    };
    out.extend_from_slice(head.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(&body);
}

fn message(r: &mut XorShift, first: Option<Carrier>) -> Vec<u8> {
    let mut out = b"From: a@example.com\nSubject: high chars\nMIME-Version: 1.0\n".to_vec();
    let n = 1 + r.below(3);
    out.extend_from_slice(b"Content-Type: multipart/mixed; boundary=\"BND\"\n\npreamble\n");
    for i in 0..n {
        out.extend_from_slice(b"--BND\n");
        let c = match (i, first) {
            (0, Some(c)) => c,
            _ => Carrier::ALL[r.below(Carrier::ALL.len())],
        };
        part(r, c, &mut out);
    }
    out.extend_from_slice(b"--BND--\n");
    out
}

fn ours(raw: &[u8]) -> String {
    match digest::predigest(raw) {
        Ok(p) => {
            let lines: Vec<String> = p
                .iter()
                .map(|l| l.iter().map(|b| format!("{b:02x}")).collect::<String>())
                .collect();
            format!("OK {} {}", p.digest(), lines.join(","))
        }
        Err(_) => "ERR".to_string(),
    }
}

#[test]
fn high_plane16_chars_and_lone_surrogates_match_reference() {
    let Some(venv) =
        pyzor_testkit::ref_venv("high_plane16_chars_and_lone_surrogates_match_reference")
    else {
        return;
    };
    let mut r = XorShift::new(0x0010_ffff_d800_0001);
    let mut msgs = Vec::new();
    // Every carrier alone, then random mixtures.
    for c in Carrier::ALL {
        for _ in 0..40 {
            msgs.push(message(&mut r, Some(c)));
        }
    }
    for _ in 0..300 {
        msgs.push(message(&mut r, None));
    }
    // Fixed cases: a genuine U+10FFFF in utf-8 kept; U+10FFFF next to a lone
    // surrogate in one unicode_escape text (the re-decode with another
    // block); an all-high line.
    msgs.push(
        "Content-Type: text/plain; charset=utf-8\n\nabc \u{10ffff}\u{10f800}x def ghij\n"
            .as_bytes()
            .to_vec(),
    );
    msgs.push(
        b"Content-Type: text/plain; charset=unicode_escape\n\nabc \\U0010ffff\\ud800x\\udfff def ghij\n"
            .to_vec(),
    );
    msgs.push(
        b"Content-Type: text/plain; charset=utf-7\n\nabcd +2//f/9gA-x +2//f/w- efgh\n".to_vec(),
    );
    let refs = ref_digest(&venv, &msgs, None);
    assert_eq!(refs.len(), msgs.len());
    let mut fails = Vec::new();
    let mut kept_high = 0;
    for (i, (m, want)) in msgs.iter().zip(&refs).enumerate() {
        let got = ours(m);
        let want = if want.starts_with("ERR") {
            "ERR"
        } else {
            want.as_str()
        };
        // Genuine U+10F800.. chars survive in the reference's lines (f4 8f).
        if want.contains("f48f") {
            kept_high += 1;
        }
        if got != want {
            fails.push(format!(
                "#{i}:\n  msg  {}\n  ours {got}\n  ref  {want}",
                String::from_utf8_lossy(m).escape_debug()
            ));
        }
    }
    eprintln!(
        "high chars: {} messages, {} with U+10F800.. kept by the reference, {} mismatches",
        msgs.len(),
        kept_high,
        fails.len()
    );
    assert!(fails.is_empty(), "mismatches:\n{}", fails.join("\n"));
    assert!(
        kept_high > msgs.len() / 4,
        "the generator must exercise the range"
    );
}
