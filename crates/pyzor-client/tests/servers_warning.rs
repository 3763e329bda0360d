//! A servers-file line that names no server: the reference skips it
//! silently (and falls back to public.pyzor.org when none is left); ours
//! warns on stderr naming the file and the line, and keeps stdout and the
//! exit status the reference's (docs/compatibility.md D33).

mod common;
use common::*;

#[test]
fn a_bad_servers_line_is_warned_about_on_stderr_only() {
    // A server that never answers: both clients time out the same way.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let home = ClientHome::new(
        &[
            "localhost".to_owned(),
            format!("127.0.0.1:{port}"),
            "host: 12 # a space after the colon".to_owned(),
        ],
        &[],
    );
    let servers = home.path().join("servers");
    let args = ["-t", "1", "ping"];
    let ours = match Clients::get("a_bad_servers_line_is_warned_about_on_stderr_only") {
        Some(c) => c.same(home.path(), &args, b""),
        None => run_client(&pyzor_testkit::our_bin("pyzor"), home.path(), &args, b""),
    };
    assert!(
        ours.stdout.starts_with(&format!("127.0.0.1:{port}\t")),
        "{}",
        ours.stdout
    );
    let want = [
        format!(
            "pyzor: warning: {} line 1: \"localhost\" is not a server (host:port); ignored",
            servers.display()
        ),
        format!(
            "pyzor: warning: {} line 3: \"host: 12\" is not a server (host:port); ignored",
            servers.display()
        ),
    ];
    assert_eq!(
        ours.stderr.lines().collect::<Vec<_>>(),
        want,
        "{}",
        ours.stderr
    );

    drop(silent);
}
