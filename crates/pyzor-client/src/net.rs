//! One request, one reply, over UDP (docs/protocol.md §1, §7).
//!
//! Like the reference: a fresh UDP socket per request, the first address of
//! `getaddrinfo` that accepts the datagram, one receive of at most 8192
//! bytes with the timeout, no retransmission (a report sent twice would be
//! counted twice). Unlike the reference (docs/compatibility.md, "client",
//! B28): the socket is *connected*, so datagrams from other addresses are
//! ignored by the kernel and an ICMP "port unreachable" ends the wait at
//! once with the reference's socket-error line instead of a full timeout.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pyzor_config::client::{Account, ServerAddr};
use pyzor_protocol::py::{py_oserror_str, py_repr_str};
use pyzor_protocol::wire::client::{build_request, parse_reply, Layout, Reply, ReplyError};
use pyzor_protocol::wire::{Op, MAX_PACKET_SIZE};

/// What one server answered, or why there is no usable answer. The error
/// variants carry the reference's `(code, 'text')` pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A reply that passed the reference's checks (Code, Diag, PV, Thread
    /// present; Thread acceptable).
    Reply(Reply),
    /// The reference's `CommError` family: `(code, str(e))`.
    Error {
        /// 400 for protocol/socket errors, 504 for a timeout.
        code: i64,
        /// The message, e.g. `Reading response timed-out.`
        diag: String,
    },
}

impl Outcome {
    fn err(code: i64, diag: impl Into<String>) -> Outcome {
        Outcome::Error {
            code,
            diag: diag.into(),
        }
    }
}

/// Text of the reference's timeout error.
pub(crate) const TIMEOUT_DIAG: &str = "Reading response timed-out.";

/// A random thread id in 1024..=65535 (`ThreadId.generate()`), from the OS
/// random source.
pub fn new_thread_id() -> u16 {
    let mut b = [0u8; 2];
    if getrandom::fill(&mut b).is_err() {
        // The OS source failing is not a reason to fail a query; fall back
        // to the clock's nanoseconds, which only needs to be unpredictable
        // enough to tell replies apart.
        let n = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        b = (n as u16).to_le_bytes();
    }
    1024 + (u16::from_le_bytes(b) % (65536 - 1024) as u16)
}

/// Seconds since the epoch, as `int(time.time())`.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Resolve like `getaddrinfo(host, port, 0, SOCK_DGRAM)`, keeping order.
fn resolve(server: &ServerAddr) -> io::Result<Vec<SocketAddr>> {
    Ok((server.host.as_str(), server.port)
        .to_socket_addrs()?
        .collect())
}

