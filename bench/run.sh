#!/usr/bin/env bash
# Runs every benchmark and prints its figures (medians and ratios against the baselines).
# BENCH_MB sets the size of the large databases (default 500 for check_load, 200 for integrity).
# `bench/run.sh fleet` runs only the fleet benchmark (bench/fleet.sh; FLEET_QUICK=1 for a smoke run).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ${1:-} == fleet ]]; then
  exec bench/fleet.sh
fi
command -v sqlite3 >/dev/null || { echo "bench/run.sh: sqlite3 CLI needed (apt-get install sqlite3)" >&2; exit 1; }
for b in scrape wal_index integrity check_load backup backup_phases backup_stall fact_sources; do
  echo "== cargo bench --bench $b"
  cargo bench --quiet --bench "$b" 2>/dev/null
done
echo "== bench/fleet.sh"
bench/fleet.sh
