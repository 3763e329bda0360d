#!/usr/bin/env python3
"""The UDP path with and without HTTP lookups (docs/server.md, "The HTTP
listener": the listener and its handlers run on threads of their own and
read the engine without going through a worker).

Starts its own pyzord (LMDB in a temporary home, free loopback ports,
`--http-api`, `HttpRateLimit = 0` so the HTTP clients are never limited),
prefills --pool digests with reports, then runs `pyzor-bench load -o check`
for --seconds twice, interleaved --rounds times:

1. alone;
2. while --clients HTTP clients hammer the listener, each alternating
   `GET /v1/digests/<pool digest>` and `POST /v1/explain` with a
   --message-kib message, one request after another.

Prints the UDP checks per second and latency (p50, p99) of each run and the
HTTP requests per second served meanwhile; appends the table to
bench/RESULTS-http.md with --write.

    python3 bench/http_load.py [--pyzord target/release/pyzord] [--bench target/release/pyzor-bench] [--write]

Stops only the processes it started.
"""

import argparse
import hashlib
import http.client
import json
import os
import socket
import subprocess
import tempfile
import threading
import time

from flood import ROOT, free_port
from run import stop


def wait_tcp(port, seconds=20):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.3).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port} after {seconds} s")


def bench_load(bench, port, args):
    cmd = [bench, "load", "-p", str(port), "--json"] + args
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600)
    return json.loads(out.stdout)


def hammer(hport, pool, message, stop, counts, i):
    """One HTTP client: GET a digest, POST an explain, again, until `stop`."""
    n = errors = 0
    k = i
    while not stop.is_set():
        try:
            c = http.client.HTTPConnection("127.0.0.1", hport, timeout=10)
            if n % 2 == 0:
                d = hashlib.sha1(f"pyzor-bench:1:{k % pool}".encode()).hexdigest()
                c.request("GET", f"/v1/digests/{d}")
                k += 7
            else:
                c.request("POST", "/v1/explain", body=message)
            r = c.getresponse()
            r.read()
            if r.status not in (200, 404):
                errors += 1
            c.close()
            n += 1
        except OSError:
            errors += 1
    counts[i] = (n, errors)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pyzord", default=os.path.join(ROOT, "target/release/pyzord"))
    ap.add_argument("--bench", default=os.path.join(ROOT, "target/release/pyzor-bench"))
    ap.add_argument("--pool", type=int, default=20000)
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--message-kib", type=int, default=64)
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()

    home = tempfile.mkdtemp(prefix="pyzor-http-bench-")
    with open(os.path.join(home, "config"), "w") as f:
        f.write("[server]\nHttpRateLimit = 0\nReportRateLimit = 0\nRateLimit = 0\n")
    port, hport = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
    log = open(os.path.join(home, "stderr.log"), "w")
    server = subprocess.Popen(
        [a.pyzord, "--homedir", home, "-a", "127.0.0.1", "-p", str(port),
         "--http-address", f"127.0.0.1:{hport}", "--http-api"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
    try:
        wait_tcp(hport)
        bench_load(a.bench, port, ["-o", "report", "-m", "seq", "-P", str(a.pool), "-W", "0", "-d", "300"])
        words = " ".join(f"word{i % 97} lorem ipsum dolor sit amet" for i in range(a.message_kib * 40))
        message = (f"Subject: bench\n\n{words}\n"[: a.message_kib * 1024]).encode()
        load = ["-o", "check", "-w", str(a.window), "-P", str(a.pool), "-d", str(a.seconds), "-W", "1"]
        rows = []
        for r in range(a.rounds):
            for with_http in (False, True):
                stop, counts, threads = threading.Event(), {}, []
                if with_http:
                    for i in range(a.clients):
                        t = threading.Thread(target=hammer, args=(hport, a.pool, message, stop, counts, i))
                        t.start()
                        threads.append(t)
                t0 = time.monotonic()
                s = bench_load(a.bench, port, load)
                stop.set()
                for t in threads:
                    t.join(timeout=20)
                elapsed = time.monotonic() - t0
                http_n = sum(n for n, _ in counts.values())
                http_err = sum(e for _, e in counts.values())
                rows.append((r + 1, with_http, s["req_per_s"], s["latency"]["p50_ms"],
                             s["latency"]["p99_ms"], s["lost"], http_n / elapsed, http_err))
    finally:
        stop(server)
        log.close()

    head = (f"pyzord (lmdb, default workers) on {os.cpu_count()} cores, load average "
            f"{os.getloadavg()[0]:.1f}; UDP: pyzor-bench check, window {a.window}, pool {a.pool}; "
            f"HTTP: {a.clients} clients alternating GET /v1/digests and POST /v1/explain ({a.message_kib} KiB)")
    table = ["| round | HTTP load | UDP checks/s | p50 ms | p99 ms | lost | HTTP req/s | HTTP errors |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r, w, rate, p50, p99, lost, hrate, herr in rows:
        table.append(f"| {r} | {'yes' if w else 'no'} | {rate:.0f} | {p50:.3f} | {p99:.3f} | {lost} | "
                     f"{hrate:.1f} | {herr} |")
    text = head + "\n\n" + "\n".join(table) + "\n"
    print(text)
    if a.write:
        with open(os.path.join(ROOT, "bench/RESULTS-http.md"), "a") as f:
            f.write(f"\n## {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n\n{text}")


if __name__ == "__main__":
    main()
