//! `--detach FILE`: become a daemon (double fork, new session, standard
//! streams redirected, pid file written), keeping the umask 077 the process
//! set at start — the reference sets `umask(0)` here, which leaves the
//! database and pid file world-writable (docs/field-notes.md B21); we do not.

use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::path::Path;

use nix::unistd::{fork, setsid, ForkResult};

/// Daemonize. `output` receives stdout and stderr (appended); `pidfile`
/// (if any) gets `"<pid>\n"`. Returns in the daemon only; the original
/// process and the intermediate child exit 0.
///
/// # Safety
///
/// It forks: the process must still be single-threaded (no thread started
/// yet, by us or by a library). The child of a multi-threaded process may
/// only make async-signal-safe calls, and this one goes on to allocate,
/// open files and start the server.
pub unsafe fn detach(output: &Path, pidfile: Option<&Path>) -> std::io::Result<()> {
    // SAFETY: the caller guarantees that no other thread exists.
    match unsafe { fork() }.map_err(std::io::Error::from)? {
        ForkResult::Parent { .. } => std::process::exit(0),
        ForkResult::Child => {}
    }
    std::env::set_current_dir("/")?;
    setsid().map_err(std::io::Error::from)?;
    // SAFETY: still single-threaded: the child of a fork has one thread.
    match unsafe { fork() }.map_err(std::io::Error::from)? {
        ForkResult::Parent { .. } => std::process::exit(0),
        ForkResult::Child => {}
    }
    let stdin = OpenOptions::new().read(true).open("/dev/null")?;
    let out = OpenOptions::new().create(true).append(true).open(output)?;
    if let Some(p) = pidfile {
        std::fs::write(p, format!("{}\n", std::process::id()))?;
    }
    for (from, to) in [(&stdin, 0), (&out, 1), (&out, 2)] {
        // SAFETY: dup2 only touches the descriptor table: `from` is open
        // (owned by a live File) and 0, 1 and 2 are the standard streams,
        // which nothing in this process holds as an owned descriptor.
        if unsafe { libc::dup2(from.as_raw_fd(), to) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
