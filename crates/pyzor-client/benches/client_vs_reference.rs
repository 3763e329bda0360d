//! Wall-clock comparison of our `pyzor` and the reference client against
//! one reference `pyzord` (gdbm) on loopback. Prints figures; asserts
//! nothing. Run: `cargo bench -p pyzor-client` (the reference venv is
//! `$PYZOR_REF_VENV`, else `target/ref-venv` from `scripts/setup-ref-env`).

use std::io::Write;
use std::net::UdpSocket;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn run(bin: &Path, home: &Path, args: &[&str], input: &[u8]) -> Duration {
    let t0 = Instant::now();
    let mut child = Command::new(bin)
        .arg("--homedir")
        .arg(home)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn client");
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait().unwrap();
    t0.elapsed()
}

fn main() {
    let Some(venv) = pyzor_testkit::ref_venv("client_vs_reference") else {
        return;
    };
    let ours = std::env::current_exe()
        .unwrap()
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("pyzor");
    if !ours.is_file() {
        eprintln!("SKIPPED: client_vs_reference: {} not built", ours.display());
        return;
    }
    let srv_home = pyzor_testkit::temp_home();
    let port = pyzor_testkit::free_udp_port();
    let mut server = Command::new(venv.join("bin/pyzord"))
        .arg("--homedir")
        .arg(srv_home.path())
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("pyzord");
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    probe
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let t0 = Instant::now();
    loop {
        let _ = probe.send_to(
            b"Op: ping\nThread: 4242\nPV: 2.1\nUser: anonymous\nTime: 1\nSig: x\n\n",
            ("127.0.0.1", port),
        );
        if probe.recv(&mut [0u8; 512]).is_ok() || t0.elapsed() > Duration::from_secs(15) {
            break;
        }
    }
    let home = pyzor_testkit::temp_home();
    std::fs::write(home.path().join("servers"), format!("127.0.0.1:{port}\n")).unwrap();
    let reference = venv.join("bin/pyzor");
    let one = b"2e8aa95a8e8a0ba98c7d52a3d05ecb6e5a1b7d17\n".to_vec();
    let many: Vec<u8> = (0..500)
        .flat_map(|i| format!("{i:040x}\n").into_bytes())
        .collect();
    for (label, args, input, rounds) in [
        ("check, 1 digest", &["-s", "digests", "check"][..], &one, 20),
        ("ping", &["ping"][..], &Vec::new(), 20),
        (
            "check, 500 digests",
            &["-s", "digests", "check"][..],
            &many,
            3,
        ),
    ] {
        let mut r = Duration::ZERO;
        let mut o = Duration::ZERO;
        for _ in 0..rounds {
            r += run(&reference, home.path(), args, input);
            o += run(&ours, home.path(), args, input);
        }
        let (r, o) = (r / rounds, o / rounds);
        println!(
            "{label:<22} reference {:>8.1} ms   ours {:>8.1} ms   x{:.1}",
            r.as_secs_f64() * 1e3,
            o.as_secs_f64() * 1e3,
            r.as_secs_f64() / o.as_secs_f64()
        );
    }
    let _ = server.kill();
    let _ = server.wait();
}
