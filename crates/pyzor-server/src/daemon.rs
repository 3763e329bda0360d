//! `--detach FILE`: run in the background, and have the launching process's
//! exit status tell whether the server started.
//!
//! [`detach`] forks **before any thread exists** (a fork copies only the
//! calling thread, so locks held by others — the allocator's, the
//! logger's — would stay locked forever in the child), as unbound and nsd
//! do: the launcher keeps the read end of a pipe and waits; the daemon
//! (after `setsid` and a second fork) does the whole start-up — engine,
//! sockets, pid file — and then reports [`Detached::ready`] or
//! [`Detached::failed`] through the pipe. The launcher exits 0 on ready,
//! and 1 with the reason on stderr otherwise, also when the daemon dies
//! without a word (the pipe closes empty).
//!
//! The daemon's stdin is `/dev/null` and its stdout/stderr are appended to
//! FILE from the fork on, so nothing it writes reaches the launcher's
//! terminal. The umask 077 the process set at start is kept — the
//! reference sets `umask(0)` here, which leaves the database and pid file
//! world-writable (docs/field-notes.md B21); we do not.
//!
//! [`PidFile`]: the `PidFile` of a detached server, created without
//! following a symlink and locked (`flock`) while the server runs.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::unistd::{fork, setsid, ForkResult};

pub(crate) mod notify;
pub(crate) mod privileges;

/// The daemon's report when it serves.
const READY: &[u8] = b"ready\n";
/// Prefix of the daemon's report when its start failed.
const FAILED: &[u8] = b"error: ";
/// The launcher reads at most this much of the report.
const MAX_REPORT: u64 = 64 * 1024;

/// Which side of [`detach`] this process is on.
#[derive(Debug)]
pub(crate) enum Forked {
    /// The launching process, once the daemon has reported: `Ok` when it
    /// serves, else why it did not start. Exit with it.
    Launcher(Result<(), String>),
    /// The daemon: start the server, then report through the handle.
    Daemon(Detached),
}

/// The daemon's end of the start-up pipe.
#[derive(Debug)]
pub(crate) struct Detached {
    report: File,
}

impl Detached {
    /// Tell the launcher the server serves (it exits 0).
    pub(crate) fn ready(self) {
        self.send(READY);
    }

    /// Tell the launcher why the start failed (it prints `reason` and exits 1).
    pub(crate) fn failed(self, reason: &str) {
        let mut m = FAILED.to_vec();
        m.extend_from_slice(reason.as_bytes());
        self.send(&m);
    }

    fn send(mut self, msg: &[u8]) {
        // The launcher may be gone (killed): nothing else to tell then.
        let _ = self.report.write_all(msg);
    }
}

/// The launcher's reading of the daemon's report (`report` is everything
/// the daemon wrote before the pipe closed).
fn verdict(report: &[u8], output: &Path) -> Result<(), String> {
    if report == READY {
        Ok(())
    } else if let Some(reason) = report.strip_prefix(FAILED) {
        Err(String::from_utf8_lossy(reason).trim_end().to_owned())
    } else if report.is_empty() {
        Err(format!(
            "the daemon exited during start-up without giving a reason (see {})",
            output.display()
        ))
    } else {
        Err(format!(
            "the daemon sent an unexpected start-up report {:?}",
            String::from_utf8_lossy(&report[..report.len().min(200)])
        ))
    }
}

/// Read the daemon's report until the pipe closes.
fn read_report(pipe: File, output: &Path) -> Result<(), String> {
    let mut buf = Vec::new();
    match pipe.take(MAX_REPORT).read_to_end(&mut buf) {
        Ok(_) => verdict(&buf, output),
        Err(e) => Err(format!("cannot read the daemon's start-up report: {e}")),
    }
}

/// Threads of this process, from `/proc/self/task` (`None` if unknown).
fn thread_count() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/task").ok()?.count())
}

/// A close-on-exec pipe: (read end, write end).
fn pipe() -> io::Result<(File, File)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded: both descriptors are open and ours alone.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((File::from(r), File::from(w)))
}

