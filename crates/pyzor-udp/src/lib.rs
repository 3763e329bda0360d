//! # pyzor-udp — batched datagram I/O
//!
//! `recvmmsg(2)` / `sendmmsg(2)` over one UDP socket, for the `pyzord`
//! workers and for `pyzor-bench` (load generator and echo responder). The
//! standard library and socket2 move one datagram per syscall; at hundreds of
//! thousands of datagrams per second the syscall count is what limits both.
//!
//! A [`Batch`] owns everything one batch needs, allocated once by
//! [`Batch::new`]: fixed receive buffers (longer datagrams are truncated),
//! one reusable outgoing buffer per slot ([`Batch::replies`]), the peer
//! addresses and the `mmsghdr`/`iovec` arrays. Receiving and sending
//! allocate nothing.
//!
//! The [`Options`] cover both uses: an unconnected server socket keeps each
//! sender's address and answers it ([`Batch::send`]); a connected client
//! socket has no peer addresses and sends its requests in order
//! ([`Batch::send_first`]); the receive flags choose between waiting for the
//! first datagram (`MSG_WAITFORONE`) and not waiting at all (`MSG_DONTWAIT`).

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, RawFd};

/// The shape of a [`Batch`]. Build with [`Options::new`] and struct update
/// syntax: `Options { peers: false, ..Options::new(64, 2048) }`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Datagrams per receive/send call (at least 1).
    pub slots: usize,
    /// Bytes of each receive buffer; longer datagrams are truncated to it.
    /// 0 for a batch that only sends.
    pub datagram_size: usize,
    /// Initial capacity of each outgoing buffer (they grow as needed and
    /// keep their capacity).
    pub reply_capacity: usize,
    /// Keep the sender's address of each received datagram and send each
    /// reply to it (an unconnected socket). `false` for a connected socket:
    /// datagrams are sent without an address.
    pub peers: bool,
    /// `recvmmsg` flags, e.g. `MSG_WAITFORONE` (block up to the socket's
    /// receive timeout for the first datagram, then take what is queued) or
    /// `MSG_DONTWAIT`.
    pub recv_flags: libc::c_int,
}

impl Options {
    /// `slots` datagrams of at most `datagram_size` bytes, with peer
    /// addresses, `MSG_WAITFORONE`, and outgoing buffers that start empty.
    pub const fn new(slots: usize, datagram_size: usize) -> Options {
        Options {
            slots,
            datagram_size,
            reply_capacity: 0,
            peers: true,
            recv_flags: libc::MSG_WAITFORONE,
        }
    }
}

/// Buffers and headers for batched I/O on one socket, reused for every
/// batch.
pub struct Batch {
    opts: Options,
    /// `slots` receive buffers of `datagram_size` bytes, back to back.
    bufs: Box<[u8]>,
    lens: Box<[usize]>,
    addrs: Box<[libc::sockaddr_storage]>,
    addr_lens: Box<[libc::socklen_t]>,
    iovs: Box<[libc::iovec]>,
    hdrs: Box<[libc::mmsghdr]>,
    /// Outgoing bytes, one buffer per slot: the reply to received datagram
    /// `i` (a server), or the `i`-th request to send (a client).
    pub replies: Vec<Vec<u8>>,
    /// Datagrams of the last receive.
    n: usize,
    /// Headers `[0, dirty)` were changed by the kernel or by a send since
    /// they were last prepared for receiving.
    dirty: usize,
}

// SAFETY: the raw pointers inside `iovs`/`hdrs` point only into the heap
// allocations of `bufs`, `iovs`, `addrs` and `replies`, which this struct
// owns (moving it to another thread moves the owner of every pointee), or
// are stale and rewritten before the next system call reads them.
unsafe impl Send for Batch {}

