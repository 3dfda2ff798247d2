#!/usr/bin/env python3
# Copied unchanged from the shared baselines (peers/py_peer.py). The baseline of bench/fleet.sh:
# the Python prometheus_client exporter a user writes today; fleet.sh runs it with --check none.
"""py_peer.py [--port 9399] [--addr 127.0.0.1] [--check quick_check|integrity_check|none] DB...

Baseline Python exporter (prometheus_client): on EVERY scrape of /metrics it
opens each DB read-only (file:PATH?mode=ro, so it never checkpoints or deletes
a WAL), runs the PRAGMAs and stats the files. Same metric names as
textfile_peer.sh plus sqlite_probe_latency_seconds (SELECT count(*) FROM
sqlite_schema, timed after open). Needs: pip install prometheus_client
(or Debian: apt-get install python3-prometheus-client and run /usr/bin/python3).
Stops on SIGTERM/SIGINT.
"""
import argparse
import os
import signal
import sqlite3
import threading
import time
import urllib.parse

from prometheus_client import start_http_server
from prometheus_client.core import CollectorRegistry, GaugeMetricFamily


def fsize(p):
    try:
        return os.stat(p).st_size
    except OSError:
        return 0


class SqliteCollector:
    def __init__(self, dbs, check, timeout):
        self.dbs, self.check, self.timeout = dbs, check, timeout

    def describe(self):  # avoid a full collection at register() time
        return []

    def collect(self):
        t_run = time.perf_counter()
        g = {}

        def fam(name, doc, labels=("db",)):
            if name not in g:
                g[name] = GaugeMetricFamily(name, doc, labels=list(labels))
            return g[name]

        up = fam("sqlite_up", "1 if the database could be opened and queried read-only")
        ok = fam("sqlite_integrity_ok", "1 if PRAGMA %s returned ok" % self.check, ("db", "check"))
        errs = fam("sqlite_integrity_errors", "error rows from PRAGMA %s (capped at 100)" % self.check,
                   ("db", "check"))
        pages = fam("sqlite_pages", "PRAGMA page_count (includes pages only in the WAL)")
        free = fam("sqlite_freelist_pages", "PRAGMA freelist_count")
        psz = fam("sqlite_page_size_bytes", "PRAGMA page_size")
        dbsz = fam("sqlite_db_file_size_bytes", "size of the main database file (stat)")
        walsz = fam("sqlite_wal_file_size_bytes", "size of the -wal file (stat), 0 if absent")
        probe = fam("sqlite_probe_latency_seconds", "SELECT count(*) FROM sqlite_schema after open")
        dur = fam("sqlite_collect_duration_seconds", "wall time to collect this db")
        for db in self.dbs:
            t0 = time.perf_counter()
            try:
                if not os.path.isfile(db):
                    raise FileNotFoundError(db)
                uri = "file:%s?mode=ro" % urllib.parse.quote(os.path.abspath(db))
                c = sqlite3.connect(uri, uri=True, timeout=self.timeout,
                                    isolation_level=None, check_same_thread=False)
                try:
                    tp = time.perf_counter()
                    c.execute("SELECT count(*) FROM sqlite_schema").fetchone()
                    probe.add_metric([db], time.perf_counter() - tp)
                    pc = c.execute("PRAGMA page_count").fetchone()[0]
                    fc = c.execute("PRAGMA freelist_count").fetchone()[0]
                    ps = c.execute("PRAGMA page_size").fetchone()[0]
                    if self.check != "none":
                        try:
                            rows = [r[0] for r in c.execute("PRAGMA %s(100)" % self.check)]
                        except sqlite3.DatabaseError as e:
                            rows = [str(e)]
                        good = rows == ["ok"]
                        ok.add_metric([db, self.check], 1 if good else 0)
                        errs.add_metric([db, self.check],
                                        0 if good else sum(r.count("\n") + 1 for r in rows))
                finally:
                    c.close()
                up.add_metric([db], 1)
                pages.add_metric([db], pc)
                free.add_metric([db], fc)
                psz.add_metric([db], ps)
            except (sqlite3.Error, OSError):
                up.add_metric([db], 0)
                if self.check != "none":
                    ok.add_metric([db, self.check], 0)
            dbsz.add_metric([db], fsize(db))
            walsz.add_metric([db], fsize(db + "-wal"))
            dur.add_metric([db], time.perf_counter() - t0)
        yield from g.values()
        run = GaugeMetricFamily("sqlite_scrape_duration_seconds", "wall time of this whole collection")
        run.add_metric([], time.perf_counter() - t_run)
        yield run


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=9399)
    ap.add_argument("--addr", default="127.0.0.1")
    ap.add_argument("--check", choices=["quick_check", "integrity_check", "none"],
                    default="quick_check")
    ap.add_argument("--timeout", type=float, default=2.0, help="busy timeout seconds")
    ap.add_argument("dbs", nargs="+")
    a = ap.parse_args()
    reg = CollectorRegistry()
    reg.register(SqliteCollector(a.dbs, a.check, a.timeout))
    start_http_server(a.port, addr=a.addr, registry=reg)
    print("py_peer: http://%s:%d/metrics (%d dbs, %s)" % (a.addr, a.port, len(a.dbs), a.check),
          flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()


if __name__ == "__main__":
    main()
