#!/usr/bin/env python3
"""Compare our pyzord, Python pyzord 1.1.2 and the echo ceiling on this machine.

One run starts every server it measures (free ports, temporary home
directories), prefills each with the same digest pool, drives all of them
with the same loads from pyzor-bench in alternating (interleaved) rounds,
records the servers' CPU time from /proc/<pid>/stat, and writes a Markdown
report (default bench/RESULTS.md) plus the raw runs as JSON lines.

Suites:
  embedded  our pyzord (default engine, default durability), our pyzord with
            fsync durability, Python pyzord (gdbm), pyzor-bench echo.
  redis     our pyzord -e redis (db 13) and Python pyzord -e redis (db 14)
            on the same Redis, plus the echo ceiling.
  mysql     our pyzord -e mysql and Python pyzord -e mysql on one MariaDB
            database the script creates, plus the database's own ceiling
            (pyzor-bench sql-ceiling: one batch's statements, no UDP).
  postgres  our pyzord -e postgres on a PostgreSQL database the script
            creates, plus the database's own ceiling.
  memory    (--memory N) our pyzord prefilled with N digests through the
            server, then VmRSS/VmHWM of the server.

It stops only processes it started, flushes only Redis dbs 13/14 and only
when they are empty or carry its own marker key, drops only the MariaDB and
PostgreSQL databases it created, and bounds every step in time. See
docs/benchmarking.md.
"""

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK_TCK = os.sysconf("SC_CLK_TCK")
REDIS_MARKER = "pyzor-bench:owner"
SIGNED_USER = "bench"
SIGNED_KEY = "5f1d0e3c7a9b2468ace13579bdf02468ace13579"

STARTED = []  # Popen objects we started; only these are ever signalled
SKIPPED = []  # "what: why" lines, repeated in the report


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def skipped(what, why):
    log(f"SKIPPED: {what}: {why}")
    SKIPPED.append(f"{what}: {why.splitlines()[0] if why else ''}")


def die(msg):
    log("ERROR: " + msg)
    sys.exit(2)


# ---------------------------------------------------------------- processes

def stop_all():
    for p in STARTED:
        if p.poll() is None:
            p.terminate()
    deadline = time.time() + 5
    for p in STARTED:
        try:
            p.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    STARTED.clear()


def on_signal(signum, _frame):
    log(f"signal {signum}: stopping the servers this script started")
    stop_all()
    sys.exit(130)


def start(cmd, logpath):
    log("start: " + " ".join(shlex.quote(c) for c in cmd))
    out = open(logpath, "ab")
    p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    STARTED.append(p)
    return p


def stop(p):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if p in STARTED:
        STARTED.remove(p)


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_udp_ready(port, proc, timeout=20.0):
    """Send pings until something answers (any reply means the server reads)."""
    deadline = time.time() + timeout
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.2)
    try:
        while time.time() < deadline:
            if proc.poll() is not None:
                return False
            msg = (f"Op: ping\nThread: 1024\nPV: 2.1\nUser: anonymous\nTime: {int(time.time())}\n"
                   "Sig: 0000000000000000000000000000000000000000\n\n").encode()
            try:
                s.sendto(msg, ("127.0.0.1", port))
                s.recvfrom(8192)
                return True
            except (socket.timeout, ConnectionRefusedError):
                time.sleep(0.1)
        return False
    finally:
        s.close()


