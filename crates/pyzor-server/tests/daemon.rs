//! pyzord as a service: systemd readiness (`READY=1` only once a ping is
//! answered at the first try, `RELOADING=1`/`READY=1` around SIGUSR1,
//! `STOPPING=1` on SIGTERM, path and abstract `NOTIFY_SOCKET`s), SIGHUP
//! reopening both logs after a rename (logrotate), `--user`/`--group`
//! (a real drop to `nobody` when the tests run as root, as in CI; a clear
//! refusal when pyzord is not root), and `--check-config`.
//!
//! Every wait is bounded; every server started here is killed by its guard
//! (`Proc`) even when an assertion fails.

mod common;
use common::*;

use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// uid and gid of `nobody` / `nogroup` on Debian.
const NOBODY: u32 = 65534;

/// The next notification, waiting at most 60 s (a debug build on a busy
/// machine); fails if pyzord exits first.
fn next_state(sock: &UnixDatagram, p: &mut Proc) -> String {
    let t0 = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match sock.recv(&mut buf) {
            Ok(n) => return String::from_utf8_lossy(&buf[..n]).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("recv on the notify socket: {e}"),
        }
        if let Ok(Some(st)) = p.child.try_wait() {
            panic!("pyzord exited ({st}) before notifying");
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no notification within 60 s"
        );
    }
}

/// READY=1 arrives when pyzord answers: one ping, one try, answered. Then
/// SIGUSR1 gives RELOADING=1 and READY=1, SIGTERM STOPPING=1 and exit 0.
/// Both forms of NOTIFY_SOCKET: a path and an abstract `@name`.
#[test]
fn ready_only_when_it_answers_and_stopping_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let abs = format!("pyzord-test-notify-{}", std::process::id());
    let at_path = UnixDatagram::bind(&path).unwrap();
    let at_abs = {
        use std::os::linux::net::SocketAddrExt;
        let a = std::os::unix::net::SocketAddr::from_abstract_name(abs.as_bytes()).unwrap();
        UnixDatagram::bind_addr(&a).unwrap()
    };
    for (env, sock) in [
        (path.to_str().unwrap().to_owned(), &at_path),
        (format!("@{abs}"), &at_abs),
    ] {
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let home = pyzor_testkit::temp_home();
        let mut p = spawn_ours(home.path(), &[], &[("NOTIFY_SOCKET", &env)]);
        let ready = next_state(sock, &mut p);
        assert!(ready.starts_with("READY=1\n"), "{env}: {ready:?}");
        assert!(
            ready.contains(&format!("STATUS=serving on 127.0.0.1:{}", p.port)),
            "{ready:?}"
        );
        // No retry: the first datagram after READY=1 is answered.
        let reply = raw_wait(p.port, PING, Duration::from_secs(5))
            .unwrap_or_else(|| panic!("{env}: READY=1 came but the first ping was not answered"));
        assert!(reply.starts_with(b"Code: 200\n"), "{reply:?}");
        p.signal(libc::SIGUSR1);
        assert!(next_state(sock, &mut p).starts_with("RELOADING=1\nMONOTONIC_USEC="));
        assert!(next_state(sock, &mut p).starts_with("READY=1\n"));
        p.signal(libc::SIGTERM);
        assert_eq!(next_state(sock, &mut p), "STOPPING=1");
        assert_eq!(p.stop(), Some(0));
    }
}

/// An unusable NOTIFY_SOCKET is a warning, not a failure: pyzord serves.
#[test]
fn a_bad_notify_socket_is_warned_about() {
    let home = pyzor_testkit::temp_home();
    let mut p = spawn_ours(home.path(), &[], &[("NOTIFY_SOCKET", "relative/name")]);
    wait_ready(p.port, &mut p.child);
    let port = p.port;
    assert_eq!(p.stop(), Some(0), "port {port}");
    let err = std::fs::read_to_string(home.path().join("stderr.log")).unwrap();
    assert!(
        err.contains("NOTIFY_SOCKET=\"relative/name\" is not a unix socket"),
        "{err}"
    );
}

