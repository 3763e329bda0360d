//! UDP sockets and batched datagram I/O (`recvmmsg` / `sendmmsg`).
//!
//! Each worker owns one socket bound with `SO_REUSEPORT` to the listen
//! address (the kernel spreads clients over the workers) and one
//! [`BatchIo`]: fixed receive buffers of 8192 bytes (the reference's read
//! size: longer datagrams are truncated, docs/protocol.md §1), reply
//! buffers that keep their capacity, and the `mmsghdr` arrays. Nothing is
//! allocated per datagram.
//!
//! `recvmmsg` is called with `MSG_WAITFORONE`: it blocks (up to the socket's
//! receive timeout, used to notice shutdown) for the first datagram and then
//! takes whatever else is already queued, up to [`BATCH`].

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use pyzor_protocol::wire::MAX_PACKET_SIZE;

/// Datagrams per receive/send batch (one `recvmmsg`, one engine call, one
/// `sendmmsg`). 64 = the largest window a single client keeps in flight in
/// the benchmarks; a bigger batch costs 8 KiB of buffer per datagram.
pub const BATCH: usize = 64;
/// Receive buffer size requested from the kernel (bursts are not dropped).
pub const RCVBUF: usize = 8 << 20;

/// Resolve the listen address as the reference does: an address containing
/// `:` is IPv6, anything else IPv4 (a host name is resolved in that family).
pub fn listen_addr(address: &str, port: u16) -> io::Result<SocketAddr> {
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
pub fn bind_worker_socket(
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

/// Per-worker buffers and headers for batched I/O.
pub struct BatchIo {
    bufs: Vec<[u8; MAX_PACKET_SIZE]>,
    lens: Vec<usize>,
    addrs: Vec<libc::sockaddr_storage>,
    addr_lens: Vec<libc::socklen_t>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    /// Reply bytes, one per received datagram.
    pub replies: Vec<Vec<u8>>,
    n: usize,
    /// Headers `[0, dirty)` were changed by the kernel or by [`Self::send`]
    /// since they were last prepared for receiving.
    dirty: usize,
}

// The raw pointers inside the header arrays only ever point into this
// struct's own vectors, which are never reallocated after construction.
unsafe impl Send for BatchIo {}

impl Default for BatchIo {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchIo {
    pub fn new() -> Self {
        // SAFETY: all-zero is a valid value for these plain C structs.
        let zaddr: libc::sockaddr_storage = unsafe { zeroed() };
        let zhdr: libc::mmsghdr = unsafe { zeroed() };
        BatchIo {
            bufs: vec![[0u8; MAX_PACKET_SIZE]; BATCH],
            lens: vec![0; BATCH],
            addrs: vec![zaddr; BATCH],
            addr_lens: vec![0; BATCH],
            iovs: vec![
                libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0
                };
                BATCH
            ],
            hdrs: vec![zhdr; BATCH],
            replies: (0..BATCH).map(|_| Vec::with_capacity(512)).collect(),
            n: 0,
            dirty: BATCH,
        }
    }

    /// Number of datagrams of the last receive.
    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The i-th received datagram (at most 8192 bytes).
    pub fn datagram(&self, i: usize) -> &[u8] {
        &self.bufs[i][..self.lens[i]]
    }

    /// The i-th sender.
    pub fn peer(&self, i: usize) -> Option<SocketAddr> {
        sockaddr_to_std(&self.addrs[i], self.addr_lens[i])
    }

    /// Receive up to [`BATCH`] datagrams; `Ok(0)` on timeout.
    pub fn recv(&mut self, sock: &UdpSocket) -> io::Result<usize> {
        self.n = 0;
        // Only the headers the last batch used need preparing again: the
        // others still hold their receive setup (saves work on small
        // batches, which are the common case under light load).
        for i in 0..self.dirty {
            self.iovs[i] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr().cast(),
                iov_len: MAX_PACKET_SIZE,
            };
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
            self.hdrs[i].msg_len = 0;
        }
        // SAFETY: every header points at live buffers owned by `self`.
        let r = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                self.hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock
                | io::ErrorKind::TimedOut
                | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        let n = r as usize;
        self.dirty = n;
        for i in 0..n {
            self.lens[i] = (self.hdrs[i].msg_len as usize).min(MAX_PACKET_SIZE);
            self.addr_lens[i] = self.hdrs[i].msg_hdr.msg_namelen;
        }
        self.n = n;
        Ok(n)
    }

    /// Send `replies[i]` to the sender of datagram `i`, for every `i` with
    /// `send[i]`. Returns the number of replies the kernel refused.
    pub fn send(&mut self, sock: &UdpSocket, send: &[bool]) -> usize {
        let mut m = 0;
        for (i, _) in send.iter().enumerate().take(self.n).filter(|(_, s)| **s) {
            self.iovs[m] = libc::iovec {
                iov_base: self.replies[i].as_mut_ptr().cast(),
                iov_len: self.replies[i].len(),
            };
            let h = &mut self.hdrs[m].msg_hdr;
            h.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = self.addr_lens[i];
            h.msg_iov = &mut self.iovs[m];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
            m += 1;
        }
        self.dirty = self.dirty.max(m);
        let mut done = 0;
        let mut errors = 0;
        while done < m {
            // SAFETY: headers [done, m) point at live buffers owned by `self`.
            let r = unsafe {
                libc::sendmmsg(
                    sock.as_raw_fd(),
                    self.hdrs[done..].as_mut_ptr(),
                    (m - done) as libc::c_uint,
                    0,
                )
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // The first remaining message failed: skip it.
                errors += 1;
                done += 1;
            } else {
                done += r as usize;
            }
        }
        errors
    }
}

fn sockaddr_to_std(a: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    match a.ss_family as libc::c_int {
        libc::AF_INET if len as usize >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: family and length say this is a sockaddr_in.
            let sin: &libc::sockaddr_in = unsafe { &*(a as *const libc::sockaddr_storage).cast() };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::new(IpAddr::V4(ip), u16::from_be(sin.sin_port)))
        }
        libc::AF_INET6 if len as usize >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: family and length say this is a sockaddr_in6.
            let sin6: &libc::sockaddr_in6 =
                unsafe { &*(a as *const libc::sockaddr_storage).cast() };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::new(
                IpAddr::V6(ip),
                u16::from_be(sin6.sin6_port),
            ))
        }
        _ => None,
    }
}

/// The client address as the reference logs it (`client_address[0]`):
/// IPv4-mapped IPv6 addresses are shown as the reference's IPv6 socket
/// shows them (`::ffff:1.2.3.4`).
pub fn ip_text(a: Option<SocketAddr>) -> String {
    a.map(|s| s.ip().to_string()).unwrap_or_default()
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
        let mut io = BatchIo::new();
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
    fn address_families() {
        assert!(listen_addr("::1", 5).unwrap().is_ipv6());
        assert!(listen_addr("0.0.0.0", 5).unwrap().is_ipv4());
        assert!(listen_addr("localhost", 5).unwrap().is_ipv4());
    }
}
