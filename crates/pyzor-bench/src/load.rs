//! The closed-loop load generator.
//!
//! `threads` worker threads each own `sockets` connected UDP sockets; the
//! window (requests outstanding at any time) is split over all sockets. A
//! worker fills every socket's share of the window with one `sendmmsg`,
//! collects answers with `recvmmsg`, matches each by (socket, Thread), and
//! refills. A request unanswered after `timeout` counts as lost; an answer
//! that arrives after that counts as late. Only requests sent inside the
//! measured period (after the warm-up) are counted.

use crate::proto::{parse_reply, population_digest, time_string, Op, RequestWriter, MAX_REQUEST};
use crate::stats::{Shape, Stats, ThreadStats};
use crate::{BenchError, LoadArgs, Population};
use pyzor_udp::{Batch, Options};
use socket2::{Domain, Protocol, Socket, Type};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// First Thread value; the reference client draws Threads from 1024..65535.
/// The generator counts upwards per socket so that a late answer can never
/// be mistaken for the answer to a newer request.
const FIRST_THREAD: u64 = 1024;
/// How many timed-out Threads per socket are remembered to classify late
/// answers (older ones would be counted as stray).
const LOST_MEMORY: usize = 65536;
/// Largest pool that is precomputed.
const POOL_TABLE_MAX: u64 = 2_000_000;

/// The op mix: cumulative weights over ops.
#[derive(Clone, Debug)]
pub(crate) struct Mix {
    entries: Vec<(Op, u32)>,
    total: u32,
}

impl Mix {
    /// Parse `check:90,report:10` (a bare op means weight 1).
    pub fn parse(s: &str) -> Result<Mix, BenchError> {
        let mut entries = Vec::new();
        let mut total = 0u32;
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, w) = match part.split_once(':') {
                Some((n, w)) => {
                    let w: u32 = w
                        .trim()
                        .parse()
                        .map_err(|_| BenchError::BadMix(s.to_owned()))?;
                    (n.trim(), w)
                }
                None => (part, 1),
            };
            let op = Op::parse(name).ok_or_else(|| BenchError::BadMix(s.to_owned()))?;
            if w == 0 {
                continue;
            }
            total = total
                .checked_add(w)
                .ok_or_else(|| BenchError::BadMix(s.to_owned()))?;
            entries.push((op, total));
        }
        if entries.is_empty() {
            return Err(BenchError::BadMix(s.to_owned()));
        }
        Ok(Mix { entries, total })
    }

    fn pick(&self, rng: &mut fastrand::Rng) -> Op {
        if self.entries.len() == 1 {
            return self.entries[0].0;
        }
        let x = rng.u32(0..self.total);
        self.entries
            .iter()
            .find(|(_, c)| x < *c)
            .map(|(op, _)| *op)
            .unwrap_or(self.entries[0].0)
    }

    pub(crate) fn describe(&self) -> String {
        let mut prev = 0;
        let mut out = Vec::new();
        for (op, c) in &self.entries {
            out.push(format!("{}:{}", op.name(), c - prev));
            prev = *c;
        }
        out.join(",")
    }
}

/// Sources of digests shared by all workers.
struct Digests {
    population: Population,
    /// The pool computed once, when it is small enough (saves one SHA-1 per
    /// request in the hot loop; 2M digests are 80 MB).
    table: Vec<[u8; 40]>,
    pool: u64,
    seed: u64,
    /// Next index for `seq` (shared, so each digest is sent exactly once).
    next_seq: AtomicU64,
    /// Next number for `new` digests (never-seen: a seed-space of its own).
    next_new: AtomicU64,
}

impl Digests {
    /// The next digest, or `None` when `seq` has sent the whole pool.
    fn next(&self, rng: &mut fastrand::Rng) -> Option<[u8; 40]> {
        match self.population {
            Population::Pool => {
                let i = rng.u64(0..self.pool);
                Some(match self.table.get(i as usize) {
                    Some(d) => *d,
                    None => population_digest(self.seed, i),
                })
            }
            Population::Seq => {
                let i = self.next_seq.fetch_add(1, Ordering::Relaxed);
                (i < self.pool).then(|| population_digest(self.seed, i))
            }
            Population::New => {
                // A different seed space than the pool (`seed ^ !0`, counted
                // from a random start) so "new" never hits a prefilled digest.
                let i = self.next_new.fetch_add(1, Ordering::Relaxed);
                Some(population_digest(self.seed ^ u64::MAX, i))
            }
        }
    }
}

struct Pending {
    sent: Instant,
    op: Op,
    measured: bool,
}