impl Batch {
    /// Allocate every buffer of the batch.
    ///
    /// # Panics
    /// If `opts.slots` is 0.
    pub fn new(opts: Options) -> Batch {
        assert!(opts.slots > 0, "a batch needs at least one slot");
        let n = opts.slots;
        // SAFETY: all-zero bytes are a valid value of these plain C structs.
        let (zaddr, ziov, zhdr) = unsafe {
            (
                zeroed::<libc::sockaddr_storage>(),
                zeroed::<libc::iovec>(),
                zeroed::<libc::mmsghdr>(),
            )
        };
        Batch {
            opts,
            bufs: vec![0u8; n * opts.datagram_size].into_boxed_slice(),
            lens: vec![0; n].into_boxed_slice(),
            addrs: vec![zaddr; n].into_boxed_slice(),
            addr_lens: vec![0; n].into_boxed_slice(),
            iovs: vec![ziov; n].into_boxed_slice(),
            hdrs: vec![zhdr; n].into_boxed_slice(),
            replies: (0..n)
                .map(|_| Vec::with_capacity(opts.reply_capacity))
                .collect(),
            n: 0,
            dirty: n,
        }
    }

    /// Number of slots (the most datagrams one call moves).
    pub fn capacity(&self) -> usize {
        self.opts.slots
    }

    /// Number of datagrams of the last receive.
    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The i-th received datagram (at most `datagram_size` bytes).
    pub fn datagram(&self, i: usize) -> &[u8] {
        let start = i * self.opts.datagram_size;
        &self.bufs[start..start + self.lens[i]]
    }

    /// The i-th received datagram and the outgoing buffer of the same slot,
    /// to write a reply while reading the request.
    pub fn datagram_and_reply(&mut self, i: usize) -> (&[u8], &mut Vec<u8>) {
        let start = i * self.opts.datagram_size;
        (
            &self.bufs[start..start + self.lens[i]],
            &mut self.replies[i],
        )
    }

    /// The sender of the i-th received datagram (`None` without
    /// [`Options::peers`] or for an address family other than IP).
    pub fn peer(&self, i: usize) -> Option<SocketAddr> {
        if !self.opts.peers {
            return None;
        }
        sockaddr_to_std(&self.addrs[i], self.addr_lens[i])
    }