def proc_cpu_seconds(pid):
    """utime + stime of a process (all its threads) from /proc/<pid>/stat."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


def proc_status(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem", "Threads"):
                    out[k] = v.strip()
    except OSError:
        pass
    return out


def pid_of(name):
    """PIDs of processes named `name` (read-only: for CPU accounting)."""
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/comm") as f:
                    if f.read().strip() == name:
                        pids.append(int(d))
            except OSError:
                pass
    return pids


# ---------------------------------------------------------------- redis

def redis_cli(db, *args):
    r = subprocess.run(["redis-cli", "-n", str(db), *args], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        die(f"redis-cli -n {db} {' '.join(args)} failed: {r.stderr.strip()}")
    return r.stdout.strip()


def redis_claim(db):
    """Flush db only if it is empty or was left by this script."""
    size = int(redis_cli(db, "DBSIZE") or 0)
    if size and redis_cli(db, "EXISTS", REDIS_MARKER) != "1":
        die(f"redis db {db} holds {size} keys that pyzor-bench did not create; "
            f"empty it yourself or pick other dbs with --redis-dbs")
    redis_cli(db, "FLUSHDB")
    redis_cli(db, "SET", REDIS_MARKER, "bench/run.py")


def redis_release(db):
    if redis_cli(db, "EXISTS", REDIS_MARKER) == "1":
        redis_cli(db, "FLUSHDB")


# ---------------------------------------------------------------- mariadb

MYSQL_OWNED = []  # databases this run created (dropped at the end)
MYSQL_PASSWORD = "pyzor-bench"
MYSQL_SCHEMA = ("(digest char(40) default NULL, r_count int(11) default NULL, wl_count int(11) default NULL, "
                "r_entered datetime default NULL, wl_entered datetime default NULL, "
                "r_updated datetime default NULL, wl_updated datetime default NULL, PRIMARY KEY (digest))")


def mysql_root(sql):
    """Run SQL as root through the unix socket (the only way root logs in here)."""
    r = subprocess.run(["mysql", "-uroot", "-N", "-B", "-e", sql], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(r.stderr.strip())
    return r.stdout.strip()


def mysql_claim(db):
    """Create database `db` with tables digests_ours/digests_py/digests_base and a user `db`
    (password MYSQL_PASSWORD); refuse a database this script did not create."""
    exists = mysql_root(f"SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = '{db}'")
    if exists != "0":
        owned = mysql_root(f"SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '{db}' "
                           "AND table_name = 'pyzor_bench_owner'")
        if owned == "0":
            die(f"MariaDB database {db} exists and was not created by bench/run.py; pick another with --mysql-db")
        mysql_root(f"DROP DATABASE `{db}`")
    stmts = [f"CREATE DATABASE `{db}`", f"CREATE TABLE `{db}`.pyzor_bench_owner (x int)"]
    for t in ("digests_ours", "digests_py", "digests_base"):
        stmts.append(f"CREATE TABLE `{db}`.{t} {MYSQL_SCHEMA}")
    for host in ("localhost", "127.0.0.1"):
        stmts.append(f"CREATE USER IF NOT EXISTS '{db}'@'{host}' IDENTIFIED BY '{MYSQL_PASSWORD}'")
        stmts.append(f"GRANT ALL ON `{db}`.* TO '{db}'@'{host}'")
    mysql_root("; ".join(stmts))
    MYSQL_OWNED.append(db)


def mysql_release(db):
    if db in MYSQL_OWNED:
        try:
            mysql_root(f"DROP DATABASE IF EXISTS `{db}`; DROP USER IF EXISTS '{db}'@'localhost'; "
                       f"DROP USER IF EXISTS '{db}'@'127.0.0.1'")
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            log(f"WARNING: could not drop MariaDB database {db}: {e}")
        MYSQL_OWNED.remove(db)


# ---------------------------------------------------------------- postgresql

PG_OWNED = []  # databases this run created (dropped at the end)
PG_USER = "postgres"


def pg_admin(sql, db="postgres"):
    """Run SQL as PG_USER over TCP on 127.0.0.1 (trust authentication here)."""
    r = subprocess.run(["psql", "-h", "127.0.0.1", "-U", PG_USER, "-d", db, "-v", "ON_ERROR_STOP=1", "-A", "-t",
                        "-q", "-c", sql], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(r.stderr.strip())
    return r.stdout.strip()


def pg_claim(db):
    """Create database `db` with a marker table; refuse one this script did not create."""
    if pg_admin(f"SELECT COUNT(*) FROM pg_database WHERE datname = '{db}'") != "0":
        if pg_admin("SELECT COUNT(*) FROM pg_tables WHERE tablename = 'pyzor_bench_owner'", db) == "0":
            die(f"PostgreSQL database {db} exists and was not created by bench/run.py; pick another with --pg-db")
        pg_admin(f'DROP DATABASE "{db}"')
    pg_admin(f'CREATE DATABASE "{db}"')
    PG_OWNED.append(db)
    pg_admin("CREATE TABLE pyzor_bench_owner (x int)", db)


def pg_release(db):
    if db in PG_OWNED:
        try:
            pg_admin(f'DROP DATABASE IF EXISTS "{db}"')
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            log(f"WARNING: could not drop PostgreSQL database {db}: {e}")
        PG_OWNED.remove(db)


def durability_meaning(d):
    """What a 200 to a report means under the settings `d` (as durability_facts reads them)."""
    if "innodb_flush_log_at_trx_commit=1" in d:
        return ("every commit's redo log is written and flushed to disk before the commit returns: a 200 to a "
                "report means its row survives a crash of the machine")
    if "innodb_flush_log_at_trx_commit=2" in d:
        return ("the redo log is written to the OS at commit and flushed about once a second: a 200 survives a "
                "crash of mariadbd, not of the machine (up to about a second of reports lost)")
    if "innodb_flush_log_at_trx_commit=0" in d:
        return "the redo log is written and flushed about once a second: up to about a second of reports lost on any crash"
    if "fsync=off" in d:
        return "PostgreSQL does not flush at all: a crash of the machine can lose or corrupt data"
    if "synchronous_commit=on" in d or "synchronous_commit=remote" in d:
        return ("each commit's WAL is flushed to disk before the commit returns: a 200 to a report means its row "
                "survives a crash of the machine")
    if "synchronous_commit=local" in d:
        return "each commit's WAL is flushed to the local disk before the commit returns (no standby waited for)"
    if "synchronous_commit=off" in d:
        return ("commits return before their WAL is flushed: a crash of the machine can lose the last "
                "reports (up to 3 × wal_writer_delay), never corrupt the table")
    return "unknown"


def durability_facts(use_mysql, use_pg):
    """What a commit (and so a 200 to a report) means on the SQL servers measured."""
    out = {}
    if use_mysql:
        try:
            out["mariadb"] = "innodb_flush_log_at_trx_commit={} sync_binlog={} log_bin={} ({})".format(
                *mysql_root("SELECT @@innodb_flush_log_at_trx_commit, @@sync_binlog, @@log_bin, @@version").split("\t"))
        except (RuntimeError, subprocess.TimeoutExpired, TypeError, IndexError) as e:
            out["mariadb"] = f"unknown ({e})"
    if use_pg:
        try:
            out["postgresql"] = " ".join(
                f"{k}={pg_admin(f'SHOW {k}')}" for k in ("synchronous_commit", "fsync", "wal_sync_method")
            ) + f" ({pg_admin('SHOW server_version')})"
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            out["postgresql"] = f"unknown ({e})"
    return out


# ---------------------------------------------------------------- servers

class Server:
    def __init__(self, name, kind, cmd_fn, home, ready_timeout=30.0):
        self.name, self.kind, self.cmd_fn, self.home = name, kind, cmd_fn, home
        self.port = None
        self.proc = None
        self.ready_timeout = ready_timeout

    def start(self):
        self.port = free_udp_port()
        os.makedirs(self.home, exist_ok=True)
        self.proc = start(self.cmd_fn(self.port, self.home), os.path.join(self.home, "server.log"))
        if not wait_udp_ready(self.port, self.proc, self.ready_timeout):
            tail = ""
            try:
                with open(os.path.join(self.home, "server.log"), errors="replace") as f:
                    tail = f.read()[-2000:]
            except OSError:
                pass
            stop(self.proc)
            lines = [l for l in tail.splitlines() if l.strip()]
            raise RuntimeError(f"did not answer on port {self.port}; server log: "
                               f"{lines[0] if lines else '(empty)'}\n{tail}")

    def stop(self):
        if self.proc:
            stop(self.proc)


class Ceiling:
    """The database's own speed for one batch's statements: pyzor-bench
    sql-ceiling, run for the check and report loads (no process of its own)."""
    kind = "ceiling"

    def __init__(self, name, engine, dsn, table, pattern, conns, split=False):
        self.name, self.engine, self.dsn, self.table = name, engine, dsn, table
        # split: the connections share the load's window (each batch has
        # window / conns rows), so that as many rows are in flight as the
        # load generator keeps waiting on our pyzord
        self.pattern, self.conns, self.split = pattern, conns, split

    def call(self, bench_bin, extra, bound_s):
        """Run sql-ceiling; its JSON result or (None, why)."""
        return run_json([bench_bin, "sql-ceiling", "--engine", self.engine, "--dsn", self.dsn, "--table", self.table,
                         "--pattern", self.pattern, "--conns", str(self.conns), "--json", *extra], bound_s)

    def prefill(self, bench_bin, args):
        return self.call(bench_bin, ["--prefill", "only", "-P", str(args.pool)], 900)

    def run(self, bench_bin, load, args):
        """A load-shaped result (req/s = rows/s) or (None, why); the table was prefilled before."""
        if load["ops"] not in ("check", "report"):
            return None, "no ceiling for a mixed load"
        rows = max(1, load["window"] // self.conns) if self.split else load["window"]
        c, err = self.call(bench_bin, ["--prefill", "no", "--op", load["ops"], "-w", str(rows),
                                       "-P", str(args.pool), "-d", str(args.duration), "-W", str(args.warmup)],
                           args.duration + args.warmup + 120)
        if c is None:
            return None, err
        lat = c["batch_latency"]
        return {"req_per_s": c["rows_per_s"], "responses": c["rows"], "sent": c["rows"], "lost": 0,
                "latency": {"p50_ms": lat["p50_ms"], "p99_ms": lat["p99_ms"]},
                "check_hit_pct": 100.0 * c["check_hits"] / c["rows"] if load["ops"] == "check" and c["rows"] else None,
                "codes": {}, "stray": 0, "malformed": c["errors"], "ok": c["ok"],
                "durability": c["durability"], "first_error": c["first_error"]}, None


SOURCES = 1  # --sources, set in main()


def bench_load(bench_bin, port, extra, bound_s):
    return run_json([bench_bin, "load", "-p", str(port), "--json", "--sources", str(SOURCES), *extra], bound_s)


def run_json(cmd, bound_s):
    """Run a pyzor-bench command that prints JSON; (its last line parsed, None) or (None, why)."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=bound_s)
    except subprocess.TimeoutExpired:
        return None, "timeout"
    try:
        return json.loads(r.stdout.strip().splitlines()[-1]), None
    except (IndexError, json.JSONDecodeError):
        return None, f"exit {r.returncode}: {r.stderr.strip()[-500:]}"


# ---------------------------------------------------------------- machine

