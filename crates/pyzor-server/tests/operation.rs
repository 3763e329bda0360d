//! Operating pyzord: SIGUSR1 reload (and a bad file keeping the old rules),
//! SIGTERM, --detach with a pid file, kill -9 durability, the usage log,
//! the metrics endpoint, config/flag precedence and the CLI edge cases.

mod common;
use common::*;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn check_count(port: u16, digest: &str) -> String {
    let r = raw(
        port,
        format!("Op: check\nOp-Digest: {digest}\nThread: 3333\nPV: 2.1\n\n").as_bytes(),
    );
    String::from_utf8(r).unwrap()
}

fn report(port: u16, digest: &str) -> String {
    let r = raw(
        port,
        format!("Op: report\nOp-Digest: {digest}\nThread: 3333\nPV: 2.1\n\n").as_bytes(),
    );
    String::from_utf8(r).unwrap()
}

fn code(reply: &str) -> &str {
    reply
        .lines()
        .next()
        .unwrap_or("")
        .trim_start_matches("Code: ")
}

#[test]
fn sigusr1_reloads_and_a_bad_file_keeps_the_old_rules() {
    let home = pyzor_testkit::temp_home();
    let access = home.path().join("pyzord.access");
    std::fs::write(&access, "ping : anonymous : allow\n").unwrap();
    let srv = start_ours(home.path(), &["-e", "memory"]);
    assert_eq!(code(&check_count(srv.port, "a")), "403");
    std::fs::write(&access, "ping check : anonymous : allow\n").unwrap();
    srv.signal(libc::SIGUSR1);
    let t0 = Instant::now();
    while code(&check_count(srv.port, "a")) != "200" {
        assert!(t0.elapsed() < Duration::from_secs(5), "reload not applied");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A file that cannot be decoded: old rules stay, the reason is logged.
    std::fs::write(&access, b"ping : anonymous : allow\n\xff\xfe\n").unwrap();
    srv.signal(libc::SIGUSR1);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(code(&check_count(srv.port, "a")), "200");
    // An unreadable file (permissions) behaves the same unless we are root.
    std::fs::write(&access, "").unwrap();
    srv.signal(libc::SIGUSR1);
    let t0 = Instant::now();
    while code(&check_count(srv.port, "a")) != "403" {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "empty access file must deny everything"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let port = srv.port;
    assert_eq!(srv.stop(), Some(0));
    let log = std::fs::read_to_string(home.path().join("stderr.log")).unwrap();
    assert!(
        log.contains("SIGUSR1 received. Reloading configuration."),
        "{log}"
    );
    assert!(
        log.contains("Reload failed, the previous accounts and ACL stay in force"),
        "{log}"
    );
    assert!(log.contains("grants nothing to anybody"), "{log}");
    assert!(log.contains("SIGTERM received. Shutting down."), "{log}");
    assert!(log.contains("Server shutdown."), "{log}");
    assert!(
        raw_wait(port, PING, Duration::from_millis(300)).is_none(),
        "stopped server still answers"
    );
}

#[test]
fn detach_writes_pid_file_and_sigterm_removes_it() {
    let home = pyzor_testkit::temp_home();
    let port = pyzor_testkit::free_udp_port();
    let out = home.path().join("detach.out");
    let st = Command::new(pyzord_bin())
        .arg("--homedir")
        .arg(home.path())
        .args([
            "-a",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-e",
            "lmdb",
            "--detach",
        ])
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success(), "the launching process exits 0");
    let pidfile = home.path().join("pyzord.pid");
    let t0 = Instant::now();
    while !pidfile.exists() {
        assert!(t0.elapsed() < Duration::from_secs(10), "no pid file");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(100));
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let t0 = Instant::now();
    while raw_wait(port, PING, Duration::from_millis(200)).is_none() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "detached server not answering"
        );
    }
    // umask 077: nothing we create is group/world accessible.
    for f in [&pidfile, &out, &home.path().join("pyzord.lmdb")] {
        let mode = std::fs::metadata(f).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{} has mode {:o}", f.display(), mode);
    }
    assert_eq!(code(&report(port, "det")), "200");
    // SAFETY: signalling the daemon we started.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let t0 = Instant::now();
    while pidfile.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "pid file not removed at shutdown"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: probe only.
    while unsafe { libc::kill(pid, 0) } == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "daemon still running"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The data is there after a restart.
    let srv = start_ours(home.path(), &["-e", "lmdb"]);
    assert!(check_count(srv.port, "det").contains("Count: 1\n"));
    srv.stop();
}

#[test]
fn kill_9_after_acknowledged_report_keeps_the_count() {
    let home = pyzor_testkit::temp_home();
    let mut srv = start_ours(home.path(), &["-e", "lmdb"]);
    for i in 0..20 {
        assert_eq!(code(&report(srv.port, &format!("k{}", i % 4))), "200");
    }
    srv.child.kill().unwrap(); // SIGKILL
    srv.child.wait().unwrap();
    let srv = start_ours(home.path(), &["-e", "lmdb"]);
    for i in 0..4 {
        assert!(check_count(srv.port, &format!("k{i}")).contains("Count: 5\n"));
    }
    srv.stop();
}

