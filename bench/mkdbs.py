#!/usr/bin/env python3
# Copied unchanged from the shared baselines (peers/mkdbs.py). Builds the benchmark fleets of
# bench/fleet.sh: N WAL-mode databases DIR/db0000.sqlite... with a live, uncheckpointed WAL tail.
"""mkdbs.py N SIZE_MB OUTDIR [--wal-pages P] [--no-wal-tail] [--free-pct F] [--jobs J]

Create N SQLite databases OUTDIR/db0000.sqlite ... in WAL mode, each about
SIZE_MB on disk: tables users/orders/events with secondary indexes, rows
generated SQL-side (recursive CTE + random()), a contiguous range of events plus
scattered orders deleted so the freelist is non-empty (auto_vacuum=NONE), then
checkpointed; finally a "live" WAL tail of about P frames (single-row UPDATE
commits, so the freelist is not consumed) is written and the
process leaves WITHOUT closing the connection (os._exit in a forked child), so
OUTDIR/dbNNNN.sqlite-wal and -shm stay on disk with uncheckpointed frames.

Why the fork/_exit: sqlite3_close() of the last read-write connection always
checkpoints and deletes the WAL, whatever PRAGMA wal_autocheckpoint says.
Equivalent CLI trick:  sqlite3 DB '.dbconfig no_ckpt_on_close on' 'UPDATE ...'
Readers that must not destroy the WAL have to open read-only
(sqlite3 -readonly, or file:DB?mode=ro) -- a read-write open+close of even a
plain SELECT checkpoints and removes the WAL.

Content uses SQLite's random(), so it is not byte-reproducible.
"""
import argparse
import os
import sqlite3
import sys
import time

SCHEMA = """
PRAGMA page_size=4096;
PRAGMA auto_vacuum=NONE;
PRAGMA journal_mode=WAL;
PRAGMA synchronous=NORMAL;
CREATE TABLE users(
  id INTEGER PRIMARY KEY,
  email TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  country TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE TABLE orders(
  id INTEGER PRIMARY KEY,
  user_id INTEGER NOT NULL REFERENCES users(id),
  amount_cents INTEGER NOT NULL,
  status TEXT NOT NULL,
  note TEXT,
  created_at INTEGER NOT NULL
);
CREATE INDEX orders_user ON orders(user_id);
CREATE INDEX orders_created ON orders(created_at, status);
CREATE TABLE events(
  id INTEGER PRIMARY KEY,
  kind TEXT NOT NULL,
  user_id INTEGER,
  ts INTEGER NOT NULL,
  payload TEXT NOT NULL
);
CREATE INDEX events_ts ON events(ts);
CREATE INDEX events_kind_user ON events(kind, user_id);
"""

BATCH = 20000