def machine_facts():
    facts = {"nproc": os.cpu_count(), "kernel": platform.release()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, val = line.partition(":")
                key = key.strip()
                if key in ("model name", "cpu family", "model") and key not in facts:
                    facts[key] = val.strip()
                if line.strip() == "":
                    break  # the first CPU is enough
        if "model name" in facts:
            facts["cpu"] = f"{facts.pop('model name')} (family {facts.pop('cpu family', '?')}, " \
                           f"model {facts.pop('model', '?')})"
    except OSError:
        pass
    # The kernel's mitigations make system calls and context switches dearer
    # on some CPUs; the UDP path of every server row pays them, a database
    # ceiling row much less.
    vuln = "/sys/devices/system/cpu/vulnerabilities"
    try:
        facts["mitigations"] = "; ".join(
            f"{n}: {open(os.path.join(vuln, n)).read().strip()}"
            for n in ("spectre_v2", "retbleed", "spec_rstack_overflow") if os.path.exists(os.path.join(vuln, n)))
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as f:
            facts["mem"] = f.readline().split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        facts["loadavg"] = open("/proc/loadavg").read().split()[:3]
    except OSError:
        pass
    for k in ("rmem_max", "rmem_default"):
        try:
            facts[k] = open(f"/proc/sys/net/core/{k}").read().strip()
        except OSError:
            pass
    try:
        facts["commit"] = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                         capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    return facts


def cpu_busy_sample(seconds=1.0):
    """Share of the machine's CPU that was busy over `seconds` (/proc/stat),
    or None where that cannot be read."""
    t0 = cpu_ticks()
    time.sleep(seconds)
    idle = idle_pct(t0, cpu_ticks())
    return None if idle is None else 100.0 - idle


# A run whose cores the hypervisor gave to someone else for this share of the
# time or more is listed as disturbed: on a shared VM one run in three lost
# 30 % or more of its CPU to steal, and halved its req/s.
STEAL_DISTURBED_PCT = 5.0


def cpu_ticks():
    """(all ticks, steal ticks, idle ticks) of the machine so far (/proc/stat's
    `cpu` line; idle counts iowait too), or None where there is no /proc/stat."""
    try:
        v = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return sum(v), (v[7] if len(v) > 7 else 0), v[3] + (v[4] if len(v) > 4 else 0)


def tick_share(t0, t1, i):
    """Share in % of the machine's CPU time between two cpu_ticks() that
    field `i` of them (1: steal, 2: idle) took, or None."""
    if t0 is None or t1 is None or t1[0] <= t0[0]:
        return None
    return 100.0 * (t1[i] - t0[i]) / (t1[0] - t0[0])


def idle_pct(t0, t1):
    """Share of the time that no process used the CPU, in %."""
    return tick_share(t0, t1, 2)


def steal_pct(t0, t1):
    """Share of the time that the hypervisor ran something else (steal), in %."""
    return tick_share(t0, t1, 1)


# ---------------------------------------------------------------- report

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, nd=0):
    if x is None:
        return "–"
    return f"{x:,.{nd}f}" if nd == 0 else f"{x:.{nd}f}"


# The Python configuration each of ours is compared with (same engine family).
PY_REF = {"ours-redis": "python-redis", "ours-mysql": "python-mysql", "ours-postgres": "python-mysql",
          "ours-mysql-base": "python-mysql", "ours-postgres-base": "python-mysql"}
# The ceiling each SQL configuration is compared with: the best of the
# ceiling-<db> rows of the same round that keep as many rows in flight as
# the load's window (ceiling-<db>-1c, ceiling-<db>-<n>x), since no server
# can have more requests in the database than the client has waiting.
# "<ceiling>-max" is the best of every ceiling row, also those with n
# windows in flight (ceiling-<db>-<n>c): what the database does with more
# load than the benchmark gives our pyzord.
CEILING_REF = {"ours-mysql": "ceiling-mysql", "ours-postgres": "ceiling-postgres",
               "ours-mysql-base": "ceiling-mysql", "ours-postgres-base": "ceiling-postgres"}


def ref_run(runs, name, load, rnd):
    """The run of `name` for `load` in round `rnd`. `name` "echo" means the
    ceiling: the echo configuration (any thread count) with the most req/s;
    "ceiling-<db>" likewise the best batch-pattern ceiling with one window
    in flight (ceiling-<db>-1c, ceiling-<db>-<n>x), "ceiling-<db>-max" the
    best of every batch-pattern ceiling (see CEILING_REF)."""
    def matches(config):
        if config == name:
            return True
        if name == "echo":
            return config.startswith("echo")
        if not name.startswith("ceiling-"):
            return False
        if name.endswith("-max"):
            base = name[:-len("-max")]
            return config.startswith(base + "-") and config[len(base) + 1:].rstrip("cx").isdigit()
        tail = config[len(name) + 1:] if config.startswith(name + "-") else ""
        return tail == "1c" or (tail.endswith("x") and tail[:-1].isdigit())
    cands = [x for x in runs if x["load"] == load and x["round"] == rnd and x.get("result") and matches(x["config"])]
    return max(cands, key=lambda x: x["result"]["req_per_s"], default=None)