/// Daemonize: fork, new session, fork again; the daemon's standard input
/// is `/dev/null` and its standard output and error are appended to
/// `output`; its working directory is `/`. Returns
/// [`Forked::Launcher`] in the original process once the daemon has
/// reported (the intermediate process exits at once), and
/// [`Forked::Daemon`] in the daemon. An error (`output` cannot be opened,
/// a fork fails, other threads exist) is returned in the original process
/// before anything was forked, or reported to it through the pipe.
///
/// # Safety
///
/// No other thread may exist in the process when this is called: the
/// forked processes continue with a copy of the memory in which any lock
/// another thread held stays locked. (As a last line of defence, the
/// call fails if `/proc/self/task` lists more than one thread.)
pub(crate) unsafe fn detach(output: &Path) -> io::Result<Forked> {
    if let Some(n) = thread_count().filter(|&n| n > 1) {
        return Err(io::Error::other(format!(
            "{n} threads exist; pyzord must detach before starting any"
        )));
    }
    let stdin = File::open("/dev/null")?;
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(output)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", output.display())))?;
    let (read_end, write_end) = pipe()?;
    // SAFETY: single-threaded (the caller's contract, checked above).
    match unsafe { fork() }.map_err(io::Error::from)? {
        ForkResult::Parent { child } => {
            drop(write_end);
            let verdict = read_report(read_end, output);
            // Reap the intermediate process (it exits right after forking).
            let _ = nix::sys::wait::waitpid(child, None);
            return Ok(Forked::Launcher(verdict));
        }
        ForkResult::Child => {}
    }
    drop(read_end);
    let report = Detached { report: write_end };
    let step = (|| -> io::Result<()> {
        std::env::set_current_dir("/")?;
        setsid().map_err(io::Error::from)?;
        Ok(())
    })();
    if let Err(e) = step {
        report.failed_in_child(&format!("cannot detach: {e}"));
    }
    // SAFETY: still single-threaded (the intermediate process never
    // starts a thread).
    match unsafe { fork() } {
        Ok(ForkResult::Parent { .. }) => {
            // SAFETY: _exit ends the intermediate process without running
            // anything of the launcher's (atexit handlers, buffers).
            unsafe { libc::_exit(0) }
        }
        Ok(ForkResult::Child) => {}
        Err(e) => report.failed_in_child(&format!("cannot detach: {e}")),
    }
    // SAFETY: dup2 onto this process's standard descriptors, from
    // descriptors it owns.
    unsafe {
        libc::dup2(stdin.as_raw_fd(), 0);
        libc::dup2(out.as_raw_fd(), 1);
        libc::dup2(out.as_raw_fd(), 2);
    }
    Ok(Forked::Daemon(report))
}

impl Detached {
    /// A forked process that cannot go on: report and `_exit(1)`.
    fn failed_in_child(self, reason: &str) -> ! {
        self.failed(reason);
        // SAFETY: ends this forked process without running the launcher's
        // exit handlers.
        unsafe { libc::_exit(1) }
    }
}

/// Why the pid file cannot be taken.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PidFileError {
    #[error("pid file {} is a symbolic link; pyzord does not follow it (remove it or set another PidFile)", path.display())]
    Symlink { path: PathBuf },
    #[error("pid file {} is locked by a running pyzord ({running}); stop it first or set another PidFile", path.display())]
    Locked { path: PathBuf, running: String },
    #[error("pid file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What the pid file held before it was taken (a stale pid).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stale {
    /// The file's first line, cut to 64 bytes.
    pub(crate) content: String,
    /// Whether that pid names a running process (which then is not a
    /// pyzord holding the file's lock: another program, or a reference
    /// pyzord, which does not lock).
    pub(crate) alive: bool,
}

impl std::fmt::Display for Stale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.alive {
            write!(
                f,
                "pid {} is running but does not hold the file's lock",
                self.content
            )
        } else if self.content.parse::<i32>().is_ok() {
            write!(f, "pid {} is not running", self.content)
        } else {
            write!(f, "it held {:?}, not a pid", self.content)
        }
    }
}

/// The locked pid file of a running (detached) server; removed when
/// dropped.
#[derive(Debug)]
pub(crate) struct PidFile {
    path: PathBuf,
    file: File,
}

fn first_line(file: &mut File) -> io::Result<String> {
    let mut buf = Vec::new();
    file.seek(io::SeekFrom::Start(0))?;
    (&mut *file).take(64).read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    Ok(text.lines().next().unwrap_or("").trim().to_owned())
}

fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    a.dev() == b.dev() && a.ino() == b.ino()
}

