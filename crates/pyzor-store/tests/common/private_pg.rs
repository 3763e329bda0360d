//! A private PostgreSQL server for one test (its own data directory and
//! port on 127.0.0.1), run as the `postgres` user; killed when dropped.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = "/usr/lib/postgresql/15/bin";

pub struct PrivatePg {
    child: Option<Child>,
    dir: tempfile::TempDir,
    pub port: u16,
    /// The superuser `postgres`'s password (`None` with trust auth).
    pub password: Option<String>,
}

fn as_postgres(prog: &str) -> Command {
    let mut c = Command::new("setpriv");
    c.args([
        "--reuid",
        "postgres",
        "--regid",
        "postgres",
        "--init-groups",
    ])
    .arg(Path::new(BIN).join(prog));
    c
}

impl PrivatePg {
    /// `initdb` a fresh cluster (trust auth, or scram-sha-256 with
    /// `password` for the `postgres` superuser) and start it. `None` (a loud
    /// skip) without the server binaries, `setpriv` or root.
    pub fn create(test: &str, password: Option<&str>) -> Option<PrivatePg> {
        let is_root = std::fs::metadata("/proc/self")
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
            .unwrap_or(false);
        if !Path::new(BIN).join("initdb").is_file()
            || !is_root
            || Command::new("setpriv").arg("--version").output().is_err()
        {
            pyzor_testkit::skip(
                test,
                "needs /usr/lib/postgresql/15/bin, setpriv and root (to run PostgreSQL as postgres)",
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let mut initdb = as_postgres("initdb");
        initdb
            .args(["-U", "postgres", "-D"])
            .arg(dir.path().join("data"));
        match password {
            None => {
                initdb.args(["-A", "trust"]);
            }
            Some(pw) => {
                let f = dir.path().join("pwfile");
                std::fs::write(&f, pw).unwrap();
                std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
                initdb
                    .args(["-A", "scram-sha-256"])
                    .arg(format!("--pwfile={}", f.display()));
            }
        }
        let st = initdb
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        if !st.success() {
            pyzor_testkit::skip(test, "initdb as the postgres user failed");
            return None;
        }
        let mut pg = PrivatePg {
            child: None,
            dir,
            port: pyzor_testkit::free_tcp_port(),
            password: password.map(str::to_string),
        };
        pg.start();
        Some(pg)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Start the server and wait (at most 30 s) until it answers queries.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let c = as_postgres("postgres")
            .arg("-D")
            .arg(self.data())
            .args([
                "-p",
                &self.port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
                "-k",
            ])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(c);
        // accepting TCP is not yet accepting queries (recovery after kill -9)
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let mut cfg = postgres::Config::new();
            cfg.host("127.0.0.1")
                .port(self.port)
                .user("postgres")
                .dbname("postgres")
                .connect_timeout(Duration::from_secs(2));
            if let Some(pw) = &self.password {
                cfg.password(pw);
            }
            if cfg.connect(postgres::NoTls).is_ok() {
                return;
            }
            assert!(Instant::now() < end, "private postgres did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL the postmaster; its backends notice and exit, and the next
    /// [`start`](Self::start) recovers from the WAL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        self.kill();
    }
}