/// `--durability fsync` (each receive batch fsynced before its replies):
/// reports are answered and the counts survive `kill -9`, with the flag
/// and with the config key. Correctness only; power loss is not simulated.
#[test]
fn fsync_durability_answers_reports_and_survives_kill_9() {
    let home = pyzor_testkit::temp_home();
    let mut srv = start_ours(home.path(), &["-e", "lmdb", "--durability", "fsync"]);
    for i in 0..12 {
        assert_eq!(code(&report(srv.port, &format!("f{}", i % 3))), "200");
    }
    srv.child.kill().unwrap(); // SIGKILL
    srv.child.wait().unwrap();
    std::fs::write(home.path().join("config"), "[server]\nDurability = fsync\n").unwrap();
    let mut srv = start_ours(home.path(), &["-e", "lmdb"]);
    for i in 0..3 {
        assert!(check_count(srv.port, &format!("f{i}")).contains("Count: 4\n"));
    }
    assert_eq!(code(&report(srv.port, "f0")), "200");
    srv.child.kill().unwrap();
    srv.child.wait().unwrap();
    let srv = start_ours(home.path(), &["-e", "lmdb", "--durability", "process"]);
    assert!(check_count(srv.port, "f0").contains("Count: 5\n"));
    srv.stop();
}

#[test]
fn usage_log_and_main_log_formats() {
    let home = pyzor_testkit::temp_home();
    let srv = start_ours(
        home.path(),
        &[
            "-e",
            "memory",
            "--usage-log-file",
            "usage.log",
            "--log-file",
            "main.log",
        ],
    );
    report(srv.port, "abc");
    raw(
        srv.port,
        b"Op: whitelist\nOp-Digest: abc\nThread: 1\nPV: 2.1\n\n",
    );
    raw(srv.port, PING);
    srv.stop();
    let usage = std::fs::read_to_string(home.path().join("usage.log")).unwrap();
    // The first line is the readiness ping of start_ours.
    let lines: Vec<&str> = usage.lines().skip(1).collect();
    assert_eq!(lines.len(), 3, "{usage}");
    let pat = |l: &str, level: &str, msg: &str| {
        // "YYYY-MM-DD HH:MM:SS,mmm (PID) LEVEL message"
        let (ts, rest) = l.split_at(23);
        assert!(
            ts.as_bytes()[19] == b',' && ts.as_bytes()[10] == b' ',
            "{l}"
        );
        assert!(rest.starts_with(" ("), "{l}");
        let rest = &rest[rest.find(") ").unwrap() + 2..];
        assert_eq!(rest, format!("{level} {msg}"));
    };
    pat(lines[0], "INFO", "anonymous,127.0.0.1,report,['abc'],200");
    pat(
        lines[1],
        "ERROR",
        "403: Forbidden: User is not authorized to request the operation.",
    );
    pat(lines[2], "INFO", "anonymous,127.0.0.1,ping,None,200");
    let main = std::fs::read_to_string(home.path().join("main.log")).unwrap();
    assert!(main.contains(" INFO Starting pyzord server"), "{main}");
}