def fill_batch(c, users_total, order_base, event_base, n):
    # users: 1 per 20 events; orders: 1 per 4 events; events: n
    nu = max(1, n // 20)
    c.execute(
        """WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM s LIMIT ?)
        INSERT INTO users(id,email,name,country,created_at)
        SELECT ?+x, 'user'||(?+x)||'@'||lower(hex(randomblob(3)))||'.example',
               'Name '||upper(hex(randomblob(5))),
               substr('USDEFRGBJPBRINCNNLSE', 1+2*(abs(random())%10), 2),
               1600000000 + abs(random())%100000000 FROM s""",
        (nu, users_total, users_total))
    users_total += nu
    no = max(1, n // 4)
    c.execute(
        """WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM s LIMIT ?)
        INSERT INTO orders(id,user_id,amount_cents,status,note,created_at)
        SELECT ?+x, 1+abs(random())%?, abs(random())%100000,
               CASE abs(random())%4 WHEN 0 THEN 'new' WHEN 1 THEN 'paid'
                    WHEN 2 THEN 'shipped' ELSE 'cancelled' END,
               CASE WHEN random()%3=0 THEN NULL ELSE 'note '||hex(randomblob(abs(random())%24)) END,
               1600000000 + abs(random())%100000000 FROM s""",
        (no, order_base, users_total))
    c.execute(
        """WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM s LIMIT ?)
        INSERT INTO events(id,kind,user_id,ts,payload)
        SELECT ?+x,
               CASE abs(random())%5 WHEN 0 THEN 'login' WHEN 1 THEN 'view'
                    WHEN 2 THEN 'click' WHEN 3 THEN 'purchase' ELSE 'logout' END,
               1+abs(random())%?, 1600000000 + ?+x,
               '{"ip":"10.'||(abs(random())%256)||'.'||(abs(random())%256)||'.1","ua":"'
                 ||hex(randomblob(8+abs(random())%40))||'"}' FROM s""",
        (n, event_base, users_total, event_base))
    return users_total, order_base + no, event_base + n


def build(path, size_mb, wal_pages, free_pct, wal_tail):
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.unlink(path + suffix)
        except FileNotFoundError:
            pass
    c = sqlite3.connect(path, isolation_level=None)
    c.executescript(SCHEMA)
    target = int(size_mb * 1024 * 1024 * (1 + free_pct / 100.0))
    users = orders = events = 0
    batch = 2000
    while True:
        c.execute("BEGIN")
        users, orders, events = fill_batch(c, users, orders, events, batch)
        c.execute("COMMIT")
        size = c.execute("PRAGMA page_count").fetchone()[0] * 4096
        if size >= target:
            break
        per_event = size / events  # bytes per event incl. users/orders/indexes
        batch = int(min(BATCH, max(200, (target - size) / per_event)))
    # free pages: delete the oldest free_pct of events (contiguous -> whole
    # leaf pages freed) plus ~2% scattered orders (partially empty pages).
    c.execute("BEGIN")
    cut = int(events * free_pct / 100.0)
    c.execute("DELETE FROM events WHERE id <= ?", (cut,))
    c.execute("DELETE FROM orders WHERE abs(random()) % 50 = 0")
    c.execute("COMMIT")
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    c.execute("PRAGMA wal_autocheckpoint=0")
    if not wal_tail or wal_pages <= 0:
        c.close()  # checkpoints + deletes WAL
        return
    # live WAL tail: one-row UPDATE commits on random orders (no page
    # allocation, so the freelist is untouched); each commit appends ~1 frame.
    wal = path + "-wal"
    while os.path.getsize(wal) < wal_pages * (4096 + 24):
        c.execute("UPDATE orders SET amount_cents = amount_cents + 1 WHERE id = "
                  "(SELECT id FROM orders WHERE id >= abs(random()) % ? LIMIT 1)", (orders,))
    # deliberately no c.close(): caller os._exit()s


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("n", type=int)
    ap.add_argument("size_mb", type=float)
    ap.add_argument("outdir")
    ap.add_argument("--wal-pages", type=int, default=64,
                    help="approx. uncheckpointed WAL frames to leave (default 64)")
    ap.add_argument("--no-wal-tail", action="store_true",
                    help="close normally: no -wal file left")
    ap.add_argument("--free-pct", type=float, default=8.0,
                    help="approx. %% of the file turned into free pages (default 8)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--prefix", default="db")
    a = ap.parse_args()
    os.makedirs(a.outdir, exist_ok=True)
    t0 = time.time()
    running = {}
    failed = 0
    for i in range(a.n):
        path = os.path.join(a.outdir, "%s%04d.sqlite" % (a.prefix, i))
        while len(running) >= a.jobs:
            pid, st = os.wait()
            running.pop(pid, None)
            failed += st != 0
        pid = os.fork()
        if pid == 0:
            rc = 0
            try:
                build(path, a.size_mb, a.wal_pages, a.free_pct, not a.no_wal_tail)
            except Exception as e:  # noqa
                print("%s: %s" % (path, e), file=sys.stderr)
                rc = 1
            sys.stdout.flush()
            os._exit(rc)  # no sqlite3_close -> WAL survives
        running[pid] = path
    while running:
        pid, st = os.wait()
        running.pop(pid, None)
        failed += st != 0
    print("created %d db(s) in %s in %.1fs, %d failed" % (a.n, a.outdir, time.time() - t0, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