/// Wait (≤ 20 s) until `path` exists and contains `needle`.
fn wait_for(path: &Path, needle: &str) -> String {
    let t0 = Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "{} does not contain {needle:?} within 20 s: {text:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Rename both logs, SIGHUP: the old names are created again and new lines
/// go there; the renamed files keep what was written before.
fn rotate_and_check(p: &Proc, logs: &Path) {
    let (main, usage) = (logs.join("pyzord.log"), logs.join("usage.log"));
    raw(p.port, PING);
    let before = wait_for(&usage, ",ping,None,200");
    std::fs::rename(&main, logs.join("pyzord.log.1")).unwrap();
    std::fs::rename(&usage, logs.join("usage.log.1")).unwrap();
    p.signal(libc::SIGHUP);
    wait_for(&main, "Log files reopened.");
    raw(p.port, b"Op: ping\nThread: 2222\nPV: 2.1\n\n");
    let new_usage = wait_for(&usage, ",ping,None,200");
    assert_eq!(new_usage.lines().count(), 1, "{new_usage}");
    let old_main = std::fs::read_to_string(logs.join("pyzord.log.1")).unwrap();
    assert!(old_main.contains("SIGHUP received. Reopening the log files."));
    assert!(!old_main.contains("Log files reopened."));
    let old_usage = std::fs::read_to_string(logs.join("usage.log.1")).unwrap();
    // (a line queued before the SIGHUP may land after `before` was read)
    assert!(old_usage.starts_with(&before), "{old_usage}");
}

fn log_args(logs: &Path) -> [String; 4] {
    [
        "--log-file".into(),
        logs.join("pyzord.log").display().to_string(),
        "--usage-log-file".into(),
        logs.join("usage.log").display().to_string(),
    ]
}

#[test]
fn sighup_reopens_both_logs_after_a_rename() {
    let home = pyzor_testkit::temp_home();
    let args = log_args(home.path());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut p = spawn_ours(home.path(), &args, &[]);
    wait_ready(p.port, &mut p.child);
    rotate_and_check(&p, home.path());
    assert_eq!(p.stop(), Some(0));
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `Uid:`/`Gid:`/`Groups:` of /proc/<pid>/status.
fn ids(pid: i32) -> (String, String, String) {
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |k: &str| {
        st.lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    (field("Uid:"), field("Gid:"), field("Groups:"))
}

/// As root (CI): `--user nobody --group nogroup` really drops, in every
/// thread: real, effective, saved and filesystem ids, no supplementary
/// group but nogroup; the logs opened as root are handed over, so SIGHUP
/// still works; the engine still writes. Not root: skipped loudly (the
/// refusal is tested below).
#[test]
fn user_and_group_drop_root_after_binding() {
    if !is_root() {
        pyzor_testkit::skip(
            "user_and_group_drop_root_after_binding",
            "not running as root: cannot test a real privilege drop",
        );
        return;
    }
    let home = pyzor_testkit::temp_home();
    // The operator's log directory belongs to the service user.
    let logs = home.path().join("log");
    std::fs::create_dir(&logs).unwrap();
    std::os::unix::fs::chown(&logs, Some(NOBODY), Some(NOBODY)).unwrap();
    let args = log_args(&logs);
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.extend(["--user", "nobody", "--group", "nogroup", "--workers", "2"]);
    let mut p = spawn_ours(home.path(), &args, &[]);
    wait_ready(p.port, &mut p.child);
    let want = format!("{NOBODY} {NOBODY} {NOBODY} {NOBODY}");
    let tasks = std::fs::read_dir(format!("/proc/{}/task", p.pid())).unwrap();
    let mut n = 0;
    for t in tasks {
        let tid: i32 = t.unwrap().file_name().to_str().unwrap().parse().unwrap();
        let (uid, gid, groups) = ids(tid);
        assert_eq!(
            (uid.as_str(), gid.as_str()),
            (want.as_str(), want.as_str()),
            "thread {tid}"
        );
        assert_eq!(groups, NOBODY.to_string(), "thread {tid}");
        n += 1;
    }
    assert!(n > 2, "only {n} threads");
    let main_log = wait_for(&logs.join("pyzord.log"), "Running as nobody:nogroup");
    assert!(
        main_log.contains(&format!("(uid {NOBODY}, gid {NOBODY})")),
        "{main_log}"
    );
    // The engine, opened as root, is still written to.
    let report =
        b"Op: report\nOp-Digest: da39a3ee5e6b4b0d3255bfef95601890afd80709\nThread: 3\nPV: 2.1\n\n";
    assert!(raw(p.port, report).starts_with(b"Code: 200\n"));
    rotate_and_check(&p, &logs);
    let meta = std::fs::metadata(logs.join("pyzord.log")).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (NOBODY, NOBODY),
        "the reopened log"
    );
    assert_eq!(p.stop(), Some(0));
}

/// Run pyzord to completion (≤ 60 s) with `args`, as `as_user` if given.
fn run_pyzord(home: &Path, args: &[&str], as_user: Option<u32>) -> Output {
    let mut cmd = Command::new(pyzord_bin());
    cmd.arg("--homedir").arg(home).args(args);
    if let Some(u) = as_user {
        cmd.uid(u).gid(u);
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            // SAFETY: the process this test spawned.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("pyzord {args:?} did not exit within 60 s");
        }
    }
}

/// Not root and another user asked: exit 1 with the reason, before
/// anything is bound or opened. An unknown user: exit 1 naming it. (As
/// root the test runs pyzord as nobody to see the refusal.)
#[test]
fn user_refused_when_not_root_or_unknown() {
    let home = tempfile::tempdir().unwrap();
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let (as_user, other) = if me == 0 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        (Some(NOBODY), "root")
    } else {
        (None, "root")
    };
    let out = run_pyzord(home.path(), &["-p", "0", "--user", other], as_user);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot become root:") && err.contains("start it as root"),
        "{err}"
    );
    assert!(
        !home.path().join("pyzord.lmdb").exists(),
        "the engine was opened"
    );
    let out = run_pyzord(
        home.path(),
        &["-p", "0", "--user", "no-such-user-4711"],
        None,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("\"no-such-user-4711\": no such user"), "{err}");
}

