//! systemd's readiness protocol (`sd_notify(3)`): one datagram of
//! `KEY=VALUE` lines to the unix socket named by `$NOTIFY_SOCKET` (a path,
//! or an abstract name written `@name`).
//!
//! Our own few lines over [`UnixDatagram`] rather than the `sd-notify`
//! crate: the protocol is one `sendto` per state change, pyzord sends four
//! states, and the crate would add a dependency for what std already does
//! (abstract names included, `std::os::linux::net::SocketAddrExt`).
//! Unsupported: `vsock:` addresses (systemd ≥ 254 inside VMs) and file
//! descriptor passing; pyzord says so and runs on.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The longest `$NOTIFY_SOCKET` accepted (a `sockaddr_un` path holds 108
/// bytes).
const MAX_ADDR: usize = 108;

/// Where state changes go: `$NOTIFY_SOCKET`, read once at start.
#[derive(Debug)]
pub(crate) struct Notifier {
    sock: UnixDatagram,
    addr: SocketAddr,
    /// The variable as written, for messages.
    name: String,
}

/// Why `$NOTIFY_SOCKET` cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NotifyError {
    #[error("NOTIFY_SOCKET={0:?} is not a unix socket path or @abstract name; readiness is not reported (pyzord serves anyway)")]
    Address(String),
    #[error("cannot create a socket for NOTIFY_SOCKET: {0}")]
    Socket(#[source] io::Error),
}

impl Notifier {
    /// The notifier `$NOTIFY_SOCKET` names, `None` when it is unset or
    /// empty (not started by systemd with `Type=notify`).
    pub(crate) fn from_env() -> Option<Result<Notifier, NotifyError>> {
        let v = std::env::var_os("NOTIFY_SOCKET")?;
        if v.is_empty() {
            return None;
        }
        Some(Self::new(&v.to_string_lossy()))
    }

    /// A notifier for the socket `name` (`/path` or `@abstract`).
    pub(crate) fn new(name: &str) -> Result<Notifier, NotifyError> {
        let bad = || NotifyError::Address(name.chars().take(MAX_ADDR).collect());
        if name.len() > MAX_ADDR {
            return Err(bad());
        }
        let addr = if let Some(abs) = name.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(abs.as_bytes()).map_err(|_| bad())?
        } else if name.starts_with('/') {
            SocketAddr::from_pathname(name).map_err(|_| bad())?
        } else {
            return Err(bad());
        };
        let sock = UnixDatagram::unbound().map_err(NotifyError::Socket)?;
        Ok(Notifier {
            sock,
            addr,
            name: name.to_owned(),
        })
    }

    /// Send `state` (newline-separated `KEY=VALUE` lines); a failure is
    /// logged (systemd then times the start out or kills the unit, which
    /// says more than we could).
    pub(crate) fn send(&self, state: &str) {
        if let Err(e) = self.sock.send_to_addr(state.as_bytes(), &self.addr) {
            log::warn!(
                "Cannot tell the service manager {:?} through NOTIFY_SOCKET={}: {e}",
                state.lines().next().unwrap_or(""),
                self.name
            );
        }
    }

    /// `READY=1`: the sockets are bound, the engine is open, requests are
    /// answered from now on.
    pub(crate) fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={status}"));
    }

    /// `RELOADING=1` (with the `MONOTONIC_USEC` systemd ≥ 253 asks for);
    /// follow with [`Notifier::ready`].
    pub(crate) fn reloading(&self) {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes the timespec we pass.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        let usec = ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000;
        self.send(&format!("RELOADING=1\nMONOTONIC_USEC={usec}"));
    }

    /// `STOPPING=1`: the shutdown has begun.
    pub(crate) fn stopping(&self) {
        self.send("STOPPING=1");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn states_reach_a_path_and_an_abstract_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let at_path = UnixDatagram::bind(&path).unwrap();
        let abs_name = format!("pyzor-notify-test-{}", std::process::id());
        let at_abs = {
            use std::os::linux::net::SocketAddrExt;
            let a = SocketAddr::from_abstract_name(abs_name.as_bytes()).unwrap();
            UnixDatagram::bind_addr(&a).unwrap()
        };
        for (name, sock) in [
            (path.to_str().unwrap().to_owned(), &at_path),
            (format!("@{abs_name}"), &at_abs),
        ] {
            sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let n = Notifier::new(&name).unwrap();
            n.ready("serving");
            n.reloading();
            n.stopping();
            let mut buf = [0u8; 256];
            let mut got = Vec::new();
            for _ in 0..3 {
                let k = sock.recv(&mut buf).unwrap();
                got.push(String::from_utf8_lossy(&buf[..k]).into_owned());
            }
            assert_eq!(got[0], "READY=1\nSTATUS=serving", "{name}");
            assert!(
                got[1].starts_with("RELOADING=1\nMONOTONIC_USEC="),
                "{got:?}"
            );
            assert_eq!(got[2], "STOPPING=1");
        }
    }

    /// Hostile or odd `$NOTIFY_SOCKET` values are refused with a bounded
    /// message, never panics.
    #[test]
    fn bad_addresses_are_refused() {
        for bad in ["relative/path", "vsock:2:1234", &"/x".repeat(200), "@\0"] {
            match Notifier::new(bad) {
                Err(NotifyError::Address(shown)) => assert!(shown.len() <= MAX_ADDR),
                Err(e) => panic!("{bad:?}: {e}"),
                Ok(_) => {
                    // "@\0" is a valid abstract name (a NUL byte): fine.
                    assert_eq!(bad, "@\0");
                }
            }
        }
    }
}