def table(runs, configs, loads, ref_name, ceiling_name):
    lines = ["| server | load | window | req/s median (min–max) | p50 ms | p99 ms | lost / sent | check hit % "
             "| server CPU µs/req | × Python | % of echo | % of DB ceiling | n |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    by = {}
    for r in runs:
        by.setdefault((r["config"], r["load"]), []).append(r)
    for load in loads:
        for c in configs:
            rs = [r for r in by.get((c, load["name"]), []) if r.get("result")]
            if not rs:
                continue
            res = [r["result"] for r in rs]
            rps = [x["req_per_s"] for x in res]
            cpu = [r.get("server_cpu_us_per_req") for r in rs]
            hits = [x.get("check_hit_pct") for x in res]
            ratios_py, ratios_ceil, ratios_db = [], [], []
            for r in rs:
                py_ref = PY_REF.get(c, ref_name)
                echo_ref = None if c.startswith("ceiling") else ceiling_name  # rows/s vs req/s: no ratio
                for other, acc in ((py_ref, ratios_py), (echo_ref, ratios_ceil), (CEILING_REF.get(c), ratios_db)):
                    if other is None:
                        continue
                    o = ref_run(runs, other, load["name"], r["round"])
                    if o and o["result"]["req_per_s"] > 0:
                        acc.append(r["result"]["req_per_s"] / o["result"]["req_per_s"])
            lines.append("| {} | {} | {} | {} ({}–{}) | {} | {} | {} / {} | {} | {} | {} | {} | {} | {} |".format(
                c, load["ops"], load["window"], fmt(med(rps)), fmt(min(rps)), fmt(max(rps)),
                fmt(med([x["latency"]["p50_ms"] for x in res]), 3),
                fmt(med([x["latency"]["p99_ms"] for x in res]), 3),
                sum(x["lost"] for x in res), sum(x["sent"] for x in res),
                fmt(med(hits), 1) if med(hits) is not None else "–",
                fmt(med(cpu), 1),
                "" if c.startswith(("python", "ceiling")) else (fmt(med(ratios_py), 1) if ratios_py else "–"),
                fmt(100 * med(ratios_ceil), 0) if ratios_ceil else "–",
                fmt(100 * med(ratios_db), 0) if ratios_db else "",
                len(rs)))
    return "\n".join(lines)


def calm(run):
    """Whether a run kept its cores: it lost less than STEAL_DISTURBED_PCT to steal."""
    return (run.get("steal_pct") or 0) < STEAL_DISTURBED_PCT


def same_round_ratio(runs, a, b, load, key=lambda r: r["result"]["req_per_s"]):
    """Median over rounds of key(a) / key(b) for one load."""
    return med(round_ratios(runs, a, b, load, key))


def round_ratios(runs, a, b, load, key=lambda r: r["result"]["req_per_s"], calm_only=False):
    """The same-round ratios key(a) / key(b) of one load, one per round; with
    `calm_only` only those of the rounds where neither run lost its cores to
    steal (a ratio assumes both runs of a round had the same machine)."""
    out = []
    for r in runs:
        if r["config"] != a or r["load"] != load or not r.get("result"):
            continue
        o = ref_run(runs, b, load, r["round"])
        if calm_only and (not calm(r) or (o and not calm(o))):
            continue
        if o and key(o):
            out.append(key(r) / key(o))
    return out


def targets(runs):
    """Issue #6 targets, evaluated on this run's medians (None: not measured)."""
    def m(config, load, key):
        return med([key(r) for r in runs if r["config"] == config and r["load"] == load and r.get("result")])
    rps = lambda r: r["result"]["req_per_s"]
    p99 = lambda r: r["result"]["latency"]["p99_ms"]
    cpu = lambda r: r.get("server_cpu_us_per_req")
    rows = [
        ("check w64 ≥ 70 % of echo", ("ours", "echo", "check w64"), 0.70, ">=", "{:.0%}"),
        ("check w64 ≥ 30× Python (gdbm)", ("ours", "python-gdbm", "check w64"), 30, ">=", "{:.1f}×"),
        ("check w64 server CPU ≤ 3 µs/req", m("ours", "check w64", cpu), 3.0, "<=", "{:.2f} µs"),
        ("report w64 (default durability) ≥ 50 % of echo", ("ours", "echo", "report w64"), 0.50, ">=", "{:.0%}"),
        ("report w64 fsync ≥ 20,000/s", m("ours-fsync", "report w64", rps), 20000, ">=", "{:,.0f}/s"),
        ("check w1 p99 ≤ 2× echo's", ("ours", "echo", "check w1", p99), 2.0, "<=", "{:.2f}×"),
        ("redis check w64 ≥ 10× Python redis", ("ours-redis", "python-redis", "check w64"), 10, ">=", "{:.1f}×"),
        ("redis report w64 ≥ 10× Python redis", ("ours-redis", "python-redis", "report w64"), 10, ">=", "{:.1f}×"),
        ("redis mix w64 ≥ 10× Python redis", ("ours-redis", "python-redis", "check:90,report:10 w64"), 10, ">=", "{:.1f}×"),
    ]
    # Issue #13: each SQL engine against its database's own ceiling (same
    # batch shape, no UDP) and against Python pyzord's mysql engine.
    for ours, ceiling in CEILING_REF.items():
        db = ours.split("-", 1)[1]
        for load in ("report w64", "check w64"):
            op = load.split()[0]
            # The issue's own ceiling: its statements at its batch shape, 64
            # digests per statement from one client (ceiling-<db>-1c).
            rows.append((f"{db} {op} w64 ≥ 60 % of the {db} ceiling at the issue's batch shape, "
                         "64 rows per statement, one connection (#13)",
                         (ours, ceiling + "-1c", load), 0.60, ">=", "{:.0%}"))
            rows.append((f"{db} {op} w64 ≥ 60 % of the {db} ceiling, 64 rows in flight (#13)",
                         (ours, ceiling, load), 0.60, ">=", "{:.0%}"))
            rows.append((f"{db} {op} w64 ≥ 60 % of the best {db} ceiling, up to 4 × 64 rows in flight (#13)",
                         (ours, ceiling + "-max", load), 0.60, ">=", "{:.0%}"))
            rows.append((f"{db} {op} w64 ≥ 20× Python mysql (#13)",
                         (ours, "python-mysql", load), 20, ">=", "{:.1f}×"))
    lines = ["| target (issue) | measured | verdict | rounds without steal |", "|---|---|---|---|"]
    for name, what, goal, op, f in rows:
        if isinstance(what, tuple):
            # a same-round ratio: also over the rounds that kept their cores
            every = round_ratios(runs, *what)
            quiet = round_ratios(runs, *what, calm_only=True)
            val = med(every)
            calm_col = f"{f.format(med(quiet))} ({len(quiet)} of {len(every)})" if quiet else "none"
        else:
            val, calm_col = what, ""
        if val is None:
            continue  # its configurations were not part of this run
        ok = val >= goal if op == ">=" else val <= goal
        lines.append(f"| {name} | {f.format(val)} | {'met' if ok else 'NOT met'} | {calm_col} |")
    return "\n".join(lines)


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", choices=["embedded", "redis", "mysql", "postgres", "all"], nargs="+", default=["all"],
                    help="one or more suites (e.g. --suite mysql postgres)")
    ap.add_argument("--mysql-db", default="pyzor_bench_rs",
                    help="MariaDB database (and user) the mysql suite creates through root's unix socket")
    ap.add_argument("--pg-db", default="pyzor_bench_rs",
                    help="PostgreSQL database the postgres suite creates (as user postgres over 127.0.0.1)")
    ap.add_argument("--ceiling-conns", default="1,4",
                    help="connections of the sql-ceiling rows (batch pattern), each with a whole window per batch "
                         "(ceiling-<db>-<n>c); the ceiling is the best of them "
                         "each round ('' for none)")
    ap.add_argument("--ceiling-split", default="2,4",
                    help="connections of the sql-ceiling rows that share one window (ceiling-<db>-<n>x: batches of "
                         "window/n rows, one window in flight, as under our pyzord)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=8.0, help="measured seconds per run")
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--pool", type=int, default=100_000, help="digests prefilled and then checked/reported")
    ap.add_argument("--windows", default="1,64")
    ap.add_argument("--loads", default="check;report;check:90,report:10",
                    help="loads separated by ';', each a pyzor-bench op mix")
    ap.add_argument("--gen-threads", type=int, default=2, help="pyzor-bench threads for window > 1")
    ap.add_argument("--sources", type=int, default=16,
                    help="source networks of the load generator (pyzor-bench --sources: sockets bound to "
                         "127.0.k.1, one /24 each), as a real server's clients come from many networks; "
                         "1 = every request from 127.0.0.1")
    ap.add_argument("--baseline-pyzord", metavar="PATH",
                    help="another build of our pyzord (e.g. of an earlier commit), run as 'ours-base' with the "
                         "arguments of 'ours' (and as ours-mysql-base / ours-postgres-base on a table of "
                         "their own), for a before/after comparison in one run")
    ap.add_argument("--echo-threads", default="1,2",
                    help="echo responders to run (thread counts); the ceiling is the best of them each round")
    ap.add_argument("--ref-venv", default=os.environ.get("PYZOR_REF_VENV", os.path.join(ROOT, "target", "ref-venv")),
                    help="reference Pyzor 1.1.2 virtualenv (default: $PYZOR_REF_VENV, else target/ref-venv "
                         "of this checkout, as scripts/setup-ref-env builds it)")
    ap.add_argument("--ours-args", default="", help="extra arguments for every run of our pyzord")
    ap.add_argument("--fsync-args", default="--durability fsync",
                    help="arguments that select fsync durability on our pyzord (docs/server.md)")
    ap.add_argument("--redis-dbs", default="13,14", help="ours,python")
    ap.add_argument("--skip-build", action="store_true")
    ap.add_argument("--only", nargs="*", help="run only these configuration names")
    ap.add_argument("--memory", type=int, metavar="N", help="memory mode: prefill N digests into our pyzord")
    ap.add_argument("--out", default=None, help="Markdown report (default bench/RESULTS.md or RESULTS-memory.md)")
    ap.add_argument("--label", default="", help="text put at the top of the report (e.g. PRELIMINARY)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary homes, databases and server logs")
    ap.add_argument("--max-minutes", type=float, default=120.0, help="abort the whole run after this long")
    args = ap.parse_args()
    command_line = "python3 bench/run.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    global SOURCES
    if not 1 <= args.sources <= 254:
        die("--sources must be 1 … 254")
    SOURCES = args.sources
    if args.baseline_pyzord and not os.path.isfile(args.baseline_pyzord):
        die(f"--baseline-pyzord {args.baseline_pyzord}: no such file")

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGALRM, on_signal)
    signal.alarm(int(args.max_minutes * 60))

    release = os.path.join(ROOT, "target", "release")
    if not args.skip_build:
        log("building release binaries (cargo build --release -p pyzor-bench -p pyzor-server)")
        r = subprocess.run(["cargo", "build", "--release", "-p", "pyzor-bench", "-p", "pyzor-server"], cwd=ROOT)
        if r.returncode != 0:
            die("cargo build --release failed")
    bench_bin = os.path.join(release, "pyzor-bench")
    pyzord = os.path.join(release, "pyzord")
    ref_pyzord = os.path.join(args.ref_venv, "bin", "pyzord")
    if not os.path.isfile(bench_bin):
        die(f"{bench_bin} missing; build with cargo build --release -p pyzor-bench")
    have_ours = os.path.isfile(pyzord)
    have_ref = os.path.isfile(ref_pyzord)
    if not have_ours:
        skipped("our pyzord", f"{os.path.relpath(pyzord, ROOT)} missing (cargo build --release -p pyzor-server)")
    if not have_ref:
        # Relative to the checkout: the results file is committed.
        skipped("Python pyzord", f"{os.path.relpath(ref_pyzord, ROOT)} missing (scripts/setup-ref-env or --ref-venv)")

    tmp = tempfile.mkdtemp(prefix="pyzor-bench-run.")
    log(f"homes and logs in {tmp}")
    ours_extra = shlex.split(args.ours_args)
    try:
        if args.memory:
            return memory_mode(args, bench_bin, pyzord, tmp, ours_extra, command_line)
        return matrix_mode(args, bench_bin, pyzord, ref_pyzord, have_ours, have_ref, tmp, ours_extra,
                           command_line)
    finally:
        stop_all()
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        if MYSQL_OWNED:
            mysql_release(args.mysql_db)
        if PG_OWNED:
            pg_release(args.pg_db)
        if suite(args, "redis") and not args.memory and shutil.which("redis-cli"):
            for db in args.redis_dbs.split(","):
                try:
                    redis_release(int(db))
                except SystemExit:
                    pass


