#!/usr/bin/env bash
# Side-by-side benchmark: reflector (release, --workers 1) vs nginx-rtmp (one worker,
# `live on`), same scenarios, interleaved A/B/A/B, server on core 0 and load tool on core 1.
# Each run starts a fresh server on 127.0.0.1. Results: one JSON line per run in
# $OUT/results.jsonl and a summary table (medians over the repetitions, ratio R/N) on stdout.
#
# Usage: scripts/bench-vs-nginx.sh [SCENARIO...]   (default: all)
# Env: REPS (2), SHORT=1 (shorter windows), CHURN_S (60: churn window), OUT (dir), NO_BUILD=1,
#      SERVER_CORE (0), TOOL_CORE (1),
#      PERF=1: during each fixed1000 run, `perf record -a -g` (linux-perf) for 6 s inside the
#      measured window, then a table of where each server's CPU goes (scripts/cpu_split.py)
#      PSTAT=1: during each fixed* run, `perf stat` of the server process (nginx: its
#      worker) for 6 s inside the window: task-clock, context switches, write/read
#      syscalls and the wake-ups the server's thread performs (on loopback, mostly of the
#      load tool's sleeping player threads), summarised per delivered Gbit/s
#      (scripts/pstat_summary.py): a second measurement of the server's CPU, independent
#      of the load tool's /proc sampling
#      LOAD_ARGS: more reflector-load flags for every run (e.g. --bundle-audio, or
#      --busy-poll: player threads that never sleep, so no server pays for waking them)
#      SERVERS ("reflector nginx"): `reflector:N` runs the reflector with
#      live.write_coalesce_ms = N (e.g. SERVERS="reflector reflector:0 nginx");
#      `reflector@PATH` (or `reflector:N@PATH`) runs the binary at PATH instead (A/B of builds)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=scripts/lib/bench.sh
. "$ROOT/scripts/lib/bench.sh"
REPS=${REPS:-2}
OUT=${OUT:-$(mktemp -d /tmp/bench-vs-nginx.XXXXXX)}
SERVER_CORE=${SERVER_CORE:-0}
TOOL_CORE=${TOOL_CORE:-1}
MODULE=/usr/lib/nginx/modules/ngx_rtmp_module.so
mkdir -p "$OUT"
[ -n "${NO_BUILD:-}" ] || cargo build --release --bins >&2

ALL=(fixed1000 idle1000 max blast1 blast8 fixed200 churn stalled join)
SCEN=("${@:-${ALL[@]}}")
# SHORT=1 trims windows further (smoke runs).
D=${SHORT:+5}; D=${D:-10}
PERF_S=6; PERF_FREQ=999
[ -z "${PERF:-}" ] || [ "$D" -ge 10 ] || { echo "PERF=1 needs the full 10 s window (no SHORT)" >&2; exit 2; }

SPID=""
start_server() { # $1 = reflector|nginx; sets PORT, SPID
  PORT=$(free_port)
  local dir="$OUT/srv-${1//\//_}-$PORT"; mkdir -p "$dir"
  if [ "${1%%[:@]*}" = reflector ]; then
    local variant=(env) name=${1%%@*} bin=$REFLECTOR
    [ "$name" = "$1" ] || bin=${1#*@}
    [ "$name" = reflector ] || variant=(env "REFLECTOR_LIVE__WRITE_COALESCE_MS=${name#*:}")
    "${variant[@]}" REFLECTOR_LIMITS__MAX_CONNECTIONS_PER_IP=20000 RUST_LOG=warn \
      taskset -c "$SERVER_CORE" "$bin" --workers 1 --listen "127.0.0.1:$PORT" \
      --admin-listen "127.0.0.1:$(free_port)" >"$dir/log" 2>&1 &
    SPID=$!
  else
    cat >"$dir/nginx.conf" <<CONF
load_module $MODULE;
worker_processes 1;
worker_rlimit_nofile 30000;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 20000; }
rtmp { server { listen 127.0.0.1:$PORT; chunk_size 4096; application live { live on; } } }
CONF
    taskset -c "$SERVER_CORE" nginx -p "$dir/" -e "$dir/error.log" -c "$dir/nginx.conf" -g 'daemon off;' >"$dir/log" 2>&1 &
    SPID=$!
  fi
  wait_port "$PORT" || { echo "server $1 did not start; see $dir" >&2; exit 1; }
  sleep 0.3
}
stop_server() { kill "$SPID" 2>/dev/null || true; wait "$SPID" 2>/dev/null || true; SPID=""; }
trap stop_server EXIT

