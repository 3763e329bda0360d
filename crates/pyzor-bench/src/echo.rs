//! The echo responder: the machine's UDP ceiling for a Pyzor-shaped
//! exchange. Every thread owns an `SO_REUSEPORT` socket on the same port,
//! receives with `recvmmsg` and answers the whole batch with one `sendmmsg`.
//! Each answer has the layout of a check reply and echoes the request's
//! Thread; nothing is parsed or stored beyond that.

use crate::proto::{request_thread, write_echo_reply};
use crate::{BenchError, EchoArgs};
use pyzor_udp::{Batch, Options};
use socket2::{Domain, Protocol, Socket, Type};
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn bind(addr: SocketAddr) -> Result<UdpSocket, BenchError> {
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).map_err(BenchError::Socket)?;
    s.set_reuse_port(true).map_err(BenchError::Socket)?;
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.bind(&addr.into())
        .map_err(|e| BenchError::Bind(addr, e))?;
    // Wake up regularly to notice the end of the run or a signal.
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(BenchError::Socket)?;
    Ok(s.into())
}

/// Serve until `args.duration` has passed or `stop` is set. Prints the
/// bound address first (line `listening on ADDR`), then a summary.
pub fn run(args: &EchoArgs, stop: Arc<AtomicBool>) -> Result<(), BenchError> {
    let addr = (args.addr.as_str(), args.port)
        .to_socket_addrs()
        .map_err(|e| BenchError::Resolve(format!("{}:{}", args.addr, args.port), e))?
        .next()
        .ok_or_else(|| {
            BenchError::Resolve(args.addr.clone(), std::io::ErrorKind::NotFound.into())
        })?;
    let first = bind(addr)?;
    // With port 0 the first socket picks the port; the others join it.
    let bound = first.local_addr().map_err(BenchError::Socket)?;
    let mut socks = vec![first];
    for _ in 1..args.threads.max(1) {
        socks.push(bind(bound)?);
    }
    println!(
        "pyzor-bench echo: listening on {bound} with {} thread(s)",
        socks.len()
    );
    use std::io::Write as _;
    let _ = std::io::stdout().flush();

    let deadline = Instant::now() + Duration::from_secs_f64(args.duration);
    let answered = Arc::new(AtomicU64::new(0));
    let cpu0 = crate::stats::self_cpu();
    let t0 = Instant::now();
    let batch = args.batch.clamp(1, 1024) as usize;
    let handles: Vec<_> = socks
        .into_iter()
        .enumerate()
        .map(|(i, sock)| {
            let stop = Arc::clone(&stop);
            let answered = Arc::clone(&answered);
            std::thread::Builder::new()
                .name(format!("echo-{i}"))
                .spawn(move || serve(sock, batch, deadline, &stop, &answered))
                .map_err(BenchError::Thread)
        })
        .collect::<Result<_, _>>()?;
    for h in handles {
        h.join().map_err(|_| BenchError::WorkerPanic)?;
    }
    let n = answered.load(Ordering::Relaxed);
    let cpu = crate::stats::self_cpu() - cpu0;
    println!(
        "pyzor-bench echo: answered {n} datagrams in {:.1} s, CPU {:.2} s ({:.2} us per datagram)",
        t0.elapsed().as_secs_f64(),
        cpu.as_secs_f64(),
        if n > 0 {
            cpu.as_secs_f64() * 1e6 / n as f64
        } else {
            0.0
        }
    );
    Ok(())
}

/// Room for one echo reply (the Thread is cut to fit).
const ECHO_REPLY_SIZE: usize = 512;

fn serve(
    sock: UdpSocket,
    batch: usize,
    deadline: Instant,
    stop: &AtomicBool,
    answered: &AtomicU64,
) {
    let mut io = Batch::new(Options {
        reply_capacity: ECHO_REPLY_SIZE,
        ..Options::new(batch, 8192)
    });
    let answer_all = vec![true; batch];
    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        // A timeout or a signal gives 0; anything else (e.g. a queued ICMP
        // error) is transient for UDP.
        let Ok(n) = io.recv(&sock) else { continue };
        for i in 0..n {
            let (request, reply) = io.datagram_and_reply(i);
            reply.resize(ECHO_REPLY_SIZE, 0);
            let len = write_echo_reply(reply, request_thread(request));
            reply.truncate(len);
        }
        let refused = io.send(&sock, &answer_all);
        answered.fetch_add((n - refused) as u64, Ordering::Relaxed);
    }
}
