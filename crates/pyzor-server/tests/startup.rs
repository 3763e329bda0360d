//! Starting pyzord and what it says when it cannot: `--detach` exits 0
//! only once the daemon serves (engine open, sockets bound, pid file
//! written) and 1 with the reason otherwise; the pid file is never
//! followed through a symlink, is locked while the server runs, a stale
//! one is replaced (logged) and a live one refuses the start naming its
//! pid; a failed start says why once; a busy metrics port is named as
//! such; SIGINT is logged as SIGINT; `--help` states the real defaults.
//!
//! Every wait is bounded; every daemon started here is stopped by a guard
//! even when an assertion fails.

mod common;
use common::*;

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a launch of `pyzord --detach` gave back.
struct Launch {
    code: i32,
    stderr: String,
}

/// Run `pyzord --homedir HOME -a 127.0.0.1 -p PORT ARGS --detach HOME/detach.out`
/// and wait (≤ 60 s) for the launching process to exit.
fn launch_detached(home: &Path, port: u16, args: &[&str]) -> Launch {
    let err_path = home.join(format!("launch-{port}.err"));
    let mut child = Command::new(pyzord_bin())
        .arg("--homedir")
        .arg(home)
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .arg("--detach")
        .arg(home.join("detach.out"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&err_path).unwrap()))
        .spawn()
        .expect("spawn pyzord --detach");
    // Wait in a helper thread so that the launcher's exit is seen at once
    // (the assertions run right after it), bounded by 60 s.
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let status = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(st) => st.unwrap(),
        Err(_) => {
            // SAFETY: the launcher this test spawned.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("pyzord --detach did not exit within 60 s");
        }
    };
    Launch {
        code: status.code().unwrap_or(-1),
        stderr: std::fs::read_to_string(&err_path).unwrap(),
    }
}

fn read_pid(pidfile: &Path) -> Option<i32> {
    std::fs::read_to_string(pidfile).ok()?.trim().parse().ok()
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only probes.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// Whether `pid` is one of our pyzord processes (so that a guard never
/// signals anything else).
fn is_pyzord(pid: i32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains("pyzord"))
        .unwrap_or(false)
}

/// Stops the daemon named by a pid file when dropped (SIGTERM, then
/// SIGKILL after 10 s).
struct Daemon {
    pidfile: PathBuf,
    pid: Option<i32>,
}

impl Daemon {
    fn of(pidfile: &Path) -> Daemon {
        Daemon {
            pidfile: pidfile.to_owned(),
            pid: read_pid(pidfile),
        }
    }