    /// Receive up to [`Self::capacity`] datagrams with one `recvmmsg` and
    /// [`Options::recv_flags`]. `Ok(0)` when nothing arrived: the socket's
    /// receive timeout, `EAGAIN` or a signal (`EINTR`).
    pub fn recv(&mut self, sock: &impl AsFd) -> io::Result<usize> {
        self.n = 0;
        // Only the headers that the last batch used need preparing again:
        // the others still hold their receive setup (saves work on small
        // batches, the common case under light load).
        for i in 0..self.dirty {
            self.prepare_recv(i);
        }
        // SAFETY: every header points at an iovec of `self.iovs` for a
        // buffer of `datagram_size` bytes inside `self.bufs`, and (with
        // peers) at a sockaddr_storage of `self.addrs` with its size as
        // msg_namelen; the kernel writes only there, and `slots` is the
        // length of `self.hdrs`.
        let r = unsafe {
            libc::recvmmsg(
                sock.as_fd().as_raw_fd(),
                self.hdrs.as_mut_ptr(),
                self.opts.slots as libc::c_uint,
                self.opts.recv_flags,
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
            self.lens[i] = (self.hdrs[i].msg_len as usize).min(self.opts.datagram_size);
            self.addr_lens[i] = self.hdrs[i].msg_hdr.msg_namelen;
        }
        self.n = n;
        Ok(n)
    }

    /// Send `replies[i]` (to the sender of datagram `i`, with
    /// [`Options::peers`]) for every received `i` with `select[i]`. A reply
    /// the kernel refuses is skipped; returns how many were refused.
    pub fn send(&mut self, sock: &impl AsFd, select: &[bool]) -> usize {
        let mut m = 0;
        for (i, _) in select.iter().enumerate().take(self.n).filter(|(_, s)| **s) {
            self.prepare_send(m, i);
            m += 1;
        }
        // SAFETY: headers `[0, m)` were just prepared by `prepare_send`:
        // they point at iovecs of `self.iovs` for live buffers of
        // `self.replies` and at addresses of `self.addrs` or null.
        unsafe { send_skipping_refused(sock.as_fd().as_raw_fd(), &mut self.hdrs[..m]) }
    }

    /// Send `replies[0..count]` in order (on a connected socket, or to the
    /// senders of the last received datagrams with [`Options::peers`]),
    /// stopping at the first one the kernel refuses. Returns how many were
    /// sent; the error itself only if none was.
    ///
    /// # Panics
    /// If `count` exceeds [`Self::capacity`].
    pub fn send_first(&mut self, sock: &impl AsFd, count: usize) -> io::Result<usize> {
        assert!(count <= self.opts.slots);
        for i in 0..count {
            self.prepare_send(i, i);
        }
        let fd = sock.as_fd().as_raw_fd();
        let mut done = 0;
        while done < count {
            // SAFETY: headers `[0, count)` were just prepared by
            // `prepare_send` (see `send`).
            match unsafe { sendmmsg(fd, &mut self.hdrs[done..count]) } {
                Ok(k) => done += k,
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(done)
    }

    /// Point header `i` at receive buffer `i` and peer address `i` again.
    fn prepare_recv(&mut self, i: usize) {
        let size = self.opts.datagram_size;
        self.iovs[i] = libc::iovec {
            iov_base: self.bufs[i * size..].as_mut_ptr().cast(),
            iov_len: size,
        };
        let (name, namelen) = if self.opts.peers {
            (
                (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast(),
                size_of::<libc::sockaddr_storage>() as libc::socklen_t,
            )
        } else {
            (std::ptr::null_mut(), 0)
        };
        let h = &mut self.hdrs[i].msg_hdr;
        h.msg_name = name;
        h.msg_namelen = namelen;
        h.msg_iov = &mut self.iovs[i];
        h.msg_iovlen = 1;
        h.msg_control = std::ptr::null_mut();
        h.msg_controllen = 0;
        h.msg_flags = 0;
        self.hdrs[i].msg_len = 0;
    }

    /// Point header `m` at `replies[i]` and the address of sender `i`.
    fn prepare_send(&mut self, m: usize, i: usize) {
        self.iovs[m] = libc::iovec {
            iov_base: self.replies[i].as_mut_ptr().cast(),
            iov_len: self.replies[i].len(),
        };
        let (name, namelen) = if self.opts.peers {
            (
                (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast(),
                self.addr_lens[i],
            )
        } else {
            (std::ptr::null_mut(), 0)
        };
        let h = &mut self.hdrs[m].msg_hdr;
        h.msg_name = name;
        h.msg_namelen = namelen;
        h.msg_iov = &mut self.iovs[m];
        h.msg_iovlen = 1;
        h.msg_control = std::ptr::null_mut();
        h.msg_controllen = 0;
        h.msg_flags = 0;
        self.dirty = self.dirty.max(m + 1);
    }
}

/// One `sendmmsg` of `hdrs`, retried on `EINTR`. Returns how many the
/// kernel took (at least one).
///
/// # Safety
/// Every header must point at a live iovec of a live buffer and at a live
/// address (or null) for the whole call; the kernel only reads them.
unsafe fn sendmmsg(fd: RawFd, hdrs: &mut [libc::mmsghdr]) -> io::Result<usize> {
    loop {
        // SAFETY: the caller's contract; `hdrs.len()` headers follow.
        let r = unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), hdrs.len() as libc::c_uint, 0) };
        if r >= 0 {
            return Ok(r as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Send every message of `hdrs` in as few `sendmmsg` calls as the kernel
/// takes; a message the kernel refuses is skipped. Returns how many were
/// refused.
///
/// # Safety
/// As [`sendmmsg`].
unsafe fn send_skipping_refused(fd: RawFd, hdrs: &mut [libc::mmsghdr]) -> usize {
    let (mut done, mut refused) = (0, 0);
    while done < hdrs.len() {
        // SAFETY: the caller's contract, for a tail of the same headers.
        match unsafe { sendmmsg(fd, &mut hdrs[done..]) } {
            Ok(k) => done += k,
            Err(_) => {
                // The first remaining message failed: skip it.
                refused += 1;
                done += 1;
            }
        }
    }
    refused
}

/// Datagrams to addresses that come from elsewhere than a receive of the
/// same socket (the server's engine thread answers requests its worker
/// received): one `sendmmsg` for many replies. The vectors keep their
/// capacity between calls.
#[derive(Default)]
pub struct SendTo {
    addrs: Vec<socket2::SockAddr>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

// SAFETY: between calls the raw pointers in `iovs`/`hdrs` are stale and
// rewritten before the next system call reads them; `send` builds and uses
// them within one call.
unsafe impl Send for SendTo {}

impl SendTo {
    /// Send each datagram to its address (`None`: not sent); a datagram the
    /// kernel refuses is skipped. Returns how many were refused.
    pub fn send<'d>(
        &mut self,
        sock: &impl AsFd,
        each: impl Iterator<Item = (Option<SocketAddr>, &'d [u8])>,
    ) -> usize {
        self.addrs.clear();
        self.iovs.clear();
        self.hdrs.clear();
        for (peer, data) in each {
            let Some(peer) = peer else { continue };
            self.addrs.push(socket2::SockAddr::from(peer));
            self.iovs.push(libc::iovec {
                iov_base: data.as_ptr().cast_mut().cast(),
                iov_len: data.len(),
            });
        }
        for (addr, iov) in self.addrs.iter().zip(self.iovs.iter_mut()) {
            // SAFETY: all-zero is a valid value for this plain C struct.
            let mut h: libc::mmsghdr = unsafe { zeroed() };
            h.msg_hdr.msg_name = addr.as_ptr().cast_mut().cast();
            h.msg_hdr.msg_namelen = addr.len();
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
            self.hdrs.push(h);
        }
        // SAFETY: the headers point into `self.addrs`, `self.iovs` and the
        // caller's datagrams, none of which moves or is freed before this
        // call returns.
        unsafe { send_skipping_refused(sock.as_fd().as_raw_fd(), &mut self.hdrs) }
    }
}

fn sockaddr_to_std(a: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    match a.ss_family as libc::c_int {
        libc::AF_INET if len as usize >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: family and length say the storage holds a sockaddr_in,
            // and sockaddr_storage is large and aligned enough for it.
            let sin: &libc::sockaddr_in = unsafe { &*(a as *const libc::sockaddr_storage).cast() };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::new(IpAddr::V4(ip), u16::from_be(sin.sin_port)))
        }
        libc::AF_INET6 if len as usize >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: family and length say the storage holds a
            // sockaddr_in6, and sockaddr_storage is large and aligned
            // enough for it.
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::Duration;

    fn server() -> (UdpSocket, SocketAddr) {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let a = s.local_addr().unwrap();
        (s, a)
    }

    #[test]
    fn echo_to_peers_truncates_and_times_out() {
        let (s, target) = server();
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        for i in 0..5u8 {
            c.send_to(&[b'a' + i; 3], target).unwrap();
        }
        c.send_to(&[b'x'; 100], target).unwrap();
        let mut b = Batch::new(Options::new(4, 64));
        let mut lens = Vec::new();
        let mut got = 0;
        while got < 6 {
            let n = b.recv(&s).unwrap();
            for i in 0..n {
                assert_eq!(b.peer(i), Some(c.local_addr().unwrap()));
                let (d, r) = b.datagram_and_reply(i);
                lens.push(d.len());
                r.clear();
                r.extend_from_slice(d);
            }
            // Every other one is answered.
            let select: Vec<bool> = (0..4).map(|i| (got + i) % 2 == 0).collect();
            assert_eq!(b.send(&s, &select), 0);
            got += n;
        }
        assert_eq!(lens, vec![3, 3, 3, 3, 3, 64]);
        let mut buf = [0u8; 200];
        for want in [&b"aaa"[..], b"ccc", b"eee"] {
            let (n, _) = c.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], want);
        }
        assert_eq!(b.recv(&s).unwrap(), 0);
    }

    #[test]
    fn connected_without_peers() {
        let (s, target) = server();
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.connect(target).unwrap();
        let mut out = Batch::new(Options {
            peers: false,
            reply_capacity: 16,
            ..Options::new(3, 0)
        });
        for (i, r) in out.replies.iter_mut().enumerate() {
            r.extend_from_slice(format!("req {i}").as_bytes());
        }
        assert_eq!(out.send_first(&c, 3).unwrap(), 3);
        let mut inb = Batch::new(Options {
            peers: false,
            recv_flags: libc::MSG_DONTWAIT,
            ..Options::new(8, 32)
        });
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(inb.recv(&s).unwrap(), 3);
        assert_eq!(inb.datagram(2), b"req 2");
        assert_eq!(inb.peer(0), None);
        assert!(!inb.is_empty());
        // Nothing queued: DONTWAIT gives 0 at once.
        assert_eq!(inb.recv(&s).unwrap(), 0);
        assert!(inb.is_empty());
    }
}
