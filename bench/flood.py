#!/usr/bin/env python3
"""Flood vs. normal traffic (docs/security.md, "Floods and count inflation").

Starts its own pyzord (memory engine, free loopback port, temporary home
with `RateLimitAllow =` empty so loopback is limited, metrics endpoint),
then:

1. unloaded: a normal client bound to --normal-source (127.0.8.1) sends
   checks at --rate per second for --seconds, one outstanding at a time,
   and records each reply's latency;
2. flooded: the same, while `pyzor-bench load` floods from 127.0.0.0/24
   (one network, --flood-window requests outstanding, a 5 ms loss timeout
   so limited requests do not slow it: the machine's full rate) with
   --flood-ops (default check:50,report:50).

Prints the normal client's replies, lost requests and latency (p50, p99,
max) in both runs, the flood's rate, and the reports stored (answered 200,
from the metrics) against the flooding network's write budget:
ReportRateLimit + ReportRateLimit × elapsed (one bucket: every datagram of
a /24 reaches the same worker, docs/server.md), pyzord's CPU by thread and
the generator's. --rounds N alternates N unloaded and flooded runs (the
machine's other load changes from second to second: the pooled and
per-round figures show how much). --pyzord given twice (e.g. a build
before and one after a change) starts both servers and runs their rounds
in turn, one column each, so that both see the same machine load. The
networks moved to the penalty socket (docs/security.md, "The penalty
box") are counted from the metrics. --flood-cpus pins the generator and
--server-cpus pyzord and the normal client (taskset): with two disjoint
lists the flood's sending cost stays on its own CPUs, as if it came from
another host. Appends the table to
bench/RESULTS-attack.md with --write.

On loopback the kernel's receive path of a datagram runs in its sender's
context, so pinning the generator also moves the flood's receive cost
(softirq, socket lookup, queueing) onto the generator's CPUs; a real NIC
spends it on the server's. --netns (root) models that: it creates a
network namespace and a veth pair (names with this process's id),
addresses them on 10.231.X.0/24 (X chosen so that the flood's /24 is
steered to the normal network's worker; .1 the host side, .2 the
namespace side), runs the generator inside the namespace (`ip netns exec
NS taskset -c FLOODCPUS ...`), pyzord listens on the host side's address
(the normal client still sends from --normal-source over loopback, to
that address), and sets RPS on the host side's rx queue
(`queues/rx-0/rps_cpus`, --rps-mask, default the mask of --server-cpus)
so that the flood's receive softirq runs on the server's CPUs, as a NIC's
interrupt and RPS would put it (the namespace side gets the mask of
--flood-cpus: the replies are received on the flooding "host"). The
namespace and the pair are deleted on exit, also on error; no other
interface is touched. Every run also prints NET_RX softirqs, softnet
packets processed and the CPU time (user / system / softirq) of each CPU
during the floods, from /proc.

--housekeeping-cpus LIST (root) keeps the machine's movable kernel
threads off the server's CPUs, as an operator would with kernel
housekeeping CPUs or systemd's CPUAffinity: before the first run it sets
the affinity of every child of kthreadd (pid 2) to LIST with
sched_setaffinity. Per-CPU kernel threads (ksoftirqd/N, kworker/N:M,
migration/N, the workqueue pool workers' rescuers and unbound kworkers,
whose cpumask is the workqueue subsystem's) refuse with EINVAL and are
left alone and counted; it prints the names of the threads moved and the
counts. The original affinities are restored on exit, also on error,
Ctrl-C or SIGTERM. The setting holds for the unloaded and the flooded
runs alike, so the ratio compares like with like; kernel threads created
during the runs are not moved.

--ingress-drop (with --netns; a diagnostic, needs nft) adds an nftables
table on the host side's netdev ingress hook that drops (and counts)
every IPv4 datagram from the namespace: after RPS, before the IP and UDP
layers, so pyzord never sees the flood. It shows what the neighbours
would get from the best early drop placed there. The table is deleted
with the veth pair.

    python3 bench/flood.py [--pyzord target/debug/pyzord [--pyzord OTHER]] [--bench target/debug/pyzor-bench] [--write]

Stops only the processes it started.
"""

