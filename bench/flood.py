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
per-round figures show how much). Appends the table to
bench/RESULTS-attack.md with --write.

    python3 bench/flood.py [--pyzord target/debug/pyzord] [--bench target/debug/pyzor-bench] [--write]

Stops only the processes it started.
"""

import argparse
import json
import os
import shlex
import shutil
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


def normal_client(port, rate, seconds, source="127.0.8.1"):
    """Checks at `rate`/s for `seconds`, one at a time: (latencies in ms, lost)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((source, 0))
    s.settimeout(2.0)
    lat, lost = [], 0
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
        s.sendto(d, ("127.0.0.1", port))
        try:
            while True:
                r = s.recv(70000)
                if f"Thread: {thread}\n".encode() in r:
                    break
            lat.append((time.perf_counter() - t) * 1000)
        except socket.timeout:
            lost += 1
        i += 1
    s.close()
    return lat, lost


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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pyzord", default=os.path.join(ROOT, "target/debug/pyzord"))
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
    ap.add_argument("--normal-source", default="127.0.8.1",
                    help="the normal client's address (127.0.8.1 reaches the other worker of two "
                         "than the flood's 127.0.0.1; 127.0.30.1 the same one)")
    ap.add_argument("--write", action="store_true", help="append to bench/RESULTS-attack.md")
    a = ap.parse_args()

    home = tempfile.mkdtemp(prefix="pyzor-flood-")
    with open(os.path.join(home, "config"), "w") as f:
        f.write("[server]\nRateLimitAllow =\n")
    with open(os.path.join(home, "pyzord.access"), "w") as f:
        f.write("all : anonymous : allow\n")
    port, mport = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
    log = open(os.path.join(home, "stderr.log"), "wb")
    srv = subprocess.Popen(
        [a.pyzord, "--homedir", home, "-e", "memory", "-a", "127.0.0.1", "-p", str(port),
         "--workers", str(a.workers), "--report-rate-limit", str(a.report_rate_limit),
         "--metrics-address", f"127.0.0.1:{mport}"],
        stdout=log, stderr=log)
    flood = None
    base_lat, lat, base_lost, lost = [], [], 0, 0
    rounds = []  # per round: (p99 unloaded, p99 flooded)
    sent = dur = stored = limited = budget = elapsed = 0.0
    cpu = {}
    gen_cpu = 0.0
    load0 = os.getloadavg()[0]
    try:
        for _ in range(100):
            try:
                metrics(mport)
                break
            except OSError:
                time.sleep(0.1)
        for _ in range(a.rounds):
            b_lat, b_lost = normal_client(port, a.rate, a.seconds, a.normal_source)
            m0 = metrics(mport)
            cpu0 = thread_cpu(srv.pid)
            kids0 = os.times()
            t0 = time.monotonic()
            pin = ["taskset", "-c", a.flood_cpus] if a.flood_cpus else []
            flood = subprocess.Popen(
                pin + [a.bench, "load", "-H", "127.0.0.1", "-p", str(port), "-o", a.flood_ops,
                       "-w", str(a.flood_window), "-d", str(a.seconds + 1), "-W", "0", "-t", "5",
                       "-m", "new", "--json"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
            f_lat, f_lost = normal_client(port, a.rate, a.seconds, a.normal_source)
            out, _ = flood.communicate(timeout=a.seconds + 60)
            el = time.monotonic() - t0
            m1 = metrics(mport)
            cpu1 = thread_cpu(srv.pid)
            kids1 = os.times()
            try:
                fl = json.loads(out.decode().strip().splitlines()[-1])
            except (ValueError, IndexError):
                fl = {}
            key = 'pyzord_requests_total{op="report",code="200"}'
            stored += m1.get(key, 0) - m0.get(key, 0)
            limited += m1.get("pyzord_rate_limited_total", 0) - m0.get("pyzord_rate_limited_total", 0)
            budget += a.report_rate_limit * (1 + el)
            elapsed += el
            sent += fl.get("sent", 0)
            dur += fl.get("elapsed_s") or (a.seconds + 1)
            for k in cpu1:
                cpu[k] = cpu.get(k, 0) + cpu1[k] - cpu0.get(k, 0)
            gen_cpu += (kids1[2] + kids1[3]) - (kids0[2] + kids0[3])
            base_lat += b_lat
            lat += f_lat
            base_lost += b_lost
            lost += f_lost
            rounds.append((pct(b_lat, 99), pct(f_lat, 99)))
    finally:
        if flood and flood.poll() is None:
            flood.kill()
            flood.wait()
        srv.terminate()
        srv.wait(timeout=30)
        log.close()
        shutil.rmtree(home, ignore_errors=True)
    rl = a.report_rate_limit
    rows = [
        ("normal checks answered, unloaded", f"{len(base_lat)} of {len(base_lat) + base_lost}"),
        ("normal checks answered, flooded", f"{len(lat)} of {len(lat) + lost}"),
        ("normal p50 / p99 / max ms, unloaded",
         f"{pct(base_lat, 50):.2f} / {pct(base_lat, 99):.2f} / {max(base_lat, default=0):.2f}"),
        ("normal p50 / p99 / max ms, flooded",
         f"{pct(lat, 50):.2f} / {pct(lat, 99):.2f} / {max(lat, default=0):.2f}"),
        ("p99 flooded / unloaded", f"{pct(lat, 99) / pct(base_lat, 99):.2f}"),
        ("p99 ms per round, unloaded → flooded",
         ", ".join(f"{u:.2f} → {f:.2f}" for u, f in rounds)),
        ("flood datagrams sent (rate)", f"{sent:.0f} ({sent / max(dur, 1e-9):.0f}/s)"),
        ("flood requests rate-limited", f"{limited:.0f}"),
        ("reports stored during the floods", f"{stored:.0f}"),
        (f"write budget, {a.rounds} × ({rl} + {rl} × flood seconds)", f"{budget:.0f}"),
        ("pyzord CPU in the flooded runs, % of one core, by thread",
         ", ".join(f"{k} {100 * v / elapsed:.0f}" for k, v in sorted(cpu.items())
                   if v > 0.005 * elapsed)),
        ("flood generator CPU, % of one core" + (f" (pinned to CPU {a.flood_cpus})" if a.flood_cpus else ""),
         f"{100 * gen_cpu / elapsed:.0f}"),
        ("machine load average (1 min) at the start", f"{load0:.1f}"),
    ]
    table = ["| figure | value |", "|---|---:|"] + [f"| {k} | {v} |" for k, v in rows]
    text = "\n".join(table)
    print(text)
    if a.write:
        cmd = shlex.join(["python3", "bench/flood.py"] + sys.argv[1:])
        with open(os.path.join(ROOT, "bench/RESULTS-attack.md"), "a") as f:
            f.write(
                f"\n# Flood vs. normal traffic (bench/flood.py)\n\n"
                f"**{time.strftime('%Y-%m-%d', time.gmtime())}, {a.label}, --workers {a.workers}, "
                f"{os.cpu_count()} cores shared with other jobs**\n\n"
                f"Generated by `{cmd}`. The flood: `pyzor-bench load -o {a.flood_ops} "
                f"-w {a.flood_window} -t 5` from 127.0.0.0/24; the normal network: "
                f"checks from {a.normal_source} at {a.rate:.0f}/s, one at a time, {a.rounds} rounds "
                f"of {a.seconds:.0f} s unloaded then {a.seconds:.0f} s flooded "
                f"(Python client: its latency includes the interpreter's).\n\n"
                f"{text}\n")
    ok = lost == 0 and stored <= budget + 2
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
