//! Failover, proven: a Redis master is killed (SIGKILL) under report load
//! from several clients through a live pyzord, once behind a Sentinel and
//! once in a Redis Cluster (each master with a replica). pyzord keeps
//! serving, answers 500 only while no master is reachable for the digest,
//! recovers by itself, and every report it acknowledged with 200 is in the
//! store afterwards. The unavailability window is measured and printed:
//! first 500 to last 500, and kill to the first 200 after it.
//!
//! Every process is private (free ports, temp dirs) and killed by a guard;
//! every loop is bounded in count and time.

mod common;
mod mixed_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::Proc;
use mixed_support::*;
use pyzor_testkit::{free_tcp_port, programs_available, wait_tcp};

const CLIENTS: usize = 4;
const DIGESTS_PER_CLIENT: usize = 5;
const UNAVAILABLE: &str = "Internal Server Error: Database temporarily unavailable.";

fn digest(client: usize, k: usize) -> String {
    format!("{:040x}", 0xfa11_0000_u64 + (client * 100 + k) as u64)
}

/// What one digest's reports got.
#[derive(Default, Debug, Clone, Copy)]
struct Tally {
    acked: i64,
    failed: i64,
    silent: i64,
}

/// One load client's record: per digest, and every answer with its time
/// (since the load started; the time the answer came, or gave up).
#[derive(Default, Debug)]
struct ClientLoad {
    per: BTreeMap<String, Tally>,
    /// (time, code, digest index within the client).
    events: Vec<(Duration, u16, usize)>,
    odd: Vec<String>,
}

