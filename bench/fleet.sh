#!/usr/bin/env bash
# Fleet-scale benchmark of sqlite_exporter, measured side by side with honest baselines in
# the same run, printed as a table: figure | ours | baseline | ratio | target | MET/MISSED.
#
#   bench/fleet.sh                 full run: fleets of 1,000 and 10,000 databases (~10 min
#                                  against a slow exporter; ~3 min more once, to build fleets)
#   FLEET_QUICK=1 bench/fleet.sh   smoke run: 1,000 databases, fewer repeats (~1-2 min)
#   bench/run.sh fleet             same as bench/fleet.sh
#
# Per fleet size: start -> ready and first full /metrics, cold and warm scrape (curl, gzip
# accepted as Prometheus sends it), RSS over many scrapes, /proc/PID/io per warm scrape,
# series and body size per database, idle CPU after start and, at 10,000, in the steady
# state once the first checks are done (~6 min in); the Python peer's and the
# syscall floor's times on the same files. Then on single databases: scrape time with a
# 20 MiB vs a 256 KiB WAL, and a writer's commit rate without vs with the exporter.
# Loops that repeat scrapes are bounded by count and by time, so a slow exporter still
# finishes and a fast one gets the full count.
#
# Environment:
#   EXPORTER_BIN  exporter binary (default target/profiling/sqlite_exporter: the release build
#                 with line tables, so perf can name what it samples; built if missing)
#   BENCH_DIR     work directory; fleets are built there once and reused
#                 (default /tmp/sqlite_exporter_bench; 10,000 dbs take ~6.5 GB)
#   FLEET_SIZES   fleet sizes to run (default "1000 10000", quick "1000")
#   FLEET_PEER_MAX_N  largest fleet the Python peer is run on (default 10000)
#
# Baselines (all see exactly the same files, BENCH_DIR/fleet-N/db*.sqlite):
#   bench/py_peer.py  the prometheus_client exporter a user writes (run with --check none)
#   bench/floor.c     the syscall floor: 3 stat + open/pread 100 B/close per database
# Fleets come from bench/mkdbs.py: N WAL-mode databases of ~0.2 MB, each with a live WAL tail.
#
# All timings are medians of repeated runs; the machine may be small and shared, so expect
# noise of several percent. Only loopback addresses are used. Every process this script
# starts is stopped on exit.
set -euo pipefail
export LC_ALL=C # curl and /proc numbers use '.' as the decimal point

cd "$(dirname "$0")/.."
BENCH=$PWD/bench
BENCH_DIR=${BENCH_DIR:-/tmp/sqlite_exporter_bench}
EXPORTER_BIN=${EXPORTER_BIN:-target/profiling/sqlite_exporter}
QUICK=${FLEET_QUICK:-0}
[[ $QUICK == 0 ]] || QUICK=1
PEER_MAX_N=${FLEET_PEER_MAX_N:-10000}
CURL_MAX=120          # seconds; a 10,000-database scrape of a slow exporter takes ~50 s
READY_TIMEOUT=600     # seconds from process start to ready + first full /metrics
STEADY_AFTER_S=330    # steady idle window starts this long after start (first checks done)
STEADY_S=30           # and lasts this long
if ((QUICK)); then
  SIZES=${FLEET_SIZES:-1000}
else
  SIZES=${FLEET_SIZES:-1000 10000}
fi
HELP=$BENCH/fleet_helpers.py

die() { echo "fleet.sh: $*" >&2; exit 1; }

# --- prerequisites ---------------------------------------------------------------------
for tool in curl python3 cc gzip; do
  command -v "$tool" >/dev/null || die "$tool is needed"
done
if [[ ! -x $EXPORTER_BIN ]]; then
  [[ $EXPORTER_BIN == target/profiling/sqlite_exporter ]] ||
    die "EXPORTER_BIN=$EXPORTER_BIN is not executable"
  echo "== building $EXPORTER_BIN (cargo build --profile profiling)"
  cargo build --profile profiling --quiet
