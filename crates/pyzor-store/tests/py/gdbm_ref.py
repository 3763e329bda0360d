"""Drive the reference's GdbmDBHandle for the interop tests.

usage: gdbm_ref.py write FILE   -- write the sample records, print them as JSON lines
       gdbm_ref.py read FILE    -- print every record of FILE as JSON lines
       gdbm_ref.py legacy FILE  -- add one raw 3-field version-0 value
A JSON line is {"key": hex, "r_count", "wl_count", "r_entered", ... } with
dates as epoch microseconds (naive local time, as the reference means it)
or null.
"""
import datetime
import json
import sys

from pyzor.engines.gdbm_ import GdbmDBHandle
from pyzor.engines.common import Record

FIELDS = ("r_entered", "r_updated", "wl_entered", "wl_updated")


def micros(d):
    if d is None:
        return None
    if isinstance(d, int):
        return d * 1000000
    return round(d.timestamp() * 1000000)


def dump(key, r):
    out = {"key": key.hex(), "r_count": r.r_count, "wl_count": r.wl_count}
    for f in FIELDS:
        out[f] = micros(getattr(r, f))
    print(json.dumps(out, sort_keys=True))


def main():
    cmd, fn = sys.argv[1], sys.argv[2]
    if cmd == "write":
        db = GdbmDBHandle(fn, "c", max_age=None)
        base = datetime.datetime(2026, 3, 1, 12, 0, 0, 250000)
        keys = [b"a" * 40, b"", b"x\x00y", "caf\u00e9".encode(), b"UPPER  ", b"l" * 300]
        if len(sys.argv) > 3 and sys.argv[3] == "hexonly":
            keys = [b"a" * 40]
        for i in range(200):
            keys.append(("%040x" % (i * 7919)).encode())
        for i, k in enumerate(keys):
            r = Record()
            if i % 3 != 1:
                r.r_count = i + 1
                r.r_entered = base + datetime.timedelta(seconds=i, microseconds=i)
                r.r_updated = r.r_entered + datetime.timedelta(days=i % 5)
            if i % 3 != 0:
                r.wl_count = i % 4 + 1
                # whole seconds: str() drops the .ffffff part
                r.wl_entered = datetime.datetime(2026, 1, 1 + i % 28, 8, 30, 0)
                r.wl_updated = r.wl_entered + datetime.timedelta(hours=i)
            db[k] = r
            dump(k, r)
        db.db.sync()
    elif cmd == "legacy":
        db = GdbmDBHandle(fn, "w", max_age=None)
        db.db[b"legacy0"] = b"5,1000000000,1000000100"
        db.db.sync()
    elif cmd == "read":
        db = GdbmDBHandle(fn, "r", max_age=None)
        for k, r in db.iteritems():
            dump(k, r)
        # the reference's raw value, for byte-level comparison
    elif cmd == "raw":
        import dbm.gnu
        db = dbm.gnu.open(fn, "r")
        k = db.firstkey()
        while k is not None:
            print(json.dumps({"key": k.hex(), "value": db[k].hex()}))
            k = db.nextkey(k)
    else:
        sys.exit("unknown command")


main()
