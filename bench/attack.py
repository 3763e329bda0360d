#!/usr/bin/env python3
"""Amplification probes against a running pyzord (docs/security.md, "Amplification").

Sends each probe once (bounded: one datagram, one reply, 5 s timeout) to a
server on a loopback address and prints request bytes, reply bytes and the
amplification factor (reply / request payload, and on the wire with the
28 bytes of IPv4 and UDP headers) as a Markdown table.

    python3 bench/attack.py --port 24441 [--user bob] [--label ours]

--user names an account the server knows (the int() probes need one; the
signature is never checked because the Time is invalid). Only loopback
addresses are accepted.
"""

import argparse
import ipaddress
import socket
import time

LIMIT = 8192
# IPv4 + UDP headers: the "on the wire" factor counts them on both sides.
UDP_IP = 28


def full(head, fill, tail=b"\n\n"):
    """head + fill repeated + tail, exactly LIMIT bytes."""
    room = LIMIT - len(head) - len(tail)
    body = (fill * (room // len(fill) + 1))[:room]
    return head + body + tail


def probes(user):
    u = user.encode()
    now = str(int(time.time())).encode()
    p = [
        ("int() error, Time \\x01 (issue 12)", b"User:" + u + b"\nTime:" + b"\x01" * 8170),
        ("int() error, Time 1x+letters (issue 12)",
         b"Op: ping\nThread: 1\nPV: 2.1\nUser: " + u + b"\nTime: 1x"
         + (b"abcdefghijklmnopqrstuvwxyz" * 116)[:3000] + b"\n\n"),
        ("int() error, shortest full cut", b"User:" + u + b"\nTime:" + b"\x01" * 50),
        ("int() of missing Time", b"User:" + u),
        ("empty datagram", b""),
        ("minimal info", b"Op:info\nOp-Digest:\nPV:2"),
        ("minimal check", b"Op:check\nOp-Digest:\nPV:2"),
        ("minimal ping", b"Op:ping\nPV:2"),
        ("PV invalid, 8192 B", full(b"Op: ping\nThread: 1\nPV: ", b"x")),
        ("unknown user, 8192 B", full(b"Op: ping\nThread: 1\nPV: 2.1\nUser: u", b"u")),
        ("Time too many digits", full(b"Op: ping\nThread: 1\nPV: 2.1\nUser: " + u + b"\nTime: ", b"9")),
        ("embedded header while signing",
         full(b"Op: ping\nThread: 1\nPV: 2.1\nUser: " + u + b"\nTime: " + now + b"\nX: ",
              b"\x01", b"\x0cY:z\n\n")),
        ("Thread 8-bit", full(b"Op: ping\nPV: 2.1\nThread: ", b"\x80", b"")),
        ("Thread ASCII 8192 B", full(b"Op: ping\nPV: 2.1\nThread: ", b"7")),
        ("check, many digests", full(b"Op: check\nThread: 1\nPV: 2.1\n", b"Op-Digest: d\n", b"\n")),
    ]
    return p


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--user", default="bob")
    ap.add_argument("--label", default="server")
    ap.add_argument("--timeout", type=float, default=5.0)
    a = ap.parse_args()
    if not ipaddress.ip_address(a.host).is_loopback:
        ap.error("loopback addresses only")
    fam = socket.AF_INET6 if ":" in a.host else socket.AF_INET
    print(f"### {a.label} ({a.host}:{a.port})\n")
    print("| probe | request B | reply B | factor | on the wire |")
    print("|---|---:|---:|---:|---:|")
    worst = 0.0
    for name, d in probes(a.user):
        with socket.socket(fam, socket.SOCK_DGRAM) as s:
            s.settimeout(a.timeout)
            s.sendto(d, (a.host, a.port))
            try:
                r = len(s.recv(70000))
            except socket.timeout:
                r = None
        if r is None:
            print(f"| {name} | {len(d)} | no reply | - | - |")
            continue
        f = r / len(d) if d else float("inf")
        if d:
            worst = max(worst, f)
        w = (r + UDP_IP) / (len(d) + UDP_IP)
        print(f"| {name} | {len(d)} | {r} | {f:.2f} | {w:.2f} |")
    print(f"\nLargest factor (non-empty requests): {worst:.2f}")


if __name__ == "__main__":
    main()