    /// SIGTERM and wait (≤ 10 s) until the process is gone.
    fn stop(&mut self) {
        let Some(pid) = self.pid.take().or_else(|| read_pid(&self.pidfile)) else {
            return;
        };
        if !is_pyzord(pid) {
            return;
        }
        // SAFETY: signalling the daemon this test started.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let t0 = Instant::now();
        while alive(pid) && is_pyzord(pid) {
            if t0.elapsed() > Duration::from_secs(10) {
                // SAFETY: as above.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                panic!("daemon {pid} did not stop within 10 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // The pid seen at launch and the one in the file now (a daemon
        // that wrote its pid late must not outlive a failed test).
        for pid in [self.pid, read_pid(&self.pidfile)].into_iter().flatten() {
            if alive(pid) && is_pyzord(pid) {
                // SAFETY: the daemon this test started.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

#[test]
fn detach_exits_0_only_once_the_daemon_serves() {
    let home = pyzor_testkit::temp_home();
    let port = pyzor_testkit::free_udp_port();
    let pidfile = home.path().join("pyzord.pid");
    let l = launch_detached(home.path(), port, &["-e", "lmdb"]);
    let mut d = Daemon::of(&pidfile);
    assert_eq!(l.code, 0, "{}", l.stderr);
    assert_eq!(l.stderr, "", "nothing on stderr when the start succeeds");
    // No waiting: when the launcher has exited 0, the pid file names the
    // daemon and the daemon answers.
    let pid = read_pid(&pidfile).expect("pid file written before the launcher exits");
    assert!(alive(pid), "the pid file names a live process");
    assert!(
        raw_wait(port, PING, Duration::from_secs(5)).is_some(),
        "the daemon answers as soon as the launcher has exited"
    );
    d.stop();
    assert!(!pidfile.exists(), "pid file removed at shutdown");
}

#[test]
fn detach_with_a_bad_dsn_exits_1_with_the_reason() {
    let home = pyzor_testkit::temp_home();
    let port = pyzor_testkit::free_udp_port();
    let pidfile = home.path().join("pyzord.pid");
    let l = launch_detached(home.path(), port, &["-e", "redis", "--dsn", "garbage"]);
    let _d = Daemon::of(&pidfile);
    assert_eq!(l.code, 1, "stderr: {}", l.stderr);
    assert!(
        l.stderr.contains("redis") && l.stderr.contains("host,port,password,db"),
        "the reason is on stderr: {:?}",
        l.stderr
    );
    assert_eq!(l.stderr.lines().count(), 1, "said once: {:?}", l.stderr);
    assert!(
        !pidfile.exists(),
        "no pid file is left behind by a failed start ({:?})",
        std::fs::read_to_string(&pidfile)
    );
}

#[test]
fn detach_on_a_busy_port_exits_1_naming_the_port() {
    let home = pyzor_testkit::temp_home();
    // A plain socket (no SO_REUSEPORT) holds the port.
    let holder = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let pidfile = home.path().join("pyzord.pid");
    let l = launch_detached(home.path(), port, &["-e", "memory"]);
    let _d = Daemon::of(&pidfile);
    assert_eq!(l.code, 1, "stderr: {}", l.stderr);
    assert!(
        l.stderr.contains(&format!("127.0.0.1:{port}")),
        "the port is named: {:?}",
        l.stderr
    );
    assert!(!pidfile.exists(), "no pid file after a failed start");
}

#[test]
fn pid_file_symlink_is_not_followed() {
    let home = pyzor_testkit::temp_home();
    let victim = home.path().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    let pidfile = home.path().join("pyzord.pid");
    std::os::unix::fs::symlink(&victim, &pidfile).unwrap();
    let port = pyzor_testkit::free_udp_port();
    let l = launch_detached(home.path(), port, &["-e", "memory"]);
    // Should a daemon have written its pid through the link, stop it.
    let _d = Daemon::of(&victim);
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "precious\n",
        "the file behind the symlink is untouched"
    );
    assert_eq!(l.code, 1, "stderr: {}", l.stderr);
    assert!(
        l.stderr.contains("pyzord.pid") && l.stderr.contains("symbolic link"),
        "{:?}",
        l.stderr
    );
    assert!(
        raw_wait(port, PING, Duration::from_millis(500)).is_none(),
        "nothing serves after the refused start"
    );
}

#[test]
fn stale_pid_file_is_replaced_with_a_log_line() {
    let home = pyzor_testkit::temp_home();
    // A pid that existed and is dead now.
    let mut gone = Command::new("true").spawn().unwrap();
    let dead = gone.id() as i32;
    gone.wait().unwrap();
    let pidfile = home.path().join("pyzord.pid");
    std::fs::write(&pidfile, format!("{dead}\n")).unwrap();
    let log = home.path().join("main.log");
    let port = pyzor_testkit::free_udp_port();
    let l = launch_detached(
        home.path(),
        port,
        &["-e", "memory", "--log-file", log.to_str().unwrap()],
    );
    let mut d = Daemon::of(&pidfile);
    assert_eq!(l.code, 0, "{}", l.stderr);
    let pid = read_pid(&pidfile).unwrap();
    assert_ne!(pid, dead);
    assert!(alive(pid));
    d.stop();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("stale pid file") && text.contains(&format!("pid {dead}")),
        "{text}"
    );
}

#[test]
fn a_running_daemon_holds_its_pid_file_and_a_second_start_fails_naming_it() {
    let home = pyzor_testkit::temp_home();
    let pidfile = home.path().join("pyzord.pid");
    let port_a = pyzor_testkit::free_udp_port();
    let a = launch_detached(home.path(), port_a, &["-e", "memory"]);
    let mut d = Daemon::of(&pidfile);
    assert_eq!(a.code, 0, "{}", a.stderr);
    let pid_a = read_pid(&pidfile).unwrap();
    // The file is locked while the server runs.
    {
        use std::os::fd::AsRawFd;
        let f = std::fs::File::open(&pidfile).unwrap();
        // SAFETY: flock on a descriptor we own.
        let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        assert_eq!(r, -1, "the running daemon holds a lock on its pid file");
    }
    // A second daemon with the same pid file (another port) refuses to start.
    let port_b = pyzor_testkit::free_udp_port();
    let b = launch_detached(home.path(), port_b, &["-e", "memory"]);
    assert_eq!(b.code, 1, "stderr: {}", b.stderr);
    assert!(
        b.stderr.contains(&pid_a.to_string()) && b.stderr.contains("pyzord.pid"),
        "the refusal names the running pid and the file: {:?}",
        b.stderr
    );
    assert_eq!(read_pid(&pidfile), Some(pid_a), "the pid file is untouched");
    assert!(raw_wait(port_b, PING, Duration::from_millis(500)).is_none());
    assert!(raw_wait(port_a, PING, Duration::from_secs(5)).is_some());
    d.stop();
}

/// Run pyzord in the foreground and wait (≤ 60 s) for it to exit; returns
/// (exit code, stderr).
fn run_foreground(home: &Path, args: &[&str]) -> (i32, String) {
    let err_path = home.join("fg.err");
    let mut child = Command::new(pyzord_bin())
        .arg("--homedir")
        .arg(home)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&err_path).unwrap()))
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let st = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t0.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("pyzord did not exit within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        st.code().unwrap_or(-1),
        std::fs::read_to_string(&err_path).unwrap(),
    )
}

#[test]
fn a_failed_start_says_why_once_and_logs_no_shutdown() {
    let home = pyzor_testkit::temp_home();
    let holder = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let (code, err) = run_foreground(
        home.path(),
        &["-a", "127.0.0.1", "-p", &port.to_string(), "-e", "memory"],
    );
    assert_eq!(code, 1, "{err}");
    let needle = format!("127.0.0.1:{port}");
    assert_eq!(
        err.matches(&needle).count(),
        1,
        "the error is printed once: {err}"
    );
    assert!(!err.contains("Server shutdown"), "{err}");
}

#[test]
fn a_busy_metrics_port_is_named_as_the_metrics_address() {
    let home = pyzor_testkit::temp_home();
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let mport = busy.local_addr().unwrap().port();
    let port = pyzor_testkit::free_udp_port();
    let (code, err) = run_foreground(
        home.path(),
        &[
            "-a",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-e",
            "memory",
            "--metrics-address",
            &format!("127.0.0.1:{mport}"),
        ],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("127.0.0.1:{mport}")) && err.contains("metrics"),
        "names the metrics address: {err}"
    );
    assert!(
        !err.contains(&format!("127.0.0.1:{port}")),
        "does not blame the UDP port: {err}"
    );
}