fi
EXPORTER_BIN=$(realpath "$EXPORTER_BIN")
mkdir -p "$BENCH_DIR"
# The Python peer needs prometheus_client: taken from the system when it has it, otherwise
# installed once from PyPI into a virtualenv under BENCH_DIR. Without it the comparison the
# targets are stated against cannot be made, so the benchmark stops.
PEER_PY=python3
PEER_OK=1
if ! python3 -c 'import prometheus_client' 2>/dev/null; then
  PEER_PY=$BENCH_DIR/venv/bin/python3
  if ! "$PEER_PY" -c 'import prometheus_client' 2>/dev/null; then
    echo "== installing prometheus_client for the Python peer into $BENCH_DIR/venv" >&2
    python3 -m venv "$BENCH_DIR/venv" && "$BENCH_DIR/venv/bin/pip" install --quiet prometheus_client ||
      die "cannot install prometheus_client (python3 -m venv + pip) for the Python peer"
  fi
fi
BENCH_DIR=$(realpath "$BENCH_DIR")
RUN=$BENCH_DIR/last-run # logs, configs, bodies and raw measurements of this run
rm -rf "$RUN"
mkdir -p "$RUN"
MEASURE=$RUN/measure.txt # "key value..." lines; fleet_report.py turns them into the table
: >"$MEASURE"
rec() { echo "$*" >>"$MEASURE"; }