def suite(args, name):
    """Whether --suite selects `name` (directly or through all)."""
    return name in args.suite or "all" in args.suite


def use_sql_suite(args, name, present, claim, db):
    """Whether SQL suite `name` runs: selected, its server and client present
    (`present()`), and database `db` created by `claim` — else SKIPPED."""
    if not suite(args, name):
        return False
    if not present():
        skipped(f"{name} suite", "database server or its command-line client not found")
        return False
    try:
        claim(db)
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        skipped(f"{name} suite", f"cannot create database {db}: {e}")
        return False
    return True


def ours_cmd(pyzord, extra):
    return lambda port, home: [pyzord, "--homedir", home, "-a", "127.0.0.1", "-p", str(port), *extra]


def ref_cmd(ref_pyzord, extra):
    return lambda port, home: [ref_pyzord, "--homedir", home, "-a", "127.0.0.1", "-p", str(port), *extra]


def matrix_mode(args, bench_bin, pyzord, ref_pyzord, have_ours, have_ref, tmp, ours_extra, command_line):
    db_ours, db_py = (int(x) for x in args.redis_dbs.split(","))
    servers = []

    def ours_engine(name, engine, dsn):
        return Server(name, "ours", ours_cmd(pyzord, ours_extra + ["-e", engine, "--dsn", dsn]), f"{tmp}/{name}")

    def base_engine(name, engine, dsn):
        # --baseline-pyzord on the same engine, in its own table: a before/after in one run
        base = os.path.abspath(args.baseline_pyzord)
        return Server(name, "ours", ours_cmd(base, ours_extra + ["-e", engine, "--dsn", dsn]), f"{tmp}/{name}")

    if suite(args, "embedded"):
        if have_ours:
            servers.append(Server("ours", "ours", ours_cmd(pyzord, ours_extra), f"{tmp}/ours"))
            if args.baseline_pyzord:
                servers.append(Server("ours-base", "ours", ours_cmd(os.path.abspath(args.baseline_pyzord), ours_extra),
                                      f"{tmp}/ours-base"))
            servers.append(Server("ours-fsync", "ours",
                                  ours_cmd(pyzord, ours_extra + shlex.split(args.fsync_args)), f"{tmp}/ours-fsync"))
        if have_ref:
            servers.append(Server("python-gdbm", "python", ref_cmd(ref_pyzord, []), f"{tmp}/python-gdbm"))
    use_redis = suite(args, "redis")
    if use_redis:
        if not shutil.which("redis-cli") or not pid_of("redis-server"):
            skipped("redis suite", "redis-server/redis-cli not found")
            use_redis = False
    if use_redis:
        redis_claim(db_ours)
        redis_claim(db_py)
        if have_ours:
            servers.append(ours_engine("ours-redis", "redis", f"127.0.0.1,6379,,{db_ours}"))
        if have_ref:
            servers.append(Server("python-redis", "python", ref_cmd(
                ref_pyzord, ["-e", "redis", "--dsn", f"127.0.0.1,6379,,{db_py}"]), f"{tmp}/python-redis"))
    use_mysql = use_sql_suite(args, "mysql", lambda: shutil.which("mysql") and pid_of("mariadbd") + pid_of("mysqld"),
                              mysql_claim, args.mysql_db)
    if use_mysql:
        db = args.mysql_db
        if have_ours:
            servers.append(ours_engine("ours-mysql", "mysql", f"127.0.0.1,{db},{MYSQL_PASSWORD},{db},digests_ours"))
            if args.baseline_pyzord:
                servers.append(base_engine("ours-mysql-base", "mysql",
                                           f"127.0.0.1,{db},{MYSQL_PASSWORD},{db},digests_base"))
        if have_ref:
            # The reference's best MySQL configuration in docs/performance.md.
            servers.append(Server("python-mysql", "python", ref_cmd(
                ref_pyzord, ["-e", "mysql", "--dsn", f"127.0.0.1,{db},{MYSQL_PASSWORD},{db},digests_py",
                             "--threads", "True", "--db-connections", "4"]), f"{tmp}/python-mysql"))
        url = f"mysql://{db}:{MYSQL_PASSWORD}@127.0.0.1:3306/{db}"
        servers += ceilings("mysql", url, args)
    use_pg = use_sql_suite(args, "postgres", lambda: shutil.which("psql") and pid_of("postgres"), pg_claim, args.pg_db)
    if use_pg:
        db = args.pg_db
        if have_ours:
            servers.append(ours_engine("ours-postgres", "postgres", f"127.0.0.1:5432,{PG_USER},,{db},digests_ours"))
            if args.baseline_pyzord:
                servers.append(base_engine("ours-postgres-base", "postgres",
                                           f"127.0.0.1:5432,{PG_USER},,{db},digests_base"))
        servers += ceilings("postgres", f"host=127.0.0.1 port=5432 user={PG_USER} dbname={db}", args)
    for t in (int(x) for x in args.echo_threads.split(",") if x.strip()):
        servers.append(Server(f"echo-{t}t", "echo", lambda port, home, t=t: [
            bench_bin, "echo", "-a", "127.0.0.1", "-p", str(port), "-T", str(t),
            "-d", str(int(args.max_minutes * 60))], f"{tmp}/echo-{t}t"))
    if args.only:
        servers = [s for s in servers if s.name in args.only or (s.kind == "echo" and "echo" in args.only)]

    loads = []
    for ops in (x.strip() for x in args.loads.split(";")):
        if not ops:
            continue
        for w in (int(x) for x in args.windows.split(",")):
            loads.append({"name": f"{ops} w{w}", "ops": ops, "window": w})
    loads.sort(key=lambda l: (l["window"], l["ops"]))

    started = []
    for s in servers:
        if s.kind == "ceiling":
            started.append(s)
            continue
        try:
            s.start()
            started.append(s)
        except RuntimeError as e:
            skipped(s.name, str(e))
    servers = started
    prefill = {}
    for s in servers:
        if s.kind == "ceiling" and (s.engine, s.table) not in prefill:
            log(f"prefill {s.engine} table {s.table}: {args.pool} digests (sql-ceiling --prefill only)")
            res, err = s.prefill(bench_bin, args)
            if res is None or not res["ok"]:
                log(f"WARNING: prefill of {s.engine} {s.table} failed: {err or res}")
            prefill[(s.engine, s.table)] = None
        if s.kind in ("echo", "ceiling"):
            continue
        log(f"prefill {s.name}: report {args.pool} digests (seq, w64)")
        cpu0 = proc_cpu_seconds(s.proc.pid)
        res, err = bench_load(bench_bin, s.port, ["-o", "report", "-m", "seq", "-P", str(args.pool), "-w", "64",
                                                  "-W", "0", "-d", "900", "-t", "5000"], 960)
        cpu1 = proc_cpu_seconds(s.proc.pid)
        if res is None or res["responses"] != args.pool:
            log(f"WARNING: prefill of {s.name} incomplete: {err or res}")
        prefill[s.name] = {"result": res, "error": err,
                           "server_cpu_s": None if cpu0 is None or cpu1 is None else cpu1 - cpu0}

    runs = []
    out = args.out or os.path.join(ROOT, "bench", "RESULTS.md")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    jsonl = os.path.splitext(out)[0] + ".jsonl"
    open(jsonl, "w").close()
    t_start = datetime.datetime.now().astimezone()
    busy_before = cpu_busy_sample(1.0)
    ticks_start = cpu_ticks()
    for rnd in range(args.rounds):
        for load in loads:
            order = servers[rnd % max(1, len(servers)):] + servers[:rnd % max(1, len(servers))]
            for s in order:
                if s.kind == "ceiling":
                    run_ceiling(s, bench_bin, load, args, rnd, runs, jsonl, db_pids_of(s.name, use_redis, use_mysql))
                    continue
                if s.proc.poll() is not None:
                    log(f"{s.name} has exited (status {s.proc.returncode}); skipping")
                    continue
                extra = ["-o", load["ops"], "-w", str(load["window"]), "-m", "pool", "-P", str(args.pool),
                         "-d", str(args.duration), "-W", str(args.warmup), "-t", "2000"]
                if load["window"] > 1 and args.gen_threads > 1:
                    extra += ["-T", str(args.gen_threads)]
                cpu0 = proc_cpu_seconds(s.proc.pid)
                db_pids = db_pids_of(s.name, use_redis, use_mysql)
                rcpu0 = cpu_by_pid(db_pids)
                ticks0 = cpu_ticks()
                res, err = bench_load(bench_bin, s.port, extra, args.duration + args.warmup + 30)
                ticks1 = cpu_ticks()
                cpu1 = proc_cpu_seconds(s.proc.pid)
                rcpu1 = cpu_by_pid(db_pids)
                rec = {"round": rnd, "config": s.name, "load": load["name"], "result": res, "error": err,
                       "steal_pct": steal_pct(ticks0, ticks1), "idle_pct": idle_pct(ticks0, ticks1)}
                # The whole run's requests (warm-up included) drove the CPU.
                total = res["responses"] * (1 + args.warmup / args.duration) if res else 0
                if total and res.get("generator_cpu_s") is not None:
                    rec["gen_cpu_us_per_req"] = res["generator_cpu_s"] * 1e6 / total
                if total and cpu0 is not None and cpu1 is not None:
                    rec["server_cpu_us_per_req"] = (cpu1 - cpu0) * 1e6 / total
                    if db_pids:
                        rec["db_cpu_us_per_req"] = cpu_delta(rcpu0, rcpu1) * 1e6 / total
                runs.append(rec)
                with open(jsonl, "a") as f:
                    f.write(json.dumps(rec) + "\n")
                if res:
                    log(f"round {rnd + 1}/{args.rounds} {s.name:<13} {load['name']:<24} {res['req_per_s']:>10,.0f} req/s "
                        f"p50 {res['latency']['p50_ms']:.3f} p99 {res['latency']['p99_ms']:.3f} ms lost {res['lost']} "
                        f"cpu {rec.get('server_cpu_us_per_req', 0):.1f} us/req{steal_note(rec)}")
                else:
                    log(f"round {rnd + 1} {s.name} {load['name']}: FAILED {err}")
    steal_all = steal_pct(ticks_start, cpu_ticks())
    busy_after = cpu_busy_sample(1.0)
    status = {s.name: proc_status(s.proc.pid) for s in servers if s.kind != "ceiling"}
    for s in servers:
        if s.kind != "ceiling":
            s.stop()

    facts = machine_facts()
    facts["durability"] = durability_facts(use_mysql, use_pg)
    names = [s.name for s in servers]
    with open(out, "w") as f:
        f.write("# pyzord benchmark results\n\n")
        if args.label:
            f.write(f"**{args.label}**\n\n")
        f.write(f"Generated by `{command_line}` on {t_start:%Y-%m-%d %H:%M %Z} "
                f"(finished {datetime.datetime.now():%H:%M}), commit {facts.get('commit', '?')}.\n\n")
        f.write("## Machine\n\n")
        f.write(f"* {facts.get('nproc')} CPUs: {facts.get('cpu', '?')}; {facts.get('mem', '?')} RAM; "
                f"kernel {facts.get('kernel')}\n")
        if facts.get("mitigations"):
            f.write(f"* kernel mitigations that tax system calls: {facts['mitigations']}\n")
        f.write(f"* net.core.rmem_max {facts.get('rmem_max')}, rmem_default {facts.get('rmem_default')}\n")
        for dbname, d in facts["durability"].items():
            f.write(f"* {dbname} durability: {d} — {durability_meaning(d)}\n")
        f.write(f"* load average at the end {' '.join(facts.get('loadavg', []))}; machine CPU busy "
                f"{fmt(busy_before)} % (1 s before the rounds, servers idle) and {fmt(busy_after)} % after — "
                "anything well above 0 % means other tenants shared the cores\n")
        f.write(f"* steal (CPU time the hypervisor gave to other guests, /proc/stat) over all rounds: "
                f"{fmt(steal_all, 1)} %; runs with {STEAL_DISTURBED_PCT:g} % or more are listed under "
                "\"Disturbed runs\" (they are kept in the medians; compare a row's min–max with them)\n")
        f.write(f"* load generator: pyzor-bench on the same machine, {args.gen_threads} thread(s) for windows > 1, "
                f"sockets bound to {args.sources} source network(s) (127.0.k.1, `--sources`); "
                f"echo responders with {args.echo_threads} thread(s); \"% of echo\" uses the best echo of each round\n\n")
        f.write("## Method\n\n")
        f.write(f"Each server was prefilled with the same {args.pool:,} digests (report, `-m seq`), then every "
                f"load ran {args.rounds} round(s) of {args.duration:g} s (+{args.warmup:g} s warm-up), servers "
                "interleaved and rotated each round. Checks and reports draw uniformly from the prefilled pool, so "
                "check hit % must be 100 (echo answers Count 0). Server CPU µs/req = (utime+stime of the server "
                "process from /proc/<pid>/stat after − before) ÷ requests of the run including warm-up. "
                "× Python and % of echo are medians over rounds of the same-round ratio of req/s; "
                "× Python compares ours-redis with python-redis, ours-mysql with python-mysql and every other row with python-gdbm; "
                "% of echo divides by the best echo responder of the same round. "
                "The ceiling-<db>-<n>c rows are `pyzor-bench sql-ceiling` on <n> connections, each with a whole "
                "window per batch (n windows of rows in flight): the statements of "
                "one batch (one multi-row upsert in one commit, or one multi-row read) straight against the "
                "database, no UDP, pyzord or Python in between; req/s there is rows/s and p50/p99 are per batch. "
                "The ceiling-<db>-<n>x rows share one window over <n> connections (batches of window/n rows): "
                "as many rows in flight as the load generator keeps waiting on a server. "
                "ceiling-<db>-per-digest does one statement per digest (reports: one commit per batch). "
                "% of DB ceiling divides ours-<db> by the best of ceiling-<db>-1c and ceiling-<db>-<n>x of the same "
                "round (one window in flight: no server can have more of the client's requests in the database); "
                "the targets give first the ratio to ceiling-<db>-1c, the batch shape issue #13 measured its "
                "ceiling with (64 digests per statement, one client), then to the best of 1c and the nx rows, "
                "and to the best of every ceiling row. The ceiling rows use the CPU "
                "of the database and a small client only; the ours rows share the same cores with the load "
                "generator and pyzord (see the CPU columns).\n\n")
        if SKIPPED:
            f.write("## Skipped\n\n" + "".join(f"* {x}\n" for x in SKIPPED) + "\n")
        f.write("## Targets\n\n(Targets whose configurations were not part of this run are left out.)\n\n"
                + targets(runs) + "\n\n")
        f.write("## Results\n\n")
        f.write(table(runs, names, loads, "python-gdbm", "echo") + "\n\n")
        rrows = {}
        for r in runs:
            if r.get("db_cpu_us_per_req") is not None:
                rrows.setdefault((r["config"], r["load"]), []).append(r["db_cpu_us_per_req"])
        if rrows:
            f.write("Database server CPU µs per request (redis-server for the redis rows, mariadbd for the mysql "
                    "rows, the postgres processes for ours-postgres; each the processes present both before and "
                    "after the run, all such processes on the machine, so other tenants' use is included; none for "
                    "ceiling-postgres, whose backends end with each run):\n\n"
                    "| server | load | database CPU µs/req |\n|---|---|---|\n")
            for (c, l), v in sorted(rrows.items(), key=lambda kv: (kv[0][1], kv[0][0])):
                f.write(f"| {c} | {l} | {statistics.median(v):.1f} |\n")
            f.write("\n")
        f.write(cpu_budget_section(runs))
        f.write("## Prefill (report of never-seen digests, window 64)\n\n| server | req/s | server CPU µs/req | lost |\n|---|---|---|---|\n")
        for n, p in prefill.items():
            if p is None:
                continue  # a ceiling table
            r = p["result"]
            if r:
                cpu = p["server_cpu_s"]
                f.write(f"| {n} | {r['req_per_s']:,.0f} | {fmt(cpu * 1e6 / max(1, r['responses']) if cpu is not None else None, 1)} | {r['lost']} |\n")
            else:
                f.write(f"| {n} | failed: {p['error']} | | |\n")
        f.write("\n## Server memory at the end\n\n| server | VmRSS | VmHWM | RssAnon | RssFile | threads |\n|---|---|---|---|---|---|\n")
        for n, st in status.items():
            f.write(f"| {n} | {st.get('VmRSS', '–')} | {st.get('VmHWM', '–')} | {st.get('RssAnon', '–')} | "
                    f"{st.get('RssFile', '–')} | {st.get('Threads', '–')} |\n")
        f.write(disturbed_section(runs))
        bad = [r for r in runs if not r.get("result") or not r["result"].get("ok")]
        f.write(f"\nRuns: {len(runs)}; runs not OK (no answer, stray/malformed answers, unexpected codes): {len(bad)}. "
                f"Raw runs: `{os.path.relpath(jsonl, ROOT)}`.\n")
        for r in bad:
            x = r.get("result")
            what = (f"codes {x['codes']}, lost {x['lost']}, stray {x['stray']}, malformed {x['malformed']}"
                    if x else f"failed: {r.get('error')}")
            f.write(f"* round {r['round'] + 1}, {r['config']}, {r['load']}: {what}\n")
    log(f"wrote {out}")
    return 0