/// Report this client's digests round-robin through pyzord until `stop`
/// (at most 50 000 requests, each waiting ≤ 3 s, 2 ms apart).
fn client_loop(port: u16, client: usize, t0: Instant, stop: Instant) -> ClientLoad {
    let mut res = ClientLoad::default();
    for i in 0..50_000u32 {
        if Instant::now() >= stop {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
        let k = i as usize % DIGESTS_PER_CLIENT;
        let d = digest(client, k);
        let t = res.per.entry(d.clone()).or_default();
        let thread = (client as u32) << 16 | (i & 0xffff);
        let reply = request(port, "report", &d, thread, Duration::from_secs(3));
        let code = reply.as_deref().map_or(0, reply_code);
        res.events.push((t0.elapsed(), code, k));
        match (code, reply) {
            (0, _) => t.silent += 1,
            (200, _) => t.acked += 1,
            (_, Some(r)) => {
                t.failed += 1;
                let text = String::from_utf8_lossy(&r).into_owned();
                if !(code == 500 && text.contains(&format!("Diag: {UNAVAILABLE}\n")))
                    && res.odd.len() < 10
                {
                    res.odd.push(text);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            (_, None) => unreachable!("code 0 without a reply"),
        }
    }
    res
}

/// The load's outcome and its timeline.
struct Run {
    clients: Vec<ClientLoad>,
    /// When the master was killed (since the load started).
    kill: Duration,
    /// When the store named a new master (since the load started).
    promoted: Option<Duration>,
}

impl Run {
    /// Every answer (time, code, digest), in time order.
    fn events(&self) -> Vec<(Duration, u16, String)> {
        let mut all: Vec<_> = self
            .clients
            .iter()
            .enumerate()
            .flat_map(|(c, l)| l.events.iter().map(move |e| (e.0, e.1, digest(c, e.2))))
            .collect();
        all.sort();
        all
    }

    /// 500s for digests whose master was not killed (`on_victim` says
    /// which were): there the master stayed reachable throughout.
    fn assert_no_500_elsewhere(&self, what: &str, on_victim: impl Fn(&str) -> bool) {
        let ev = self.events();
        let (mine, others): (Vec<_>, Vec<_>) = ev.iter().partition(|e| on_victim(&e.2));
        let n500 = |v: &[&(Duration, u16, String)]| v.iter().filter(|e| e.1 == 500).count();
        eprintln!(
            "{what}: digests on the killed master: {} answers, {} x 500; on the other masters: {} answers, {} x 500",
            mine.len(),
            n500(&mine),
            others.len(),
            n500(&others)
        );
        let ms = |d: Duration| d.as_millis() as i64 - self.kill.as_millis() as i64;
        let last_500 = mine.iter().rev().find(|e| e.1 == 500).map(|e| e.0);
        eprintln!(
            "{what}: digests on the killed master: last 500 at {:?} ms, first 200 after it at {:?} ms from the kill",
            last_500.map(ms),
            last_500
                .and_then(|l| mine.iter().find(|e| e.1 == 200 && e.0 > l))
                .map(|e| ms(e.0))
        );
        assert!(
            !mine.is_empty() && !others.is_empty(),
            "load on both kinds of digests"
        );
        assert_eq!(
            n500(&others),
            0,
            "no 500 for digests whose master stayed up"
        );
    }

    fn per(&self) -> BTreeMap<String, Tally> {
        let mut all: BTreeMap<String, Tally> = BTreeMap::new();
        for c in &self.clients {
            for (d, t) in &c.per {
                let a = all.entry(d.clone()).or_default();
                a.acked += t.acked;
                a.failed += t.failed;
                a.silent += t.silent;
            }
        }
        all
    }

    /// Print the window and check that pyzord served before, during and
    /// after, and stopped answering 500 once a master was reachable again
    /// (`grace` after the promotion: a connection's I/O timeout and the
    /// reconnection backoff).
    fn assert_and_report(&self, what: &str, secs: u64, grace: Duration) {
        let ev = self.events();
        let ms = |d: Duration| d.as_millis() as i64 - self.kill.as_millis() as i64;
        let count = |code: u16| ev.iter().filter(|e| e.1 == code).count();
        let first_500 = ev.iter().find(|e| e.1 == 500).map(|e| e.0);
        let last_500 = ev.iter().rev().find(|e| e.1 == 500).map(|e| e.0);
        let first_200_after = first_500.and_then(|f| ev.iter().find(|e| e.1 == 200 && e.0 > f));
        let silent_after = ev.iter().filter(|e| e.1 == 0 && e.0 > self.kill).count();
        eprintln!(
            "{what}: {} requests: {} x 200, {} x 500, {} unanswered ({silent_after} after the kill)",
            ev.len(),
            count(200),
            count(500),
            count(0)
        );
        eprintln!(
            "{what}: from the kill: first 500 at {:?} ms, last 500 at {:?} ms (window {:?} ms), \
             first 200 after the first 500 at {:?} ms; new master named at {:?} ms",
            first_500.map(ms),
            last_500.map(ms),
            first_500.zip(last_500).map(|(f, l)| (l - f).as_millis()),
            first_200_after.map(|e| ms(e.0)),
            self.promoted.map(ms),
        );
        for c in &self.clients {
            assert!(
                c.odd.is_empty(),
                "replies other than 200 / 500 {UNAVAILABLE:?}: {:?}",
                c.odd
            );
        }
        assert!(
            ev.iter().any(|e| e.1 == 200 && e.0 < self.kill),
            "served before the kill"
        );
        if let Some(l) = last_500 {
            let p = self.promoted.expect("a new master was named");
            assert!(
                l <= p + grace,
                "500 at {} ms after the kill, {} ms after a new master was named (grace {grace:?})",
                ms(l),
                (l.as_millis() as i64) - p.as_millis() as i64
            );
            assert!(
                ev.iter().any(|e| e.1 == 200 && e.0 > l),
                "recovered by itself after the last 500"
            );
        }
        // The last quarter of the load is served normally.
        let tail = Duration::from_secs(secs * 3 / 4);
        let late: Vec<_> = ev.iter().filter(|e| e.0 >= tail).collect();
        assert!(!late.is_empty(), "requests in the last quarter");
        assert!(
            late.iter().all(|e| e.1 == 200),
            "the last quarter is all 200: {:?}",
            late.iter()
                .filter(|e| e.1 != 200)
                .take(5)
                .collect::<Vec<_>>()
        );
    }

    /// No acknowledged report is missing; nothing beyond those that may
    /// have been applied is counted.
    fn assert_counts(&self, what: &str, stored: impl Fn(&str) -> i64) {
        let mut extra = 0;
        let mut acked = 0;
        for (d, t) in self.per() {
            let got = stored(&d);
            assert!(
                t.acked <= got,
                "{what}: {d}: {} acknowledged but {got} stored ({t:?})",
                t.acked
            );
            assert!(
                got <= t.acked + t.failed + t.silent,
                "{what}: {d}: {got} stored, more than were sent ({t:?})"
            );
            extra += got - t.acked;
            acked += t.acked;
        }
        eprintln!("{what}: {acked} acknowledged reports all stored; {extra} answered 500 or unanswered were counted anyway");
    }
}

/// Load pyzord with [`CLIENTS`] clients for `secs`; `kill` runs after a
/// quarter of the time; `promoted` is polled (every 100 ms, from the kill
/// on) until it says a new master is in place.
fn drive(
    port: u16,
    secs: u64,
    kill: impl FnOnce() + Send,
    promoted: impl Fn() -> bool + Send,
) -> Run {
    let t0 = Instant::now();
    let stop = t0 + Duration::from_secs(secs);
    let kill_at = Mutex::new(None);
    let promoted_at = Mutex::new(None);
    let clients = std::thread::scope(|s| {
        let hs: Vec<_> = (0..CLIENTS)
            .map(|c| s.spawn(move || client_loop(port, c, t0, stop)))
            .collect();
        std::thread::sleep(Duration::from_secs(secs / 4));
        *kill_at.lock().unwrap() = Some(t0.elapsed());
        kill();
        while Instant::now() < stop {
            if promoted() {
                *promoted_at.lock().unwrap() = Some(t0.elapsed());
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    Run {
        clients,
        kill: kill_at.into_inner().unwrap().unwrap(),
        promoted: promoted_at.into_inner().unwrap(),
    }
}

/// A redis-server on `port` with its files in `dir` and extra `args`;
/// waits ≤ 20 s until it accepts connections.
fn redis_server(port: u16, dir: &Path, args: &[&str]) -> Guard {
    std::fs::create_dir_all(dir).unwrap();
    let c = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--dir"])
        .arg(dir)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn redis-server");
    let g = Guard(c);
    assert!(
        wait_tcp(port, Duration::from_secs(20)),
        "redis-server on {port} did not start"
    );
    g
}

/// `redis-cli -p port args…` (bounded), or "" when it fails.
fn cli(port: u16, args: &[&str]) -> String {
    let (ok, out) = run_bounded(
        Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args),
        Duration::from_secs(5),
    );
    if ok {
        out
    } else {
        String::new()
    }
}

/// Wait (≤ `limit`) until `cond`; panics with `what` otherwise.
fn wait_for(what: &str, limit: Duration, cond: impl Fn() -> bool) {
    let end = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < end, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Wait (≤ 30 s) until pyzord answers a check with 200.
fn wait_recovered(port: u16) {
    wait_for(
        "pyzord answers a check with 200",
        Duration::from_secs(30),
        || {
            request(port, "check", &digest(0, 0), 7, Duration::from_secs(2))
                .is_some_and(|r| reply_code(&r) == 200)
        },
    );
}

fn have_redis(test: &str) -> bool {
    programs_available(test, &["redis-server", "redis-cli"])
}

fn stored_count(port: u16, cluster: bool, d: &str) -> i64 {
    let key = format!("pyzord.digest_v1.{d}");
    let mut args = vec![];
    if cluster {
        args.push("-c");
    }
    args.extend(["HGET", key.as_str(), "r_count"]);
    let v = cli(port, &args);
    let v = v.trim();
    if v.is_empty() {
        0
    } else {
        v.parse()
            .unwrap_or_else(|_| panic!("r_count of {d} is {v:?}"))
    }
}

#[test]
fn redis_sentinel_master_killed_under_load_fails_over() {
    let test = "redis_sentinel_master_killed_under_load_fails_over";
    if !have_redis(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (pm, pr, ps) = (free_tcp_port(), free_tcp_port(), free_tcp_port());
    let master = Mutex::new(Some(redis_server(pm, &dir.path().join("m"), &[])));
    let _replica = redis_server(
        pr,
        &dir.path().join("r"),
        &["--replicaof", "127.0.0.1", &pm.to_string()],
    );
    let conf = dir.path().join("sentinel.conf");
    std::fs::write(
        &conf,
        format!(
            "port {ps}\nbind 127.0.0.1\ndir {}\nsentinel monitor pz 127.0.0.1 {pm} 1\n\
             sentinel down-after-milliseconds pz 1000\nsentinel failover-timeout pz 5000\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let _sentinel = Guard(
        Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(
        "the replica is in sync and the sentinel knows it",
        Duration::from_secs(30),
        || {
            cli(pr, &["info", "replication"]).contains("master_link_status:up")
                && cli(ps, &["sentinel", "replicas", "pz"]).contains(&pr.to_string())
        },
    );
    let home = pyzor_testkit::temp_home();
    let dsn = format!("sentinel:pz@127.0.0.1:{ps},,,0");
    let mut srv: Proc = start_pyzord(
        Impl::Rust,
        None,
        home.path(),
        &["-e", "redis", "--dsn", &dsn],
        &[],
    );
    let port = srv.port;
    const SECS: u64 = 24;
    let run = drive(
        port,
        SECS,
        || master.lock().unwrap().take().unwrap().kill_9(),
        || cli(ps, &["sentinel", "get-master-addr-by-name", "pz"]).contains(&pr.to_string()),
    );
    assert!(
        srv.child.try_wait().unwrap().is_none(),
        "pyzord died during the failover"
    );
    wait_recovered(port);
    run.assert_and_report("sentinel failover", SECS, Duration::from_millis(1500));
    run.assert_counts("sentinel failover", |d| {
        let n = stored_count(pr, false, d);
        assert_eq!(
            check(port, d).0,
            n,
            "pyzord's check agrees with the new master for {d}"
        );
        n
    });
    assert_eq!(srv.stop(), Some(0));
}

/// A free TCP port whose cluster-bus port (+10000) is free too.
fn cluster_port() -> u16 {
    for _ in 0..1000 {
        let p = free_tcp_port();
        if p < 55_000 && std::net::TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok() {
            return p;
        }
    }
    panic!("no free port pair for a cluster node");
}

#[test]
fn redis_cluster_master_killed_under_load_fails_over() {
    let test = "redis_cluster_master_killed_under_load_fails_over";
    if !have_redis(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut ports: Vec<u16> = Vec::new();
    for _ in 0..100 {
        let p = cluster_port();
        if ports
            .iter()
            .all(|q| ![*q, *q + 10_000].contains(&p) && p + 10_000 != *q)
        {
            ports.push(p);
        }
        if ports.len() == 6 {
            break;
        }
    }
    assert_eq!(ports.len(), 6, "six distinct free port pairs");
    let mut nodes: Vec<Option<Guard>> = ports
        .iter()
        .map(|p| {
            Some(redis_server(
                *p,
                &dir.path().join(p.to_string()),
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-node-timeout",
                    "1000",
                    "--cluster-require-full-coverage",
                    "no",
                ],
            ))
        })
        .collect();
    let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let (ok, out) = run_bounded(
        Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"]),
        Duration::from_secs(60),
    );
    assert!(ok, "redis-cli --cluster create: {out}");
    let role = |p: u16| cli(p, &["role"]);
    wait_for(
        "the cluster is ok with three synced replicas",
        Duration::from_secs(60),
        || {
            ports
                .iter()
                .all(|p| cli(*p, &["cluster", "info"]).contains("cluster_state:ok"))
                && ports
                    .iter()
                    .filter(|p| {
                        let i = cli(**p, &["info", "replication"]);
                        i.contains("role:slave") && i.contains("master_link_status:up")
                    })
                    .count()
                    == 3
        },
    );
    // Kill the master that holds the first load digest; its replica must
    // take over.
    let first_key = format!("pyzord.digest_v1.{}", digest(0, 0));
    let victim = ports
        .iter()
        .position(|p| role(*p).starts_with("master") && owns(*p, &first_key))
        .expect("a master owns the first digest's slot");
    let vport = ports[victim];
    let replica = ports
        .iter()
        .copied()
        .find(|p| {
            let i = cli(*p, &["info", "replication"]);
            i.contains("role:slave") && i.contains(&format!("master_port:{vport}"))
        })
        .expect("the victim has a replica");
    let on_victim: std::collections::HashSet<String> = (0..CLIENTS)
        .flat_map(|c| (0..DIGESTS_PER_CLIENT).map(move |k| digest(c, k)))
        .filter(|d| owns(vport, &format!("pyzord.digest_v1.{d}")))
        .collect();
    let home = pyzor_testkit::temp_home();
    // Seeds: the victim first, so that reconnecting must skip it.
    let dsn = format!(
        "cluster:127.0.0.1:{vport};{};{},,,",
        addrs[(victim + 1) % 6],
        addrs[(victim + 2) % 6]
    );
    let mut srv: Proc = start_pyzord(
        Impl::Rust,
        None,
        home.path(),
        &["-e", "redis", "--dsn", &dsn],
        &[],
    );
    let port = srv.port;
    const SECS: u64 = 24;
    let run = drive(
        port,
        SECS,
        || {
            if let Some(mut g) = nodes[victim].take() {
                g.kill_9();
            }
        },
        || {
            role(replica).starts_with("master")
                && cli(replica, &["cluster", "info"]).contains("cluster_state:ok")
        },
    );
    assert!(
        srv.child.try_wait().unwrap().is_none(),
        "pyzord died during the failover"
    );
    wait_recovered(port);
    run.assert_and_report("cluster failover", SECS, Duration::from_millis(1500));
    run.assert_no_500_elsewhere("cluster failover", |d| on_victim.contains(d));
    run.assert_counts("cluster failover", |d| {
        let n = stored_count(replica, true, d);
        assert_eq!(
            check(port, d).0,
            n,
            "pyzord's check agrees with the cluster for {d}"
        );
        n
    });
    assert_eq!(srv.stop(), Some(0));
    drop(nodes);
}

/// Whether the master on `port` serves `key`'s slot (`GET` is not
/// redirected with MOVED).
fn owns(port: u16, key: &str) -> bool {
    !cli(port, &["GET", key]).contains("MOVED")
}
