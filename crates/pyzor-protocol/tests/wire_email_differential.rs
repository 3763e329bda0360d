//! `wire::email` (header parsing) and `wire::render` (value serialisation)
//! against CPython 3.11's `email` package on a few thousand generated
//! header blocks: the same fields, in the same order, serialised to the same
//! bytes or refused with the same exception text. Skips loudly without
//! /usr/bin/python3.

use pyzor_protocol::wire::email::Headers;
use pyzor_protocol::wire::render::render_field_value;
use pyzor_testkit::{Oracle, XorShift};

const DRIVER: &str = r#"
import sys, email, email.message
for line in sys.stdin:
    data = bytes.fromhex(line.strip())
    m = email.message_from_bytes(data)
    out = []
    for name, value in m._headers:
        v = m.policy.header_fetch_parse(name, value)
        r = email.message.Message()
        r[name] = v
        try:
            out.append("O" + r.as_string().encode("utf8").hex())
        except Exception as e:
            out.append("E" + str(e).encode("utf8").hex())
    print("|".join(out))
"#;

fn ours(data: &[u8]) -> String {
    let mut h = Headers::new();
    h.parse(data);
    let mut out = Vec::new();
    for f in h.fields() {
        let name = &data[f.name.start as usize..f.name.end as usize];
        let value = &data[f.value.start as usize..f.value.end as usize];
        let mut line = name.to_vec();
        line.extend_from_slice(b": ");
        match render_field_value(name, value, &mut line) {
            Ok(()) => {
                line.extend_from_slice(b"\n\n");
                out.push(format!("O{}", hex(&line)));
            }
            Err(e) => out.push(format!("E{}", hex(e.0.as_bytes()))),
        }
    }
    out.join("|")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn generate(rng: &mut XorShift) -> Vec<u8> {
    const NAMES: &[&[u8]] = &[
        b"Op",
        b"Thread",
        b"PV",
        b"Op-Digest",
        b"User",
        b"Sig",
        b"From ",
        b"",
        b" Op",
        b"X-1",
    ];
    const SEPS: &[&[u8]] = &[b": ", b":", b" :", b":\t", b": \xff"];
    const VALUE: &[&[u8]] = &[
        b" ",
        b"\t",
        b"ping",
        b"1234",
        b"\x0b",
        b"\x0c",
        b"\x1c",
        b"\x1f",
        b"\x85",
        b"\xff",
        b"\xc3\xa9",
        b"\x00",
        b"X: y",
        b"a b",
        b"=?",
        b"  ",
        b"-",
        b"_",
        b"(",
        b"\\",
        b"\n ",
        b"\n\t",
        b"\r\n ",
        b"\n",
        b"\r",
        b":",
    ];
    const ENDS: &[&[u8]] = &[b"\n", b"\r\n", b"\r", b"\n\n", b""];
    let mut d = Vec::new();
    for _ in 0..1 + rng.below(5) {
        if rng.below(10) < 8 {
            d.extend_from_slice(rng.pick(NAMES));
            d.extend_from_slice(rng.pick(SEPS));
        }
        for _ in 0..rng.below(6) {
            d.extend_from_slice(rng.pick(VALUE));
        }
        d.extend_from_slice(rng.pick(ENDS));
    }
    d
}

#[test]
fn headers_and_rendering_match_cpython() {
    let Some(python) = pyzor_testkit::system_python("headers_and_rendering_match_cpython") else {
        return;
    };
    let mut rng = XorShift::new(0x9e3779b97f4a7c15);
    let mut inputs: Vec<Vec<u8>> = vec![
        b"Op: ping\nThread: 1\n 2\nPV: 2.1\n".to_vec(),
        b"Thread: 12 \xc3\xa9\n 5\n".to_vec(),
        b"Thread: a 1\x0c 2\n".to_vec(),
    ];
    for _ in 0..4000 {
        inputs.push(generate(&mut rng));
    }
    let feed: Vec<String> = inputs.iter().map(|i| hex(i)).collect();
    let lines = Oracle::new(python).args(["-c", DRIVER]).answers(&feed);
    let mut bad = Vec::new();
    for (i, (input, py)) in inputs.iter().zip(&lines).enumerate() {
        let rs = ours(input);
        if rs != *py {
            bad.push(format!(
                "#{i} {:?}\n  python: {py}\n  ours:   {rs}",
                String::from_utf8_lossy(input)
            ));
        }
    }
    // The generated inputs must exercise the interesting paths.
    let fields = lines
        .iter()
        .map(|l| l.split('|').filter(|x| !x.is_empty()).count())
        .sum::<usize>();
    let errors = lines
        .iter()
        .map(|l| l.split('|').filter(|x| x.starts_with('E')).count())
        .sum::<usize>();
    let encoded = lines
        .iter()
        .filter(|l| l.contains(&hex(b"=?unknown-8bit?")))
        .count();
    let folded = lines.iter().filter(|l| l.contains(&hex(b"\n "))).count();
    eprintln!("{fields} fields, {errors} refused, {encoded} inputs with encoded words, {folded} with folded lines");
    assert!(fields > 2000 && errors > 50 && encoded > 100 && folded > 50);
    assert!(
        bad.is_empty(),
        "{} of {} differ:\n{}",
        bad.len(),
        inputs.len(),
        bad.iter().take(10).cloned().collect::<Vec<_>>().join("\n")
    );
}
