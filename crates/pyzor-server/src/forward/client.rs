//! The server's forwarder (`pyzord --forward-client-homedir DIR`,
//! `ForwardClientHomeDir`): reports and whitelists the server accepted are
//! passed on to the servers of a client home directory, signed with its
//! accounts (docs/protocol.md §7 "Batch client").
//!
//! ```no_run
//! use pyzor_server::forward::client::{ForwardOp, Forwarder};
//! let fwd = Forwarder::new(std::path::Path::new("/etc/pyzor/forward")).unwrap();
//! fwd.submit(ForwardOp::Report, "2e8aa95a8e8a0ba98c7d52a3d05ecb6e5a1b7d17");
//! // ... on shutdown (also done by Drop):
//! fwd.shutdown();
//! ```
//!
//! Behaviour:
//! * [`Forwarder::submit`] never blocks: the digest goes into a bounded
//!   queue (10 000 by default, like the reference); when it is full the
//!   digest is dropped, counted ([`ForwarderStats::dropped`]) and a warning
//!   is logged (rate-limited: the 1st, 2nd, 4th, 8th… drop).
//! * One sender thread collects digests per operation and sends a request
//!   to every server as soon as 10 are pending (the reference's batch
//!   layout: `Op`, `Op-Spec`, up to 10 `Op-Digest`, `Thread`, `PV`, `User`,
//!   `Time`, `Sig`).
//! * Unlike the reference (B27), a partial batch is sent once its oldest
//!   digest has waited [`ForwarderConfig::flush_interval`] (1 s by
//!   default), and everything pending is sent on shutdown.
//! * Replies are not waited for (the reference never reads them); those
//!   that arrive are read without blocking and non-200 answers are logged.
//! * Checks are never forwarded: there is no `ForwardOp` for them.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pyzor_config::client::{self as files, Accounts, ClientConfig, ServerAddr};
use pyzor_protocol::wire::client::{build_request, Layout};
use pyzor_protocol::wire::{Op, MAX_PACKET_SIZE};

use pyzor_config::client::credentials;

/// What to forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForwardOp {
    /// A spam report.
    Report,
    /// A whitelist request.
    Whitelist,
}

impl ForwardOp {
    fn op(self) -> Op {
        match self {
            ForwardOp::Report => Op::Report,
            ForwardOp::Whitelist => Op::Whitelist,
        }
    }
}

/// Tuning of the forwarder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwarderConfig {
    /// Digests waiting to be sent, at most (reference: 10 000).
    pub queue_capacity: usize,
    /// Digests per request (reference: 10).
    pub batch_size: usize,
    /// Longest time a digest waits for its batch to fill.
    pub flush_interval: Duration,
}

impl Default for ForwarderConfig {
    fn default() -> Self {
        ForwarderConfig {
            queue_capacity: 10_000,
            batch_size: 10,
            flush_interval: Duration::from_secs(1),
        }
    }
}

/// The forwarder could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ForwarderError {
    /// A file of the client home directory cannot be read.
    #[error("forwarding client home {path}: cannot read {file}: {source}")]
    Read {
        /// The client home directory.
        path: std::path::PathBuf,
        /// The file.
        file: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The servers file is invalid.
    #[error("forwarding client home {path}: {source}")]
    Servers {
        /// The client home directory.
        path: std::path::PathBuf,
        /// The cause.
        source: files::FileError,
    },
    /// The config file of the client home directory is invalid.
    #[error("forwarding client home {path}: {source}")]
    Config {
        /// The client home directory.
        path: std::path::PathBuf,
        /// What is wrong.
        source: files::ClientConfigError,
    },
    /// The sender thread could not be started.
    #[error("cannot start the forwarder thread: {0}")]
    Thread(std::io::Error),
}

/// Counters, readable at any time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForwarderStats {
    /// Digests accepted into the queue.
    pub queued: u64,
    /// Digests dropped because the queue was full.
    pub dropped: u64,
    /// Requests sent (one per server per batch).
    pub requests_sent: u64,
    /// Requests that could not be sent (resolution or socket errors).
    pub send_errors: u64,
    /// Replies read that were not 200.
    pub error_replies: u64,
}

