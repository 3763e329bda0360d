//! `--detach FILE`: become a daemon (double fork, new session, standard
//! streams redirected, pid file written), keeping the umask 077 the process
//! set at start — the reference sets `umask(0)` here, which leaves the
//! database and pid file world-writable (docs/field-notes.md B21); we do not.
//!
//! Must be called before any thread is started.

use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::path::Path;

use nix::unistd::{fork, setsid, ForkResult};

/// Daemonize. `output` receives stdout and stderr (appended); `pidfile`
/// (if any) gets `"<pid>\n"`. Returns in the daemon only; the original
/// process and the intermediate child exit 0.
pub fn detach(output: &Path, pidfile: Option<&Path>) -> std::io::Result<()> {
    // SAFETY: called before any other thread exists (documented contract).
    match unsafe { fork() }.map_err(std::io::Error::from)? {
        ForkResult::Parent { .. } => std::process::exit(0),
        ForkResult::Child => {}
    }
    std::env::set_current_dir("/")?;
    setsid().map_err(std::io::Error::from)?;
    // SAFETY: still single-threaded.
    match unsafe { fork() }.map_err(std::io::Error::from)? {
        ForkResult::Parent { .. } => std::process::exit(0),
        ForkResult::Child => {}
    }
    let stdin = OpenOptions::new().read(true).open("/dev/null")?;
    let out = OpenOptions::new().create(true).append(true).open(output)?;
    if let Some(p) = pidfile {
        std::fs::write(p, format!("{}\n", std::process::id()))?;
    }
    // SAFETY: dup2 onto the standard descriptors of this process.
    unsafe {
        libc::dup2(stdin.as_raw_fd(), 0);
        libc::dup2(out.as_raw_fd(), 1);
        libc::dup2(out.as_raw_fd(), 2);
    }
    Ok(())
}
