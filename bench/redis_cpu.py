#!/usr/bin/env python3
"""redis-server CPU per report and per check of our pyzord -e redis.

For each pyzord build given (e.g. `--pyzord before=/path/a --pyzord
after=/path/b`), in turn: start it on a free port against Redis db --db
(4), prefill --pool digests (report, seq), then for each load (report,
check) read redis-server's INFO commandstats and INFO cpu and its
/proc/<pid>/stat, drive the load with pyzor-bench, and read them again.
Prints a Markdown table per build:

* commands per request and Redis's own µs per call of each command
  (commandstats: time inside the command, Lua included, no I/O);
* command µs per request: the top-level commands' time ÷ requests (only
  commands called for at least half of the requests count: the others are
  other tenants' of the same Redis). Redis
  counts a command a script calls under its own name too, and the script's
  time includes it; so when a load ran scripts (EVALSHA/EVAL) only the
  scripts are summed (use one op per load: report, check);
* redis-server CPU µs per request (utime+stime of the process, I/O and
  event loop included; other tenants of the same Redis are counted too,
  so read it next to the commandstats figure).

It flushes db --db only if the db is empty or carries bench/run.py's marker
key, flushes it again at the end, and stops only the servers it started.
"""

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import shutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (bench/run.py: process, Redis and load helpers)


SCRIPTS = {"eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro"}


def redis_info(section):
    """INFO <section> as a dict (values kept as strings)."""
    out = {}
    r = subprocess.run(["redis-cli", "INFO", section], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        run.die(f"redis-cli INFO {section} failed: {r.stderr.strip()}")
    for line in r.stdout.splitlines():
        k, sep, v = line.strip().partition(":")
        if sep:
            out[k] = v
    return out


def commandstats():
    """{command: (calls, usec)} from INFO commandstats."""
    out = {}
    for k, v in redis_info("commandstats").items():
        if k.startswith("cmdstat_"):
            f = dict(x.split("=", 1) for x in v.split(","))
            out[k[len("cmdstat_"):]] = (int(f["calls"]), int(f["usec"]))
    return out


def snapshot(pids):
    cpu = redis_info("cpu")
    return {
        "cmd": commandstats(),
        "info_cpu": float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]),
        "proc_cpu": sum(filter(None, (run.proc_cpu_seconds(p) for p in pids))),
    }