#[derive(Default)]
struct Counters {
    queued: AtomicU64,
    dropped: AtomicU64,
    requests_sent: AtomicU64,
    send_errors: AtomicU64,
    error_replies: AtomicU64,
}

enum Msg {
    Digest(ForwardOp, String),
    Shutdown,
}

/// Forwards accepted reports and whitelists to other servers.
pub struct Forwarder {
    tx: SyncSender<Msg>,
    counters: Arc<Counters>,
    thread: Mutex<Option<JoinHandle<()>>>,
    servers: Vec<ServerAddr>,
}

impl Forwarder {
    /// Read the client home directory `dir` like the reference's
    /// `initialize_forwarding`: `<dir>/config` `[client]` (ServersFile,
    /// AccountsFile; relative names inside `dir`), the servers file
    /// (empty/missing → public.pyzor.org) and the accounts; then start.
    pub fn new(dir: &Path) -> Result<Forwarder, ForwarderError> {
        Self::with_config(dir, ForwarderConfig::default())
    }

    /// [`Forwarder::new`] with explicit tuning.
    pub(crate) fn with_config(
        dir: &Path,
        config: ForwarderConfig,
    ) -> Result<Forwarder, ForwarderError> {
        let settings = ClientConfig::load(dir, &[]).map_err(|source| ForwarderError::Config {
            path: dir.to_path_buf(),
            source,
        })?;
        let read = |file: &Option<std::path::PathBuf>| -> Result<String, ForwarderError> {
            let Some(file) = file.clone() else {
                return Ok(String::new());
            };
            match std::fs::read(&file) {
                Ok(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
                Err(source) => Err(ForwarderError::Read {
                    path: dir.to_path_buf(),
                    file,
                    source,
                }),
            }
        };
        let mut servers =
            files::parse_servers(&read(&settings.servers_file)?).map_err(|source| {
                ForwarderError::Servers {
                    path: dir.to_path_buf(),
                    source,
                }
            })?;
        if servers.is_empty() {
            servers.push(ServerAddr::new(
                files::DEFAULT_SERVER.0,
                files::DEFAULT_SERVER.1,
            ));
        }
        let (accounts, warnings) = files::parse_accounts(&read(&settings.accounts_file)?);
        for w in warnings {
            log::warn!("forwarder: {w}");
        }
        Self::start(servers, accounts, config)
    }

    /// Start a forwarder to explicit servers.
    pub fn start(
        servers: Vec<ServerAddr>,
        accounts: Accounts,
        config: ForwarderConfig,
    ) -> Result<Forwarder, ForwarderError> {
        Self::start_gated(servers, accounts, config, None)
    }

    /// `start`, with the sender thread waiting for `gate` before its first
    /// receive (tests use it to fill the queue deterministically).
    fn start_gated(
        servers: Vec<ServerAddr>,
        accounts: Accounts,
        config: ForwarderConfig,
        gate: Option<Arc<Mutex<()>>>,
    ) -> Result<Forwarder, ForwarderError> {
        let (tx, rx) = sync_channel(config.queue_capacity.max(1));
        let counters = Arc::new(Counters::default());
        let sender = Sender {
            servers: servers.clone(),
            accounts,
            batch_size: config.batch_size.clamp(1, 1000),
            flush_interval: config.flush_interval,
            counters: Arc::clone(&counters),
            v4: None,
            v6: None,
        };
        let thread = std::thread::Builder::new()
            .name("pyzor-forwarder".into())
            .spawn(move || {
                if let Some(g) = gate {
                    drop(g.lock());
                }
                sender.run(rx)
            })
            .map_err(ForwarderError::Thread)?;
        Ok(Forwarder {
            tx,
            counters,
            thread: Mutex::new(Some(thread)),
            servers,
        })
    }

    /// The servers digests go to.
    pub fn servers(&self) -> &[ServerAddr] {
        &self.servers
    }

    /// Queue one digest; never blocks. Returns false when it was dropped
    /// (queue full or forwarder stopped).
    pub fn submit(&self, op: ForwardOp, digest: &str) -> bool {
        match self.tx.try_send(Msg::Digest(op, digest.to_string())) {
            Ok(()) => {
                self.counters.queued.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                let n = self.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    log::warn!(
                        "forwarder queue full: dropped digest {digest} ({n} dropped so far)"
                    );
                }
                false
            }
        }
    }

