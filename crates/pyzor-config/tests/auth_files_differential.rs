//! `auth::parse_passwd` / `auth::parse_access` against the reference's
//! `pyzor.config.load_passwd_file` / `load_access_file` on generated files:
//! the same accounts and the same permissions per user. Needs the reference
//! virtualenv (`PYZOR_REF_VENV`, else target/ref-venv); skips loudly
//! without it.

use pyzor_protocol::auth::{parse_access, parse_passwd};
use pyzor_testkit::{Oracle, XorShift};

const DRIVER: &str = r#"
import sys, os, tempfile, logging
logging.disable(logging.CRITICAL)
import pyzor.config
d = tempfile.mkdtemp()
pw, ac = os.path.join(d, "p"), os.path.join(d, "a")
for line in sys.stdin:
    a, b = line.rstrip("\n").split("|")
    with open(pw, "wb") as f: f.write(bytes.fromhex(a))
    with open(ac, "wb") as f: f.write(bytes.fromhex(b))
    accounts = pyzor.config.load_passwd_file(pw)
    acl = pyzor.config.load_access_file(ac, accounts)
    acc = ",".join(sorted(u + "=" + k for u, k in accounts.items()))
    perms = ",".join(sorted(u + ":" + " ".join(sorted(ops)) for u, ops in acl.items()))
    print((acc + "|" + perms).encode("utf-8").hex())
"#;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn ours(passwd: &str, access: &str) -> String {
    let (acc, _) = parse_passwd(passwd);
    let mut a: Vec<String> = acc
        .users()
        .map(|u| format!("{u}={}", acc.key(u).unwrap()))
        .collect();
    a.sort();
    let (acl, _) = parse_access(access, &acc);
    let mut p: Vec<String> = acl
        .summary()
        .into_iter()
        .map(|(u, mut ops)| {
            ops.sort();
            format!("{u}:{}", ops.join(" "))
        })
        .collect();
    p.sort();
    hex(format!("{}|{}", a.join(","), p.join(",")).as_bytes())
}

fn generate(rng: &mut XorShift, lines: &[&str], n: usize) -> String {
    let mut s = String::new();
    for _ in 0..rng.below(n) {
        s.push_str(rng.pick(lines));
        s.push_str(rng.pick(&["\n", "\r\n", "\r"]));
    }
    s
}

#[test]
fn passwd_and_access_match_the_reference() {
    let Some(venv) = pyzor_testkit::ref_venv("passwd_and_access_match_the_reference") else {
        return;
    };
    let python = venv.join("bin/python3");
    const PW: &[&str] = &[
        "bob : KEY1",
        "alice:key2",
        "Carol : k3",
        "#dan : x",
        " #erin : y",
        "",
        "  ",
        "bad line",
        "a:b:c",
        "bob : other",
        "anonymous : z",
        "ünï : k",
        "frank\t:\tk\t",
    ];
    const AC: &[&str] = &[
        "all : all : allow",
        "all : all : deny",
        "ping : all : allow",
        "check report : anonymous : allow",
        "whitelist : bob : deny",
        "all : bob : allow",
        "ping check : alice carol : allow",
        "check : Carol : allow",
        "foo : bob : allow",
        "PING : BOB : ALLOW",
        "ping : anonymous",
        "ping : anonymous : maybe",
        "# x : y : allow",
        " #x : y : allow",
        "",
        "info pong : all anonymous : allow",
        "all : alice : deny",
        "report:frank:allow",
    ];
    let mut rng = XorShift::new(0xdeadbeefcafef00d);
    let cases: Vec<(String, String)> = (0..1500)
        .map(|_| (generate(&mut rng, PW, 8), generate(&mut rng, AC, 8)))
        .collect();
    let feed: Vec<String> = cases
        .iter()
        .map(|(p, a)| format!("{}|{}", hex(p.as_bytes()), hex(a.as_bytes())))
        .collect();
    let lines = Oracle::new(python).args(["-c", DRIVER]).answers(&feed);
    let bad: Vec<String> = cases
        .iter()
        .zip(&lines)
        .filter(|((p, a), py)| ours(p, a) != **py)
        .map(|((p, a), py)| {
            let dec = |h: &str| {
                String::from_utf8(
                    (0..h.len())
                        .step_by(2)
                        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
                        .collect(),
                )
                .unwrap()
            };
            format!(
                "passwd {p:?} access {a:?}\n  python: {}\n  ours:   {}",
                dec(py),
                dec(&ours(p, a))
            )
        })
        .collect();
    assert!(
        bad.is_empty(),
        "{} of {} differ:\n{}",
        bad.len(),
        cases.len(),
        bad.iter().take(6).cloned().collect::<Vec<_>>().join("\n")
    );
}
