//! Ports for the servers that tests start, handed out so that nothing else
//! takes one between the test choosing it and its server binding it.
//!
//! Asking the kernel for port 0 and closing the socket again (the usual
//! trick) leaves a gap: until the server binds, the port is free, and any
//! socket bound to port 0 in between, such as another test's client, can
//! be given it by the kernel. Then the test talks to the wrong program
//! (this happened in CI: a start-up ping answered by another test's socket,
//! a "closed" port that answered).
//!
//! So ports come from below the kernel's ephemeral range
//! (`/proc/sys/net/ipv4/ip_local_port_range`), which the kernel never
//! hands to a port-0 bind or an unbound sender. Test processes on this
//! machine, of this checkout or any other, take them in turn from one
//! counter in a file under the temporary directory, held under `flock`
//! while it moves on: two tests running at once never get the same port,
//! and a port comes round again only after the whole range has been handed
//! out. Each port is also checked by binding it, so one in use by
//! something else is passed over.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;

/// The lowest port handed out.
pub const LOW: u16 = 20_000;
/// Never handed out: Pyzor's own default port, which a test may mean.
const PYZOR_DEFAULT: u16 = 24441;
/// The ephemeral range starts here where the kernel does not say.
const EPHEMERAL_DEFAULT: u16 = 32_768;

/// The ports handed out: `LOW` up to (not including) the start of the
/// ephemeral range, or `LOW..EPHEMERAL_DEFAULT` where that range is
/// unreadable or lies lower.
pub fn range() -> std::ops::Range<u16> {
    let start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .filter(|&p| p > LOW + 1_000)
        .unwrap_or(EPHEMERAL_DEFAULT);
    LOW..start
}

/// The counter file shared by every test process on the machine.
fn counter_path() -> PathBuf {
    std::env::temp_dir().join("pyzor-rs-test-ports")
}

/// The next port of [`range`] that `free` accepts (it binds the port and
/// lets it go). Panics when no port of the whole range is free.
pub fn next(free: impl Fn(u16) -> bool) -> u16 {
    let range = range();
    let span = u32::from(range.end - range.start);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(counter_path());
    let mut guard = match file {
        Ok(f) => Locked::new(f),
        Err(_) => None,
    };
    // Where the last process stopped; a fresh file starts at a place of
    // its own so that two machines sharing nothing do not line up.
    let mut n: u32 = match guard.as_mut() {
        Some(g) => g.read().unwrap_or_else(seed),
        None => seed(),
    };
    for _ in 0..span {
        let port = range.start + (n % span) as u16;
        n = n.wrapping_add(1);
        if port != PYZOR_DEFAULT && free(port) {
            if let Some(g) = guard.as_mut() {
                g.write(n);
            }
            return port;
        }
    }
    panic!("no free port in {range:?} on 127.0.0.1");
}

/// A start for a counter nobody has written yet.
fn seed() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    t ^ std::process::id().rotate_left(16)
}

/// The counter file under an exclusive `flock`, released when dropped.
struct Locked(File);

impl Locked {
    fn new(f: File) -> Option<Locked> {
        // SAFETY: a valid open descriptor; flock only locks it.
        let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        (r == 0).then_some(Locked(f))
    }

    fn read(&mut self) -> Option<u32> {
        let mut s = String::new();
        self.0.seek(SeekFrom::Start(0)).ok()?;
        self.0.read_to_string(&mut s).ok()?;
        s.trim().parse().ok()
    }

    fn write(&mut self, n: u32) {
        // A failed write only means the next process starts elsewhere.
        let _ = self.0.set_len(0);
        let _ = self.0.seek(SeekFrom::Start(0));
        let _ = write!(self.0, "{n}");
    }
}

impl Drop for Locked {
    fn drop(&mut self) {
        // SAFETY: as in `new`; closing the file would release it too.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::net::UdpSocket;

    /// Ports lie below the ephemeral range, so a port-0 bind cannot be
    /// given one; consecutive calls (and so concurrent test processes,
    /// which share the counter) never get the same port.
    #[test]
    fn ports_are_outside_the_ephemeral_range_and_distinct() {
        let r = range();
        let mut seen = HashSet::new();
        for _ in 0..200 {
            let p = next(|p| UdpSocket::bind(("127.0.0.1", p)).is_ok());
            assert!(r.contains(&p), "{p} outside {r:?}");
            assert_ne!(p, PYZOR_DEFAULT);
            assert!(seen.insert(p), "port {p} handed out twice");
        }
        // what the kernel picks for port 0 is never one of ours
        for _ in 0..200 {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            assert!(!r.contains(&s.local_addr().unwrap().port()));
        }
    }

    /// A port something else holds is passed over.
    #[test]
    fn a_port_in_use_is_passed_over() {
        let held = UdpSocket::bind(("127.0.0.1", next(|_| true))).ok();
        let p = next(|p| UdpSocket::bind(("127.0.0.1", p)).is_ok());
        if let Some(h) = held {
            assert_ne!(p, h.local_addr().unwrap().port());
        }
        let refused = std::cell::Cell::new(0);
        let p2 = next(|_| {
            refused.set(refused.get() + 1);
            refused.get() > 3
        });
        assert!(range().contains(&p2));
        assert_eq!(refused.get(), 4, "three refused ports were skipped");
    }
}