# --- process bookkeeping: everything started is stopped on exit --------------------------
PIDS=()
stop_pid() { # PID: SIGTERM, up to 10 s grace, then SIGKILL; forget it
  local p=$1 i
  kill "$p" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$p" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
  local keep=() q
  for q in "${PIDS[@]}"; do [[ $q == "$p" ]] || keep+=("$q"); done
  PIDS=("${keep[@]}")
}
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- /proc readers ---------------------------------------------------------------------
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# rchar wchar read_bytes write_bytes
io4() { awk '$1=="rchar:"{r=$2} $1=="wchar:"{w=$2} $1=="read_bytes:"{rb=$2} $1=="write_bytes:"{wb=$2}
             END {print r, w, rb, wb}' "/proc/$1/io"; }
# utime+stime in clock ticks, all threads (fields 14 and 15; comm may contain spaces)
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
CLK_TCK=$(getconf CLK_TCK)

# --- HTTP ------------------------------------------------------------------------------
# scrape URL OUT: one GET as Prometheus sends it (gzip accepted). Prints
# "time_total size_download size_header http_code".
scrape() {
  local r
  r=$(curl -s --max-time "$CURL_MAX" -H 'Accept-Encoding: gzip' -o "$2" \
    -w '%{time_total} %{size_download} %{size_header} %{http_code}' "$1") || true
  echo "${r:-0 0 0 000}"
}

# start_exporter NAME CONFIG: sets EXP_PID and EXP_URL, records NAME.t0 (process start)
# and NAME.t_ready (/-/ready answers 200).
start_exporter() {
  local name=$1 config=$2 port code
  port=$(python3 "$HELP" freeport)
  EXP_URL=http://127.0.0.1:$port
  rec "$name.t0" "$EPOCHREALTIME"
  "$EXPORTER_BIN" --config.file="$config" --web.listen-address="127.0.0.1:$port" \
    >"$RUN/$name.log" 2>&1 &
  EXP_PID=$!
  PIDS+=("$EXP_PID")
  local deadline=$((SECONDS + READY_TIMEOUT))
  while :; do
    code=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$EXP_URL/-/ready" || true)
    [[ $code == 200 ]] && break
    kill -0 "$EXP_PID" 2>/dev/null || { tail -5 "$RUN/$name.log" >&2; die "$name: exporter exited"; }
    ((SECONDS < deadline)) || die "$name: /-/ready not 200 after ${READY_TIMEOUT}s"
    sleep 0.01
  done
  rec "$name.t_ready" "$EPOCHREALTIME"
}

# first_full_scrape NAME N: repeat GET /metrics until it answers 200 with all N databases;
# records NAME.t_full (end of that scrape), NAME.cold_s and NAME.cold_attempts.
first_full_scrape() {
  local name=$1 n=$2 out=$RUN/$1.cold.body tries=0 line t dbs
  local deadline=$((SECONDS + READY_TIMEOUT))
  while :; do
    tries=$((tries + 1))
    line=$(scrape "$EXP_URL/metrics" "$out")
    t=$EPOCHREALTIME
    if [[ ${line##* } == 200 ]]; then
      read -r dbs _ < <(python3 "$HELP" bodystats "$out" database)
      ((dbs >= n)) && break
    fi
    ((SECONDS < deadline)) || die "$name: no full /metrics ($n databases) after ${READY_TIMEOUT}s"
    sleep 0.1
  done
  rec "$name.t_full" "$t"
  rec "$name.cold_s" "${line%% *}"
  rec "$name.cold_attempts" "$tries"
}

# --- fleets ----------------------------------------------------------------------------
# fleet N: BENCH_DIR/fleet-N with N databases (built once; rebuilt if incomplete or if the
# WAL tails are gone). Prints the directory.
fleet() {
  local n=$1 dir=$BENCH_DIR/fleet-$1
  if [[ -f $dir/.complete && -s $dir/db0000.sqlite-wal ]] &&
    [[ $(find "$dir" -maxdepth 1 -name '*.sqlite' | wc -l) == "$n" ]]; then
    echo "$dir"
    return
  fi
  echo "== building fleet of $n databases in $dir (once; reused by later runs)" >&2
  rm -rf "$dir"
  python3 "$BENCH/mkdbs.py" "$n" 0.2 "$dir" --jobs "$(nproc)" >&2
  touch "$dir/.complete"
  echo "$dir"
}

FLOOR=$BENCH_DIR/floor
if [[ ! -x $FLOOR || $BENCH/floor.c -nt $FLOOR ]]; then
  cc -O2 -o "$FLOOR" "$BENCH/floor.c"
fi

# --- one fleet size: exporter, then the Python peer, then the floor ----------------------
run_fleet() {
  local n=$1 dir name=n$1 cfg warm rss_target_scrapes rss_budget idle_s peer_warm floor_reps
  dir=$(fleet "$n")
  rec "$name.n" "$n"
  if ((n <= 1000)); then
    warm=$((QUICK ? 5 : 10)) rss_target_scrapes=$((QUICK ? 100 : 1000)) rss_budget=$((QUICK ? 25 : 180))
    idle_s=10 peer_warm=$((QUICK ? 5 : 10)) floor_reps=$((QUICK ? 5 : 9))
  else
    warm=5 rss_target_scrapes=100 rss_budget=$((QUICK ? 25 : 100))
    idle_s=20 peer_warm=3 floor_reps=$((QUICK ? 5 : 9))
  fi

  echo "== $n databases: exporter ($EXPORTER_BIN)"
  cfg=$RUN/$name.yml
  printf 'databases:\n  - glob: %s/*.sqlite\n' "$dir" >"$cfg"
  start_exporter "$name" "$cfg"
  local pid=$EXP_PID url=$EXP_URL
  rec "$name.rss_start_kb" "$(rss_kb "$pid")"
  first_full_scrape "$name" "$n"
  rec "$name.rss_first_kb" "$(rss_kb "$pid")"
  rec "$name.rss_kb" "$(rss_kb "$pid")" # RSS after scrape 1, 2, ...

  # Idle CPU and I/O with no scrapes, right after start (background work included).
  echo "   idle ${idle_s}s"
  local t0 k0 io0 t1 k1 io1
  t0=$EPOCHREALTIME k0=$(cpu_ticks "$pid") io0=$(io4 "$pid")
  sleep "$idle_s"
  t1=$EPOCHREALTIME k1=$(cpu_ticks "$pid") io1=$(io4 "$pid")
  rec "$name.idle" "$t0" "$t1" "$k0" "$k1" "$CLK_TCK"
  rec "$name.idle_io0" "$io0"
  rec "$name.idle_io1" "$io1"

  # Warm scrapes: time, response size, and the process's I/O over exactly these scrapes.
  echo "   $warm warm scrapes"
  local i line out
  rec "$name.io0" "$(io4 "$pid")"
  for ((i = 1; i <= warm; i++)); do
    out=/dev/null
    ((i < warm)) || out=$RUN/$name.warm.body
    line=$(scrape "$url/metrics" "$out")
    [[ ${line##* } == 200 ]] || die "$name: warm scrape failed: $line"
    rec "$name.warm" "$line"
    rec "$name.rss_kb" "$(rss_kb "$pid")" # /proc reads are ours, not the exporter's I/O
  done
  rec "$name.io1" "$(io4 "$pid")"
  rec "$name.body" "$(python3 "$HELP" bodystats "$RUN/$name.warm.body" database)"

  # Many scrapes (up to rss_target_scrapes in all, within rss_budget seconds): RSS after each.
  local count=$((1 + warm)) start=$SECONDS
  echo "   up to $rss_target_scrapes scrapes in ${rss_budget}s for RSS"
  while ((count < rss_target_scrapes && SECONDS - start < rss_budget)); do
    line=$(scrape "$url/metrics" /dev/null)
    [[ ${line##* } == 200 ]] || die "$name: scrape $count failed: $line"
    count=$((count + 1))
    rec "$name.rss_kb" "$(rss_kb "$pid")"
  done
  rec "$name.scrapes" "$count"

  # Steady idle: once every database had its first probe and first regular check (spread
  # over the probe interval, 1 min, and the check interval, 5 min, by default), what the
  # exporter costs a host that nobody scrapes. Full runs, largest fleets only (it waits).
  if ((!QUICK && n >= 10000)); then
    local since=$((STEADY_AFTER_S)) t_start
    t_start=$(grep "^$name.t0 " "$MEASURE" | cut -d' ' -f2)
    local wait_s
    wait_s=$(python3 -c "import time; print(max(0, $t_start + $since - time.time()))")
    echo "   steady idle: waiting ${wait_s%.*}s (until ${since}s after start), then ${STEADY_S}s"
    sleep "$wait_s"
    t0=$EPOCHREALTIME k0=$(cpu_ticks "$pid") io0=$(io4 "$pid")
    sleep "$STEADY_S"
    t1=$EPOCHREALTIME k1=$(cpu_ticks "$pid") io1=$(io4 "$pid")
    rec "$name.steady" "$t0" "$t1" "$k0" "$k1" "$CLK_TCK" "$since"
    rec "$name.steady_io0" "$io0"
    rec "$name.steady_io1" "$io1"
    # Then warm scrapes with nothing else going on: what a scrape of unchanged databases
    # reads and writes.
    rec "$name.steady_scrape_io0" "$(io4 "$pid")"
    for ((i = 1; i <= 5; i++)); do
      line=$(scrape "$url/metrics" /dev/null)
      [[ ${line##* } == 200 ]] || die "$name: steady scrape failed: $line"
    done
    rec "$name.steady_scrape_io1" "$(io4 "$pid")"
  fi
  stop_pid "$pid"

  # The Python peer on the same files: one scrape to warm up, then peer_warm timed ones.
  if ((PEER_OK && n <= PEER_MAX_N)); then
    echo "== $n databases: py_peer.py"
    local port
    port=$(python3 "$HELP" freeport)
    "$PEER_PY" "$BENCH/py_peer.py" --addr 127.0.0.1 --port "$port" --check none "$dir"/*.sqlite \
      >"$RUN/$name.peer.log" 2>&1 &
    local ppid=$!
    PIDS+=("$ppid")
    local deadline=$((SECONDS + READY_TIMEOUT))
    while :; do
      line=$(scrape "http://127.0.0.1:$port/metrics" /dev/null)
      [[ ${line##* } == 200 ]] && break
      kill -0 "$ppid" 2>/dev/null || { tail -5 "$RUN/$name.peer.log" >&2; die "py_peer exited"; }
      ((SECONDS < deadline)) || die "py_peer not answering"
      sleep 0.2
    done
    for ((i = 1; i <= peer_warm; i++)); do
      out=/dev/null
      ((i < peer_warm)) || out=$RUN/$name.peer.body
      line=$(scrape "http://127.0.0.1:$port/metrics" "$out")
      [[ ${line##* } == 200 ]] || die "py_peer: scrape failed: $line"
      rec "$name.peer" "$line"
    done
    rec "$name.peer_body" "$(python3 "$HELP" bodystats "$RUN/$name.peer.body" db)"
    stop_pid "$ppid"
  fi

  # The syscall floor on the same files (one line per repeat: total_us=...).
  echo "== $n databases: syscall floor x$floor_reps"
  "$FLOOR" "$dir" "$floor_reps" >"$RUN/$name.floor.txt"
  rec "$name.floor_us" "$(sed -n 's/.*total_us=\([0-9.]*\).*/\1/p' "$RUN/$name.floor.txt" | tr '\n' ' ')"
}

# --- WAL-size independence: same database, 256 KiB vs 20 MiB of live WAL ------------------
# Two situations, each with both WAL sizes: "held" (the application is running and keeps a
# writer connection open, wal_autocheckpoint=0, so the WAL and its index stay valid) and
# "exited" (the application left without closing, as in the fleets: the WAL stays, nobody
# holds its index). One exporter per database, all four running; scrapes alternate so that
# machine noise hits every variant alike.
run_wal() {
  local scrapes=$((QUICK ? 10 : 30)) base dir=$RUN/wal line i v
  local variants=(held_small held_big exited_small exited_big)
  echo "== WAL size: one database with a 256 KiB vs a 20 MiB WAL (held / exited), $scrapes scrapes each"
  base=$BENCH_DIR/wal-base
  if [[ ! -f $base/.complete ]]; then
    rm -rf "$base"
    python3 "$BENCH/mkdbs.py" 1 0.2 "$base" --no-wal-tail >/dev/null
    touch "$base/.complete"
  fi
  python3 "$HELP" walhold "$base/db0000.sqlite" "$dir" held_small:262144:held \
    held_big:20971520:held exited_small:262144:exited exited_big:20971520:exited \
    >"$RUN/walhold.out" &
  local hpid=$!
  PIDS+=("$hpid")
  until grep -q '^ready' "$RUN/walhold.out"; do
    kill -0 "$hpid" 2>/dev/null || die "walhold exited"
    sleep 0.1
  done
  rec wal.sizes "$(sed 's/^ready //' "$RUN/walhold.out")"
  declare -A pid url
  for v in "${variants[@]}"; do
    printf 'databases:\n  - glob: %s/%s.sqlite\n' "$dir" "$v" >"$RUN/wal_$v.yml"
    start_exporter "wal_$v" "$RUN/wal_$v.yml"
    first_full_scrape "wal_$v" 1
    pid[$v]=$EXP_PID url[$v]=$EXP_URL
  done
  for v in "${variants[@]}"; do rec "wal.$v.io0" "$(io4 "${pid[$v]}")"; done
  for ((i = 0; i < scrapes; i++)); do
    for v in "${variants[@]}"; do
      line=$(scrape "${url[$v]}/metrics" /dev/null)
      [[ ${line##* } == 200 ]] || die "wal_$v: scrape failed: $line"
      rec "wal.$v" "${line%% *}"
    done
  done
  for v in "${variants[@]}"; do
    rec "wal.$v.io1" "$(io4 "${pid[$v]}")"
    stop_pid "${pid[$v]}"
  done
  stop_pid "$hpid"
}

# --- writer throughput without and with the exporter (scraped every second) --------------
run_writer() {
  # Short segments in ABBA order, so that drift of the (shared) machine hits both alike;
  # about 10 s per condition in full mode, 5 s in quick mode. Adjacent "with" segments share
  # one exporter; it is started before them (ready, first scrape, 1 s for its start-up
  # checks) and stopped before the next "without" segment, so "without" has no exporter.
  local seg=2.5 order dir=$RUN/writer
  order="without with with without"
  ((QUICK)) || order="$order $order"
  echo "== writer throughput: ${seg}s segments: $order"
  mkdir -p "$dir"
  python3 "$BENCH/mkdbs.py" 1 0.2 "$dir" --no-wal-tail >/dev/null
  local db=$dir/db0000.sqlite
  printf 'databases:\n  - glob: %s\n' "$db" >"$RUN/writer.yml"
  : >"$RUN/writer.scrapes"
  local s epid="" spid=""
  for s in $order end; do
    if [[ $s != with && -n $epid ]]; then
      stop_pid "$spid"
      stop_pid "$epid"
      epid="" spid=""
    fi
    if [[ $s == without ]]; then
      rec writer.without "$(python3 "$HELP" writer "$db" "$seg")"
    elif [[ $s == with ]]; then
      if [[ -z $epid ]]; then
        start_exporter writer "$RUN/writer.yml"
        first_full_scrape writer 1
        epid=$EXP_PID
        sleep 1
        # Prometheus-like: one scrape every second while the writer runs.
        (
          while :; do
            scrape "$EXP_URL/metrics" /dev/null >>"$RUN/writer.scrapes"
            sleep 1
          done
        ) &
        spid=$!
        PIDS+=("$spid")
      fi
      rec writer.with "$(python3 "$HELP" writer "$db" "$seg")"
    fi
  done
  rec writer.scrapes "$(wc -l <"$RUN/writer.scrapes")"
}

echo "fleet.sh: $(basename "$EXPORTER_BIN"), BENCH_DIR=$BENCH_DIR, sizes: $SIZES, quick=$QUICK, $(nproc) cores"
for n in $SIZES; do run_fleet "$n"; done
run_wal
run_writer

python3 "$BENCH/fleet_report.py" "$MEASURE" --bin "$EXPORTER_BIN" --quick "$QUICK" | tee "$RUN/table.txt"
echo "raw measurements and logs: $RUN"
