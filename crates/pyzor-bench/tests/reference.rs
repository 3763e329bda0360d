//! pyzor-bench against the reference Python pyzord 1.1.2 (skipped loudly
//! without the virtualenv): its requests are accepted, anonymous and signed,
//! a prefill makes every later check hit, and a wrong key gives 401.

use serde_json::Value;
use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_pyzor-bench");
const KEY: &str = "5f1d0e3c7a9b2468ace13579bdf02468ace13579";

struct Pyzord(Child);

impl Drop for Pyzord {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_ready(port: u16) -> bool {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 1024];
    while Instant::now() < deadline {
        let _ = s.send_to(
            b"Op: ping\nThread: 1024\nPV: 2.1\nUser: anonymous\nTime: 0\nSig: 0\n\n",
            ("127.0.0.1", port),
        );
        if s.recv_from(&mut buf).is_ok() {
            return true;
        }
    }
    false
}

fn load(port: u16, args: &[&str]) -> (Value, i32) {
    let out = Command::new(BIN)
        .args([
            "load",
            "-p",
            &port.to_string(),
            "--json",
            "-W",
            "0",
            "-d",
            "20",
        ])
        .args(args)
        .output()
        .expect("run pyzor-bench load");
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Value =
        serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("bad JSON {text:?}: {e}"));
    (v, out.status.code().unwrap_or(-1))
}

#[test]
fn reference_pyzord_accepts_anonymous_and_signed_load() {
    let Some(venv) = pyzor_testkit::ref_venv("reference_pyzord_accepts_anonymous_and_signed_load")
    else {
        return;
    };
    let home = pyzor_testkit::temp_home();
    std::fs::write(
        home.path().join("pyzord.passwd"),
        format!("bench : {KEY}\n"),
    )
    .unwrap();
    std::fs::write(
        home.path().join("pyzord.access"),
        "all : bench : allow\ncheck report ping : anonymous : allow\n",
    )
    .unwrap();
    let port = pyzor_testkit::free_udp_port();
    let _server = Pyzord(
        Command::new(venv.join("bin/pyzord"))
            .arg("--homedir")
            .arg(home.path())
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start reference pyzord"),
    );
    assert!(
        wait_ready(port),
        "reference pyzord did not answer on {port}"
    );

    // Prefill 300 digests anonymously, then every check from that pool hits.
    let (v, code) = load(port, &["-o", "report", "-m", "seq", "-P", "300", "-w", "8"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        (v["sent"].as_u64(), v["responses"].as_u64()),
        (Some(300), Some(300)),
        "{v}"
    );
    let (v, code) = load(port, &["-o", "check", "-P", "300", "-w", "4", "-c", "400"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["responses"].as_u64(), Some(400), "{v}");
    assert_eq!(v["check_hit_pct"].as_f64(), Some(100.0), "{v}");

    // Signed with the key in upper case (the server lower-cases it).
    let upper = KEY.to_uppercase();
    let (v, code) = load(
        port,
        &[
            "-o",
            "check:90,report:10",
            "-P",
            "300",
            "-w",
            "4",
            "-c",
            "300",
            "-u",
            "bench",
            "-k",
            &upper,
        ],
    );
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["codes"]["200"].as_u64(), Some(300), "{v}");

    // A wrong key: every answer is 401, which -e 401 expects.
    let (v, code) = load(
        port,
        &[
            "-o", "check", "-w", "2", "-c", "20", "-u", "bench", "-k", "00", "-e", "401",
        ],
    );
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["codes"]["401"].as_u64(), Some(20), "{v}");
    // And without -e the same load is reported as not OK.
    let (v, code) = load(
        port,
        &[
            "-o", "check", "-w", "2", "-c", "20", "-u", "bench", "-k", "00",
        ],
    );
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["unexpected_code"].as_u64(), Some(20), "{v}");
}
