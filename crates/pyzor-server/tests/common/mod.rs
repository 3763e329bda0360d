//! Shared helpers of the pyzord integration tests: start our server and the
//! reference one, send raw datagrams, run the reference client.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const PING: &[u8] = b"Op: ping\nThread: 1111\nPV: 2.1\n\n";

/// Send one datagram to 127.0.0.1:port and wait (up to `wait`) for one reply.
pub fn raw_wait(port: u16, dgram: &[u8], wait: Duration) -> Option<Vec<u8>> {
    // Never from `port` itself: while no server holds it (one starting),
    // the kernel may give this socket that very port, and the datagram
    // would come back as its own reply (a server "ready" before it bound,
    // seen in CI as a report that then got no answer).
    let s = loop {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        if s.local_addr().unwrap().port() != port {
            break s;
        }
    };
    s.set_read_timeout(Some(wait)).unwrap();
    s.send_to(dgram, ("127.0.0.1", port)).unwrap();
    let mut buf = vec![0u8; 70000];
    s.recv_from(&mut buf).ok().map(|(n, _)| buf[..n].to_vec())
}

pub fn raw(port: u16, dgram: &[u8]) -> Vec<u8> {
    raw_wait(port, dgram, Duration::from_secs(5))
        .unwrap_or_else(|| panic!("no reply on port {port} to {dgram:?}"))
}

/// Wait until a server answers a ping.
pub fn wait_ready(port: u16, child: &mut Child) {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(20) {
        if raw_wait(port, PING, Duration::from_millis(200)).is_some() {
            return;
        }
        if let Ok(Some(st)) = child.try_wait() {
            panic!("server on port {port} exited early: {st}");
        }
    }
    panic!("server on port {port} did not answer within 20 s");
}

pub struct Proc {
    pub child: Child,
    pub port: u16,
}

impl Proc {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }
    /// SIGTERM and wait; returns the exit status code.
    pub fn stop(mut self) -> Option<i32> {
        self.signal(libc::SIGTERM);
        let t0 = Instant::now();
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            if t0.elapsed() > Duration::from_secs(10) {
                let _ = self.child.kill();
                panic!("server did not stop within 10 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn pyzord_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_pyzord"))
}

/// Start our pyzord on a free port with `args` (after --homedir/-a/-p).
pub fn start_ours(home: &Path, args: &[&str]) -> Proc {
    let mut p = spawn_ours(home, args, &[]);
    wait_ready(p.port, &mut p.child);
    p
}

/// Spawn our pyzord on a free port with `args` and extra environment
/// variables, without waiting for it; stderr goes to `home/stderr.log`.
pub fn spawn_ours(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Proc {
    let port = pyzor_testkit::free_udp_port();
    let child = Command::new(pyzord_bin())
        .arg("--homedir")
        .arg(home)
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(home.join("stderr.log")).unwrap(),
        ))
        .spawn()
        .expect("spawn pyzord");
    Proc { child, port }
}

/// Start the reference pyzord (gdbm) on a free port.
pub fn start_reference(venv: &Path, home: &Path, args: &[&str]) -> Proc {
    let port = pyzor_testkit::free_udp_port();
    let mut child = Command::new(venv.join("bin/pyzord"))
        .arg("--homedir")
        .arg(home)
        .args([
            "-a",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-e",
            "gdbm",
            "--dsn",
            "pyzord.db",
        ])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn reference pyzord");
    wait_ready(port, &mut child);
    Proc { child, port }
}

/// A client home directory pointing at `port`, with optional accounts.
pub fn client_home(dir: &Path, port: u16, accounts: &[(&str, &str)]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("servers"), format!("127.0.0.1:{port}\n")).unwrap();
    let acc: String = accounts
        .iter()
        .map(|(u, k)| format!("127.0.0.1 : {port} : {u} : salt,{k}\n"))
        .collect();
    std::fs::write(dir.join("accounts"), acc).unwrap();
    dir.to_path_buf()
}

/// Run the reference `pyzor` client; returns (stdout, exit code).
pub fn ref_pyzor(venv: &Path, home: &Path, args: &[&str], stdin: &[u8]) -> (String, i32) {
    let mut child = Command::new(venv.join("bin/pyzor"))
        .arg("--homedir")
        .arg(home)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn reference pyzor");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

/// The reference venv, or a loud skip.
pub fn venv(test: &str) -> Option<PathBuf> {
    pyzor_testkit::ref_venv(test)
}

/// The page pyzord's metrics endpoint on 127.0.0.1:`mport` serves
/// (retried for up to 5 s while the listener starts).
pub fn metrics_page(mport: u16) -> String {
    let t0 = Instant::now();
    loop {
        if let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", mport)) {
            let mut body = String::new();
            c.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
            c.read_to_string(&mut body).unwrap();
            return body;
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "no metrics endpoint");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The value of the sample `line` (a name, with its labels if any) on a
/// metrics page; `None` when the page has no such sample.
pub fn metric_sample(page: &str, line: &str) -> Option<u64> {
    page.lines()
        .find_map(|l| l.strip_prefix(line)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
}

/// A reply with its non-zero record times (`Entered`, `Updated`,
/// `WL-Entered`, `WL-Updated`) replaced by `T`: two servers compared side
/// by side store at different instants.
pub fn mask(reply: &[u8]) -> Vec<u8> {
    let Ok(text) = std::str::from_utf8(reply) else {
        return reply.to_vec();
    };
    text.split_inclusive('\n')
        .map(|l| {
            for f in ["Entered: ", "Updated: ", "WL-Entered: ", "WL-Updated: "] {
                if let Some(v) = l.strip_prefix(f) {
                    if v.trim() != "0" {
                        return format!("{f}T\n");
                    }
                }
            }
            l.to_owned()
        })
        .collect::<String>()
        .into_bytes()
}