def measure(bench_bin, port, ops, args, pids):
    before = snapshot(pids)
    res, err = run.bench_load(bench_bin, port, ["-o", ops, "-w", str(args.window), "-m", "pool", "-P",
                                                str(args.pool), "-d", str(args.duration), "-W", "0",
                                                "-t", "2000"], args.duration + 60)
    after = snapshot(pids)
    if res is None:
        return None, err
    n = res["responses"] + res["lost"]  # every request sent reached the server's engine or was lost on the way
    if not res["responses"]:
        return None, f"no answers: {res}"
    cmds = {}
    for c, (calls, usec) in after["cmd"].items():
        c0, u0 = before["cmd"].get(c, (0, 0))
        # Commands called for fewer than half of the requests are other
        # tenants' (this load calls each of its commands about once per request).
        if calls - c0 >= n / 2:
            cmds[c] = (calls - c0, usec - u0)
    return {
        "ops": ops,
        "requests": n,
        "req_per_s": res["req_per_s"],
        "codes": res["codes"],
        "cmds": cmds,
        "cmd_us_per_req": sum(u for c, (_, u) in cmds.items() if c in SCRIPTS or not SCRIPTS & cmds.keys()) / n,
        "info_cpu_us_per_req": (after["info_cpu"] - before["info_cpu"]) * 1e6 / n,
        "proc_cpu_us_per_req": (after["proc_cpu"] - before["proc_cpu"]) * 1e6 / n,
    }, None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pyzord", action="append", required=True, metavar="LABEL=PATH",
                    help="a pyzord build to measure, e.g. before=/tmp/pyzord-old (repeat for several)")
    ap.add_argument("--bench", default=os.path.join(run.ROOT, "target", "release", "pyzor-bench"))
    ap.add_argument("--db", type=int, default=4, help="Redis db (flushed; default 4)")
    ap.add_argument("--pool", type=int, default=100_000)
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--loads", default="report,check", help="pyzor-bench op mixes separated by ';' or ','")
    ap.add_argument("--rounds", type=int, default=1, help="each build measured this many times, interleaved")
    args = ap.parse_args()
    builds = []
    for x in args.pyzord:
        label, sep, path = x.partition("=")
        if not sep or not os.path.isfile(path):
            run.die(f"--pyzord {x!r}: expected LABEL=PATH of an existing pyzord")
        builds.append((label, os.path.abspath(path)))
    if not os.path.isfile(args.bench):
        run.die(f"{args.bench} missing; cargo build --release -p pyzor-bench")
    pids = run.pid_of("redis-server")
    if not pids or not shutil.which("redis-cli"):
        run.die("redis-server/redis-cli not found")
    loads = [x.strip() for x in args.loads.replace(";", ",").split(",") if x.strip()]
    command_line = "python3 bench/redis_cpu.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])

    tmp = tempfile.mkdtemp(prefix="pyzor-redis-cpu.")
    results = []
    try:
        for rnd in range(args.rounds):
            for label, path in builds:
                run.redis_claim(args.db)
                s = run.Server(label, "ours", run.ours_cmd(path, ["-e", "redis", "--dsn",
                                                                  f"127.0.0.1,6379,,{args.db}"]),
                               f"{tmp}/{label}-{rnd}")
                s.start()
                try:
                    res, err = run.bench_load(args.bench, s.port, ["-o", "report", "-m", "seq", "-P", str(args.pool),
                                                                   "-w", "64", "-W", "0", "-d", "600", "-t", "5000"],
                                              660)
                    if res is None or res["responses"] != args.pool:
                        run.log(f"WARNING: prefill of {label} incomplete: {err or res}")
                    for ops in loads:
                        r, err = measure(args.bench, s.port, ops, args, pids)
                        if r is None:
                            run.log(f"{label} {ops}: FAILED {err}")
                            continue
                        r["build"], r["round"] = label, rnd
                        results.append(r)
                        run.log(f"{label} {ops}: {r['req_per_s']:,.0f} req/s, Redis commands "
                                f"{r['cmd_us_per_req']:.2f} µs/req, redis-server CPU "
                                f"{r['proc_cpu_us_per_req']:.2f} µs/req")
                finally:
                    s.stop()
    finally:
        run.stop_all()
        run.redis_release(args.db)
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"Generated by `{command_line}`; window {args.window}, pool {args.pool:,} (prefilled), "
          f"{args.duration:g} s per load, Redis db {args.db}.\n")
    print("| build | load | round | req/s | commands per request (calls; µs per call) | Redis command µs/req "
          "| redis-server CPU µs/req |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        cmds = ", ".join(f"{c} {calls / r['requests']:.2f} ({usec / calls:.2f} µs)"
                         for c, (calls, usec) in sorted(r["cmds"].items(), key=lambda kv: -kv[1][1]))
        print(f"| {r['build']} | {r['ops']} | {r['round'] + 1} | {r['req_per_s']:,.0f} | {cmds} | "
              f"{r['cmd_us_per_req']:.2f} | {r['proc_cpu_us_per_req']:.2f} |")
    print("\nMedians over rounds:\n\n| build | load | Redis command µs/req | redis-server CPU µs/req | n |\n|---|---|---|---|---|")
    for label, _ in builds:
        for ops in loads:
            rs = [r for r in results if r["build"] == label and r["ops"] == ops]
            if rs:
                print(f"| {label} | {ops} | {statistics.median(r['cmd_us_per_req'] for r in rs):.2f} | "
                      f"{statistics.median(r['proc_cpu_us_per_req'] for r in rs):.2f} | {len(rs)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
