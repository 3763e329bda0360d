"""Drive the reference's network engines (redis_, redis_v0, mysql) for the
interop tests.

usage: engine_ref.py ENGINE DSN CMD ARG_JSON
  ENGINE: redis | redis_v0 | mysql
  CMD report  ["key", ...]       -- the reference's report()
      whitelist ["key", ...]
      set     [["key", {record}], ...]  -- __setitem__
      read    ["key", ...]       -- print one JSON line per key
Records are {"r_count", "wl_count", "r_entered", ...} with dates as epoch
seconds (naive local time, as the reference means it) or null.
"""
import datetime
import json
import sys

import pyzor.engines
from pyzor.engines.common import Record

FIELDS = ("r_entered", "r_updated", "wl_entered", "wl_updated")


def secs(d):
    if d is None:
        return None
    return int(d.timestamp())


def main():
    engine, dsn, cmd, arg = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    cls = pyzor.engines.database_classes[engine].single_threaded
    db = cls(dsn, "c", max_age=None)
    if cmd in ("report", "whitelist"):
        getattr(db, cmd)(arg)
    elif cmd == "set":
        for key, rec in arg:
            r = Record(r_count=rec["r_count"], wl_count=rec["wl_count"])
            for f in FIELDS:
                if rec.get(f) is not None:
                    setattr(r, f, datetime.datetime.fromtimestamp(rec[f]))
            db[key] = r
    elif cmd == "read":
        for key in arg:
            try:
                r = db[key]
            except KeyError:
                print(json.dumps(None))
                continue
            out = {"r_count": r.r_count, "wl_count": r.wl_count}
            for f in FIELDS:
                out[f] = secs(getattr(r, f))
            print(json.dumps(out, sort_keys=True))
    else:
        sys.exit("unknown command")


main()