fn check(home: &Path, args: &[&str]) -> (i32, String) {
    let mut all = vec!["--check-config"];
    all.extend_from_slice(args);
    let out = run_pyzord(home, &all, None);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn check_config_reports_a_good_configuration() {
    let home = pyzor_testkit::temp_home();
    let h = home.path();
    std::fs::write(
        h.join("config"),
        "[server]\nPort = 24499\nListenAddress = 127.0.0.1\nWorkers = 3\nDurability = fsync\nRateLimit = 50\n",
    )
    .unwrap();
    std::fs::write(h.join("pyzord.passwd"), "alice : a2V5\n").unwrap();
    std::fs::write(
        h.join("pyzord.access"),
        "check report ping : alice : allow\ncheck : anonymous : allow\n",
    )
    .unwrap();
    let (code, text) = check(h, &[]);
    assert_eq!(code, 0, "{text}");
    for want in [
        "engine       lmdb ",
        "opened; a read answered",
        "durability   fsync",
        "workers      3",
        "udp          127.0.0.1:24499",
        "rate limits  50/s per network, reports/whitelists 20/s",
        "1 account(s): alice",
        "alice: check report ping; anonymous: check",
        "OK: pyzord would start",
    ] {
        assert!(text.contains(want), "{want:?} missing in:\n{text}");
    }
    assert!(!text.contains("PROBLEM"), "{text}");
}

#[test]
fn check_config_names_a_broken_access_line() {
    let home = pyzor_testkit::temp_home();
    let access = home.path().join("pyzord.access");
    std::fs::write(
        &access,
        "check : anonymous : allow\ncheck anonymous allow\n",
    )
    .unwrap();
    let (code, text) = check(home.path(), &[]);
    assert_eq!(code, 1, "{text}");
    let want = format!(
        "PROBLEM: {} line 2: Invalid ACL line: 'check anonymous allow\\n'; write `ops : users : allow`",
        access.display()
    );
    assert!(text.contains(&want), "{want:?} missing in:\n{text}");
    assert_eq!(text.matches("PROBLEM").count(), 1, "{text}");
    // A hostile file: huge lines, thousands of them. The report stays
    // bounded: lines quoted to 120 characters, 20 problems, then a count.
    let junk = format!("{}\n", "x".repeat(2000)).repeat(1000);
    std::fs::write(&access, junk).unwrap();
    let (code, text) = check(home.path(), &[]);
    assert_eq!(code, 1);
    assert_eq!(text.matches("PROBLEM").count(), 21, "{text:.2000}");
    assert!(text.contains(": 980 more problems"), "{text:.2000}");
    assert!(text.lines().all(|l| l.len() < 600), "{text:.2000}");
}

/// An engine that accepts the connection and never answers: the check
/// ends within the engine timeout (plus start-up), exit 1, naming the
/// engine and the DSN with its password masked; the password is printed
/// nowhere.
#[test]
fn check_config_unreachable_engine_is_bounded_and_masks_the_password() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let pw = "Pw-Never-Shown-93";
    // The network engines compiled in that wait for a TCP handshake.
    let engines: Vec<&str> = ["mysql", "postgres"]
        .into_iter()
        .filter(|e| pyzor_store::ENGINES.contains(e))
        .collect();
    if engines.is_empty() {
        pyzor_testkit::skip(
            "check_config_unreachable_engine",
            "no mysql/postgres feature",
        );
        return;
    }
    for engine in engines {
        let home = pyzor_testkit::temp_home();
        let dsn = format!("127.0.0.1:{port},pyzor,{pw},pyzor,digests");
        let t0 = Instant::now();
        let (code, text) = check(
            home.path(),
            &["-e", engine, "--dsn", &dsn, "--engine-timeout", "1"],
        );
        assert_eq!(code, 1, "{text}");
        assert!(
            t0.elapsed() < Duration::from_secs(45),
            "{engine}: took {:?}",
            t0.elapsed()
        );
        assert!(!text.contains(pw), "{engine}: password printed:\n{text}");
        let masked = format!("127.0.0.1:{port},pyzor,***,pyzor,digests");
        assert!(
            text.contains(&format!(
                "PROBLEM: cannot open the {engine} engine ({masked})"
            )),
            "{engine}:\n{text}"
        );
        assert!(
            text.contains(&format!("engine       {engine} {masked}")),
            "{text}"
        );
    }
    drop(silent);
}
