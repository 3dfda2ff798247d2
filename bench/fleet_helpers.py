#!/usr/bin/env python3
"""Small helpers for bench/fleet.sh (the fleet-scale benchmark).

  fleet_helpers.py freeport
      print a free TCP port on 127.0.0.1 (bound and released; loopback only)
  fleet_helpers.py bodystats FILE LABEL
      FILE is a /metrics body (gzip or plain). Prints "VALUES SERIES BYTES": the number of
      distinct values of label LABEL, the number of sample lines carrying LABEL, and the
      uncompressed size in bytes
  fleet_helpers.py walhold BASE OUTDIR NAME:BYTES:MODE...
      copy database BASE to OUTDIR/NAME.sqlite for each NAME, open a read-write connection
      with wal_autocheckpoint=0, commit single-row UPDATEs until NAME.sqlite-wal is at least
      BYTES long. MODE "held": keep that connection open (an application that is running);
      MODE "exited": do it in a child that leaves with os._exit (an application that went
      away without closing: the WAL stays, nobody holds the wal-index). Then print
      "ready NAME=WALBYTES..." and wait for SIGTERM/SIGINT; leave with os._exit, as SQLite's
      close-time checkpoint would delete the WAL.
  fleet_helpers.py writer DB SECONDS
      commit small transactions (one INSERT each, synchronous=NORMAL, WAL, default
      autocheckpoint) in a loop for SECONDS; print "COMMITS ELAPSED_S"
"""
import gzip
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import sys
import time


def freeport():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])
    s.close()


def bodystats(path, label):
    with open(path, "rb") as f:
        magic = f.read(2)
    opener = gzip.open if magic == b"\x1f\x8b" else open
    pat = re.compile(r'[{,]%s="((?:[^"\\]|\\.)*)"' % re.escape(label))
    values, series, size = set(), 0, 0
    with opener(path, "rb") as f:
        for raw in f:
            size += len(raw)
            if raw.startswith(b"#"):
                continue
            m = pat.search(raw.decode("utf-8", "replace"))
            if m:
                series += 1
                values.add(m.group(1))
    print(len(values), series, size)


def grow_wal(base, dst, want):
    """Copy BASE to DST and append WAL frames until DST-wal >= want bytes; returns the
    still open read-write connection."""
    for suffix in ("", "-wal", "-shm"):
        try:
            os.unlink(dst + suffix)
        except FileNotFoundError:
            pass
    shutil.copyfile(base, dst)
    c = sqlite3.connect(dst, isolation_level=None)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("PRAGMA synchronous=NORMAL")
    c.execute("PRAGMA wal_autocheckpoint=0")
    top = c.execute("SELECT max(id) FROM orders").fetchone()[0] or 1
    wal = dst + "-wal"
    while not os.path.exists(wal) or os.path.getsize(wal) < want:
        c.execute("UPDATE orders SET amount_cents = amount_cents + 1 WHERE id = ?",
                  (random.randint(1, top),))
    return c


def walhold(base, outdir, specs):
    os.makedirs(outdir, exist_ok=True)
    conns, sizes = [], []
    for spec in specs:
        name, want, mode = spec.split(":")
        dst = os.path.join(outdir, name + ".sqlite")
        if mode == "held":
            conns.append(grow_wal(base, dst, int(want)))  # stays open
        elif mode == "exited":
            pid = os.fork()
            if pid == 0:
                grow_wal(base, dst, int(want))
                os._exit(0)  # no sqlite3_close: the WAL survives
            if os.waitpid(pid, 0)[1] != 0:
                sys.exit("walhold: building %s failed" % dst)
        else:
            sys.exit("walhold: MODE is held or exited, not %r" % mode)
        sizes.append("%s=%d" % (name, os.path.getsize(dst + "-wal")))
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, lambda *_: os._exit(0))
    print("ready", " ".join(sizes), flush=True)
    while True:
        signal.pause()


def writer(db, seconds):
    c = sqlite3.connect(db, isolation_level=None)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("PRAGMA synchronous=NORMAL")
    c.execute("CREATE TABLE IF NOT EXISTS w(id INTEGER PRIMARY KEY, v TEXT NOT NULL, ts REAL)")
    n = 0
    t0 = time.monotonic()
    end = t0 + seconds
    now = t0
    while now < end:
        c.execute("BEGIN")
        c.execute("INSERT INTO w(v, ts) VALUES (?, ?)", ("x" * 32, now))
        c.execute("COMMIT")
        n += 1
        now = time.monotonic()
    print(n, "%.6f" % (now - t0))
    c.close()


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "freeport":
        freeport()
    elif cmd == "bodystats":
        bodystats(args[0], args[1])
    elif cmd == "walhold":
        walhold(args[0], args[1], args[2:])
    elif cmd == "writer":
        writer(args[0], float(args[1]))
    else:
        sys.exit("fleet_helpers.py: unknown command %r (see --help in the source)" % cmd)


if __name__ == "__main__":
    main()
