//! Helpers of the mixed-fleet and outage tests (`engines_mixed.rs`,
//! `engines_outage.rs`): start our pyzord and the reference one with any
//! engine and environment, ask `info`/`check` over raw UDP, make unique
//! messages and their digests with the reference client, and guards that
//! kill every process and remove every database object even when a test
//! fails.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::common::{pyzord_bin, raw_wait, ref_pyzor, Proc, PING};

/// The signed account allowed to whitelist (in every server home).
pub const WL_USER: &str = "wluser";
pub const WL_KEY: &str = "8f9ad62d5e0e1d6b63e1c1c1f0e6a2b1d4c3b2a1";

/// passwd + access of a server home: anonymous may check, report, ping,
/// pong, info (the default ACL, written out); `wluser` may do everything.
pub fn write_server_accounts(home: &Path) {
    std::fs::write(
        home.join("pyzord.passwd"),
        format!("{WL_USER} : {WL_KEY}\n"),
    )
    .unwrap();
    std::fs::write(
        home.join("pyzord.access"),
        format!("check report ping pong info : anonymous : allow\nall : {WL_USER} : allow\n"),
    )
    .unwrap();
}

/// A client home for the reference `pyzor` pointing at `port`, anonymous
/// or signed as `wluser`.
pub fn client_for(dir: &Path, port: u16, signed: bool) -> PathBuf {
    let accounts: &[(&str, &str)] = if signed { &[(WL_USER, WL_KEY)] } else { &[] };
    super::common::client_home(dir, port, accounts)
}

/// Which pyzord to start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Impl {
    /// Ours (`CARGO_BIN_EXE_pyzord`).
    Rust,
    /// The reference Pyzor 1.1.2 from the virtualenv.
    Python,
}

fn program(which: Impl, venv: Option<&Path>) -> PathBuf {
    match which {
        Impl::Rust => pyzord_bin(),
        Impl::Python => venv
            .expect("the reference needs the venv")
            .join("bin/pyzord"),
    }
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Spawn a pyzord on `port` without waiting for it (stderr appended to
/// `<home>/<log>`).
pub fn spawn_pyzord(
    which: Impl,
    venv: Option<&Path>,
    home: &Path,
    port: u16,
    args: &[&str],
    env: &[(&str, &str)],
    log: &str,
) -> Child {
    let err = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(home.join(log))
        .unwrap();
    Command::new(program(which, venv))
        .arg("--homedir")
        .arg(home)
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(err))
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {which:?} pyzord: {e}"))
}

/// Start a pyzord on a free port and wait (≤ 30 s) until it answers a
/// ping; panics with the end of its log if it exits or stays silent.
/// (`pyzor_testkit::free_udp_port` hands out ports that no other test's
/// socket can be given meanwhile: `pyzor_testkit::ports`.)
pub fn start_pyzord(
    which: Impl,
    venv: Option<&Path>,
    home: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> Proc {
    let port = pyzor_testkit::free_udp_port();
    start_pyzord_on(which, venv, home, port, args, env)
}

/// As [`start_pyzord`] on a given port (restarts keep their port).
pub fn start_pyzord_on(
    which: Impl,
    venv: Option<&Path>,
    home: &Path,
    port: u16,
    args: &[&str],
    env: &[(&str, &str)],
) -> Proc {
    let log = match which {
        Impl::Rust => "rust-pyzord.log",
        Impl::Python => "python-pyzord.log",
    };
    let child = spawn_pyzord(which, venv, home, port, args, env, log);
    let mut p = Proc { child, port };
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(30) {
        if raw_wait(port, PING, Duration::from_millis(200)).is_some() {
            return p;
        }
        if let Ok(Some(st)) = p.child.try_wait() {
            panic!(
                "{which:?} pyzord {args:?} exited at start-up ({st}):\n{}",
                log_tail(&home.join(log))
            );
        }
    }
    panic!(
        "{which:?} pyzord {args:?} did not answer a ping within 30 s:\n{}",
        log_tail(&home.join(log))
    );
}

/// SIGKILL a server and reap it.
pub fn kill_9(p: &mut Proc) {
    let _ = p.child.kill();
    let _ = p.child.wait();
}

/// The code of a raw reply (`Code: N` on its first line), 0 if none.
pub fn reply_code(reply: &[u8]) -> u16 {
    std::str::from_utf8(reply)
        .ok()
        .and_then(|t| t.lines().next())
        .and_then(|l| l.strip_prefix("Code: "))
        .and_then(|c| c.trim().parse().ok())
        .unwrap_or(0)
}

/// One anonymous request `op` for `digest`, as the reference client sends
/// it minus the signature (anonymous needs none); `None` = no reply within
/// `wait`.
pub fn request(port: u16, op: &str, digest: &str, thread: u32, wait: Duration) -> Option<Vec<u8>> {
    let dgram = format!("Op: {op}\nOp-Digest: {digest}\nThread: {thread}\nPV: 2.1\n\n");
    raw_wait(port, dgram.as_bytes(), wait)
}

/// The six numbers `info` answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Info {
    pub count: i64,
    pub entered: i64,
    pub updated: i64,
    pub wl_count: i64,
    pub wl_entered: i64,
    pub wl_updated: i64,
}

/// Parse the fields of an `info` reply; panics (with the reply) unless it
/// is a 200 carrying all six.
pub fn parse_info(reply: &[u8]) -> Info {
    let text = String::from_utf8_lossy(reply);
    assert_eq!(reply_code(reply), 200, "info failed: {text}");
    let field = |name: &str| -> i64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no numeric {name} in {text}"))
    };
    Info {
        count: field("Count"),
        entered: field("Entered"),
        updated: field("Updated"),
        wl_count: field("WL-Count"),
        wl_entered: field("WL-Entered"),
        wl_updated: field("WL-Updated"),
    }
}

