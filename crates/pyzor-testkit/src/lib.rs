//! Support for the integration tests of every crate: free ports, the
//! reference Pyzor 1.1.2 virtualenv, our own binaries, the local services
//! (Redis, MariaDB, PostgreSQL) and programs, the Python oracle runner
//! ([`Oracle`]) and the one random generator ([`XorShift`]).
//!
//! Anything a test needs that is missing makes it **skip loudly**: it prints
//! `SKIPPED: <test>: <reason>` to stderr (which `cargo nextest` shows) and
//! returns, so the suite still passes on a bare machine. In CI
//! (`CI=true`) the reference virtualenv is required: `scripts/test` builds
//! it, and a missing one is a failure rather than a skip.

use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod oracle;
pub mod ports;
mod rng;

pub use oracle::{system_python, Oracle};
pub use rng::XorShift;

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crate lives in crates/<name>")
        .to_path_buf()
}

/// The names under `[dependencies]` of the crate whose `Cargo.toml` is in
/// `crate_dir` (the layer tests check what a crate may depend on).
pub fn manifest_dependencies(crate_dir: &Path) -> Vec<String> {
    let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).expect("read Cargo.toml");
    let deps = manifest
        .split("[dependencies]")
        .nth(1)
        .and_then(|s| s.split("\n[").next())
        .unwrap_or("");
    deps.lines()
        .filter_map(|l| l.split(['.', '=', ' ']).next())
        .filter(|n| !n.is_empty() && !n.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// Print the loud skip line, and append it to the file named by
/// `PYZOR_SKIP_LOG` (set by `scripts/test`, which lists every skip at the
/// end of the run).
pub fn skip(test: &str, reason: &str) {
    let line = format!("SKIPPED: {test}: {reason}");
    eprintln!("{line}");
    if let Some(path) = std::env::var_os("PYZOR_SKIP_LOG") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// A UDP port on 127.0.0.1 that is free right now, for a server a test
/// starts ([`ports`]).
pub fn free_udp_port() -> u16 {
    ports::next(|port| UdpSocket::bind(("127.0.0.1", port)).is_ok())
}

/// The reference virtualenv (`PYZOR_REF_VENV`, else `target/ref-venv`), if
/// it holds `pyzor`, `pyzord` and `pyzor-migrate`. In CI a missing venv
/// panics: interop is not optional there.
pub fn ref_venv(test: &str) -> Option<PathBuf> {
    let venv = std::env::var_os("PYZOR_REF_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/ref-venv"));
    let ok = ["pyzor", "pyzord", "pyzor-migrate"]
        .iter()
        .all(|b| venv.join("bin").join(b).is_file());
    if ok {
        return Some(venv);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "{test}: reference virtualenv missing at {} (scripts/setup-ref-env builds it)",
            venv.display()
        );
    }
    skip(
        test,
        &format!(
            "reference virtualenv missing at {} (run scripts/setup-ref-env)",
            venv.display()
        ),
    );
    None
}

/// Path of one of our binaries built by cargo for this test run
/// (`CARGO_BIN_EXE_<name>` only exists inside the binary's own crate, so
/// this looks next to the test executable instead).
pub fn our_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let p = dir.join(name);
    assert!(
        p.is_file(),
        "{} not built; run the tests through cargo from the workspace root",
        p.display()
    );
    p
}

/// A TCP port on 127.0.0.1 that is free right now, for a server a test
/// starts ([`ports`]).
pub fn free_tcp_port() -> u16 {
    ports::next(|port| TcpListener::bind(("127.0.0.1", port)).is_ok())
}

/// Whether something listens on 127.0.0.1:`port` (TCP).
pub(crate) fn tcp_service_up(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(300)).is_ok()
}

/// Wait (at most `limit`) until something accepts TCP on 127.0.0.1:`port`.
pub fn wait_tcp(port: u16, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if tcp_service_up(port) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A service on its default local port, or a loud skip.
fn service_available(test: &str, name: &str, port: u16) -> bool {
    let up = tcp_service_up(port);
    if !up {
        skip(test, &format!("{name} is not running on 127.0.0.1:{port}"));
    }
    up
}

/// Redis on its default port, or a loud skip.
pub fn redis_available(test: &str) -> bool {
    service_available(test, "Redis", 6379)
}

/// MariaDB/MySQL on its default port, or a loud skip.
pub fn mysql_available(test: &str) -> bool {
    service_available(test, "MariaDB", 3306)
}

/// PostgreSQL on its default port, or a loud skip.
pub fn postgres_available(test: &str) -> bool {
    service_available(test, "PostgreSQL", 5432)
}

/// Whether `program` can be run: an executable file on `PATH`, or at that
/// path when it names one (contains a `/`).
pub(crate) fn program_installed(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        return executable(Path::new(program));
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| executable(&d.join(program))))
}

/// Whether every one of `programs` is installed, or a loud skip naming the
/// missing ones.
pub fn programs_available(test: &str, programs: &[&str]) -> bool {
    let missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|p| !program_installed(p))
        .collect();
    if !missing.is_empty() {
        skip(test, &format!("{} not installed", missing.join(" / ")));
    }
    missing.is_empty()
}

/// A fresh temporary home directory for one test.
pub fn temp_home() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("pyzor-test-")
        .tempdir()
        .expect("temp dir")
}

#[cfg(test)]
mod tests {
    #[test]
    fn programs_are_found_on_path_or_by_their_path() {
        assert!(super::program_installed("sh"));
        assert!(super::program_installed("/bin/sh"));
        assert!(!super::program_installed("pyzor-no-such-program"));
        assert!(!super::program_installed("/nonexistent/sh"));
        assert!(super::programs_available("testkit", &["sh"]));
    }
}
