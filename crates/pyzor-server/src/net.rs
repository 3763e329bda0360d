//! UDP sockets and the worker's batch of datagrams.
//!
//! Each worker owns one socket bound with `SO_REUSEPORT` to the listen
//! address and one `worker_batch` (`recvmmsg`/`sendmmsg` from `pyzor-udp`):
//! fixed receive buffers, reply buffers that keep their capacity, and the
//! `mmsghdr` arrays. Nothing is allocated per datagram.
//!
//! `bind_workers` binds the sockets of one server so that they share the
//! port with each other only (docs/server.md, "One server per port and per
//! database"), and attaches the program of `steer` that keeps each
//! client network on one worker ("Workers and per-client order"). With two
//! workers or more it also binds the penalty socket, where `penalty` steers
//! networks that flood (docs/security.md, "The penalty box").
//!
//! `recvmmsg` is called with `MSG_WAITFORONE`: it blocks (up to the socket's
//! receive timeout, used to notice shutdown) for the first datagram and then
//! takes whatever else is already queued, up to `BATCH`.

pub(crate) mod penalty;
mod steer;

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};
use std::time::{Duration, Instant};

use pyzor_udp::{Batch, Options};
use socket2::{Domain, Protocol, Socket, Type};

use pyzor_protocol::wire::MAX_PACKET_SIZE;

/// Datagrams per receive/send batch (one `recvmmsg`, one engine call, one
/// `sendmmsg`). 64 = the largest window a single client keeps in flight in
/// the benchmarks; a bigger batch costs 8 KiB of buffer per datagram.
pub(crate) const BATCH: usize = 64;
/// Receive buffer size requested from the kernel (bursts are not dropped).
pub(crate) const RCVBUF: usize = 8 << 20;

/// Resolve the listen address as the reference does: an address containing
/// `:` is IPv6, anything else IPv4 (a host name is resolved in that family).
pub(crate) fn listen_addr(address: &str, port: u16) -> io::Result<SocketAddr> {
    let v6 = address.contains(':');
    if v6 {
        let a = address.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = a.parse::<Ipv6Addr>() {
            return Ok(SocketAddr::new(IpAddr::V6(ip), port));
        }
    }
    if let Ok(ip) = address.parse::<Ipv4Addr>() {
        return Ok(SocketAddr::new(IpAddr::V4(ip), port));
    }
    (address, port)
        .to_socket_addrs()?
        .find(|a| a.is_ipv6() == v6)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot resolve listen address {address:?}"),
            )
        })
}

/// A UDP socket for one worker: `SO_REUSEPORT`, a large `SO_RCVBUF`, IPv6
/// sockets also accept IPv4 (`IPV6_V6ONLY` off, as the reference), and a
/// receive timeout so that the worker notices shutdown.
pub(crate) fn bind_worker_socket(
    addr: SocketAddr,
    reuse_port: bool,
    timeout: Duration,
) -> io::Result<UdpSocket> {
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        let _ = s.set_only_v6(false);
    }
    if reuse_port {
        s.set_reuse_port(true)?;
    }
    // Best effort: the kernel caps it at net.core.rmem_max.
    let _ = s.set_recv_buffer_size(RCVBUF);
    s.bind(&addr.into())?;
    s.set_read_timeout(Some(timeout))?;
    Ok(s.into())
}

/// How long [`bind_workers`] waits for another pyzord of this machine that
/// is binding the same port number at the same moment.
const START_LOCK_WAIT: Duration = Duration::from_secs(5);

/// How datagrams are spread over the worker sockets.
#[derive(Debug)]
pub(crate) enum Steering {
    /// One worker: nothing to choose.
    Single,
    /// By the sender's network (IPv4 /24, IPv6 /56), see [`steer`].
    ByNetwork,
    /// The kernel's hash of the 4-tuple, because the program could not be
    /// attached (the reason).
    KernelHash(io::Error),
}

/// The sockets of one server.
#[derive(Debug)]
pub(crate) struct Workers {
    pub(crate) sockets: Vec<UdpSocket>,
    /// The penalty socket (index `sockets.len()` of the group): only with
    /// two workers or more and the steering program attached.
    pub(crate) penalty: Option<UdpSocket>,
    /// The bound address (the port the kernel chose when 0 was asked for).
    pub(crate) addr: SocketAddr,
    pub(crate) steering: Steering,
}