#[test]
fn metrics_endpoint() {
    let home = pyzor_testkit::temp_home();
    let mport = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let srv = start_ours(
        home.path(),
        &[
            "-e",
            "memory",
            "--metrics-address",
            &format!("127.0.0.1:{mport}"),
        ],
    );
    report(srv.port, "m");
    check_count(srv.port, "m");
    raw(srv.port, b"garbage");
    let mut body = String::new();
    let t0 = Instant::now();
    loop {
        if let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", mport)) {
            c.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
            c.read_to_string(&mut body).unwrap();
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(body.starts_with("HTTP/1.0 200 OK"), "{body}");
    assert!(
        body.contains("pyzord_requests_total{op=\"report\",code=\"200\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("pyzord_requests_total{op=\"check\",code=\"200\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("pyzord_requests_total{op=\"other\",code=\"400\"} 1"),
        "{body}"
    );
    assert!(body.contains("pyzord_batches_total"), "{body}");
    srv.stop();
}

fn run_pyzord(home: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(pyzord_bin())
        .arg("--homedir")
        .arg(home)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_and_config_matrix() {
    let home = pyzor_testkit::temp_home();
    // -V prints "<argv0> 1.1.2" on stderr.
    let (c, out, err) = run_pyzord(home.path(), &["-V"]);
    assert_eq!((c, out.as_str()), (0, ""));
    assert!(err.trim_end().ends_with("pyzord 1.1.2"), "{err}");
    // A positional argument prints the help, exit 0.
    let (c, out, _) = run_pyzord(home.path(), &["extra"]);
    assert_eq!(c, 0);
    assert!(out.contains("--homedir"), "{out}");
    // Python-only combinations the reference refuses (exit 1) are warnings
    // here: the server starts, says what it does instead, and answers.
    for (args, warning) in [
        (
            &["--threads", "True", "--processes", "true"][..],
            "Threads and Processes are both true",
        ),
        (&["--pre-fork", "1"][..], "PreFork = 1 is below 2"),
    ] {
        let mut args = args.to_vec();
        args.extend(["-e", "memory"]);
        let srv = start_ours(home.path(), &args);
        assert_eq!(code(&report(srv.port, "pf")), "200");
        assert_eq!(srv.stop(), Some(0));
        let err = std::fs::read_to_string(home.path().join("stderr.log")).unwrap();
        assert!(err.contains(" WARNING ") || err.contains(" WARN "), "{err}");
        assert!(err.contains(warning), "{args:?}: {err}");
    }
    // A config value that is not an integer is named.
    std::fs::write(
        home.path().join("config"),
        "[server]\nPort = 24441 # default\n",
    )
    .unwrap();
    let (c, _, err) = run_pyzord(home.path(), &[]);
    assert_eq!(c, 1);
    assert!(err.contains("Port"), "{err}");
    // Config < flags: the config names a port and an engine, the flag wins
    // for the port; the config's relative file names resolve in the homedir.
    let cport = pyzor_testkit::free_udp_port();
    std::fs::write(
        home.path().join("config"),
        format!("[server]\nPort = {cport}\nListenAddress = 127.0.0.1\nEngine = memory\nAccessFile = acl/custom.access\n"),
    )
    .unwrap();
    std::fs::create_dir(home.path().join("acl")).unwrap();
    std::fs::write(
        home.path().join("acl/custom.access"),
        "ping whitelist : anonymous : allow\n",
    )
    .unwrap();
    let mut child = Command::new(pyzord_bin())
        .arg("--homedir")
        .arg(home.path())
        .args([
            "--threads",
            "True",
            "--max-threads",
            "2",
            "--gevent",
            "True",
        ])
        .stderr(Stdio::from(
            std::fs::File::create(home.path().join("stderr.log")).unwrap(),
        ))
        .spawn()
        .unwrap();
    wait_ready(cport, &mut child);
    let wl = raw(
        cport,
        b"Op: whitelist\nOp-Digest: x\nThread: 1\nPV: 2.1\n\n",
    );
    assert!(
        wl.starts_with(b"Code: 200"),
        "{}",
        String::from_utf8_lossy(&wl)
    );
    let p = Proc { child, port: cport };
    p.stop();
    let err = std::fs::read_to_string(home.path().join("stderr.log")).unwrap();
    assert!(err.contains("Gevent is Python-only"), "{err}");
    assert!(err.contains("mapped onto 2 socket workers"), "{err}");
    // The flag overrides the config file.
    let fport = pyzor_testkit::free_udp_port();
    let srv = {
        let mut child = Command::new(pyzord_bin())
            .arg("--homedir")
            .arg(home.path())
            .args(["-p", &fport.to_string()])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_ready(fport, &mut child);
        Proc { child, port: fport }
    };
    assert!(raw_wait(cport, PING, Duration::from_millis(300)).is_none());
    srv.stop();
    // Missing homedir is created (one level).
    let sub = home.path().join("newhome");
    let (c, _, _) = run_pyzord(&sub, &["-V"]);
    assert_eq!(c, 0);
    let nport = pyzor_testkit::free_udp_port();
    let mut child = Command::new(pyzord_bin())
        .arg("--homedir")
        .arg(&sub)
        .args(["-a", "127.0.0.1", "-p", &nport.to_string(), "-e", "memory"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_ready(nport, &mut child);
    assert!(sub.is_dir());
    Proc { child, port: nport }.stop();
}

#[test]
fn ipv6_listen_address_also_serves_ipv4() {
    let home = pyzor_testkit::temp_home();
    let port = pyzor_testkit::free_udp_port();
    let mut child = Command::new(pyzord_bin())
        .arg("--homedir")
        .arg(home.path())
        .args(["-a", "::", "-p", &port.to_string(), "-e", "memory"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_ready(port, &mut child); // over IPv4 127.0.0.1
    let s = std::net::UdpSocket::bind("[::1]:0");
    if let Ok(s) = s {
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        if s.send_to(PING, ("::1", port)).is_ok() {
            let mut b = [0u8; 1000];
            let n = s.recv(&mut b).unwrap();
            assert!(b[..n].starts_with(b"Code: 200"));
        }
    }
    Proc { child, port }.stop();
}

#[test]
fn cleanup_age_expires_old_records_at_start() {
    use pyzor_protocol::{Record, Timestamp};
    let home = pyzor_testkit::temp_home();
    {
        let e = pyzor_store::open(&pyzor_store::EngineOptions::new("lmdb", home.path())).unwrap();
        let old = Timestamp::from_secs(1_000_000);
        let mut stale = Record::default();
        stale.report(old);
        let mut fresh = Record::default();
        fresh.report(pyzor_store::now());
        e.put_many(&[(b"stale".to_vec(), stale), (b"fresh".to_vec(), fresh)])
            .unwrap();
        e.flush().unwrap();
    }
    let srv = start_ours(home.path(), &["--cleanup-age", "3600"]);
    let t0 = Instant::now();
    while !check_count(srv.port, "stale").contains("Count: 0\n") {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "stale record not expired"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(check_count(srv.port, "fresh").contains("Count: 1\n"));
    srv.stop();
}
