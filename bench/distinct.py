#!/usr/bin/env python3
"""Memory cost of DistinctWindow (docs/security.md, "Distinct reporters").

Starts two pyzords of its own (memory engine, free loopback port, temporary
home, report rate limit off so that every datagram reaches the policy,
metrics endpoint): one with DistinctWindow off, one with --distinct-window
3600. Against each it sends the same report load, in steps: reports of
--digests digests from many source networks (127.A.B.1, one socket per
network), so that each step adds distinct (network, digest) pairs; after
each step it prints pyzord's VmRSS and the reports answered and counted.
Then it sends the whole load again: with the policy on, every report that
the table still remembers is a repeat (pyzord_distinct_repeats_total), so
the share of repeats is the share of the table's pairs that were not
evicted.

Prints one Markdown table (RSS off, RSS on, difference, per step) and the
table's fixed figures (entries, bytes per entry, bytes); --write appends
them to bench/RESULTS-attack.md.

    python3 bench/distinct.py [--pyzord target/release/pyzord] [--steps 10000,100000,500000] [--write]

Every send loop is bounded by its count; stops only the processes it started.
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from flood import append_results, free_port, metrics  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# crates/pyzor-server/src/protect.rs: DISTINCT_ENTRIES and the entry's size.
ENTRIES = 1 << 20
ENTRY_BYTES = 16


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Server:
    def __init__(self, pyzord, extra):
        self.home = tempfile.mkdtemp(prefix="pyzor-distinct-")
        with open(os.path.join(self.home, "config"), "w") as f:
            f.write("[server]\nRateLimitAllow =\n")
        with open(os.path.join(self.home, "pyzord.access"), "w") as f:
            f.write("all : anonymous : allow\n")
        self.port = free_port(socket.SOCK_DGRAM)
        self.mport = free_port(socket.SOCK_STREAM)
        self.log = open(os.path.join(self.home, "stderr.log"), "wb")
        self.proc = subprocess.Popen(
            [pyzord, "--homedir", self.home, "-e", "memory", "-a", "127.0.0.1",
             "-p", str(self.port), "--report-rate-limit", "0", "--rate-limit", "0",
             "--metrics-address", f"127.0.0.1:{self.mport}"] + extra,
            stdout=self.log, stderr=self.log)
        for _ in range(100):
            try:
                metrics(self.mport)
                return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("pyzord did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()
        shutil.rmtree(self.home, ignore_errors=True)


def sockets(n):
    """n sockets on n different /24s of 127/8 (127.A.B.1, A from 1)."""
    out = []
    for i in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((f"127.{1 + i // 256}.{i % 256}.1", 0))
        s.setblocking(False)
        out.append(s)
    return out


def send(srv, socks, digests, start, end, drain):
    """Reports number start..end: pair i is (network i % len(socks),
    digest (i // len(socks)) % len(digests)). Paced so that loopback loses
    little: every 256 datagrams the replies are read back."""
    addr = ("127.0.0.1", srv.port)
    n = len(socks)
    for i in range(start, end):
        s = socks[i % n]
        d = digests[(i // n) % len(digests)]
        try:
            s.sendto(b"Op: report\nOp-Digest: " + d + b"\nThread: 1\nPV: 2.1\n\n", addr)
        except BlockingIOError:
            pass
        if i % 256 == 255:
            drain(socks)


def drainer():
    buf = bytearray(2048)

    def drain(socks):
        deadline = time.monotonic() + 0.05
        got = 0
        for s in socks:
            while True:
                try:
                    s.recv_into(buf)
                    got += 1
                except BlockingIOError:
                    break
            if got >= 256 or time.monotonic() > deadline:
                break
    return drain


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pyzord", default=os.path.join(ROOT, "target/release/pyzord"))
    ap.add_argument("--steps", default="10000,100000,500000",
                    help="cumulative reports (distinct pairs) after each step")
    ap.add_argument("--networks", type=int, default=2048)
    ap.add_argument("--window", type=int, default=3600)
    ap.add_argument("--label", default="release build")
    ap.add_argument("--write", action="store_true", help="append to bench/RESULTS-attack.md")
    a = ap.parse_args()
    steps = [int(x) for x in a.steps.split(",")]
    socks = sockets(a.networks)
    ndig = (steps[-1] + a.networks - 1) // a.networks
    digests = [b"%040x" % (0xD15 << 140 | i) for i in range(ndig)]
    drain = drainer()
    res = {}
    for label, extra in (("off", []), ("on", ["--distinct-window", str(a.window)])):
        srv = Server(a.pyzord, extra)
        try:
            row = [rss_kb(srv.proc.pid)]
            done = 0
            t0 = time.monotonic()
            for n in steps:
                send(srv, socks, digests, done, n, drain)
                done = n
                time.sleep(0.3)
                drain(socks)
                row.append(rss_kb(srv.proc.pid))
            m1 = metrics(srv.mport)
            elapsed = time.monotonic() - t0
            send(srv, socks, digests, 0, steps[-1], drain)
            time.sleep(0.3)
            m2 = metrics(srv.mport)
            row.append(rss_kb(srv.proc.pid))
            key = 'pyzord_requests_total{op="report",code="200"}'
            res[label] = {
                "rss": row,
                "answered": m1.get(key, 0),
                "repeats1": m1.get("pyzord_distinct_repeats_total", 0),
                "answered2": m2.get(key, 0) - m1.get(key, 0),
                "repeats2": m2.get("pyzord_distinct_repeats_total", 0)
                - m1.get("pyzord_distinct_repeats_total", 0),
                "rate": m1.get(key, 0) / elapsed,
            }
        finally:
            srv.stop()
    off, on = res["off"], res["on"]
    mb = lambda kb: f"{kb / 1024:.1f}"
    names = ["at start"] + [f"after {n:,} reports" for n in steps] + ["after the load again"]
    lines = ["| pyzord VmRSS (MiB) | DistinctWindow off | on | on − off |", "|---|---:|---:|---:|"]
    for name, x, y in zip(names, off["rss"], on["rss"]):
        lines.append(f"| {name} | {mb(x)} | {mb(y)} | {mb(y - x)} |")
    figures = [
        ("table entries × bytes per entry", f"{ENTRIES:,} × {ENTRY_BYTES} = {ENTRIES * ENTRY_BYTES / 2**20:.0f} MiB"),
        ("reports answered 200, first pass (off / on)", f"{off['answered']:,.0f} / {on['answered']:,.0f}"),
        ("repeats in the first pass (on; pairs are distinct)", f"{on['repeats1']:,.0f}"),
        ("second pass answered / not counted as repeats (on)",
         f"{on['answered2']:,.0f} / {on['repeats2']:,.0f} ({100 * on['repeats2'] / max(on['answered2'], 1):.1f} %)"),
        ("reports per second handled, first pass (off / on)", f"{off['rate']:,.0f} / {on['rate']:,.0f}"),
    ]
    lines += ["", "| figure | value |", "|---|---:|"] + [f"| {k} | {v} |" for k, v in figures]
    text = "\n".join(lines)
    print(text)
    if a.write:
        append_results(
            "distinct.py", "DistinctWindow: memory", a.label,
            f"Reports from {a.networks} networks (127.A.B.1), each pair (network, digest) "
            f"new, rate limits off, --distinct-window {a.window} against off.", text)

if __name__ == "__main__":
    main()