    /// Current counters.
    pub fn stats(&self) -> ForwarderStats {
        let c = &self.counters;
        ForwarderStats {
            queued: c.queued.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            requests_sent: c.requests_sent.load(Ordering::Relaxed),
            send_errors: c.send_errors.load(Ordering::Relaxed),
            error_replies: c.error_replies.load(Ordering::Relaxed),
        }
    }

    /// Send everything still pending and stop the sender thread.
    /// Idempotent; also run on drop.
    pub fn shutdown(&self) {
        let handle = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(h) = handle {
            // A blocking send: the queue may be full, the thread drains it.
            let _ = self.tx.send(Msg::Shutdown);
            let _ = h.join();
        }
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct Sender {
    servers: Vec<ServerAddr>,
    accounts: Accounts,
    batch_size: usize,
    flush_interval: Duration,
    counters: Arc<Counters>,
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
}

struct Pending {
    digests: Vec<String>,
    since: Instant,
}

impl Sender {
    fn run(mut self, rx: Receiver<Msg>) {
        let mut pending: HashMap<ForwardOp, Pending> = HashMap::new();
        loop {
            let wait = pending
                .values()
                .map(|p| (p.since + self.flush_interval).saturating_duration_since(Instant::now()))
                .min()
                // Idle: wake up once a second to read late replies.
                .unwrap_or(Duration::from_secs(1));
            match rx.recv_timeout(wait) {
                Ok(Msg::Digest(op, digest)) => {
                    let p = pending.entry(op).or_insert_with(|| Pending {
                        digests: Vec::with_capacity(self.batch_size),
                        since: Instant::now(),
                    });
                    p.digests.push(digest);
                    if p.digests.len() >= self.batch_size {
                        let batch = pending.remove(&op).map(|p| p.digests).unwrap_or_default();
                        self.send_batch(op, &batch);
                    }
                }
                Ok(Msg::Shutdown) | Err(RecvTimeoutError::Disconnected) => {
                    // Drain what is still queued, then flush everything.
                    while let Ok(Msg::Digest(op, digest)) = rx.try_recv() {
                        pending
                            .entry(op)
                            .or_insert_with(|| Pending {
                                digests: Vec::new(),
                                since: Instant::now(),
                            })
                            .digests
                            .push(digest);
                    }
                    for (op, p) in std::mem::take(&mut pending) {
                        for chunk in p.digests.chunks(self.batch_size) {
                            self.send_batch(op, chunk);
                        }
                    }
                    self.drain_replies();
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            let now = Instant::now();
            let due: Vec<ForwardOp> = pending
                .iter()
                .filter(|(_, p)| now.duration_since(p.since) >= self.flush_interval)
                .map(|(op, _)| *op)
                .collect();
            for op in due {
                if let Some(p) = pending.remove(&op) {
                    self.send_batch(op, &p.digests);
                }
            }
            self.drain_replies();
        }
    }

    fn socket(&mut self, addr: &SocketAddr) -> Option<&UdpSocket> {
        let slot = if addr.is_ipv6() {
            &mut self.v6
        } else {
            &mut self.v4
        };
        if slot.is_none() {
            let bind: SocketAddr = if addr.is_ipv6() {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            } else {
                (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
            };
            let s = UdpSocket::bind(bind).ok()?;
            s.set_nonblocking(true).ok()?;
            *slot = Some(s);
        }
        slot.as_ref()
    }

    fn send_batch(&mut self, op: ForwardOp, digests: &[String]) {
        if digests.is_empty() {
            return;
        }
        let refs: Vec<&str> = digests.iter().map(String::as_str).collect();
        let mut datagram = Vec::with_capacity(128 + 52 * refs.len());
        for server in self.servers.clone() {
            let account = self.accounts.get(&(server.host.clone(), server.port));
            if let Err(e) = build_request(
                op.op(),
                &refs,
                u32::from(new_thread_id()),
                &credentials(account),
                now_secs(),
                Layout::Batch,
                &mut datagram,
            ) {
                self.counters.send_errors.fetch_add(1, Ordering::Relaxed);
                log::warn!("Forwarding to {server}: cannot build the request: {e}");
                continue;
            }
            let addr = (server.host.as_str(), server.port)
                .to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next());
            let sent = addr.is_some_and(|addr| {
                self.socket(&addr)
                    .is_some_and(|s| s.send_to(&datagram, addr).is_ok())
            });
            if sent {
                self.counters.requests_sent.fetch_add(1, Ordering::Relaxed);
            } else {
                self.counters.send_errors.fetch_add(1, Ordering::Relaxed);
                log::warn!("Forwarding {} digest(s) to {server} failed", digests.len());
            }
        }
    }

    /// Read replies that already arrived, without waiting; log errors.
    fn drain_replies(&mut self) {
        let mut buf = vec![0u8; MAX_PACKET_SIZE];
        for s in [&self.v4, &self.v6].into_iter().flatten() {
            while let Ok((n, from)) = s.recv_from(&mut buf) {
                // The thread is not checked: several batches may be in
                // flight and the reference never read these replies at all.
                let packet = &buf[..n];
                let ok = packet.starts_with(b"Code: 200\n");
                if !ok {
                    self.counters.error_replies.fetch_add(1, Ordering::Relaxed);
                    let first = packet
                        .split(|&b| b == b'\n')
                        .take(2)
                        .map(String::from_utf8_lossy);
                    log::warn!(
                        "Forwarding to {from} answered {}",
                        first.collect::<Vec<_>>().join(" ")
                    );
                }
            }
        }
    }
}

/// A request's `Thread`: random in 1024..65535, as the reference client
/// picks it (the reply is matched on it).
fn new_thread_id() -> u16 {
    let mut b = [0u8; 2];
    // A failing OS source only makes the id predictable, which costs
    // nothing here: forwarded replies are read for logging only.
    let _ = getrandom::fill(&mut b);
    1024 + (u16::from_le_bytes(b) % (65536 - 1024) as u16)
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recv_all(sock: &UdpSocket, deadline: Duration) -> Vec<String> {
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let t0 = Instant::now();
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        while t0.elapsed() < deadline {
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
        out
    }

    fn digests_of(req: &str) -> Vec<&str> {
        req.lines()
            .filter_map(|l| l.strip_prefix("Op-Digest: "))
            .collect()
    }

    #[test]
    fn batches_of_ten_signed_per_server_and_partial_flush() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (pa, pb) = (
            a.local_addr().unwrap().port(),
            b.local_addr().unwrap().port(),
        );
        let mut accounts = Accounts::new();
        accounts.insert(
            ("127.0.0.1".to_string(), pb),
            files::Account {
                username: "bob".into(),
                salt: String::new(),
                key: "cf88277c5d4abdc0a3f56f416011966d04a3f462".into(),
            },
        );
        let fwd = Forwarder::start(
            vec![
                ServerAddr::new("127.0.0.1", pa),
                ServerAddr::new("127.0.0.1", pb),
            ],
            accounts,
            ForwarderConfig {
                flush_interval: Duration::from_millis(300),
                ..Default::default()
            },
        )
        .unwrap();
        for i in 0..23 {
            assert!(fwd.submit(ForwardOp::Report, &format!("r{i:02}")));
        }
        assert!(fwd.submit(ForwardOp::Whitelist, "w0"));
        let got_a = recv_all(&a, Duration::from_millis(1500));
        let got_b = recv_all(&b, Duration::from_millis(200));
        for got in [&got_a, &got_b] {
            let reports: Vec<&String> = got
                .iter()
                .filter(|r| r.starts_with("Op: report\n"))
                .collect();
            let sizes: Vec<usize> = reports.iter().map(|r| digests_of(r).len()).collect();
            assert_eq!(
                sizes,
                vec![10, 10, 3],
                "two full batches, then the timer's partial one"
            );
            let all: Vec<&str> = reports.iter().flat_map(|r| digests_of(r)).collect();
            let expect: Vec<String> = (0..23).map(|i| format!("r{i:02}")).collect();
            assert_eq!(all, expect);
            assert!(reports[0].starts_with("Op: report\nOp-Spec: 20,3,60,3\nOp-Digest: r00\n"));
            let wl: Vec<&String> = got
                .iter()
                .filter(|r| r.starts_with("Op: whitelist\n"))
                .collect();
            assert_eq!(wl.len(), 1);
            assert_eq!(digests_of(wl[0]), vec!["w0"]);
            assert!(got.iter().all(|r| r.ends_with("\n\n")));
        }
        assert!(got_a.iter().all(|r| r.contains("\nUser: anonymous\n")));
        assert!(got_b.iter().all(|r| r.contains("\nUser: bob\n")));
        // The signature of a forwarded request verifies with bob's key.
        let req = &got_b[0];
        let body = req.trim_end();
        let (signed, sig) = body.rsplit_once("\nSig: ").unwrap();
        let time: i64 = signed.rsplit_once("Time: ").unwrap().1.parse().unwrap();
        let hk = pyzor_protocol::auth::hash_key("cf88277c5d4abdc0a3f56f416011966d04a3f462", "bob");
        let expect = pyzor_protocol::auth::sign(&hk, time, signed.as_bytes());
        assert_eq!(String::from_utf8_lossy(&expect[..]), sig);
        let st = fwd.stats();
        assert_eq!((st.queued, st.dropped, st.requests_sent), (24, 0, 8));
    }

    #[test]
    fn full_queue_drops_and_counts_and_shutdown_flushes() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let pa = a.local_addr().unwrap().port();
        let gate = Arc::new(Mutex::new(()));
        let held = gate.lock().unwrap();
        let fwd = Forwarder::start_gated(
            vec![ServerAddr::new("127.0.0.1", pa)],
            Accounts::new(),
            ForwarderConfig {
                queue_capacity: 25,
                batch_size: 10,
                flush_interval: Duration::from_secs(3600),
            },
            Some(Arc::clone(&gate)),
        )
        .unwrap();
        let mut accepted = 0;
        for i in 0..1000 {
            if fwd.submit(ForwardOp::Report, &format!("d{i}")) {
                accepted += 1;
            }
        }
        let st = fwd.stats();
        assert_eq!((st.queued, st.dropped), (25, 975));
        assert_eq!(accepted, 25);
        drop(held);
        fwd.shutdown();
        fwd.shutdown();
        let got = recv_all(&a, Duration::from_millis(500));
        let n: usize = got.iter().map(|r| digests_of(r).len()).sum();
        assert_eq!(n, accepted, "everything accepted is sent by shutdown");
        let sizes: Vec<usize> = got.iter().map(|r| digests_of(r).len()).collect();
        assert_eq!(sizes, vec![10, 10, 5]);
        assert!(!fwd.submit(ForwardOp::Report, "late"));
    }

    #[test]
    fn from_client_home_directory() {
        let dir = tempfile::tempdir().unwrap();
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let pa = a.local_addr().unwrap().port();
        std::fs::write(dir.path().join("servers"), format!("127.0.0.1:{pa}\n")).unwrap();
        std::fs::write(
            dir.path().join("accounts"),
            format!("127.0.0.1 : {pa} : alice : salt,abcd\n"),
        )
        .unwrap();
        let fwd = Forwarder::with_config(
            dir.path(),
            ForwarderConfig {
                flush_interval: Duration::from_millis(100),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(fwd.servers(), &[ServerAddr::new("127.0.0.1", pa)]);
        fwd.submit(ForwardOp::Whitelist, "x");
        let got = recv_all(&a, Duration::from_millis(800));
        assert_eq!(got.len(), 1);
        assert!(got[0].contains("\nUser: alice\n"));
        let empty = tempfile::tempdir().unwrap();
        let fwd = Forwarder::new(empty.path()).unwrap();
        assert_eq!(fwd.servers(), &[ServerAddr::new("public.pyzor.org", 24441)]);
        drop(fwd);
    }
}