args_for() { # scenario -> load tool arguments
  case $1 in
    fixed1000) echo "--mode fixed --players 1000 --duration $D" ;;
    fixed200)  echo "--mode fixed --players 200 --duration $D" ;;
    idle1000)  echo "--mode idle --players 1000 --duration 3" ;;
    # Warm-up longer than the 2 s GOP: a server without a GOP cache (nginx) makes joiners
    # wait for a keyframe, which a shorter warm-up would count as lost frames.
    max)       echo "--mode max --step 500 --max-players 8000 --duration 5 --warmup 3 --ramp 500" ;;
    blast1)    echo "--mode blast --players 1 --duration $D --warmup 1" ;;
    blast8)    echo "--mode blast --players 8 --duration $D --warmup 1" ;;
    churn)     echo "--mode churn --players 200 --churn-rate 50 --churn-life 2 --duration ${CHURN_S:-60}" ;;
    stalled)   echo "--mode stalled --players 200 --stall-fraction 0.1 --duration $((D + 5))" ;;
    join)      echo "--mode join --joins 20" ;;
    *) echo "unknown scenario $1" >&2; exit 2 ;;
  esac
}

for rep in $(seq "$REPS"); do
  for sc in "${SCEN[@]}"; do
    for srv in ${SERVERS:-reflector nginx}; do
      start_server "$srv"
      echo "== rep $rep $sc $srv (pid $SPID port $PORT)" >&2
      PERF_PID=""; PSTAT_PID=""
      if [ -n "${PSTAT:-}" ] && [ "${sc#fixed}" != "$sc" ]; then
        # Same 6 s as PERF; nginx's master forks the worker that serves.
        (sleep 9; T=$SPID; C=$(pgrep -P "$SPID" | head -1 || true); [ -z "$C" ] || T=$C
         exec perf stat -x, -e task-clock,context-switches,syscalls:sys_enter_writev,syscalls:sys_enter_sendto,syscalls:sys_enter_sendmsg,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_recvfrom,syscalls:sys_enter_read,sched:sched_waking \
          -p "$T" -o "$OUT/pstat-$sc-${srv//\//_}-$rep.csv" -- sleep "$PERF_S" 2>>"$OUT/perf.stderr") &
        PSTAT_PID=$!
      fi
      if [ -n "${PERF:-}" ] && [ "$sc" = fixed1000 ]; then
        # 1000 players connect at 200/s, then 2 s of warm-up: 9 s in, the window is running.
        (sleep 9; exec perf record -a -g -F "$PERF_FREQ" -o "$OUT/perf-$sc-${srv//\//_}-$rep.data" \
          -- sleep "$PERF_S" 2>>"$OUT/perf.stderr") &
        PERF_PID=$!
      fi
      # shellcheck disable=SC2046
      if line=$(taskset -c "$TOOL_CORE" "$LOAD" "rtmp://127.0.0.1:$PORT/live/bench" \
          --server-pid "$SPID" --label "$srv" $(args_for "$sc") ${LOAD_ARGS:-} 2>>"$OUT/load.stderr" | tail -n 1); then
        echo "{\"scenario\":\"$sc\",\"server\":\"$srv\",\"rep\":$rep,\"result\":$line}" >>"$OUT/results.jsonl"
      else
        echo "load tool failed: $sc $srv (see $OUT/load.stderr)" >&2
      fi
      [ -z "$PERF_PID" ] || wait "$PERF_PID" || echo "perf record failed (see $OUT/perf.stderr)" >&2
      [ -z "$PSTAT_PID" ] || wait "$PSTAT_PID" || echo "perf stat failed (see $OUT/perf.stderr)" >&2
      stop_server
      sleep 1
    done
  done
done
echo "results: $OUT/results.jsonl" >&2
python3 "$ROOT/scripts/bench_summary.py" "$OUT/results.jsonl"
if [ -n "${PSTAT:-}" ] && compgen -G "$OUT/pstat-*.csv" >/dev/null; then
  echo
  python3 "$ROOT/scripts/pstat_summary.py" "$PERF_S" "$OUT"
fi
if [ -n "${PERF:-}" ] && compgen -G "$OUT/perf-*.data" >/dev/null; then
  echo
  python3 "$ROOT/scripts/cpu_split.py" "$PERF_S" "$PERF_FREQ" "$OUT"/perf-*.data
fi