/// Send one datagram and wait for the reply (docs/protocol.md §1, §7).
pub fn exchange(
    server: &ServerAddr,
    datagram: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, Outcome> {
    let addrs = resolve(server).map_err(|e| {
        Outcome::err(
            400,
            format!("Unable to send to {server}: {}", py_oserror_str(&e, None)),
        )
    })?;
    let mut sock = None;
    for addr in addrs {
        let bind: SocketAddr = if addr.is_ipv6() {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        };
        let Some(s) = connected_socket(bind, addr) else {
            continue;
        };
        if s.send(datagram).is_err() {
            continue;
        }
        sock = Some(s);
        break;
    }
    let Some(sock) = sock else {
        return Err(Outcome::err(
            400,
            format!("Unable to send to {}:{}", server.host, server.port),
        ));
    };
    // Reference: settimeout(0) makes the receive non-blocking.
    if timeout.is_zero() {
        sock.set_nonblocking(true).ok();
    } else {
        sock.set_read_timeout(Some(timeout)).ok();
    }
    let mut buf = vec![0u8; MAX_PACKET_SIZE];
    match sock.recv(&mut buf) {
        Ok(n) => {
            buf.truncate(n);
            Ok(buf)
        }
        Err(e)
            if !timeout.is_zero()
                && matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
        {
            Err(Outcome::err(504, TIMEOUT_DIAG))
        }
        Err(e) => Err(Outcome::err(
            400,
            format!(
                "Socket error while reading response: {}",
                py_oserror_str(&e, None)
            ),
        )),
    }
}

/// Check a reply with `pyzor_protocol::wire::client::parse_reply` (the
/// reference's `read_response` order of checks). Where the reference
/// crashes (non-numeric or out-of-range Thread or Code: ValueError →
/// AttributeError traceback, docs/protocol.md §9.1/§9.14) we return a 400
/// error line instead (docs/compatibility.md, "client").
pub(crate) fn validate_reply(packet: &[u8], expected_thread: u32) -> Outcome {
    match parse_reply(packet, expected_thread) {
        Ok(reply) => {
            if let Some(w) = &reply.thread_warning {
                log::warn!("{w}");
            }
            Outcome::Reply(reply)
        }
        Err(e @ ReplyError::Protocol(_)) => Outcome::err(e.code(), e.to_string()),
        Err(e @ ReplyError::Malformed(_)) => Outcome::err(400, e.to_string()),
    }
}

/// A socket bound to `bind` (port 0) and connected to `addr`, never to
/// itself: on a machine's own address, the port the kernel picks for the
/// socket may be `addr`'s port when nothing listens there, and the request
/// would then be read back as its own answer (seen in CI: "doesn't have
/// fields for a Response" instead of "Connection refused"). Such a socket
/// is dropped and another one made.
fn connected_socket(bind: SocketAddr, addr: SocketAddr) -> Option<UdpSocket> {
    for _ in 0..4 {
        let s = UdpSocket::bind(bind).ok()?;
        s.connect(addr).ok()?;
        if s.local_addr().ok()? != addr {
            return Some(s);
        }
    }
    None
}

/// Build, sign, send one request and check its reply.
pub fn request(
    server: &ServerAddr,
    op: Op,
    digests: &[&str],
    account: Option<&Account>,
    timeout: Duration,
) -> Outcome {
    request_at(server, op, digests, account, timeout, now_secs()).0
}

/// [`request`] with the `Time` header set to `time` (seconds since the
/// epoch) instead of now, and the round-trip time (from sending to the
/// reply, or to the failure). `pyzor doctor` probes the server's
/// timestamp window with it.
pub fn request_at(
    server: &ServerAddr,
    op: Op,
    digests: &[&str],
    account: Option<&Account>,
    timeout: Duration,
    time: i64,
) -> (Outcome, Duration) {
    let thread = new_thread_id();
    let mut datagram = Vec::with_capacity(256);
    if let Err(e) = build_request(
        op,
        digests,
        u32::from(thread),
        &pyzor_config::client::credentials(account),
        time,
        Layout::Single,
        &mut datagram,
    ) {
        let e = Outcome::err(400, format!("cannot build the request: {e}"));
        return (e, Duration::ZERO);
    }
    log::debug!(
        "sending: {}",
        py_repr_str(&String::from_utf8_lossy(&datagram))
    );
    let t0 = std::time::Instant::now();
    let answer = exchange(server, &datagram, timeout);
    let rtt = t0.elapsed();
    let outcome = match answer {
        Ok(packet) => {
            // The reference logs `received: %r/%r` of the bytes and address.
            log::debug!(
                "received: b{}/({}, {})",
                py_repr_str(&String::from_utf8_lossy(&packet)),
                py_repr_str(&server.host),
                server.port
            );
            validate_reply(&packet, u32::from(thread))
        }
        Err(e) => e,
    };
    (outcome, rtt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_replies_never_panic() {
        // Deterministic xorshift; bounded count.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let pieces: [&[u8]; 10] = [
            b"Code: ",
            b"Diag: ",
            b"PV: ",
            b"Thread: ",
            b"Count: ",
            b"200",
            b"\n",
            b"\r\n",
            b"\xff\xfe",
            b" 5000 ",
        ];
        for _ in 0..20_000 {
            let mut pkt = Vec::new();
            for _ in 0..(x % 24) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if x % 3 == 0 {
                    pkt.push((x >> 8) as u8);
                } else {
                    pkt.extend_from_slice(pieces[(x % 10) as usize]);
                }
            }
            let out = validate_reply(&pkt, 5000);
            if let Outcome::Reply(r) = out {
                let _ = r.head_tuple();
                let _ = r.get_int("Count");
            }
        }
    }

    #[test]
    fn thread_ids_in_range() {
        for _ in 0..1000 {
            assert!(new_thread_id() >= 1024);
        }
    }

    #[test]
    fn validation_follows_reference() {
        let ok = b"Code: 200\nDiag: OK\nPV: 2.1\nThread: 5000\n\n";
        assert!(matches!(validate_reply(ok, 5000), Outcome::Reply(_)));
        assert_eq!(
            validate_reply(ok, 5001),
            Outcome::err(400, "received unexpected thread id 5000 (expected 5001)")
        );
        let low = b"Code: 200\nDiag: OK\nPV: 2.1\nThread: 7\n\n";
        assert!(matches!(validate_reply(low, 5001), Outcome::Reply(_)));
        assert_eq!(
            validate_reply(b"PV: 2.1\nThread: 1\n\n", 1),
            Outcome::err(400, "doesn't have fields for a Response")
        );
        assert_eq!(
            validate_reply(b"Code: 1\nDiag: x\n\n", 1),
            Outcome::err(400, "Doesn't have fields for a ThreadedMessage.")
        );
        assert!(matches!(
            validate_reply(b"Code: 200\nDiag: OK\nPV: 2.1\nThread: \n\n", 1),
            Outcome::Error { code: 400, .. }
        ));
        assert!(matches!(
            validate_reply(b"Code: OK\nDiag: OK\nPV: 2.1\nThread: 1\n\n", 1),
            Outcome::Error { code: 400, .. }
        ));
        assert!(matches!(
            validate_reply(b"Code: 200\nDiag: OK\nPV: 2.1\nThread: 70000\n\n", 1),
            Outcome::Error { code: 400, .. }
        ));
    }

    #[test]
    fn silent_server_times_out_and_closed_port_fails_fast() {
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = silent.local_addr().unwrap().port();
        let ping = |port: u16, wait: Duration| {
            request(
                &ServerAddr::new("127.0.0.1", port),
                Op::Ping,
                &[],
                None,
                wait,
            )
        };
        let t0 = std::time::Instant::now();
        let out = ping(port, Duration::from_millis(300));
        assert_eq!(out, Outcome::err(504, TIMEOUT_DIAG));
        assert!(t0.elapsed() < Duration::from_secs(3));
        let mut buf = [0u8; 100];
        let n = silent.recv(&mut buf).unwrap();
        assert!(buf[..n].starts_with(b"Op: ping\nThread: "));
        drop(silent);
        let refused = Outcome::err(
            400,
            "Socket error while reading response: [Errno 111] Connection refused",
        );
        // A port just let go may be taken at once by a socket of another
        // test running beside this one (seen in CI: a non-Pyzor answer):
        // then try another closed port, a few times at most.
        let mut port = port;
        let mut answers = Vec::new();
        for _ in 0..3 {
            let out = ping(port, Duration::from_secs(3));
            if out == refused {
                break;
            }
            answers.push(out);
            port = pyzor_testkit::free_udp_port();
        }
        assert!(answers.len() < 3, "no closed port refused: {answers:?}");
    }
}
