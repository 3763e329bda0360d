//! pyzor-bench against itself: the echo responder and the load generator,
//! each bounded by count and time. Counts only, never timings.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_pyzor-bench");

/// An echo responder on a free port that is killed when dropped.
struct Echo {
    child: Child,
    port: u16,
}

impl Echo {
    fn start(threads: u32) -> Echo {
        let mut child = Command::new(BIN)
            .args([
                "echo",
                "-a",
                "127.0.0.1",
                "-p",
                "0",
                "-d",
                "30",
                "-T",
                &threads.to_string(),
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start pyzor-bench echo");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read first line");
        // "pyzor-bench echo: listening on 127.0.0.1:PORT with N thread(s)"
        let port = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("127.0.0.1:"))
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        Echo { child, port }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn load(args: &[&str]) -> (Value, i32) {
    let out = Command::new(BIN)
        .arg("load")
        .args(args)
        .arg("--json")
        .output()
        .expect("run pyzor-bench load");
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Value =
        serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("bad JSON {text:?}: {e}"));
    (v, out.status.code().unwrap_or(-1))
}

fn u(v: &Value, k: &str) -> u64 {
    v[k].as_u64()
        .unwrap_or_else(|| panic!("{k} missing in {v}"))
}

fn assert_consistent(v: &Value, count: u64) {
    assert_eq!(u(v, "sent"), count, "{v}");
    assert_eq!(u(v, "sent"), u(v, "responses") + u(v, "lost"), "{v}");
    assert_eq!(u(v, "stray"), 0, "{v}");
    assert_eq!(u(v, "malformed"), 0, "{v}");
    assert_eq!(u(v, "unexpected_code"), 0, "{v}");
    let codes = v["codes"].as_object().expect("codes");
    assert_eq!(codes.keys().collect::<Vec<_>>(), vec!["200"], "{v}");
    assert_eq!(codes["200"].as_u64(), Some(u(v, "responses")), "{v}");
    assert_eq!(v["ok"], Value::Bool(true), "{v}");
    // Loopback with a 2 s timeout and a window far below the socket buffer
    // loses nothing; a loss here would be a matching bug, not the network.
    assert_eq!(u(v, "lost"), 0, "{v}");
}

#[test]
fn load_against_echo_counts_are_consistent() {
    let echo = Echo::start(1);
    let port = echo.port.to_string();
    let (v, code) = load(&[
        "-p",
        &port,
        "-w",
        "64",
        "-c",
        "20000",
        "-d",
        "5",
        "-W",
        "0",
        "-o",
        "check:90,report:10",
    ]);
    assert_eq!(code, 0, "{v}");
    assert_consistent(&v, 20000);
    let per_op = v["per_op"].as_array().expect("per_op");
    let ops: Vec<&str> = per_op.iter().map(|o| o["op"].as_str().unwrap()).collect();
    assert_eq!(ops, ["check", "report"], "{v}");
    assert_eq!(
        per_op
            .iter()
            .map(|o| o["sent"].as_u64().unwrap())
            .sum::<u64>(),
        20000
    );
}

#[test]
fn window_one_signed_and_two_threads_against_two_echo_threads() {
    let echo = Echo::start(2);
    let port = echo.port.to_string();
    let (v, code) = load(&[
        "-p", &port, "-w", "1", "-c", "3000", "-d", "5", "-W", "0", "-u", "bench", "-k", "ABC",
    ]);
    assert_eq!(code, 0, "{v}");
    assert_consistent(&v, 3000);
    let (v, code) = load(&[
        "-p", &port, "-w", "256", "-T", "2", "-c", "30000", "-d", "5", "-W", "0", "-m", "new",
    ]);
    assert_eq!(code, 0, "{v}");
    assert_consistent(&v, 30000);
    assert_eq!(u(&v, "threads"), 2);
}

#[test]
fn seq_population_sends_each_digest_once() {
    let echo = Echo::start(1);
    let port = echo.port.to_string();
    let (v, code) = load(&[
        "-p", &port, "-o", "report", "-m", "seq", "-P", "5000", "-w", "32", "-d", "5", "-W", "0",
    ]);
    assert_eq!(code, 0, "{v}");
    assert_consistent(&v, 5000);
}

#[test]
fn unanswered_requests_are_lost_and_the_exit_status_says_so() {
    // A port nobody listens on: every request is lost, none answered.
    let port = pyzor_testkit::free_udp_port().to_string();
    let (v, code) = load(&[
        "-p", &port, "-w", "4", "-c", "8", "-d", "1", "-W", "0", "-t", "100",
    ]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(u(&v, "responses"), 0, "{v}");
    assert_eq!(u(&v, "sent"), u(&v, "lost"), "{v}");
    assert!(u(&v, "sent") > 0, "{v}");
}

#[test]
fn a_tiny_timeout_turns_answers_into_lost_and_late_without_strays() {
    // With a 1 ms timeout and a deep window many answers arrive after their
    // request was given up: they must be counted late (never stray), and
    // every sent request is still either answered or lost.
    let echo = Echo::start(1);
    let port = echo.port.to_string();
    let (v, _) = load(&[
        "-p", &port, "-w", "1024", "-c", "50000", "-d", "5", "-W", "0", "-t", "1",
    ]);
    assert_eq!(u(&v, "sent"), u(&v, "responses") + u(&v, "lost"), "{v}");
    assert!(u(&v, "late") <= u(&v, "lost"), "{v}");
    assert_eq!(u(&v, "stray"), 0, "{v}");
    assert_eq!(u(&v, "malformed"), 0, "{v}");
}

#[test]
fn sources_bind_the_sockets_to_that_many_loopback_networks() {
    // A silent server that notes where datagrams come from.
    let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    server
        .set_read_timeout(Some(std::time::Duration::from_millis(200)))
        .unwrap();
    let port = server.local_addr().unwrap().port().to_string();
    let seen = std::thread::spawn(move || {
        let mut ips = std::collections::BTreeSet::new();
        let mut buf = [0u8; 2048];
        let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < end {
            match server.recv_from(&mut buf) {
                Ok((_, from)) => {
                    ips.insert(from.ip().to_string());
                }
                Err(_) if !ips.is_empty() => break,
                Err(_) => {}
            }
        }
        ips
    });
    let (v, _) = load(&[
        "-p",
        &port,
        "-w",
        "8",
        "--sockets",
        "8",
        "--sources",
        "4",
        "-c",
        "8",
        "-d",
        "1",
        "-W",
        "0",
        "-t",
        "100",
    ]);
    assert_eq!(u(&v, "sources"), 4, "{v}");
    assert_eq!(u(&v, "sent"), 8, "{v}");
    let ips: Vec<String> = seen.join().unwrap().into_iter().collect();
    assert_eq!(ips, ["127.0.1.1", "127.0.2.1", "127.0.3.1", "127.0.4.1"]);
}

#[test]
fn sources_need_a_loopback_target() {
    let out = Command::new(BIN)
        .args(["load", "-H", "::1", "-p", "9", "--sources", "2", "-d", "1"])
        .output()
        .expect("run pyzor-bench load");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--sources 2 needs a 127.x.x.x target"));
}
