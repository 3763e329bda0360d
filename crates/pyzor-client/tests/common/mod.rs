//! Shared helpers of the interop tests: servers on free ports, client home
//! directories, and running our client and the reference client side by
//! side.

#![allow(dead_code)]

use std::io::Write;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// bob's key as in the reference's functional tests (docs/protocol.md §4.2).
pub const BOB_KEY: &str = "cf88277c5d4abdc0a3f56f416011966d04a3f462";

/// A pyzord (reference or ours) on a free loopback port, killed on drop.
pub struct Server {
    pub child: Child,
    pub port: u16,
    pub home: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether something answers a ping on the port.
fn answers(port: u16) -> bool {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let req = b"Op: ping\nThread: 4242\nPV: 2.1\nUser: anonymous\nTime: 1700000000\nSig: 6c75b1ab69b38151e681e4ac6b3d93727f9212b5\n\n";
    if s.send_to(req, ("127.0.0.1", port)).is_err() {
        return false;
    }
    let mut buf = [0u8; 512];
    s.recv(&mut buf).is_ok()
}

/// Account and ACL files for a server: bob may do everything, anonymous
/// keeps the default rights (check report ping pong info).
pub fn write_server_accounts(home: &Path) {
    std::fs::write(home.join("pyzord.passwd"), format!("bob : {BOB_KEY}\n")).unwrap();
    std::fs::write(
        home.join("pyzord.access"),
        "all : bob : allow\ncheck report ping pong info : anonymous : allow\n",
    )
    .unwrap();
}

/// Start a server binary (`pyzord` of the venv or ours) with
/// `--homedir H -a 127.0.0.1 -p PORT` plus `extra`; `None` when it does not
/// come up within 15 s.
pub fn start_server(bin: &Path, extra: &[&str], with_accounts: bool) -> Option<Server> {
    start_server_via(bin, &[], extra, with_accounts)
}

/// [`start_server`] through a launcher: `program pre... --homedir H -a
/// 127.0.0.1 -p PORT extra...` (e.g. Python running the reference pyzord
/// with a shifted clock).
pub fn start_server_via(
    program: &Path,
    pre: &[&str],
    extra: &[&str],
    with_accounts: bool,
) -> Option<Server> {
    let home = pyzor_testkit::temp_home();
    if with_accounts {
        write_server_accounts(home.path());
    }
    let port = pyzor_testkit::free_udp_port();
    let child = Command::new(program)
        .args(pre)
        .arg("--homedir")
        .arg(home.path())
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let server = Server { child, port, home };
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(15) {
        if answers(port) {
            return Some(server);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// A client home directory with a servers file and optional accounts.
pub struct ClientHome {
    pub dir: tempfile::TempDir,
}

impl ClientHome {
    pub fn new(servers: &[String], accounts: &[(String, u16, &str, &str)]) -> ClientHome {
        let dir = pyzor_testkit::temp_home();
        let mut s = String::new();
        for line in servers {
            s.push_str(line);
            s.push('\n');
        }
        std::fs::write(dir.path().join("servers"), s).unwrap();
        if !accounts.is_empty() {
            let mut a = String::new();
            for (host, port, user, key) in accounts {
                a.push_str(&format!("{host} : {port} : {user} : ,{key}\n"));
            }
            std::fs::write(dir.path().join("accounts"), a).unwrap();
        }
        ClientHome { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// stdout and exit code of one client run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

/// Run a client binary with `--homedir home` and `args`, feeding `stdin`.
pub fn run_client(bin: &Path, home: &Path, args: &[&str], stdin: &[u8]) -> Run {
    let mut child = Command::new(bin)
        .arg("--homedir")
        .arg(home)
        .args(args)
        .env("HOME", home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn client");
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().expect("client output");
    feeder.join().unwrap();
    Run {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code().unwrap_or(-1),
    }
}

/// The two clients.
pub struct Clients {
    pub reference: PathBuf,
    pub ours: PathBuf,
    pub venv: PathBuf,
}

impl Clients {
    pub fn get(test: &str) -> Option<Clients> {
        let venv = pyzor_testkit::ref_venv(test)?;
        Some(Clients {
            reference: venv.join("bin/pyzor"),
            ours: pyzor_testkit::our_bin("pyzor"),
            venv,
        })
    }

    pub fn pyzord(&self) -> PathBuf {
        self.venv.join("bin/pyzord")
    }

    /// Run both clients the same way.
    pub fn both(&self, home: &Path, args: &[&str], stdin: &[u8]) -> (Run, Run) {
        (
            run_client(&self.reference, home, args, stdin),
            run_client(&self.ours, home, args, stdin),
        )
    }

    /// Run both and require identical stdout and exit codes.
    pub fn same(&self, home: &Path, args: &[&str], stdin: &[u8]) -> Run {
        let (r, o) = self.both(home, args, stdin);
        assert_eq!(
            (&o.stdout, o.code),
            (&r.stdout, r.code),
            "args {args:?}: ours (left) differs from the reference (right); reference stderr: {}",
            r.stderr
        );
        o
    }
}

/// Lines sorted, for multi-server output whose order is the reference's
/// completion order (nondeterministic; ours is servers-file order).
pub fn sorted_lines(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.lines().map(str::to_string).collect();
    v.sort();
    v
}

/// `n` fresh random-looking digests, unique per test run.
pub fn fresh_digests(tag: &str, n: usize) -> Vec<String> {
    use sha1::{Digest, Sha1};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    (0..n)
        .map(|i| {
            let h = Sha1::digest(format!("{tag}-{nanos}-{i}-{}", std::process::id()).as_bytes());
            h.iter().map(|b| format!("{b:02x}")).collect()
        })
        .collect()
}

/// Digests as `-s digests` input.
pub fn digest_input(d: &[String]) -> Vec<u8> {
    let mut s = d.join("\n");
    s.push('\n');
    s.into_bytes()
}

/// A UDP server answering each request with `reply(request_text, thread)`.
pub struct Fake {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl Fake {
    pub fn start(
        bind: &str,
        reply: impl Fn(&str, &str) -> Option<Vec<u8>> + Send + 'static,
    ) -> Option<Fake> {
        let sock = UdpSocket::bind(bind).ok()?;
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let port = sock.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let st = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut buf = [0u8; 9000];
            // Bounded: at most 10 minutes, then give up.
            let t0 = std::time::Instant::now();
            while !st.load(Ordering::Relaxed) && t0.elapsed() < Duration::from_secs(600) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let req = String::from_utf8_lossy(&buf[..n]).into_owned();
                let thread = req
                    .lines()
                    .find_map(|l| l.strip_prefix("Thread: "))
                    .unwrap_or("")
                    .to_string();
                if let Some(r) = reply(&req, &thread) {
                    let _ = sock.send_to(&r, from);
                }
                seen.push(req);
            }
            seen
        });
        Some(Fake {
            port,
            stop,
            thread: Some(thread),
        })
    }

    pub fn finish(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