/// Bind `n` worker sockets on `addr` that share the port with each other
/// and with nothing else:
///
/// 1. a start-up lock per port number (an abstract unix socket, released
///    by the kernel when the process ends) makes two pyzords of this
///    machine that start at the same moment bind one after the other;
/// 2. a probe bind *without* `SO_REUSEPORT` fails with `EADDRINUSE` when
///    any socket holds the address: another pyzord (ours, whose sockets
///    would otherwise accept ours into their group, or the reference's),
///    or any other program;
/// 3. the workers bind with `SO_REUSEPORT`. Between the probe and this
///    bind only a program of the same user that itself sets
///    `SO_REUSEPORT` and ignores the lock could slip in; anything else
///    makes this bind fail, and the start with it.
///
/// Port 0 first asks the kernel for a free port (with a probe: with
/// `SO_REUSEPORT` the kernel may hand out a port whose sockets would
/// accept ours). With `n > 1` the penalty socket is bound last (with a
/// receive buffer of [`penalty::PENALTY_RCVBUF`]) and the steering program
/// attached; when that fails the result says why, the penalty socket is
/// closed (it leaves the group) and the kernel's hash is used.
pub(crate) fn bind_workers(addr: SocketAddr, n: usize, timeout: Duration) -> io::Result<Workers> {
    let n = n.max(1);
    let mut addr = addr;
    if addr.port() == 0 {
        addr = probe(addr)?;
    }
    let _lock = StartLock::acquire(addr.port(), START_LOCK_WAIT)?;
    probe(addr)?;
    let mut sockets = Vec::with_capacity(n);
    for _ in 0..n {
        sockets.push(bind_worker_socket(addr, true, timeout)?);
    }
    let (steering, penalty) = if n == 1 {
        (Steering::Single, None)
    } else {
        let pen = bind_worker_socket(addr, true, timeout)?;
        // Best effort, as the workers' size.
        let _ = socket2::SockRef::from(&pen).set_recv_buffer_size(penalty::PENALTY_RCVBUF);
        match steer::attach(&sockets[0], n as u32, &[]) {
            Ok(()) => (Steering::ByNetwork, Some(pen)),
            Err(e) => (Steering::KernelHash(e), None),
        }
    };
    Ok(Workers {
        sockets,
        penalty,
        addr,
        steering,
    })
}

/// Bind `addr` without `SO_REUSEPORT` (and with the options of a worker
/// socket that decide what conflicts) and let it go; the bound address.
fn probe(addr: SocketAddr) -> io::Result<SocketAddr> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        let _ = s.set_only_v6(false);
    }
    s.bind(&addr.into())?;
    s.local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("probe socket has no IP address"))
}