def cpu_budget_section(runs):
    """Where the machine's CPU went in the runs of each server row: server,
    database, load generator (µs per request) and the machine's idle and
    steal shares, medians over rounds. On a machine whose cores the three
    share, these show what bounds a row, and what a row's ratio to a
    ceiling (which pays no UDP) can reach."""
    by = {}
    for r in runs:
        if r.get("result") and r.get("server_cpu_us_per_req") is not None:
            by.setdefault((r["config"], r["load"]), []).append(r)
    if not by:
        return ""
    out = ("## Where the CPU went\n\nMedians over rounds: CPU µs per request of the server, the database server "
           "(as above; – where not measured) and the load generator; the machine's idle and steal shares during "
           "the run. The three processes share the machine's cores, so at a given req/s their sum and the idle "
           "share fill the cores.\n\n| server | load | req/s | server | database | generator | idle % | steal % |\n"
           "|---|---|---|---|---|---|---|---|\n")
    for (c, l), rs in sorted(by.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        m = lambda k: med([r.get(k) for r in rs])
        out += (f"| {c} | {l} | {fmt(med([r['result']['req_per_s'] for r in rs]))} | {fmt(m('server_cpu_us_per_req'), 1)} "
                f"| {fmt(m('db_cpu_us_per_req'), 1)} | {fmt(m('gen_cpu_us_per_req'), 1)} | {fmt(m('idle_pct'), 0)} "
                f"| {fmt(m('steal_pct'), 0)} |\n")
    return out + "\n"


def disturbed_section(runs):
    """The runs that lost STEAL_DISTURBED_PCT or more of the machine's CPU to steal."""
    hit = [r for r in runs if not calm(r)]
    out = "\n## Disturbed runs\n\n"
    if not hit:
        return out + f"None: no run lost {STEAL_DISTURBED_PCT:g} % or more of the CPU to steal.\n"
    out += ("The hypervisor ran other guests on these runs' cores (steal); their req/s understate what the "
            "machine does alone.\n\n| round | server | load | req/s | steal % |\n|---|---|---|---|---|\n")
    for r in hit:
        rps = r["result"]["req_per_s"] if r.get("result") else None
        out += f"| {r['round'] + 1} | {r['config']} | {r['load']} | {fmt(rps)} | {r['steal_pct']:.0f} |\n"
    return out


def ceilings(engine, dsn, args):
    """The sql-ceiling rows of one database: batch pattern on each of
    --ceiling-conns connections, and the per-digest pattern on one."""
    out = [Ceiling(f"ceiling-{engine}-{n}c", engine, dsn, "ceiling_digests", "batch", n)
           for n in (int(x) for x in args.ceiling_conns.split(",") if x.strip())]
    out += [Ceiling(f"ceiling-{engine}-{n}x", engine, dsn, "ceiling_digests", "batch", n, split=True)
            for n in (int(x) for x in args.ceiling_split.split(",") if x.strip())]
    if out:
        out.append(Ceiling(f"ceiling-{engine}-per-digest", engine, dsn, "ceiling_digests", "per-digest", 1))
    return out


def db_pids_of(name, use_redis, use_mysql):
    """The database server processes whose CPU a configuration's run drives.
    Not for ceiling-postgres: its backends start and end with each
    sql-ceiling run, so their CPU cannot be read from outside."""
    name = name.removesuffix("-base")
    if name.endswith("redis") and use_redis:
        return pid_of("redis-server")
    if (name.endswith("mysql") or name.startswith("ceiling-mysql")) and use_mysql:
        return pid_of("mariadbd") + pid_of("mysqld")
    if name.endswith("postgres"):
        return pid_of("postgres")
    return []


def cpu_by_pid(pids):
    return {p: c for p, c in ((p, proc_cpu_seconds(p)) for p in pids) if c is not None}


def cpu_delta(before, after):
    """CPU seconds used between two cpu_by_pid readings by the processes
    present in both (one that ended in between, e.g. another tenant's
    backend, would otherwise make the figure negative)."""
    return sum(after[p] - before[p] for p in before.keys() & after.keys())


def steal_note(rec):
    """`, steal N %` for a log line when the run lost CPU to the hypervisor."""
    p = rec.get("steal_pct")
    return f", steal {p:.0f} %" if p is not None and p >= 0.5 else ""


def run_ceiling(c, bench_bin, load, args, rnd, runs, jsonl, db_pids):
    if load["ops"] not in ("check", "report"):
        return
    rcpu0 = cpu_by_pid(db_pids)
    ticks0 = cpu_ticks()
    res, err = c.run(bench_bin, load, args)
    ticks1 = cpu_ticks()
    rcpu1 = cpu_by_pid(db_pids)
    rec = {"round": rnd, "config": c.name, "load": load["name"], "result": res, "error": err,
           "steal_pct": steal_pct(ticks0, ticks1), "idle_pct": idle_pct(ticks0, ticks1)}
    if res and res["responses"] and db_pids:
        rec["db_cpu_us_per_req"] = cpu_delta(rcpu0, rcpu1) * 1e6 / (res["responses"] * (1 + args.warmup / args.duration))
    runs.append(rec)
    with open(jsonl, "a") as f:
        f.write(json.dumps(rec) + "\n")
    if res:
        log(f"round {rnd + 1}/{args.rounds} {c.name:<13} {load['name']:<24} {res['req_per_s']:>10,.0f} rows/s "
            f"batch p50 {res['latency']['p50_ms']:.3f} p99 {res['latency']['p99_ms']:.3f} ms ({res['durability']})"
            f"{steal_note(rec)}")
    else:
        log(f"round {rnd + 1} {c.name} {load['name']}: FAILED {err}")


def memory_mode(args, bench_bin, pyzord, tmp, ours_extra, command_line):
    if not os.path.isfile(pyzord):
        die(f"{pyzord} missing")
    n = args.memory
    s = Server("ours", "ours", ours_cmd(pyzord, ours_extra), f"{tmp}/ours-memory")
    s.start()
    log(f"memory: prefilling {n:,} digests into our pyzord (report, seq, w256)")
    t0 = time.time()
    res, err = bench_load(bench_bin, s.port, ["-o", "report", "-m", "seq", "-P", str(n), "-S", "7", "-w", "256",
                                              "-T", "2", "-W", "0", "-d", str(max(60, n // 5000)), "-t", "5000"],
                          max(60, n // 5000) + 60)
    took = time.time() - t0
    st = proc_status(s.proc.pid)
    cpu = proc_cpu_seconds(s.proc.pid)
    # A check pass over part of the pool proves the digests are stored.
    chk, _ = bench_load(bench_bin, s.port, ["-o", "check", "-m", "pool", "-P", str(min(n, 2_000_000)), "-S", "7",
                                            "-w", "64", "-d", "3", "-W", "0"], 40)
    st2 = proc_status(s.proc.pid)
    du = subprocess.run(["du", "-sh", s.home], capture_output=True, text=True).stdout.split()[0]
    s.stop()
    out = args.out or os.path.join(ROOT, "bench", "RESULTS-memory.md")
    with open(out, "w") as f:
        f.write("# pyzord memory with many stored digests\n\n")
        if args.label:
            f.write(f"**{args.label}**\n\n")
        f.write(f"Generated by `{command_line}` on {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}.\n\n")
        if res:
            f.write(f"Prefill: {res['responses']:,} of {n:,} digests answered, {res['lost']} lost, in {took:.0f} s "
                    f"({res['req_per_s']:,.0f} req/s); server CPU {cpu:.1f} s in total.\n\n")
        else:
            f.write(f"Prefill failed: {err}\n\n")
        f.write("| when | VmRSS | VmHWM | RssAnon | RssFile | threads |\n|---|---|---|---|---|---|\n")
        for when, x in (("after prefill", st), ("after a 3 s check pass", st2)):
            f.write(f"| {when} | {x.get('VmRSS')} | {x.get('VmHWM')} | {x.get('RssAnon')} | {x.get('RssFile')} | "
                    f"{x.get('Threads')} |\n")
        hwm_kb = int(st2.get("VmHWM", "0 kB").split()[0] or 0)
        f.write(f"\nTarget (issue #6): resident size with 10 million stored digests ≤ 1.5 GB — VmHWM "
                f"{hwm_kb / 1024 / 1024:.2f} GiB with {n:,} digests: "
                f"{'met' if hwm_kb and hwm_kb <= 1.5 * 1024 * 1024 and n >= 10_000_000 else 'NOT met or not applicable'}.\n")
        if chk:
            f.write(f"\nCheck pass: {chk['req_per_s']:,.0f} req/s, hit {chk.get('check_hit_pct')} %.\n")
        f.write(f"\nHome directory (database) size: {du}. RssFile is the memory-mapped database pages the "
                "kernel can drop under pressure; RssAnon is the server's own memory.\n")
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
