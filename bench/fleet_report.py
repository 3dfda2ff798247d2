#!/usr/bin/env python3
"""fleet_report.py MEASURE [--bin PATH] [--quick 0|1]

Turns the raw measurements of bench/fleet.sh ("key value..." lines; a key that appears
again appends its values) into the table figure | ours | baseline | ratio | target | verdict.
All targets live here. Timings are medians; ratios are of medians.
"""
import argparse
import statistics
import sys
from collections import defaultdict

MB = 1024 * 1024
HEADER_BYTES = 100  # the header check: the floor's pread of 100 bytes per database


def load(path):
    m = defaultdict(list)
    with open(path) as f:
        for line in f:
            parts = line.split()
            if parts:
                m[parts[0]].extend(parts[1:])
    return m


def chunks(vals, k):
    return [vals[i:i + k] for i in range(0, len(vals) - k + 1, k)]


def fsec(s):
    if s is None:
        return "n/a"
    if s >= 1:
        return "%.2f s" % s
    if s >= 1e-3:
        return "%.1f ms" % (s * 1e3)
    return "%.0f us" % (s * 1e6)


def fbytes(b):
    if b is None:
        return "n/a"
    if abs(b) >= MB:
        return "%.1f MB" % (b / MB)
    if abs(b) >= 10 * 1024:
        return "%.1f KB" % (b / 1024)
    return "%.0f B" % b


def fratio(r):
    if r is None:
        return "n/a"
    return ("%.0fx" % r) if r >= 100 else ("%.3gx" % r)


class Table:
    def __init__(self):
        self.rows = []

    def section(self, title):
        self.rows.append(("-- " + title,))

    def row(self, figure, ours, base="-", ratio=None, target="-", ok=None):
        verdict = "" if ok is None else ("MET" if ok else "MISSED")
        if target != "-" and ok is None:
            verdict = "n/a"
        self.rows.append((figure, ours, base, "-" if ratio is None else fratio(ratio), target,
                          verdict))

    def print(self):
        head = ("figure", "ours", "baseline", "ratio", "target", "MET/MISSED")
        full = [r for r in self.rows if len(r) == 6] + [head]
        w = [max(len(r[i]) for r in full) for i in range(6)]
        line = " | ".join(h.ljust(w[i]) for i, h in enumerate(head))
        print(line)
        print("-" * len(line))
        for r in self.rows:
            if len(r) == 1:
                print(r[0])
            else:
                print(" | ".join(c.ljust(w[i]) for i, c in enumerate(r)).rstrip())


def ratio(a, b):
    return None if a is None or b in (None, 0) else a / b


