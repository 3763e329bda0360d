#!/usr/bin/env python3
"""ours-postgres before/after: several builds of our pyzord on the postgres
engine, side by side in one run (issue 13).

    python3 bench/pg_engine.py --pyzord before=/path/to/old/pyzord \\
        --pyzord after=target/release/pyzord --rounds 3 --duration 6

Each build gets its own PostgreSQL database `pyzor_h13p_bench_<name>` on the
local server (127.0.0.1:5432, user postgres, trust auth), created here and
dropped at the end, and its own temporary home. Every server is prefilled
with the same --pool digests (report, seq, window 64: the "report of
never-seen digests" figure), then for --rounds rounds every load (check,
report; window --window, 2 generator threads, 16 source networks, as
bench/run.py) runs on every server, the order rotating per round.
Figures: req/s (median and range over rounds), server CPU µs/request
(utime+stime of pyzord from /proc), PostgreSQL CPU µs/request (the
backends serving the server's database, from /proc), lost requests and
answers other than 200. Prints a Markdown section; --out appends it to a
file. Every step is bounded in time; only processes started here are
signalled.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import ROOT, proc_cpu_seconds  # noqa: E402


def psql(sql, db="postgres"):
    r = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-X", "-q", "-t", "-A", "-d", db,
                        "-c", sql], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"psql: {r.stderr.strip()}")
    return r.stdout.strip()


cpu_s = proc_cpu_seconds


def backends(db):
    out = psql(f"SELECT pid FROM pg_stat_activity WHERE datname = '{db}'")
    return [int(p) for p in out.split()] if out else []


def db_cpu(pids):
    return {p: c for p in pids if (c := cpu_s(p)) is not None}


def load(bench, port, extra, bound):
    cmd = [bench, "load", "-p", str(port), "--json", "--sources", "16", *extra]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=bound)
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, IndexError, json.JSONDecodeError) as e:
        print(f"load {extra}: {e}", file=sys.stderr)
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pyzord", action="append", required=True, metavar="NAME=PATH")
    ap.add_argument("--bench", default=os.path.join(ROOT, "target/release/pyzor-bench"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=6)
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--pool", type=int, default=100_000)
    ap.add_argument("--loads", default="check,report")
    ap.add_argument("--pyzord-args", default="", help="extra arguments for every pyzord")
    ap.add_argument("--label", default="")
    ap.add_argument("--out")
    args = ap.parse_args()
    builds = [tuple(x.split("=", 1)) for x in args.pyzord]
    tmp = tempfile.mkdtemp(prefix="pyzor_h13p_bench_")
    servers = []
    t_start = time.time()
    try:
        for name, path in builds:
            db = f"pyzor_h13p_bench_{name}".replace("-", "_")
            psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
            psql(f"CREATE DATABASE {db}")
            home = os.path.join(tmp, name)
            os.makedirs(home)
            port = int(subprocess.run([sys.executable, "-c", "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"], capture_output=True, text=True).stdout)
            cmd = [path, "--homedir", home, "-a", "127.0.0.1", "-p", str(port), "-e", "postgres",
                   "--dsn", f"127.0.0.1:5432,postgres,,{db},digests", *args.pyzord_args.split()]
            log = open(os.path.join(home, "server.log"), "w")
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
            servers.append({"name": name, "db": db, "port": port, "proc": proc})
        time.sleep(2)
        for s in servers:
            if s["proc"].poll() is not None:
                sys.exit(f"{s['name']} exited; see its server.log")
            t0, c0 = time.time(), cpu_s(s["proc"].pid)
            r = load(args.bench, s["port"], ["-o", "report", "-m", "seq", "-P", str(args.pool), "-w", "64",
                                             "-W", "0", "-d", "900", "-t", "5000"], 960)
            s["prefill"] = (r, time.time() - t0, cpu_s(s["proc"].pid) - c0)
            print(f"prefill {s['name']}: {r and r.get('responses')} in {time.time() - t0:.1f}s", file=sys.stderr)
        runs = {}
        loads = args.loads.split(",")
        for rnd in range(args.rounds):
            order = servers[rnd % len(servers):] + servers[:rnd % len(servers)]
            for ld in loads:
                for s in order:
                    pids = backends(s["db"])
                    d0, c0 = db_cpu(pids), cpu_s(s["proc"].pid)
                    r = load(args.bench, s["port"], ["-o", ld, "-m", "pool", "-P", str(args.pool),
                                                     "-w", str(args.window), "-T", "2", "-W", "1",
                                                     "-d", str(args.duration)], args.duration + 60)
                    c1, d1 = cpu_s(s["proc"].pid), db_cpu(pids)
                    if r is None:
                        continue
                    # CPU is read around warm-up and run: scale the run's
                    # answers to both (the rate is steady by then)
                    n = r["responses"] * (args.duration + 1) / args.duration
                    dbc = sum(d1[p] - d0[p] for p in d1 if p in d0)
                    runs.setdefault((s["name"], ld), []).append({
                        "rps": r["req_per_s"], "cpu_us": (c1 - c0) * 1e6 / max(n, 1),
                        "db_us": dbc * 1e6 / max(n, 1), "lost": r.get("lost", 0),
                        "codes": r.get("codes", {}), "p50": r["latency"]["p50_ms"], "p99": r["latency"]["p99_ms"]})
                    print(f"round {rnd + 1} {ld} {s['name']}: {r['req_per_s']:.0f}/s", file=sys.stderr)
        lines = [f"## postgres engine{(': ' + args.label) if args.label else ''}", "",
                 f"`{' '.join(sys.argv)}` — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
                 f"{os.cpu_count()} cores, load average before the end "
                 f"{os.getloadavg()[0]:.1f}; PostgreSQL {psql('SHOW server_version')}, "
                 f"synchronous_commit={psql('SHOW synchronous_commit')}, fsync={psql('SHOW fsync')}.", "",
                 "| server | load | req/s median (range) | p50 / p99 ms | server CPU µs/req | PostgreSQL CPU µs/req | lost | non-200 |",
                 "|---|---|---|---|---|---|---|---|"]
        for s in servers:
            r, secs, cpu = s["prefill"]
            if r:
                lines.append(f"| {s['name']} | prefill report (seq, new digests) | {r['req_per_s']:,.0f} | "
                             f"{r['latency']['p50_ms']:.1f} / {r['latency']['p99_ms']:.1f} | "
                             f"{cpu * 1e6 / max(r['responses'], 1):.0f} | — | {r.get('lost', 0)} | "
                             f"{sum(v for k, v in r.get('codes', {}).items() if k != '200')} |")
        for ld in loads:
            for s in servers:
                xs = runs.get((s["name"], ld), [])
                if not xs:
                    lines.append(f"| {s['name']} | {ld} | no result | | | | | |")
                    continue
                rps = [x["rps"] for x in xs]
                med = lambda k: statistics.median(x[k] for x in xs if x[k] is not None)
                bad = sum(v for x in xs for k, v in x["codes"].items() if k != "200")
                lines.append(f"| {s['name']} | {ld} w{args.window} | {statistics.median(rps):,.0f} "
                             f"({min(rps):,.0f}–{max(rps):,.0f}) | {med('p50'):.1f} / {med('p99'):.1f} | "
                             f"{med('cpu_us'):.0f} | {med('db_us'):.0f} | {sum(x['lost'] for x in xs)} | {bad} |")
        text = "\n".join(lines) + "\n"
        print(text)
        if args.out:
            with open(args.out, "a") as f:
                f.write(text + "\n")
        print(f"took {time.time() - t_start:.0f}s", file=sys.stderr)
    finally:
        for s in servers:
            s["proc"].terminate()
            try:
                s["proc"].wait(timeout=20)
            except subprocess.TimeoutExpired:
                s["proc"].kill()
        for s in servers:
            try:
                psql(f"DROP DATABASE IF EXISTS {s['db']} WITH (FORCE)")
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                print(f"could not drop {s['db']}: {e}", file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