struct Sock {
    sock: UdpSocket,
    window: usize,
    next_thread: u64,
    /// Outstanding requests by Thread; Threads grow, so the first entry is
    /// always the oldest (used for timeouts).
    pending: BTreeMap<u64, Pending>,
    /// Timed-out Threads (value: whether the request was measured).
    lost: HashMap<u64, bool>,
    lost_order: VecDeque<u64>,
}

impl Sock {
    fn remember_lost(&mut self, thread: u64, measured: bool) {
        if self.lost_order.len() == LOST_MEMORY {
            if let Some(old) = self.lost_order.pop_front() {
                self.lost.remove(&old);
            }
        }
        self.lost.insert(thread, measured);
        self.lost_order.push_back(thread);
    }
}

/// The source address of client socket `index` with `sources` source
/// networks: `None` (the system's choice) for one, else 127.0.k.1 with k
/// = 1 + index mod sources, one /24 per source (servers that steer by
/// client network, like ours, see as many clients).
fn source_addr(sources: u32, index: usize) -> Option<SocketAddr> {
    (sources > 1).then(|| {
        let k = 1 + (index % sources as usize) as u8;
        SocketAddr::from((Ipv4Addr::new(127, 0, k, 1), 0))
    })
}

fn connect_socket(
    target: SocketAddr,
    source: Option<SocketAddr>,
    rcvbuf: usize,
) -> Result<UdpSocket, BenchError> {
    let domain = if target.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).map_err(BenchError::Socket)?;
    // A larger receive buffer so a window of 1024 never overflows it; the
    // kernel caps it at rmem_max silently, which is fine.
    let _ = s.set_recv_buffer_size(rcvbuf);
    let _ = s.set_send_buffer_size(rcvbuf);
    if let Some(src) = source {
        s.bind(&src.into()).map_err(|e| BenchError::Bind(src, e))?;
    }
    s.connect(&target.into()).map_err(BenchError::Socket)?;
    s.set_nonblocking(true).map_err(BenchError::Socket)?;
    Ok(s.into())
}

/// Split `total` into `parts` shares differing by at most one.
fn split(total: u64, parts: usize, i: usize) -> u64 {
    let parts = parts as u64;
    total / parts + u64::from((i as u64) < total % parts)
}

/// Run the load described by `args`; returns the merged statistics.
pub fn run(args: &LoadArgs, stop: Arc<AtomicBool>) -> Result<Stats, BenchError> {
    let target = (args.host.as_str(), args.port)
        .to_socket_addrs()
        .map_err(|e| BenchError::Resolve(format!("{}:{}", args.host, args.port), e))?
        .next()
        .ok_or_else(|| {
            BenchError::Resolve(
                format!("{}:{}", args.host, args.port),
                std::io::ErrorKind::NotFound.into(),
            )
        })?;
    if args.sources > 1 && !matches!(target, SocketAddr::V4(a) if a.ip().is_loopback()) {
        return Err(BenchError::BadArg(format!(
            "--sources {} needs a 127.x.x.x target (the sources are 127.0.k.1), not {target}",
            args.sources
        )));
    }
    let mix = Mix::parse(&args.ops)?;
    let window = args.window as usize;
    let threads = (args.threads as usize).clamp(1, window);
    let sockets_per_thread = match args.sockets {
        0 => (window / threads).clamp(1, 8),
        n => (n as usize).min(window / threads).max(1),
    };
    let table = if args.mode == Population::Pool && args.pool <= POOL_TABLE_MAX {
        (0..args.pool)
            .map(|i| population_digest(args.seed, i))
            .collect()
    } else {
        Vec::new()
    };
    let digests = Arc::new(Digests {
        population: args.mode,
        table,
        pool: args.pool.max(1),
        seed: args.seed,
        next_seq: AtomicU64::new(0),
        next_new: AtomicU64::new(fastrand::u64(..) >> 16),
    });
    let count_bound = match (args.count, args.mode) {
        (Some(c), _) => Some(c),
        (None, Population::Seq) => Some(args.pool),
        (None, _) => None,
    };
    let writer = Arc::new(RequestWriter::new(&args.user, &args.key));
    let start = Instant::now();
    let measure_start = start + Duration::from_secs_f64(args.warmup);
    let measure_end = measure_start + Duration::from_secs_f64(args.duration);
    let timeout = Duration::from_millis(args.timeout_ms);
    let cpu_before = crate::stats::self_cpu();

    let mut handles = Vec::new();
    let total_sockets = threads * sockets_per_thread;
    for t in 0..threads {
        let mut socks = Vec::new();
        for s in 0..sockets_per_thread {
            let idx = t * sockets_per_thread + s;
            let w = split(window as u64, total_sockets, idx) as usize;
            if w == 0 {
                continue;
            }
            socks.push(Sock {
                sock: connect_socket(target, source_addr(args.sources, idx), 4 << 20)?,
                window: w,
                next_thread: FIRST_THREAD,
                pending: BTreeMap::new(),
                lost: HashMap::new(),
                lost_order: VecDeque::new(),
            });
        }
        let quota = count_bound.map(|c| split(c, threads, t));
        let worker = Worker {
            socks,
            mix: mix.clone(),
            digests: Arc::clone(&digests),
            writer: Arc::clone(&writer),
            rng: fastrand::Rng::with_seed(args.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ t as u64),
            measure_start,
            measure_end,
            timeout,
            quota,
            stop: Arc::clone(&stop),
            expect: args.expect,
        };
        handles.push(
            std::thread::Builder::new()
                .name(format!("load-{t}"))
                .spawn(move || worker.run())
                .map_err(BenchError::Thread)?,
        );
    }
    let mut merged = ThreadStats::new();
    for h in handles {
        let ts = h.join().map_err(|_| BenchError::WorkerPanic)?;
        merged.merge(&ts);
    }
    let cpu_after = crate::stats::self_cpu();
    Ok(Stats::finish(
        merged,
        args,
        &mix,
        Shape {
            threads,
            sockets_per_thread,
            sources: (args.sources as usize).min(total_sockets),
        },
        measure_start,
        cpu_after - cpu_before,
    ))
}