impl PidFile {
    /// Create or open `path` without following a symlink and take an
    /// exclusive `flock` on it. A file locked by another process is
    /// [`PidFileError::Locked`] (naming the pid it holds); an unlocked one
    /// with content is stale and returned as such for the log. The pid is
    /// written by [`PidFile::write_pid`], once the server serves.
    pub(crate) fn acquire(path: &Path) -> Result<(PidFile, Option<Stale>), PidFileError> {
        let io_err = |source| PidFileError::Io {
            path: path.to_owned(),
            source,
        };
        // The holder of the lock may remove the file between our open and
        // our lock: then lock the file now at `path` instead.
        for _ in 0..3 {
            let mut file = match OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .mode(0o644)
                .open(path)
            {
                Ok(f) => f,
                Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                    return Err(PidFileError::Symlink {
                        path: path.to_owned(),
                    })
                }
                Err(e) => return Err(io_err(e)),
            };
            let meta = file.metadata().map_err(io_err)?;
            if !meta.is_file() {
                return Err(io_err(io::Error::other("not a regular file")));
            }
            // SAFETY: flock on a descriptor we own.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
                    return Err(io_err(e));
                }
                let pid = first_line(&mut file).map_err(io_err)?;
                let running = if pid.is_empty() {
                    "still starting, no pid written yet".to_owned()
                } else {
                    format!("pid {pid}")
                };
                return Err(PidFileError::Locked {
                    path: path.to_owned(),
                    running,
                });
            }
            match std::fs::symlink_metadata(path) {
                Ok(now) if same_file(&now, &meta) => {}
                _ => continue,
            }
            let content = first_line(&mut file).map_err(io_err)?;
            let stale = (!content.is_empty()).then(|| Stale {
                alive: content
                    .parse::<i32>()
                    // SAFETY: signal 0 only probes for the process.
                    .is_ok_and(|p| p > 0 && unsafe { libc::kill(p, 0) } == 0),
                content,
            });
            return Ok((
                PidFile {
                    path: path.to_owned(),
                    file,
                },
                stale,
            ));
        }
        Err(io_err(io::Error::other(
            "it keeps being replaced while pyzord locks it",
        )))
    }

    /// Replace the file's content with `"<pid>\n"`.
    pub(crate) fn write_pid(&mut self, pid: u32) -> Result<(), PidFileError> {
        let r = (|| {
            self.file.set_len(0)?;
            self.file.seek(io::SeekFrom::Start(0))?;
            self.file.write_all(format!("{pid}\n").as_bytes())
        })();
        r.map_err(|source| PidFileError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

impl Drop for PidFile {
    /// Remove the file if `path` still names it (the lock goes with the
    /// descriptor, closed right after).
    fn drop(&mut self) {
        let ours = match (self.file.metadata(), std::fs::symlink_metadata(&self.path)) {
            (Ok(a), Ok(b)) => same_file(&a, &b),
            _ => false,
        };
        if ours {
            if let Err(e) = std::fs::remove_file(&self.path) {
                log::warn!("Unable to remove pid file {}: {e}", self.path.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_launcher_reads_the_report() {
        let out = Path::new("/x/out");
        assert_eq!(verdict(b"ready\n", out), Ok(()));
        assert_eq!(
            verdict(b"error: cannot open the redis engine\n", out),
            Err("cannot open the redis engine".to_owned())
        );
        let silent = verdict(b"", out).unwrap_err();
        assert!(silent.contains("without giving a reason") && silent.contains("/x/out"));
        assert!(verdict(b"ready\nready\n", out).is_err());
    }

    #[test]
    fn a_daemon_that_dies_without_a_word_is_a_failure() {
        let (r, w) = pipe().unwrap();
        let d = Detached { report: w };
        drop(d); // the daemon's end closes without a report
        let v = read_report(r, Path::new("out"));
        assert!(v.unwrap_err().contains("without giving a reason"));
        let (r, w) = pipe().unwrap();
        Detached { report: w }.failed("engine down");
        assert_eq!(read_report(r, Path::new("out")), Err("engine down".into()));
        let (r, w) = pipe().unwrap();
        Detached { report: w }.ready();
        assert_eq!(read_report(r, Path::new("out")), Ok(()));
    }

    #[test]
    fn pid_file_lock_stale_and_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pyzord.pid");
        // Fresh: created, nothing stale, mode 0600 under umask 077 at most.
        let (mut a, stale) = PidFile::acquire(&p).unwrap();
        assert_eq!(stale, None);
        a.write_pid(4242).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "4242\n");
        // flock locks are per open file description: a second acquire in
        // this process is refused too.
        match PidFile::acquire(&p) {
            Err(PidFileError::Locked { running, .. }) => assert_eq!(running, "pid 4242"),
            other => panic!("{other:?}"),
        }
        drop(a);
        assert!(!p.exists(), "removed when dropped");
        // Stale content is reported, then replaced.
        std::fs::write(&p, "999999999\n").unwrap();
        let (mut b, stale) = PidFile::acquire(&p).unwrap();
        let stale = stale.unwrap();
        assert!(!stale.alive);
        assert_eq!(stale.to_string(), "pid 999999999 is not running");
        b.write_pid(7).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "7\n");
        drop(b);
        // A symlink is refused and its target untouched.
        let target = dir.path().join("target");
        std::fs::write(&target, "keep\n").unwrap();
        std::os::unix::fs::symlink(&target, &p).unwrap();
        assert!(matches!(
            PidFile::acquire(&p),
            Err(PidFileError::Symlink { .. })
        ));
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep\n");
    }
}
