//! One pyzord per port and per database (docs/server.md "One server per
//! port and per database"): a second pyzord on a port that our pyzord or
//! the reference's holds, or on the LMDB environment of a running pyzord,
//! refuses to start with exit status 1 instead of sharing it.
//!
//! Every process started here is killed by a guard; every wait is bounded.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{start_ours, start_reference, venv, PING};

/// Run our pyzord with `args` until it exits (≤ 20 s; killed and `None`
/// if it is still running then). Returns (exit code, stderr).
fn run_ours(home: &Path, args: &[&str]) -> (Option<i32>, String) {
    let err_path = home.join("second-stderr.log");
    let mut child = Command::new(common::pyzord_bin())
        .arg("--homedir")
        .arg(home)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&err_path).unwrap()))
        .spawn()
        .expect("spawn pyzord");
    let t0 = Instant::now();
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code();
        }
        if t0.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (code, std::fs::read_to_string(&err_path).unwrap_or_default())
}

/// The first server still answers (the second one took nothing from it).
fn still_answers(port: u16) {
    assert!(
        common::raw_wait(port, PING, Duration::from_secs(5)).is_some(),
        "the first server on port {port} stopped answering"
    );
}

#[test]
fn second_pyzord_on_the_same_port_refuses_to_start() {
    let h1 = pyzor_testkit::temp_home();
    let h2 = pyzor_testkit::temp_home();
    let first = start_ours(h1.path(), &["--workers", "2"]);
    let port = first.port.to_string();
    let (code, err) = run_ours(
        h2.path(),
        &["-a", "127.0.0.1", "-p", &port, "--workers", "2"],
    );
    assert_eq!(
        code,
        Some(1),
        "a second pyzord on port {port} must exit 1 (None = still running after 20 s); stderr: {err}"
    );
    assert!(
        err.contains("[Errno 98] Address already in use"),
        "stderr: {err}"
    );
    still_answers(first.port);
    assert_eq!(first.stop(), Some(0));
}

#[test]
fn pyzord_refuses_the_port_of_a_reference_pyzord() {
    let test = "pyzord_refuses_the_port_of_a_reference_pyzord";
    let Some(venv) = venv(test) else { return };
    let h1 = pyzor_testkit::temp_home();
    let h2 = pyzor_testkit::temp_home();
    let reference = start_reference(&venv, h1.path(), &[]);
    let port = reference.port.to_string();
    let (code, err) = run_ours(h2.path(), &["-a", "127.0.0.1", "-p", &port]);
    assert_eq!(code, Some(1), "stderr: {err}");
    assert!(
        err.contains("[Errno 98] Address already in use"),
        "stderr: {err}"
    );
    still_answers(reference.port);
}

#[test]
fn second_pyzord_on_one_lmdb_environment_names_the_holder() {
    let home = pyzor_testkit::temp_home();
    let first = start_ours(home.path(), &[]);
    let other_port = pyzor_testkit::free_udp_port().to_string();
    let (code, err) = run_ours(home.path(), &["-a", "127.0.0.1", "-p", &other_port]);
    assert_eq!(
        code,
        Some(1),
        "a second pyzord on the same home directory must exit 1 (None = still running after 20 s); stderr: {err}"
    );
    assert!(
        err.contains(&format!("in use by process {}", first.pid())),
        "stderr should name pid {}: {err}",
        first.pid()
    );
    still_answers(first.port);
    // The lock goes with the process: a new server starts once it stopped.
    assert_eq!(first.stop(), Some(0));
    let again = start_ours(home.path(), &[]);
    assert_eq!(again.stop(), Some(0));
}

#[test]
fn two_pyzords_started_at_once_on_one_port_leave_one_running() {
    for trial in 0..3 {
        let homes = [pyzor_testkit::temp_home(), pyzor_testkit::temp_home()];
        let port = pyzor_testkit::free_udp_port();
        let mut procs: Vec<common::Proc> = homes
            .iter()
            .map(|h| common::Proc {
                child: Command::new(common::pyzord_bin())
                    .arg("--homedir")
                    .arg(h.path())
                    .args(["-a", "127.0.0.1", "-p", &port.to_string(), "--workers", "2"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::from(
                        std::fs::File::create(h.path().join("stderr.log")).unwrap(),
                    ))
                    .spawn()
                    .expect("spawn pyzord"),
                port,
            })
            .collect();
        // Within 20 s exactly one of them exits, with status 1.
        let t0 = Instant::now();
        let exited = loop {
            let done: Vec<usize> = (0..2)
                .filter(|&i| procs[i].child.try_wait().unwrap().is_some())
                .collect();
            if !done.is_empty() || t0.elapsed() > Duration::from_secs(20) {
                break done;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(exited.len(), 1, "trial {trial}: exited {exited:?}");
        let loser = exited[0];
        let status = procs[loser].child.wait().unwrap();
        assert_eq!(status.code(), Some(1), "trial {trial}");
        let err = std::fs::read_to_string(homes[loser].path().join("stderr.log")).unwrap();
        assert!(
            err.contains("Address already in use"),
            "trial {trial}: {err}"
        );
        let mut winner = procs.remove(1 - loser);
        common::wait_ready(port, &mut winner.child);
        assert_eq!(winner.stop(), Some(0), "trial {trial}");
    }
}