/// `info` of `digest` through the server on `port` (raw UDP: exact epoch
/// seconds instead of the client's `ctime` text).
pub fn info(port: u16, digest: &str) -> Info {
    let reply = request(port, "info", digest, 4242, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no info reply from port {port}"));
    parse_info(&reply)
}

/// (Count, WL-Count) of `digest` through the server on `port`.
pub fn check(port: u16, digest: &str) -> (i64, i64) {
    let reply = request(port, "check", digest, 4243, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no check reply from port {port}"));
    let i = parse_check(&reply);
    i.unwrap_or_else(|| panic!("bad check reply: {}", String::from_utf8_lossy(&reply)))
}

pub fn parse_check(reply: &[u8]) -> Option<(i64, i64)> {
    if reply_code(reply) != 200 {
        return None;
    }
    let text = String::from_utf8_lossy(reply);
    let field = |name: &str| -> Option<i64> {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .and_then(|v| v.trim().parse().ok())
    };
    Some((field("Count")?, field("WL-Count")?))
}

/// Seconds since the epoch now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A message nobody else reports: `tag` plus a per-process, per-call
/// nonce in the body. The nonce is written in words of at most 6
/// characters because the digest drops every run of 10 or more non-blanks
/// (pyzor/digest.py `longstr_ptrn`), which would make all runs collide.
pub fn unique_message(tag: &str) -> Vec<u8> {
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let raw = format!(
        "{:x}{:x}{:x}",
        std::process::id(),
        CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let nonce: Vec<&str> = raw
        .as_bytes()
        .chunks(6)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "Subject: mixed fleet {tag}\n\nThis message {tag} carries the nonce {} and enough \
         ordinary words in its body to be digested by pyzor.\n",
        nonce.join(" ")
    )
    .into_bytes()
}

/// The reference client's digest of `msg`.
pub fn digest_of(venv: &Path, client: &Path, msg: &[u8]) -> String {
    let (out, code) = ref_pyzor(venv, client, &["digest"], msg);
    assert_eq!(code, 0, "pyzor digest failed: {out}");
    let d = out.trim().to_string();
    assert_eq!(d.len(), 40, "digest {d:?}");
    d
}

/// Run the reference client `op` (report/whitelist/check/info) on `msg`
/// through the server of `client` and return stdout; asserts the 200.
pub fn client_op(venv: &Path, client: &Path, op: &str, msg: &[u8]) -> String {
    let (out, code) = ref_pyzor(venv, client, &[op], msg);
    assert!(
        out.contains("\t(200, 'OK')"),
        "pyzor {op} through {} did not get a 200 (exit {code}): {out}",
        client.display()
    );
    out
}

/// The `pyzor info` text without its first line (which names the server),
/// so two servers' answers can be compared.
pub fn info_text_body(out: &str) -> String {
    out.split_once('\n')
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// Run a command with a bound on its run time; returns (status ok, stdout
/// + stderr).
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> (bool, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let t0 = Instant::now();
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return (false, format!("{cmd:?} timed out after {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// `redis-cli` against 127.0.0.1:`port`, db `db`.
pub fn redis_cli(port: u16, db: u32, args: &[&str]) -> String {
    let (ok, out) = run_bounded(
        Command::new("redis-cli")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-n",
                &db.to_string(),
            ])
            .args(args),
        Duration::from_secs(10),
    );
    assert!(ok, "redis-cli {args:?}: {out}");
    out.trim().to_string()
}

/// Deletes the listed Redis keys when dropped (only those: the db may be
/// shared).
pub struct RedisKeys {
    pub port: u16,
    pub db: u32,
    pub keys: Vec<String>,
}

impl Drop for RedisKeys {
    fn drop(&mut self) {
        for k in &self.keys {
            let _ = run_bounded(
                Command::new("redis-cli")
                    .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
                    .args(["-n", &self.db.to_string(), "DEL", k]),
                Duration::from_secs(10),
            );
        }
    }
}

/// SQL as root over the local unix socket (`mysql -uroot`).
pub fn mysql_root(sql: &str) -> Result<String, String> {
    let (ok, out) = run_bounded(
        Command::new("mysql")
            .args(["-uroot", "--protocol=SOCKET", "-N", "-B", "-e"])
            .arg(sql),
        Duration::from_secs(30),
    );
    if ok {
        Ok(out.trim().to_string())
    } else {
        Err(out)
    }
}

/// A database and a user of our own (created over the unix socket as
/// root) holding the reference's `digests` table; dropped with the user
/// when this guard goes.
pub struct MysqlScratch {
    pub db: String,
    pub user: String,
    pub password: String,
}

impl MysqlScratch {
    pub fn create(name: &str) -> Result<Self, String> {
        let s = MysqlScratch {
            db: name.to_string(),
            user: name.to_string(),
            password: format!("pw_{name}"),
        };
        let (db, user, pw) = (&s.db, &s.user, &s.password);
        mysql_root(&format!(
            "DROP DATABASE IF EXISTS `{db}`; CREATE DATABASE `{db}`; \
             CREATE USER IF NOT EXISTS '{user}'@'127.0.0.1' IDENTIFIED BY '{pw}'; \
             CREATE USER IF NOT EXISTS '{user}'@'localhost' IDENTIFIED BY '{pw}'; \
             GRANT ALL ON `{db}`.* TO '{user}'@'127.0.0.1'; \
             GRANT ALL ON `{db}`.* TO '{user}'@'localhost'; \
             CREATE TABLE `{db}`.digests ( \
               digest char(40) default NULL, r_count int(11) default NULL, \
               wl_count int(11) default NULL, r_entered datetime default NULL, \
               wl_entered datetime default NULL, r_updated datetime default NULL, \
               wl_updated datetime default NULL, PRIMARY KEY (digest))"
        ))?;
        Ok(s)
    }

    /// The reference's DSN `host,user,password,database,table` over TCP.
    pub fn dsn(&self) -> String {
        format!(
            "127.0.0.1,{},{},{},digests",
            self.user, self.password, self.db
        )
    }
}

impl Drop for MysqlScratch {
    fn drop(&mut self) {
        let _ = mysql_root(&format!(
            "DROP DATABASE IF EXISTS `{}`; DROP USER IF EXISTS '{u}'@'127.0.0.1'; \
             DROP USER IF EXISTS '{u}'@'localhost'",
            self.db,
            u = self.user
        ));
    }
}

/// UTC offset in seconds of the zone `tz` right now (`date +%z`).
pub fn tz_offset(tz: &str) -> i64 {
    let (ok, out) = run_bounded(
        Command::new("date").arg("+%z").env("TZ", tz),
        Duration::from_secs(5),
    );
    assert!(ok, "date +%z: {out}");
    let z = out.trim();
    let sign = if z.starts_with('-') { -1 } else { 1 };
    let digits = z.trim_start_matches(['+', '-']);
    let h: i64 = digits[..2].parse().unwrap();
    let m: i64 = digits[2..4].parse().unwrap();
    sign * (h * 3600 + m * 60)
}

/// A child process (redis-server, mariadbd) killed with SIGKILL when
/// dropped.
pub struct Guard(pub Child);

impl Guard {
    pub fn kill_9(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.kill_9();
    }
}
