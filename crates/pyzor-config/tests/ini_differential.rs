//! `config::Ini` against CPython 3.11's `configparser.ConfigParser()` (the
//! class the reference scripts use) on generated config files: the same
//! sections, options and interpolated values, or the same kind of error.
//! Skips loudly without /usr/bin/python3.

use pyzor_config::{Ini, IniError};
use pyzor_testkit::{Oracle, XorShift};

const DRIVER: &str = r#"
import sys, configparser, tempfile, os
fd, path = tempfile.mkstemp()
os.close(fd)
for line in sys.stdin:
    with open(path, "wb") as f:
        f.write(bytes.fromhex(line.strip()))
    cp = configparser.ConfigParser()
    try:
        cp.read(path, encoding="utf-8")
    except Exception as e:
        print("ERR " + type(e).__name__)
        continue
    out = []
    for s in cp.sections():
        for o in sorted(cp.options(s)):
            try:
                v = "=" + cp.get(s, o).encode("utf-8").hex()
            except Exception as e:
                v = "!" + type(e).__name__
            out.append(s.encode("utf-8").hex() + "/" + o.encode("utf-8").hex() + v)
    print("OK " + ",".join(out))
os.unlink(path)
"#;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn error_name(e: &IniError) -> &'static str {
    match e {
        IniError::MissingSectionHeader { .. } => "MissingSectionHeaderError",
        IniError::DuplicateSection { .. } => "DuplicateSectionError",
        IniError::DuplicateOption { .. } => "DuplicateOptionError",
        IniError::Parsing { .. } => "ParsingError",
        IniError::InterpolationSyntax { .. } => "InterpolationSyntaxError",
        IniError::InterpolationMissing { .. } => "InterpolationMissingOptionError",
        IniError::InterpolationDepth { .. } => "InterpolationDepthError",
        IniError::NotUtf8 { .. } => "UnicodeDecodeError",
        IniError::Io { .. } | IniError::NoSection(_) => "Other",
    }
}

fn ours(text: &str) -> String {
    let ini = match Ini::parse(text, "config") {
        Ok(i) => i,
        Err(e) => return format!("ERR {}", error_name(&e)),
    };
    let mut out = Vec::new();
    for s in ini.sections() {
        let mut opts: Vec<&str> = ini
            .options(s)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        opts.sort();
        for o in opts {
            let v = match ini.get(s, o) {
                Ok(Some(v)) => format!("={}", hex(v.as_bytes())),
                Ok(None) => "!None".to_owned(),
                Err(e) => format!("!{}", error_name(&e)),
            };
            out.push(format!("{}/{}{}", hex(s.as_bytes()), hex(o.as_bytes()), v));
        }
    }
    format!("OK {}", out.join(","))
}

fn generate(rng: &mut XorShift) -> String {
    const LINES: &[&str] = &[
        "[server]",
        "[client]",
        "[DEFAULT]",
        "[server] trailing",
        "[a]b]",
        "[]",
        "Port = 24441",
        "port=1",
        "PORT : 2",
        "Port = 24441 # comment",
        "LogFile =",
        "LogFile",
        "  continued",
        "\tcontinued",
        "",
        "   ",
        "# comment",
        "; comment",
        "  # indented comment",
        "x = %(home)s/log",
        "home = /h",
        "pct = 50%%",
        "bad = 5%",
        "miss = %(nope)s",
        "a = %(a)s",
        "key = v = w",
        "k: v: w",
        "= v",
        "Ünï = ü",
        "  key = indented",
        "Engine = gdbm",
        "DigestDB = ~/db",
        "k = %(home)s%%",
        "k=%(HOME)s",
    ];
    const ENDS: &[&str] = &["\n", "\r\n", "\r"];
    let mut s = String::new();
    if rng.below(10) < 8 {
        s.push_str("[server]\n");
    }
    for _ in 0..rng.below(9) {
        s.push_str(rng.pick(LINES));
        s.push_str(rng.pick(ENDS));
    }
    s
}

#[test]
fn ini_matches_configparser() {
    let Some(python) = pyzor_testkit::system_python("ini_matches_configparser") else {
        return;
    };
    let mut rng = XorShift::new(0x2545f4914f6cdd1d);
    let inputs: Vec<String> = (0..3000).map(|_| generate(&mut rng)).collect();
    let feed: Vec<String> = inputs.iter().map(|i| hex(i.as_bytes())).collect();
    let lines = Oracle::new(python).args(["-c", DRIVER]).answers(&feed);
    let oks = lines
        .iter()
        .filter(|l| l.starts_with("OK ") && l.len() > 3)
        .count();
    let errs = lines.iter().filter(|l| l.starts_with("ERR")).count();
    eprintln!("{oks} files with options, {errs} refused");
    assert!(oks > 500 && errs > 200);
    let bad: Vec<String> = inputs
        .iter()
        .zip(&lines)
        .filter(|(i, py)| ours(i) != **py)
        .map(|(i, py)| format!("{i:?}\n  python: {py}\n  ours:   {}", ours(i)))
        .collect();
    assert!(
        bad.is_empty(),
        "{} of {} differ:\n{}",
        bad.len(),
        inputs.len(),
        bad.iter().take(8).cloned().collect::<Vec<_>>().join("\n")
    );
}