struct Worker {
    socks: Vec<Sock>,
    mix: Mix,
    digests: Arc<Digests>,
    writer: Arc<RequestWriter>,
    rng: fastrand::Rng,
    measure_start: Instant,
    measure_end: Instant,
    timeout: Duration,
    /// Measured requests this worker may still send (`None`: until the end).
    quota: Option<u64>,
    stop: Arc<AtomicBool>,
    expect: u16,
}

impl Worker {
    fn run(mut self) -> ThreadStats {
        let mut st = ThreadStats::new();
        let max_window = self.socks.iter().map(|s| s.window).max().unwrap_or(1);
        // Connected sockets: no peer addresses. `sendb` only sends (its
        // outgoing buffers hold the requests), `recvb` only receives.
        let mut sendb = Batch::new(Options {
            peers: false,
            reply_capacity: MAX_REQUEST,
            ..Options::new(max_window, 0)
        });
        let mut recvb = Batch::new(Options {
            peers: false,
            recv_flags: libc::MSG_DONTWAIT,
            ..Options::new(max_window.clamp(8, 64), 2048)
        });
        let mut ops_in_batch: Vec<(u64, Op)> = Vec::with_capacity(max_window);
        let mut sending = true;
        let mut time_secs = 0u64;
        let mut time_str = String::new();
        let mut pollfds: Vec<libc::pollfd> = self
            .socks
            .iter()
            .map(|s| libc::pollfd {
                fd: s.sock.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let drain_deadline_after =
            |t: Instant, timeout: Duration| t + timeout + Duration::from_millis(50);
        let mut drain_deadline: Option<Instant> = None;
        // Whether the last receive round left datagrams queued (a full batch).
        let mut backlog = false;

        loop {
            let now = Instant::now();
            if sending {
                let out_of_quota = self.quota == Some(0);
                if now >= self.measure_end || out_of_quota || self.stop.load(Ordering::Relaxed) {
                    sending = false;
                    st.send_stop = Some(now);
                    drain_deadline = Some(drain_deadline_after(now, self.timeout));
                }
            }
            if sending {
                let secs = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                if secs != time_secs {
                    time_secs = secs;
                    time_str = time_string(secs);
                }
                let measured = now >= self.measure_start;
                for sock in self.socks.iter_mut() {
                    let want = sock.window.saturating_sub(sock.pending.len());
                    if want == 0 {
                        continue;
                    }
                    ops_in_batch.clear();
                    for i in 0..want {
                        if measured {
                            if let Some(q) = self.quota.as_mut() {
                                if *q == 0 {
                                    break;
                                }
                                *q -= 1;
                            }
                        }
                        let op = self.mix.pick(&mut self.rng);
                        let Some(digest) = self.digests.next(&mut self.rng) else {
                            self.quota = Some(0);
                            break;
                        };
                        let thread = sock.next_thread;
                        sock.next_thread += 1;
                        let request = &mut sendb.replies[i];
                        request.resize(MAX_REQUEST, 0);
                        let n = self.writer.write(
                            request,
                            op,
                            &digest,
                            thread,
                            time_secs as i64,
                            &time_str,
                        );
                        request.truncate(n);
                        ops_in_batch.push((thread, op));
                    }
                    if ops_in_batch.is_empty() {
                        continue;
                    }
                    let sent_at = Instant::now();
                    let sent = match sendb.send_first(&sock.sock, ops_in_batch.len()) {
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
                        Err(_) => {
                            st.send_errors += 1;
                            0
                        }
                    };
                    if sent < ops_in_batch.len() && sent > 0 {
                        st.send_errors += 1;
                    }
                    for &(thread, op) in &ops_in_batch[..sent] {
                        sock.pending.insert(
                            thread,
                            Pending {
                                sent: sent_at,
                                op,
                                measured,
                            },
                        );
                        if measured {
                            st.sent += 1;
                            st.sent_by_op[op.index()] += 1;
                        }
                    }
                    // Unsent requests give back their quota.
                    if measured {
                        if let Some(q) = self.quota.as_mut() {
                            *q += (ops_in_batch.len() - sent) as u64;
                        }
                    }
                }
            }

            // Timeouts: the oldest pending request of each socket first.
            let now = Instant::now();
            for sock in self.socks.iter_mut() {
                while let Some((&thread, p)) = sock.pending.first_key_value() {
                    if now.duration_since(p.sent) < self.timeout {
                        break;
                    }
                    let measured = p.measured;
                    if measured {
                        st.lost += 1;
                    }
                    sock.pending.remove(&thread);
                    sock.remember_lost(thread, measured);
                }
            }

            let outstanding: usize = self.socks.iter().map(|s| s.pending.len()).sum();
            if !sending && (outstanding == 0 || drain_deadline.is_some_and(|d| now >= d)) {
                break;
            }
            let polled = !backlog;
            if polled {
                // Queues drained last time: sleep in poll until a socket is
                // readable, the oldest request times out, or the period ends.
                // (At window 1 this makes a request cost send, poll, receive.)
                let mut wake = now + Duration::from_millis(20);
                if sending {
                    wake = wake.min(self.measure_end.max(now));
                }
                for sock in &self.socks {
                    if let Some((_, p)) = sock.pending.first_key_value() {
                        wake = wake.min(p.sent + self.timeout);
                    }
                }
                if outstanding == 0 && sending {
                    // Window not full only because sending failed: retry soon.
                    wake = wake.min(now + Duration::from_millis(1));
                }
                let ms = wake
                    .saturating_duration_since(now)
                    .as_micros()
                    .div_ceil(1000) as i32;
                for p in pollfds.iter_mut() {
                    p.revents = 0;
                }
                // SAFETY: pollfds is a valid array of pollfd for the call.
                unsafe { libc::poll(pollfds.as_mut_ptr(), pollfds.len() as libc::nfds_t, ms) };
            }

            // Receive without blocking from every readable socket (every
            // socket when poll was skipped because of a backlog).
            backlog = false;
            for (si, pfd) in pollfds.iter().enumerate() {
                if polled && pfd.revents == 0 {
                    continue;
                }
                loop {
                    // Nothing queued (EAGAIN) or a signal gives 0.
                    match recvb.recv(&self.socks[si].sock) {
                        Ok(0) => break,
                        Ok(n) => {
                            let at = Instant::now();
                            for i in 0..n {
                                self.on_reply(si, recvb.datagram(i), at, &mut st);
                            }
                            if n < recvb.capacity() {
                                break;
                            }
                            backlog = true;
                        }
                        Err(_) => {
                            // e.g. ECONNREFUSED from an ICMP port unreachable.
                            st.recv_errors += 1;
                            break;
                        }
                    }
                }
            }
        }
        // Whatever is still pending after the drain deadline is lost.
        for sock in &self.socks {
            st.lost += sock.pending.values().filter(|p| p.measured).count() as u64;
        }
        st
    }

    fn on_reply(&mut self, si: usize, d: &[u8], at: Instant, st: &mut ThreadStats) {
        let Some(reply) = parse_reply(d) else {
            st.malformed += 1;
            return;
        };
        let sock = &mut self.socks[si];
        let Some(thread) = reply.thread else {
            st.stray += 1;
            return;
        };
        let Some(p) = sock.pending.remove(&thread) else {
            match sock.lost.remove(&thread) {
                Some(true) => st.late += 1,
                Some(false) => {} // late answer to a warm-up request
                None => st.stray += 1,
            }
            return;
        };
        if !p.measured {
            return;
        }
        st.responses += 1;
        st.last_reply = Some(st.last_reply.map_or(at, |l: Instant| l.max(at)));
        *st.codes.entry(reply.code).or_insert(0) += 1;
        if reply.code == 200 && p.op.answer_has_counts() {
            if reply.count.is_none() || reply.wl_count.is_none() {
                st.malformed += 1;
            } else if p.op == Op::Check {
                st.checks_answered += 1;
                if reply.count.unwrap_or(0) > 0 {
                    st.check_hits += 1;
                }
            }
        }
        if reply.code != self.expect {
            st.unexpected += 1;
        }
        let ns = at.duration_since(p.sent).as_nanos().min(u64::MAX as u128) as u64;
        st.record(p.op, ns.max(1));
    }
}
