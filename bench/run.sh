#!/usr/bin/env bash
# Runs every benchmark and prints its figures (medians and ratios against the baselines).
# BENCH_MB sets the size of the large databases (default 500 for check_load, 200 for integrity).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v sqlite3 >/dev/null || { echo "bench/run.sh: sqlite3 CLI needed (apt-get install sqlite3)" >&2; exit 1; }
for b in scrape integrity check_load backup backup_stall; do
  echo "== cargo bench --bench $b"
  cargo bench --quiet --bench "$b" 2>/dev/null
done
