//! UDP sockets and the worker's batch of datagrams.
//!
//! Each worker owns one socket bound with `SO_REUSEPORT` to the listen
//! address (the kernel spreads clients over the workers) and one
//! [`BatchIo`] (`recvmmsg`/`sendmmsg` from `pyzor-udp`): fixed receive
//! buffers, reply buffers that keep their capacity, and the `mmsghdr`
//! arrays. Nothing is allocated per datagram.
//!
//! `recvmmsg` is called with `MSG_WAITFORONE`: it blocks (up to the socket's
//! receive timeout, used to notice shutdown) for the first datagram and then
//! takes whatever else is already queued, up to [`BATCH`].

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use pyzor_udp::{Batch, Options};
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

/// A worker's [`Batch`]: [`BATCH`] receive buffers of 8192 bytes (the
/// reference's read size: longer datagrams are truncated, docs/protocol.md
/// §1), the senders' addresses, reply buffers of 512 bytes to start with,
/// and `MSG_WAITFORONE`. Everything else (`recv`, `datagram`, `peer`,
/// `replies`, `send`) is [`Batch`]'s own.
pub struct BatchIo(Batch);

impl BatchIo {
    pub fn new() -> Self {
        BatchIo(Batch::new(Options {
            reply_capacity: 512,
            ..Options::new(BATCH, MAX_PACKET_SIZE)
        }))
    }
}

impl Default for BatchIo {
    fn default() -> Self {
        Self::new()
    }
}

impl Deref for BatchIo {
    type Target = Batch;
    fn deref(&self) -> &Batch {
        &self.0
    }
}

impl DerefMut for BatchIo {
    fn deref_mut(&mut self) -> &mut Batch {
        &mut self.0
    }
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