def fleet(t, m, p):
    n = int(m[p + ".n"][0])
    t.section("%s databases (BENCH_DIR/fleet-%d, same files for all three)" % (format(n, ","), n))
    rss_limit = 40 if n <= 1000 else 200
    f = lambda k: float(m[p + k][0]) if m.get(p + k) else None  # noqa: E731
    t0 = f(".t0")
    ready, full = f(".t_ready") - t0, f(".t_full") - t0
    if n >= 10000:
        t.row("process start -> /-/ready 200", fsec(ready), "-", None, "< 2 s", ready < 2)
        t.row("process start -> first full /metrics", fsec(full), "-", None, "< 10 s", full < 10)
    else:
        t.row("process start -> /-/ready 200", fsec(ready))
        t.row("process start -> first full /metrics", fsec(full))
    t.row("first (cold) scrape", fsec(f(".cold_s")))

    warm = [[float(x) for x in w] for w in chunks(m[p + ".warm"], 4)]
    ours = statistics.median(w[0] for w in warm)
    peer = [[float(x) for x in w] for w in chunks(m.get(p + ".peer", []), 4)]
    peer_med = statistics.median(w[0] for w in peer) if peer else None
    r = ratio(peer_med, ours)
    if n <= 1000:
        t.row("warm scrape median x%d vs py_peer (peer/ours)" % len(warm), fsec(ours),
              fsec(peer_med), r, ">= 20x", None if r is None else r >= 20)
    else:
        t.row("warm scrape median x%d vs py_peer (peer/ours)" % len(warm), fsec(ours),
              fsec(peer_med) if peer else "skipped", r)
    floor = [float(x) / 1e6 for x in m[p + ".floor_us"]]
    floor_med = statistics.median(floor)
    r = ratio(ours, floor_med)
    t.row("warm scrape vs syscall floor x%d (ours/floor)" % len(floor), fsec(ours),
          fsec(floor_med), r, "<= 3x", r <= 3)

    rss = [int(x) * 1024 for x in m[p + ".rss_kb"]]  # RSS after scrape 1, 2, ...
    lim = "<= %d MB" % rss_limit
    for label, v in (("RSS after start (ready)", int(m[p + ".rss_start_kb"][0]) * 1024),
                     ("RSS after first scrape", int(m[p + ".rss_first_kb"][0]) * 1024),
                     ("RSS after %d scrapes" % len(rss), rss[-1])):
        t.row(label, fbytes(v), ok=v <= rss_limit * MB, target=lim)
    ref = 100 if len(rss) >= 200 else max(1, len(rss) // 2)
    r = ratio(rss[-1], rss[ref - 1])
    t.row("RSS flat: scrape %d -> %d (last/ref)" % (ref, len(rss)), fbytes(rss[-1]),
          fbytes(rss[ref - 1]), r, "1 +- 5%", abs(r - 1) <= 0.05)

    io0 = [int(x) for x in m[p + ".io0"]]
    io1 = [int(x) for x in m[p + ".io1"]]
    d = [(b - a) / len(warm) for a, b in zip(io0, io1)]  # per warm scrape
    hdr = HEADER_BYTES * n
    resp = statistics.mean(w[1] + w[2] for w in warm)  # body + headers sent to curl
    t.row("read()  rchar/warm scrape (whole process)", fbytes(d[0]), fbytes(hdr) + " hdr chk",
          ratio(d[0], hdr), "<= 2x", d[0] <= 2 * hdr)
    t.row("storage read_bytes/warm scrape", fbytes(d[2]), fbytes(hdr) + " hdr chk",
          ratio(d[2], hdr), "<= 2x", d[2] <= 2 * hdr)
    t.row("write() wchar/warm scrape vs response sent", fbytes(d[1]), fbytes(resp),
          ratio(d[1], resp), "<= 1.05x", d[1] <= 1.05 * resp)
    t.row("storage write_bytes/warm scrape", fbytes(d[3]), target="0 B", ok=d[3] == 0)

    dbs, series, plain = (int(x) for x in m[p + ".body"])
    gz = statistics.median(w[1] for w in warm)
    pb = [int(x) for x in m.get(p + ".peer_body", [])]
    peer_series = pb[1] / n if pb else None
    peer_gz = statistics.median(w[1] for w in peer) if peer else None
    t.row("series per database (label database=, %d dbs)" % dbs, "%.1f" % (series / n),
          "%.1f py_peer" % peer_series if pb else "n/a", ratio(series / n, peer_series),
          "<= 40", series / n <= 40)
    t.row("body per database, gzip", fbytes(gz / n),
          fbytes(peer_gz / n) if peer else "n/a", ratio(gz, peer_gz))
    t.row("body per database, plain", fbytes(plain / n),
          fbytes(pb[2] / n) if pb else "n/a", ratio(plain, pb[2] if pb else None))

    it0, it1, k0, k1, tck = (float(x) for x in m[p + ".idle"])
    cpu = (k1 - k0) / tck / (it1 - it0) * 100
    t.row("idle CPU after start, %.0f s, %% of one core" % (it1 - it0), "%.1f %%" % cpu,
          target="<= 5 %", ok=cpu <= 5)
    i0 = [int(x) for x in m[p + ".idle_io0"]]
    i1 = [int(x) for x in m[p + ".idle_io1"]]
    t.row("idle read() rchar/s (background checks)", fbytes((i1[0] - i0[0]) / (it1 - it0)) + "/s")
    if p + ".steady" in m:
        st0, st1, sk0, sk1, stck, since = (float(x) for x in m[p + ".steady"])
        cpu = (sk1 - sk0) / stck / (st1 - st0) * 100
        t.row("idle CPU, steady (%.0f s from %.0f s after start, first checks done), %% of one core"
              % (st1 - st0, since), "%.1f %%" % cpu, "-", None, "<= 5 %", cpu <= 5)
        s0 = [int(x) for x in m[p + ".steady_io0"]]
        s1 = [int(x) for x in m[p + ".steady_io1"]]
        t.row("  steady: read() rchar/s, storage write_bytes/s",
              "%s/s, %s/s" % (fbytes((s1[0] - s0[0]) / (st1 - st0)), fbytes((s1[3] - s0[3]) / (st1 - st0))))
        if p + ".steady_scrape_io0" in m:
            a = [int(x) for x in m[p + ".steady_scrape_io0"]]
            b = [int(x) for x in m[p + ".steady_scrape_io1"]]
            per = lambda k: (b[k] - a[k]) / 5
            t.row("  steady: storage read_bytes / write_bytes per warm scrape (x5)",
                  "%s / %s" % (fbytes(per(2)), fbytes(per(3))), "-", None, "0 B written",
                  per(3) == 0)
            hdr = HEADER_BYTES * n
            t.row("  steady: read() rchar per warm scrape (x5)", fbytes(per(0)),
                  fbytes(hdr) + " hdr chk", ratio(per(0), hdr), "<= 2x", per(0) <= 2 * hdr)
    return n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("measure")
    ap.add_argument("--bin", default="?")
    ap.add_argument("--quick", default="0")
    a = ap.parse_args()
    m = load(a.measure)
    t = Table()
    sizes = sorted(int(k[1:-2]) for k in m if k.startswith("n") and k.endswith(".n"))
    for n in sizes:
        fleet(t, m, "n%d" % n)

    t.section("single databases")
    if m.get("wal.sizes"):
        sizes = dict(kv.split("=") for kv in m["wal.sizes"])
        for mode, how in (("held", "app connection open"), ("exited", "app exited, WAL left")):
            small = statistics.median(float(x) for x in m["wal.%s_small" % mode])
            big = statistics.median(float(x) for x in m["wal.%s_big" % mode])
            r = ratio(big, small)
            t.row("warm scrape, %s vs %s WAL, %s (x%d)"
                  % (fbytes(int(sizes[mode + "_big"])), fbytes(int(sizes[mode + "_small"])), how,
                     len(m["wal.%s_big" % mode])),
                  fsec(big), fsec(small), r, "<= 1.2x", r <= 1.2)
            rd = []
            for v in ("big", "small"):
                k = "wal.%s_%s" % (mode, v)
                rd.append((int(m[k + ".io1"][0]) - int(m[k + ".io0"][0])) / len(m[k]))
            t.row("  read() rchar/scrape, 20 MB vs 256 KB WAL, %s" % how, fbytes(rd[0]),
                  fbytes(rd[1]), ratio(rd[0], rd[1]))
    if m.get("writer.with"):
        def rate(k):
            segs = [(int(c), float(s)) for c, s in chunks(m[k], 2)]
            return sum(c for c, _ in segs) / sum(s for _, s in segs), sum(s for _, s in segs)
        w, ws = rate("writer.with")
        wo, wos = rate("writer.without")
        r = ratio(w, wo)
        t.row("writer commits/s, exporter scraped 1/s vs none (%.0f s each, %d scrapes)"
              % (min(ws, wos), int(m["writer.scrapes"][0])),
              "%.0f/s" % w, "%.0f/s" % wo, r, ">= 0.98x", r >= 0.98)

    mode = "quick" if a.quick == "1" else "full"
    print()
    print("fleet benchmark (%s mode), exporter %s" % (mode, a.bin))
    t.print()
    print("Medians of repeated runs on a shared machine; ratios are of medians. 'ours' for I/O is\n"
          "the whole exporter process over the warm scrapes, background checks included.")


if __name__ == "__main__":
    sys.exit(main())
