//! Batched datagram I/O with `recvmmsg(2)` / `sendmmsg(2)`.
//!
//! The standard library and socket2 only offer one datagram per syscall. At
//! 200k+ requests per second on two cores the syscall count is what limits a
//! load generator, so this module wraps the two Linux batch calls with libc
//! (nix's `MultiHeaders` has awkward lifetimes, quinn-udp has no
//! `sendmmsg`). All buffers are allocated once and reused.

use std::io;
use std::os::fd::RawFd;

/// A fixed set of `n` datagram buffers of `size` bytes with their `iovec`s,
/// `mmsghdr`s and peer addresses, reused for every batch.
pub struct Batch {
    size: usize,
    bufs: Vec<u8>,
    lens: Vec<usize>,
    iov: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    addrs: Vec<libc::sockaddr_storage>,
    with_addrs: bool,
}

// SAFETY: the raw pointers inside `iov`/`hdrs` point only into the heap
// buffers of `bufs`/`iov`/`addrs`, which this struct owns and never
// reallocates after construction; moving the struct to another thread moves
// the owner of all pointees with it.
unsafe impl Send for Batch {}

impl Batch {
    /// `n` buffers of `size` bytes. `with_addrs` keeps a peer address per
    /// datagram (needed by an unconnected socket that replies to many peers).
    pub fn new(n: usize, size: usize, with_addrs: bool) -> Batch {
        assert!(n > 0 && size > 0);
        let mut b = Batch {
            size,
            bufs: vec![0u8; n * size],
            lens: vec![0; n],
            // SAFETY: iovec, mmsghdr and sockaddr_storage are plain C structs
            // for which all-zero bytes is a valid value.
            iov: vec![unsafe { std::mem::zeroed() }; n],
            hdrs: vec![unsafe { std::mem::zeroed() }; n],
            addrs: vec![unsafe { std::mem::zeroed() }; n],
            with_addrs,
        };
        let base = b.bufs.as_mut_ptr();
        for i in 0..n {
            // SAFETY: i * size < n * size = bufs.len().
            b.iov[i].iov_base = unsafe { base.add(i * size) }.cast();
            b.iov[i].iov_len = size;
            b.hdrs[i].msg_hdr.msg_iov = &mut b.iov[i];
            b.hdrs[i].msg_hdr.msg_iovlen = 1;
            if with_addrs {
                b.hdrs[i].msg_hdr.msg_name =
                    (&mut b.addrs[i] as *mut libc::sockaddr_storage).cast();
                b.hdrs[i].msg_hdr.msg_namelen =
                    std::mem::size_of::<libc::sockaddr_storage>() as u32;
            }
        }
        b
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.lens.len()
    }

    /// The whole buffer of slot `i`, for writing a datagram into it.
    pub fn slot_mut(&mut self, i: usize) -> &mut [u8] {
        &mut self.bufs[i * self.size..(i + 1) * self.size]
    }

    /// The datagram in slot `i` (its received or set length).
    pub fn msg(&self, i: usize) -> &[u8] {
        &self.bufs[i * self.size..i * self.size + self.lens[i]]
    }

    /// Set the length of the datagram written into slot `i`.
    pub fn set_len(&mut self, i: usize, len: usize) {
        assert!(len <= self.size);
        self.lens[i] = len;
    }

    /// Copy the peer address of slot `from` to slot `to` (replies go back to
    /// the sender of the request).
    pub fn copy_addr(&mut self, from: &Batch, from_i: usize, to_i: usize) {
        self.addrs[to_i] = from.addrs[from_i];
        self.hdrs[to_i].msg_hdr.msg_namelen = from.hdrs[from_i].msg_hdr.msg_namelen;
    }

    /// Receive up to `capacity()` datagrams with one `recvmmsg`. `flags` is
    /// e.g. `MSG_DONTWAIT` or `MSG_WAITFORONE`. Returns how many arrived;
    /// `WouldBlock`/`TimedOut` errors are returned as such.
    pub fn recv(&mut self, fd: RawFd, flags: i32) -> io::Result<usize> {
        let n = self.capacity();
        for i in 0..n {
            self.iov[i].iov_len = self.size;
            if self.with_addrs {
                self.hdrs[i].msg_hdr.msg_namelen =
                    std::mem::size_of::<libc::sockaddr_storage>() as u32;
            }
        }
        // SAFETY: hdrs holds n initialised mmsghdr whose iovecs point at
        // n buffers of `size` bytes owned by self; the kernel writes only there.
        let r = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                n as u32,
                flags,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        let got = r as usize;
        for i in 0..got {
            self.lens[i] = self.hdrs[i].msg_len as usize;
        }
        Ok(got)
    }

    /// Send slots `0..count` (lengths set with [`Batch::set_len`]) with as
    /// few `sendmmsg` calls as the kernel allows. Returns how many were sent
    /// before an error; the error itself is returned only if nothing went.
    pub fn send(&mut self, fd: RawFd, count: usize, flags: i32) -> io::Result<usize> {
        assert!(count <= self.capacity());
        for i in 0..count {
            self.iov[i].iov_len = self.lens[i];
        }
        let mut done = 0;
        while done < count {
            // SAFETY: slots done..count are initialised headers pointing at
            // owned buffers; the kernel only reads them.
            let r = unsafe {
                libc::sendmmsg(
                    fd,
                    self.hdrs.as_mut_ptr().add(done),
                    (count - done) as u32,
                    flags,
                )
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                if done == 0 {
                    return Err(e);
                }
                break;
            }
            done += r as usize;
        }
        Ok(done)
    }
}
