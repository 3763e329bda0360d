"""Digest messages with the reference pyzor 1.1.2, in one process.

Used by tests/digest_differential.rs. Input on stdin: records
`<decimal length>\n<raw bytes>`. Output, one line per record:
`OK <digest> <hex(line1)>,<hex(line2)>,...` (the selected lines, in hashing
order) or `ERR <exception class name>`.

With the argument `mbox`, each record is an mbox file and the output line
is `MBOX <digest>,<digest>,...` as `pyzor -s mbox digest` prints them
(mailbox.mbox over a temporary file), stopping at a message that raises.
"""
import email
import mailbox
import os
import sys
import tempfile

import pyzor.digest


class Collect(pyzor.digest.DataDigester):
    __slots__ = ["seen"]

    def __init__(self, msg):
        self.seen = []
        super().__init__(msg)

    def handle_line(self, line):
        self.seen.append(line)
        super().handle_line(line)


def mbox_digests(raw):
    fd, path = tempfile.mkstemp()
    try:
        os.write(fd, raw)
        os.close(fd)
        out = []
        box = mailbox.mbox(path)
        it = iter(box)
        while True:
            # Parsing (inside the iteration) or digesting may raise: the
            # CLI stops there.
            try:
                msg = next(it)
                out.append(pyzor.digest.DataDigester(msg).value)
            except StopIteration:
                break
            except Exception:
                break
        return out
    finally:
        os.unlink(path)


def main():
    inp = sys.stdin.buffer
    out = sys.stdout
    mbox = sys.argv[1:] == ["mbox"]
    while True:
        head = inp.readline()
        if not head:
            break
        raw = inp.read(int(head))
        if mbox:
            out.write("MBOX %s\n" % ",".join(mbox_digests(raw)))
            continue
        try:
            d = Collect(email.message_from_bytes(raw))
            out.write("OK %s %s\n" % (d.value, ",".join(l.hex() for l in d.seen)))
        except Exception as e:  # the reference crashed on this input
            out.write("ERR %s\n" % type(e).__name__)
    out.flush()


main()
