"""Digest messages with the reference pyzor 1.1.2, in one process.

Used by tests/digest_differential.rs. Input on stdin: records
`<decimal length>\n<raw bytes>`. Output, one line per record:
`OK <digest> <hex(line1)>,<hex(line2)>,...` (the selected lines, in hashing
order) or `ERR <exception class name>`.
"""
import email
import sys

import pyzor.digest


class Collect(pyzor.digest.DataDigester):
    __slots__ = ["seen"]

    def __init__(self, msg):
        self.seen = []
        super().__init__(msg)

    def handle_line(self, line):
        self.seen.append(line)
        super().handle_line(line)


def main():
    inp = sys.stdin.buffer
    out = sys.stdout
    while True:
        head = inp.readline()
        if not head:
            break
        raw = inp.read(int(head))
        try:
            d = Collect(email.message_from_bytes(raw))
            out.write("OK %s %s\n" % (d.value, ",".join(l.hex() for l in d.seen)))
        except Exception as e:  # the reference crashed on this input
            out.write("ERR %s\n" % type(e).__name__)
    out.flush()


main()