import argparse
import errno
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port(kind):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metrics(mport):
    with urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5) as r:
        page = r.read().decode()
    out = {}
    for line in page.splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            out[k] = float(v)
    return out


def normal_client(port, rate, seconds, source="127.0.8.1", settle=0.0, dest="127.0.0.1"):
    """Checks at `rate`/s for `seconds`, one at a time: (latencies in ms, lost,
    the latencies of the checks sent from `settle` s on)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((source, 0))
    s.settimeout(2.0)
    lat, lost, late = [], 0, []
    t0 = time.monotonic()
    i = 0
    while time.monotonic() - t0 < seconds:
        due = t0 + i / rate
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        thread = 1024 + i % 60000
        d = f"Op: check\nOp-Digest: {i:040x}\nThread: {thread}\nPV: 2.1\n\n".encode()
        t = time.perf_counter()
        s.sendto(d, (dest, port))
        try:
            while True:
                r = s.recv(70000)
                if f"Thread: {thread}\n".encode() in r:
                    break
            lat.append((time.perf_counter() - t) * 1000)
            if due - t0 >= settle:
                late.append(lat[-1])
        except socket.timeout:
            lost += 1
        i += 1
    s.close()
    return lat, lost, late


def append_results(script, title, label, what, text):
    """Append `text` to bench/RESULTS-attack.md under `title`, with the date,
    `label`, the command line of bench/`script` and `what` it did."""
    cmd = shlex.join(["python3", f"bench/{script}"] + sys.argv[1:])
    with open(os.path.join(ROOT, "bench/RESULTS-attack.md"), "a") as f:
        f.write(
            f"\n# {title} (bench/{script})\n\n"
            f"**{time.strftime('%Y-%m-%d', time.gmtime())}, {label}, "
            f"{os.cpu_count()} cores shared with other jobs**\n\n"
            f"Generated by `{cmd}`. {what}\n\n{text}\n")


def thread_cpu(pid):
    """CPU seconds so far of each thread of `pid`, by thread name."""
    tck = os.sysconf("SC_CLK_TCK")
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                comm = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # utime and stime: fields 14 and 15 of stat(5), 12th and 13th after the name.
        out[comm] = out.get(comm, 0) + (int(fields[11]) + int(fields[12])) / tck
    return out


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def cpu_mask(cpus):
    """A taskset CPU list ("0", "0-1", "0,2") as a hex mask ("1", "3", "5")."""
    m = 0
    for part in cpus.split(","):
        lo, _, hi = part.partition("-")
        for c in range(int(lo), int(hi or lo) + 1):
            m |= 1 << c
    return f"{m:x}"


def steered_worker(ip, workers):
    """The worker pyzord's steering program (crates/pyzor-server/src/net/
    steer.rs) picks for IPv4 `ip`: ((its /24 × 0x9e3779b1) >> 16) mod n."""
    a, b, c, _ = (int(x) for x in ip.split("."))
    return ((((a << 16) | (b << 8) | c) * 0x9E3779B1 & 0xFFFFFFFF) >> 16) % max(workers, 1)


def proc_counters():
    """Per CPU, from /proc: NET_RX softirqs, softnet packets processed and
    RPS IPIs received, and the CPU time fields of /proc/stat (ticks)."""
    out = {}
    with open("/proc/softirqs") as f:
        lines = f.read().splitlines()
    cpus = lines[0].split()
    for line in lines[1:]:
        k, *v = line.split()
        if k == "NET_RX:":
            for c, n in zip(cpus, v):
                out.setdefault(c.lower(), {})["net_rx"] = int(n)
    with open("/proc/net/softnet_stat") as f:
        for i, line in enumerate(f):
            v = [int(x, 16) for x in line.split()]
            cpu = f"cpu{v[12] if len(v) > 12 else i}"
            out.setdefault(cpu, {}).update(processed=v[0], dropped=v[1], squeezed=v[2], rps=v[9])
    with open("/proc/stat") as f:
        for line in f:
            k, *v = line.split()
            if k.startswith("cpu") and k != "cpu":
                names = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"]
                out.setdefault(k, {}).update(zip(names, (int(x) for x in v)))
    # The softirq work the kernel defers to its per-CPU thread (a normal,
    # nice-0 thread that the scheduler shares out like any other).
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                name, fields = f.read().split("(", 1)[1].rsplit(")", 1)
        except OSError:
            continue
        if name.startswith("ksoftirqd/"):
            v = fields.split()
            out.setdefault(f"cpu{name.split('/')[1]}", {})["ksoftirqd"] = int(v[11]) + int(v[12])
    return out


def cpu_set(cpus):
    """A taskset CPU list ("0", "0-1", "0,2") as a set of CPU numbers."""
    out = set()
    for part in cpus.split(","):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


class Housekeeping:
    """The kernel threads moved to --housekeeping-cpus, and their original
    affinities (restored by restore())."""

    def __init__(self, cpus):
        self.cpus = cpu_set(cpus)
        self.saved = {}  # pid: (name, original affinity)
        self.refused = []  # names: per-CPU kthreads (EINVAL)
        self.gone = 0  # exited before they could be moved

    def move(self):
        for pid in sorted(int(p) for p in os.listdir("/proc") if p.isdigit()):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    name, fields = f.read().split("(", 1)[1].rsplit(")", 1)
                if int(fields.split()[1]) != 2:  # ppid: not a child of kthreadd
                    continue
                orig = os.sched_getaffinity(pid)
            except (OSError, ValueError, IndexError):
                continue
            # Saved before the change, so that a failure half-way restores it too.
            self.saved[pid] = (name, orig)
            try:
                os.sched_setaffinity(pid, self.cpus)
            except OSError as e:
                del self.saved[pid]
                if e.errno == errno.EINVAL:
                    self.refused.append(name)
                elif e.errno == errno.ESRCH:
                    self.gone += 1
                else:
                    raise

    def restore(self):
        """Every saved affinity back; the names of those that could not be
        (other than threads that have since exited)."""
        failed = []
        for pid, (name, orig) in self.saved.items():
            try:
                os.sched_setaffinity(pid, orig)
            except ProcessLookupError:
                pass
            except OSError as e:
                failed.append(f"{name} ({pid}): {e}")
        self.saved_count, self.saved = len(self.saved), {}
        return failed

    def summary(self):
        moved = sorted(n for n, _ in self.saved.values())
        return (f"{len(moved)} kernel threads moved to CPU {','.join(map(str, sorted(self.cpus)))} "
                f"({', '.join(moved)}); {len(self.refused)} refused (EINVAL: per-CPU threads and workqueue workers), "
                f"{self.gone} exited")


class NetNs:
    """A network namespace holding one end of a veth pair (--netns)."""

    def __init__(self, a, normal_source):
        self.ns = f"pyzor-flood-{os.getpid()}"
        self.host_if, self.ns_if = f"pzf{os.getpid()}h", f"pzf{os.getpid()}n"
        self.made_ns = self.made_link = False
        workers = a.workers or len(os.sched_getaffinity(0))
        want = steered_worker(normal_source, workers)
        used = subprocess.run(["ip", "-4", "-o", "route", "show", "table", "all"],
                              capture_output=True, text=True, check=True).stdout
        start = os.getpid() % 250
        for i in range(250):
            x = 1 + (start + i) % 250
            if f"10.231.{x}." not in used and steered_worker(f"10.231.{x}.2", workers) == want:
                break
        else:
            raise SystemExit("--netns: no free 10.231.X.0/24")
        self.host_ip, self.ns_ip = f"10.231.{x}.1", f"10.231.{x}.2"
        self.rps_mask = a.rps_mask if a.rps_mask is not None else (cpu_mask(a.server_cpus) if a.server_cpus else "0")
        self.ns_rps_mask = cpu_mask(a.flood_cpus) if a.flood_cpus else "0"

    def run(self, *cmd):
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)

    def up(self):
        self.run("ip", "netns", "add", self.ns)
        self.made_ns = True
        self.run("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if,
                 "netns", self.ns)
        self.made_link = True
        self.run("ip", "addr", "add", f"{self.host_ip}/24", "dev", self.host_if)
        self.run("ip", "-n", self.ns, "addr", "add", f"{self.ns_ip}/24", "dev", self.ns_if)
        self.run("ip", "-n", self.ns, "link", "set", "lo", "up")
        self.run("ip", "-n", self.ns, "link", "set", self.ns_if, "up")
        self.run("ip", "link", "set", self.host_if, "up")
        with open(f"/sys/class/net/{self.host_if}/queues/rx-0/rps_cpus", "w") as f:
            f.write(self.rps_mask)
        # The namespace's own sysfs (ip netns exec mounts it).
        self.run("ip", "netns", "exec", self.ns, "sh", "-c",
                 f"echo {self.ns_rps_mask} > /sys/class/net/{self.ns_if}/queues/rx-0/rps_cpus")
        with open(f"/sys/class/net/{self.host_if}/queues/rx-0/rps_cpus") as f:
            self.rps_read = f.read().strip()
        # Wait (bounded) for the carrier; the first datagrams resolve the neighbour.
        for _ in range(50):
            with open(f"/sys/class/net/{self.host_if}/operstate") as f:
                if f.read().strip() == "up":
                    break
            time.sleep(0.1)

    def drop_at_ingress(self):
        """(--ingress-drop) An nftables netdev-ingress rule on the host end
        drops every IPv4 datagram from the namespace: after RPS, before the
        IP and UDP layers and the sockets, as an early drop of a penalised
        network would (XDP on a NIC would drop even earlier)."""
        self.nft_table = f"pyzor_flood_{os.getpid()}"
        self.run("nft", "add", "table", "netdev", self.nft_table)
        self.made_nft = True
        self.run("nft", "add", "chain", "netdev", self.nft_table, "in",
                 f"{{ type filter hook ingress device {self.host_if} priority 0; }}")
        self.run("nft", "add", "rule", "netdev", self.nft_table, "in", "ip", "saddr", self.ns_ip, "counter", "drop")

    def dropped(self):
        out = subprocess.run(["nft", "list", "table", "netdev", self.nft_table],
                             capture_output=True, text=True).stdout
        m = re.search(r"counter packets (\d+)", out)
        return int(m.group(1)) if m else None

    def down(self):
        # Only what this object created: deleting the host end deletes its peer.
        if getattr(self, "made_nft", False):
            subprocess.run(["nft", "delete", "table", "netdev", self.nft_table], stderr=subprocess.DEVNULL)
            self.made_nft = False
        if self.made_link:
            subprocess.run(["ip", "link", "del", self.host_if], stderr=subprocess.DEVNULL)
            self.made_link = False
        if self.made_ns:
            subprocess.run(["ip", "netns", "del", self.ns], stderr=subprocess.DEVNULL)
            self.made_ns = False


class Server:
    """A pyzord of `binary` on a free port (memory engine, temporary home)."""

    def __init__(self, binary, a, netns=None):
        self.binary = binary
        self.netns = netns
        # With --netns pyzord listens on the host side of the veth pair only.
        self.addr = netns.host_ip if netns else "127.0.0.1"
        self.home = tempfile.mkdtemp(prefix="pyzor-flood-")
        with open(os.path.join(self.home, "config"), "w") as f:
            f.write("[server]\nRateLimitAllow =\n")
        with open(os.path.join(self.home, "pyzord.access"), "w") as f:
            f.write("all : anonymous : allow\n")
        self.port, self.mport = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
        self.log = open(os.path.join(self.home, "stderr.log"), "wb")
        pin = ["taskset", "-c", a.server_cpus] if a.server_cpus else []
        self.proc = subprocess.Popen(
            pin + [binary, "--homedir", self.home, "-e", "memory", "-a", self.addr, "-p", str(self.port),
             "--workers", str(a.workers), "--report-rate-limit", str(a.report_rate_limit),
             "--metrics-address", f"127.0.0.1:{self.mport}"],
            stdout=self.log, stderr=self.log)
        for _ in range(100):
            try:
                metrics(self.mport)
                break
            except OSError:
                time.sleep(0.1)
        # Accumulated over the rounds.
        self.base_lat, self.lat, self.base_lost, self.lost = [], [], 0, 0
        self.late = []  # flooded, from 2.5 s into the flood
        self.rounds = []  # per round: (p99 unloaded, p99 flooded)
        self.sent = self.dur = self.stored = self.limited = self.budget = self.elapsed = 0.0
        self.moves = 0.0
        self.cpu = {}
        self.gen_cpu = 0.0
        self.percpu = {}  # /proc counters' increase during the floods, by CPU

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()
        shutil.rmtree(self.home, ignore_errors=True)

    def round(self, a):
        """One unloaded run, then one flooded run."""
        b_lat, b_lost, _ = normal_client(self.port, a.rate, a.seconds, a.normal_source,
                                         dest=self.addr)
        m0 = metrics(self.mport)
        cpu0 = thread_cpu(self.proc.pid)
        kids0 = os.times()
        pc0 = proc_counters()
        t0 = time.monotonic()
        pin = ["taskset", "-c", a.flood_cpus] if a.flood_cpus else []
        if a.flood_idle:
            pin = ["chrt", "--idle", "0"] + pin
        if self.netns:
            pin = ["ip", "netns", "exec", self.netns.ns] + pin
        flood = subprocess.Popen(
            pin + [a.bench, "load", "-H", self.addr, "-p", str(self.port), "-o", a.flood_ops,
                   "-w", str(a.flood_window), "-d", str(a.seconds + 1), "-W", "0", "-t", "5",
                   "-m", "new", "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            # The penalty box moves a network after a second over its
            # threshold: the checks from 2 s into the client's run (2.5 s
            # into the flood) are also shown apart.
            f_lat, f_lost, f_late = normal_client(self.port, a.rate, a.seconds, a.normal_source,
                                                  settle=2.0, dest=self.addr)
            out, _ = flood.communicate(timeout=a.seconds + 60)
        finally:
            if flood.poll() is None:
                flood.kill()
                flood.wait()
        el = time.monotonic() - t0
        pc1 = proc_counters()
        for cpu, v in pc1.items():
            acc = self.percpu.setdefault(cpu, {})
            for k, n in v.items():
                acc[k] = acc.get(k, 0) + n - pc0.get(cpu, {}).get(k, 0)
        m1 = metrics(self.mport)
        cpu1 = thread_cpu(self.proc.pid)
        kids1 = os.times()
        try:
            fl = json.loads(out.decode().strip().splitlines()[-1])
        except (ValueError, IndexError):
            fl = {}
        key = 'pyzord_requests_total{op="report",code="200"}'
        self.stored += m1.get(key, 0) - m0.get(key, 0)
        self.limited += m1.get("pyzord_rate_limited_total", 0) - m0.get("pyzord_rate_limited_total", 0)
        self.moves += m1.get("pyzord_penalty_moves_total", 0) - m0.get("pyzord_penalty_moves_total", 0)
        self.budget += a.report_rate_limit * (1 + el)
        self.elapsed += el
        self.sent += fl.get("sent", 0)
        self.dur += fl.get("elapsed_s") or (a.seconds + 1)
        for k in cpu1:
            self.cpu[k] = self.cpu.get(k, 0) + cpu1[k] - cpu0.get(k, 0)
        self.gen_cpu += (kids1[2] + kids1[3]) - (kids0[2] + kids0[3])
        self.base_lat += b_lat
        self.lat += f_lat
        self.late += f_late
        self.base_lost += b_lost
        self.lost += f_lost
        self.rounds.append((pct(b_lat, 99), pct(f_lat, 99)))

    def rows(self, a):
        rl = a.report_rate_limit
        s = self
        return [
            ("normal checks answered, unloaded", f"{len(s.base_lat)} of {len(s.base_lat) + s.base_lost}"),
            ("normal checks answered, flooded", f"{len(s.lat)} of {len(s.lat) + s.lost}"),
            ("normal p50 / p99 / max ms, unloaded",
             f"{pct(s.base_lat, 50):.2f} / {pct(s.base_lat, 99):.2f} / {max(s.base_lat, default=0):.2f}"),
            ("normal p50 / p99 / max ms, flooded",
             f"{pct(s.lat, 50):.2f} / {pct(s.lat, 99):.2f} / {max(s.lat, default=0):.2f}"),
            ("p99 flooded / unloaded", f"{pct(s.lat, 99) / pct(s.base_lat, 99):.2f}"),
            ("normal p50 / p99 ms, flooded, from 2.5 s into each flood",
             f"{pct(s.late, 50):.2f} / {pct(s.late, 99):.2f}"),
            ("that p99 / unloaded p99", f"{pct(s.late, 99) / pct(s.base_lat, 99):.2f}"),
            ("p99 ms per round, unloaded → flooded",
             ", ".join(f"{u:.2f} → {f:.2f}" for u, f in s.rounds)),
            ("flood datagrams sent (rate)", f"{s.sent:.0f} ({s.sent / max(s.dur, 1e-9):.0f}/s)"),
            ("flood requests rate-limited", f"{s.limited:.0f}"),
            ("networks moved to the penalty socket", f"{s.moves:.0f}"),
            ("reports stored during the floods", f"{s.stored:.0f}"),
            (f"write budget, {a.rounds} × ({rl} + {rl} × flood seconds)", f"{s.budget:.0f}"),
            ("pyzord CPU in the flooded runs, % of one core, by thread"
             + (f" (pyzord and the normal client pinned to CPU {a.server_cpus})" if a.server_cpus else ""),
             ", ".join(f"{k} {100 * v / s.elapsed:.0f}" for k, v in sorted(s.cpu.items())
                       if v > 0.005 * s.elapsed)),
            ("flood generator CPU, % of one core" + (f" (pinned to CPU {a.flood_cpus})" if a.flood_cpus else "")
             + (" (SCHED_IDLE)" if a.flood_idle else ""),
             f"{100 * s.gen_cpu / s.elapsed:.0f}"),
        ] + self.proc_rows()

    def proc_rows(self):
        s, tck = self, os.sysconf("SC_CLK_TCK")
        cpus = sorted(s.percpu, key=lambda c: int(c[3:]))
        per = lambda k: ", ".join(f"{c} {s.percpu[c].get(k, 0) / s.elapsed:.0f}" for c in cpus)

        def share(c):
            v = s.percpu[c]
            return "/".join(f"{100 * (v.get(k, 0) + (v.get('nice', 0) if k == 'user' else 0)) / tck / s.elapsed:.0f}"
                            for k in ("user", "system", "softirq", "idle"))
        return [
            ("NET_RX softirqs per second during the floods, by CPU (whole machine)", per("net_rx")),
            ("softnet packets processed per second, by CPU", per("processed")),
            ("RPS IPIs received per second, by CPU", per("rps")),
            ("softnet backlog drops / time squeezes (budget ran out) during the floods, by CPU",
             ", ".join(f"{c} {s.percpu[c].get('dropped', 0)} / {s.percpu[c].get('squeezed', 0)}"
                       for c in cpus)),
            ("ksoftirqd CPU during the floods, % of one core, by CPU",
             ", ".join(f"{c} {100 * s.percpu[c].get('ksoftirqd', 0) / tck / s.elapsed:.0f}" for c in cpus)),
            ("CPU time during the floods, % user / system / softirq / idle, by CPU (whole machine)",
             ", ".join(f"{c} {share(c)}" for c in cpus)),
        ]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pyzord", action="append",
                    help="pyzord binary; give it twice (e.g. before and after a change) to run "
                         "them round by round, side by side (default target/debug/pyzord)")
    ap.add_argument("--bench", default=os.path.join(ROOT, "target/debug/pyzor-bench"))
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each unloaded and flooded run")
    ap.add_argument("--rounds", type=int, default=1, help="unloaded/flooded pairs, alternated")
    ap.add_argument("--rate", type=float, default=100.0, help="normal checks per second")
    ap.add_argument("--workers", type=int, default=0, help="0: pyzord's default (one per core)")
    ap.add_argument("--report-rate-limit", type=int, default=20)
    ap.add_argument("--flood-ops", default="check:50,report:50")
    ap.add_argument("--flood-window", type=int, default=256)
    ap.add_argument("--label", default="debug build")
    ap.add_argument("--flood-cpus", default="", help="taskset CPU list for the flood generator")
    ap.add_argument("--flood-idle", action="store_true",
                    help="run the flood generator under SCHED_IDLE (a diagnostic: it then cannot "
                         "delay the server's or the normal client's wake-ups)")
    ap.add_argument("--server-cpus", default="",
                    help="taskset CPU list for pyzord and the normal client (e.g. 0 with "
                         "--flood-cpus 1: the flood's sending cost stays on its own CPU, "
                         "as if it came from another host)")
    ap.add_argument("--normal-source", default="127.0.8.1",
                    help="the normal client's address (127.0.8.1 reaches the other worker of two "
                         "than the flood's 127.0.0.1; 127.0.30.1 the same one)")
    ap.add_argument("--netns", action="store_true",
                    help="(root) run the generator in a network namespace behind a veth pair, "
                         "with RPS on the host side's rx queue: the flood's receive softirq "
                         "runs on the server's CPUs, as a real NIC's would")
    ap.add_argument("--rps-mask", default=None,
                    help="with --netns: hex CPU mask for the host side veth's rps_cpus "
                         "(default: the mask of --server-cpus; 0: RPS off)")
    ap.add_argument("--housekeeping-cpus", default="",
                    help="(root) before the first run, move every kernel thread that accepts an "
                         "affinity change (kdamond, kswapd, rcu, khugepaged, ...) to this CPU list, "
                         "e.g. 1 with --server-cpus 0; restored on exit")
    ap.add_argument("--ingress-drop", action="store_true",
                    help="with --netns (diagnostic; needs nft): drop the flood at the host side's "
                         "ingress (nftables netdev hook, after RPS, before IP): what the neighbours "
                         "would see if a flooding network's datagrams were dropped before the stack")
    ap.add_argument("--write", action="store_true", help="append to bench/RESULTS-attack.md")
    a = ap.parse_args()
    binaries = a.pyzord or [os.path.join(ROOT, "target/debug/pyzord")]

    # SIGTERM: stop the servers and the generator (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    if a.server_cpus:
        # The normal client runs in this process; the servers are started
        # under taskset, the generator under its own --flood-cpus.
        cpus = set()
        for part in a.server_cpus.split(","):
            lo, _, hi = part.partition("-")
            cpus.update(range(int(lo), int(hi or lo) + 1))
        os.sched_setaffinity(0, cpus)
    if (a.netns or a.housekeeping_cpus) and os.geteuid() != 0:
        raise SystemExit("--netns and --housekeeping-cpus need root")
    load0 = os.getloadavg()[0]
    servers = []
    netns = NetNs(a, a.normal_source) if a.netns else None
    hk = Housekeeping(a.housekeeping_cpus) if a.housekeeping_cpus else None
    hk_text = ""
    try:
        if hk:
            hk.move()
            hk_text = hk.summary()
            print(f"housekeeping: {hk_text}", file=sys.stderr)
        if a.ingress_drop and not netns:
            raise SystemExit("--ingress-drop needs --netns")
        if netns:
            netns.up()
            if a.ingress_drop:
                netns.drop_at_ingress()
            print(f"netns {netns.ns}: {netns.host_if} {netns.host_ip}/24 (rps_cpus {netns.rps_read}) "
                  f"<-> {netns.ns_if} {netns.ns_ip}/24 (rps_cpus {netns.ns_rps_mask})", file=sys.stderr)
        for b in binaries:
            servers.append(Server(b, a, netns))
        for _ in range(a.rounds):
            for s in servers:
                s.round(a)
        ingress_dropped = netns.dropped() if a.ingress_drop else None
    finally:
        try:
            for s in servers:
                s.stop()
        finally:
            try:
                if netns:
                    netns.down()
            finally:
                if hk:
                    failed = hk.restore()
                    print(f"housekeeping: {hk.saved_count} affinities restored"
                          + (f"; NOT restored: {'; '.join(failed)}" if failed else ""), file=sys.stderr)
    load1 = os.getloadavg()[0]
    names = [os.path.relpath(s.binary, ROOT) for s in servers]
    cols = [s.rows(a) for s in servers]
    table = ["| figure | " + " | ".join(names) + " |", "|---|" + "---:|" * len(servers)]
    for i, (k, _) in enumerate(cols[0]):
        table.append(f"| {k} | " + " | ".join(c[i][1] for c in cols) + " |")
    table.append(f"| machine load average (1 min), start / end | {load0:.1f} / {load1:.1f} |"
                 + " |" * (len(servers) - 1))
    if a.ingress_drop:
        table.append(f"| flood datagrams dropped at the host side's ingress (all runs) | {ingress_dropped} |"
                     + " |" * (len(servers) - 1))
    text = "\n".join(table)
    print(text)
    if a.write:
        order = " and ".join(f"`{n}`" for n in names)
        append_results(
            "flood.py", "Flood vs. normal traffic", f"{a.label}, --workers {a.workers}"
            + (f", --housekeeping-cpus {a.housekeeping_cpus}" if hk else ""),
            f"The flood: `pyzor-bench load -o {a.flood_ops} "
            f"-w {a.flood_window} -t 5` from "
            + (f"{netns.ns_ip} in a network namespace, over a veth pair to pyzord on "
               f"{netns.host_ip} (RPS of the host side's rx queue: CPU mask {netns.rps_read}; "
               f"of the namespace side's: {netns.ns_rps_mask})" if netns else "127.0.0.0/24")
            + f"; the normal network: checks from {a.normal_source} at {a.rate:.0f}/s, "
            "one at a time" + (" over loopback" if netns else "")
            + (f" (pinned with pyzord to CPU {a.server_cpus})" if a.server_cpus else "")
            + (f", the generator pinned to CPU {a.flood_cpus}" if a.flood_cpus else "")
            + (", the generator under SCHED_IDLE (`chrt --idle 0`)" if a.flood_idle else "")
            + (", every flood datagram dropped at the host side's ingress (nftables netdev hook, "
               "`--ingress-drop`: after RPS, before IP)" if a.ingress_drop else "")
            + f", {a.rounds} rounds "
            f"of {a.seconds:.0f} s unloaded then {a.seconds:.0f} s flooded for each of {order} "
            f"in turn (Python client: its latency includes the interpreter's)."
            + (f" Housekeeping (`--housekeeping-cpus {a.housekeeping_cpus}`, before the first run, "
               f"restored after the last): {hk_text}." if hk else ""), text)
    ok = all(s.lost == 0 and s.stored <= s.budget + 2 for s in servers)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