/// The start-up lock of one port number: the abstract unix socket
/// `@pyzord/udp/<port>` (per network namespace, like the port itself;
/// no file to leave behind).
struct StartLock(#[allow(dead_code)] UnixDatagram);

impl StartLock {
    fn acquire(port: u16, wait: Duration) -> io::Result<StartLock> {
        let name = format!("pyzord/udp/{port}");
        let addr = UnixAddr::from_abstract_name(name.as_bytes())?;
        let end = Instant::now() + wait;
        loop {
            match UnixDatagram::bind_addr(&addr) {
                Ok(s) => return Ok(StartLock(s)),
                Err(e) if e.kind() == io::ErrorKind::AddrInUse && Instant::now() < end => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                    return Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        format!(
                            "another process has held the start-up lock of port {port} \
                             (abstract unix socket @{name}) for {} s",
                            wait.as_secs()
                        ),
                    ))
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Python's `str(OSError)` for an error from the operating system:
/// `[Errno 98] Address already in use` (the reference's start-up errors
/// end with it); other errors as they are.
pub(crate) fn py_os_error(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => {
            // SAFETY: strerror returns a NUL-terminated string that is
            // copied at once.
            let msg = unsafe { std::ffi::CStr::from_ptr(libc::strerror(n)) }.to_string_lossy();
            format!("[Errno {n}] {msg}")
        }
        None => e.to_string(),
    }
}

/// A worker's [`Batch`]: [`BATCH`] receive buffers of 8192 bytes (the
/// reference's read size: longer datagrams are truncated, docs/protocol.md
/// §1), the senders' addresses, reply buffers of 512 bytes to start with,
/// and `MSG_WAITFORONE`.
pub(crate) fn worker_batch() -> Batch {
    Batch::new(Options {
        reply_capacity: 512,
        ..Options::new(BATCH, MAX_PACKET_SIZE)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_roundtrip_on_loopback() {
        let addr = listen_addr("127.0.0.1", 0).unwrap();
        let s = bind_worker_socket(addr, true, Duration::from_millis(200)).unwrap();
        let target = s.local_addr().unwrap();
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        for i in 0..5u8 {
            c.send_to(&[b'a' + i; 3], target).unwrap();
        }
        c.send_to(&vec![b'x'; 9000], target).unwrap();
        let mut io = worker_batch();
        let mut got = 0;
        let mut lens = Vec::new();
        while got < 6 {
            let n = io.recv(&s).unwrap();
            for i in 0..n {
                lens.push(io.datagram(i).len());
                let d = io.datagram(i).to_vec();
                io.replies[i].clear();
                io.replies[i].extend_from_slice(&d);
                assert_eq!(io.peer(i), Some(c.local_addr().unwrap()));
            }
            assert_eq!(io.send(&s, &[true; BATCH]), 0);
            got += n;
        }
        assert_eq!(lens, vec![3, 3, 3, 3, 3, 8192]);
        let mut buf = [0u8; 10000];
        let (n, _) = c.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"aaa");
        // Timeout gives 0.
        assert_eq!(io.recv(&s).unwrap(), 0);
    }

    #[test]
    fn workers_share_their_port_with_nothing_else() {
        let any = listen_addr("127.0.0.1", 0).unwrap();
        let first = bind_workers(any, 3, Duration::from_millis(100)).unwrap();
        assert_eq!(first.sockets.len(), 3);
        assert_ne!(first.addr.port(), 0);
        assert!(
            matches!(first.steering, Steering::ByNetwork),
            "{:?}",
            first.steering
        );
        let again = bind_workers(first.addr, 2, Duration::from_millis(100)).unwrap_err();
        assert_eq!(again.raw_os_error(), Some(libc::EADDRINUSE));
        assert_eq!(py_os_error(&again), "[Errno 98] Address already in use");
        // A plain socket on the port (e.g. the reference's) also keeps us out.
        drop(first);
        let plain = UdpSocket::bind("127.0.0.1:0").unwrap();
        let taken = plain.local_addr().unwrap();
        let e = bind_workers(taken, 1, Duration::from_millis(100)).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EADDRINUSE));
        let one = bind_workers(any, 1, Duration::from_millis(100)).unwrap();
        assert!(matches!(one.steering, Steering::Single));
    }

    #[test]
    fn one_source_network_reaches_one_worker() {
        let any = listen_addr("127.0.0.1", 0).unwrap();
        let w = bind_workers(any, 4, Duration::from_millis(100)).unwrap();
        assert!(
            matches!(w.steering, Steering::ByNetwork),
            "{:?}",
            w.steering
        );
        // 8 networks, 3 sockets (source ports) each, 4 datagrams per socket.
        for net in 1..=8u8 {
            for _ in 0..3 {
                let c = UdpSocket::bind((Ipv4Addr::new(127, 0, net, 1), 0)).unwrap();
                for _ in 0..4 {
                    c.send_to(&[net], w.addr).unwrap();
                }
            }
        }
        let mut worker_of = [None; 9];
        let mut got = 0;
        for (i, s) in w.sockets.iter().enumerate() {
            s.set_nonblocking(true).unwrap();
            let mut buf = [0u8; 16];
            while let Ok((n, from)) = s.recv_from(&mut buf) {
                assert_eq!(n, 1);
                assert_eq!(from.ip(), IpAddr::V4(Ipv4Addr::new(127, 0, buf[0], 1)));
                let seen = worker_of[usize::from(buf[0])].get_or_insert(i);
                assert_eq!(*seen, i, "network {} reached two workers", buf[0]);
                got += 1;
            }
        }
        assert_eq!(got, 8 * 3 * 4);
        let used: std::collections::BTreeSet<_> = worker_of.iter().flatten().collect();
        assert!(
            used.len() >= 2,
            "8 networks all on one worker: {worker_of:?}"
        );
    }

    #[test]
    fn ipv6_sources_are_steered_too() {
        let Ok(any) = listen_addr("::1", 0) else {
            return;
        };
        let Ok(w) = bind_workers(any, 4, Duration::from_millis(100)) else {
            eprintln!("SKIPPED: ipv6_sources_are_steered_too: no IPv6 loopback");
            return;
        };
        assert!(
            matches!(w.steering, Steering::ByNetwork),
            "{:?}",
            w.steering
        );
        for _ in 0..6 {
            let c = UdpSocket::bind("[::1]:0").unwrap();
            for _ in 0..3 {
                c.send_to(b"x", w.addr).unwrap();
            }
        }
        let counts: Vec<usize> = w
            .sockets
            .iter()
            .map(|s| {
                s.set_nonblocking(true).unwrap();
                let mut buf = [0u8; 4];
                std::iter::from_fn(|| s.recv_from(&mut buf).ok()).count()
            })
            .collect();
        assert_eq!(counts.iter().sum::<usize>(), 18);
        assert_eq!(counts.iter().filter(|&&c| c > 0).count(), 1, "{counts:?}");
    }

    #[test]
    fn the_start_lock_makes_a_second_start_wait() {
        // An unused port number (the lock is per number, whatever holds
        // the port itself).
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let held = StartLock::acquire(port, Duration::ZERO).unwrap();
        let e = StartLock::acquire(port, Duration::from_millis(50))
            .err()
            .unwrap();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        assert!(
            e.to_string().contains(&format!("@pyzord/udp/{port}")),
            "{e}"
        );
        // While it is held, a server start on that port waits for it.
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let t0 = Instant::now();
        let starter = std::thread::spawn(move || bind_workers(addr, 2, Duration::from_millis(100)));
        std::thread::sleep(Duration::from_millis(300));
        assert!(!starter.is_finished());
        drop(held);
        let w = starter.join().unwrap().unwrap();
        assert!(t0.elapsed() >= Duration::from_millis(300));
        assert_eq!(w.addr, addr);
    }

    #[test]
    fn address_families() {
        assert!(listen_addr("::1", 5).unwrap().is_ipv6());
        assert!(listen_addr("0.0.0.0", 5).unwrap().is_ipv4());
        assert!(listen_addr("localhost", 5).unwrap().is_ipv4());
    }
}