#[test]
fn sigint_is_logged_as_sigint() {
    let home = pyzor_testkit::temp_home();
    let srv = start_ours(home.path(), &["-e", "memory"]);
    srv.signal(libc::SIGINT);
    let mut srv = srv;
    let t0 = Instant::now();
    let st = loop {
        if let Some(st) = srv.child.try_wait().unwrap() {
            break st;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "SIGINT ignored");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(st.code(), Some(0));
    let log = std::fs::read_to_string(home.path().join("stderr.log")).unwrap();
    assert!(log.contains("SIGINT received. Shutting down."), "{log}");
    assert!(!log.contains("SIGTERM"), "{log}");
    assert!(log.contains("Server shutdown."), "{log}");
}

#[test]
fn help_states_the_real_worker_default() {
    let home = pyzor_testkit::temp_home();
    let out = Command::new(pyzord_bin())
        .arg("--help")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let workers = help
        .split("--workers <WORKERS>")
        .nth(1)
        .expect("--workers is in the help");
    let workers = &workers[..workers.find("\n  -").unwrap_or(workers.len())];
    assert!(!workers.contains("half"), "{workers}");
    assert!(workers.contains("one per core"), "{workers}");
    // And the server does run one worker per core by default.
    let cores = std::thread::available_parallelism().unwrap().get();
    let srv = start_ours(home.path(), &["-e", "memory"]);
    assert_eq!(srv.stop(), Some(0));
    let log = std::fs::read_to_string(home.path().join("stderr.log")).unwrap();
    assert!(log.contains(&format!("({cores} workers,")), "{log}");
}
