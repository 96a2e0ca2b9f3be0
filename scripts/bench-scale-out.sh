#!/usr/bin/env bash
# Scale-out benchmark on one machine (issue #8), load from reflector-load.
#
#   workers    one reflector, --workers 1 vs --workers 2, neither it nor the load tool pinned
#              (the whole machine): a fixed load and a max-mode search, with the CPU of each
#              server thread, so one hot stream's split between the arbiters shows.
#   instances  one instance vs three (Redis discovery; the publisher on A, players spread
#              over A, B and C, which pull the stream from A). Every server process is pinned
#              to SERVER_CORE and the load tool to TOOL_CORE, so both setups get the same one
#              core: per-instance CPU and CPU per delivered Gbit/s, and the relay overhead.
#
# Setups alternate inside each repetition (A/B/A/B). Each run starts fresh servers on
# 127.0.0.1 (random ports). One JSON line per run in $OUT/results.jsonl (with the load
# average at its start), then a summary (scripts/scale_out_summary.py) on stdout.
#
# Usage: scripts/bench-scale-out.sh [workers] [instances]   (default: both)
# Env: REPS (2), PLAYERS (1000), BITRATE (kbit/s, 2000), DURATION (s, 10), MAX=0 (skip the
#      max-mode searches), STEP (1000), MAX_PLAYERS (15000), OUT (dir), NO_BUILD=1,
#      SERVER_CORE (0), TOOL_CORE (1)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=scripts/lib/bench.sh
. "$ROOT/scripts/lib/bench.sh"
REPS=${REPS:-2}
PLAYERS=${PLAYERS:-1000}
BITRATE=${BITRATE:-2000}
DURATION=${DURATION:-10}
MAX=${MAX:-1}
STEP=${STEP:-1000}
MAX_PLAYERS=${MAX_PLAYERS:-15000}
SERVER_CORE=${SERVER_CORE:-0}
TOOL_CORE=${TOOL_CORE:-1}
OUT=${OUT:-$(mktemp -d /tmp/bench-scale-out.XXXXXX)}
mkdir -p "$OUT"
[ -n "${NO_BUILD:-}" ] || cargo build --release -j 1 --bin reflector --bin reflector-load >&2

if [ $# -gt 0 ]; then SCEN=("$@"); else SCEN=(workers instances); fi
TESTS=(fixed)
[ "$MAX" = 0 ] || TESTS+=(max)

PIDS=()    # reflector processes of the current run
PORTS=()
REDIS_PID=""
stop_servers() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=(); PORTS=()
}
cleanup() {
  stop_servers
  if [ -n "$REDIS_PID" ]; then kill "$REDIS_PID" 2>/dev/null || true; wait "$REDIS_PID" 2>/dev/null || true; fi
}
trap cleanup EXIT

# start_reflector NAME PIN(yes|no) ARGS...: appends to PIDS and PORTS; @PORT@ in ARGS becomes
# the port it listens on (for --advertise).
start_reflector() {
  local name=$1 pin=$2; shift 2
  local port; port=$(free_port)
  local log="$OUT/$name-$port.log"
  local pin_cmd=()
  [ "$pin" = yes ] && pin_cmd=(taskset -c "$SERVER_CORE")
  "${pin_cmd[@]}" "$REFLECTOR" --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$(free_port)" \
    "${@//@PORT@/$port}" >"$log" 2>&1 &
  PIDS+=($!); PORTS+=("$port")
  wait_port "$port" || { echo "reflector $name did not start; see $log" >&2; exit 1; }
}

start_redis() {
  [ -n "$REDIS_PID" ] && return
  REDIS_PORT=$(free_port)
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$OUT" \
    >"$OUT/redis.log" 2>&1 &
  REDIS_PID=$!
  wait_port "$REDIS_PORT" || { echo "redis-server did not start; see $OUT/redis.log" >&2; exit 1; }
}

load_args() { # test -> reflector-load arguments
  case $1 in
    fixed) echo "--mode fixed --players $PLAYERS --duration $DURATION --ramp 500" ;;
    max) echo "--mode max --step $STEP --max-players $MAX_PLAYERS --duration 5 --warmup 2 --ramp 1000" ;;
  esac
}

# run SCENARIO SETUP TEST REP TOOL_PIN(yes|no) URL [reflector-load args...]
run() {
  local scenario=$1 setup=$2 test=$3 rep=$4 pin=$5 url=$6; shift 6
  local pin_cmd=()
  [ "$pin" = yes ] && pin_cmd=(taskset -c "$TOOL_CORE")
  local load; load=$(cut -d' ' -f1-3 /proc/loadavg)
  echo "== rep $rep $scenario $setup $test (servers ${PIDS[*]}, load average $load)" >&2
  local line
  # shellcheck disable=SC2046
  if line=$("${pin_cmd[@]}" "$LOAD" "$url" --bitrate-kbps "$BITRATE" --label "$setup" \
      $(load_args "$test") "$@" 2>>"$OUT/load.stderr" | tail -n 1); then
    echo "{\"scenario\":\"$scenario\",\"setup\":\"$setup\",\"test\":\"$test\",\"rep\":$rep,\"loadavg\":\"$load\",\"result\":$line}" >>"$OUT/results.jsonl"
  else
    echo "load tool failed: $scenario $setup $test (see $OUT/load.stderr)" >&2
  fi
}

workers() { # rep test
  local w
  for w in 1 2; do
    start_reflector "w$w" no --workers "$w"
    run workers "workers$w" "$2" "$1" no "rtmp://127.0.0.1:${PORTS[0]}/live/hot" \
      --server-pid "${PIDS[0]}"
    stop_servers
    sleep 1
  done
}

instances() { # rep test
  local setup stream
  for setup in one three; do
    # A fresh stream name per run: no registration of an earlier run can be looked up.
    stream="hot-$1-$2-$setup"
    if [ "$setup" = one ]; then
      start_reflector one yes --workers 1
      run instances one "$2" "$1" yes "rtmp://127.0.0.1:${PORTS[0]}/live/$stream" \
        --server-pid "${PIDS[0]}"
    else
      start_redis
      local i port
      for i in a b c; do
        start_reflector "three-$i" yes --workers 1 --redis-url "redis://127.0.0.1:$REDIS_PORT" \
          --advertise 127.0.0.1:@PORT@
      done
      local play=()
      for port in "${PORTS[@]}"; do play+=(--play-url "rtmp://127.0.0.1:$port/live/$stream"); done
      run instances three "$2" "$1" yes "rtmp://127.0.0.1:${PORTS[0]}/live/$stream" \
        "${play[@]}" --server-pid "$(IFS=,; echo "${PIDS[*]}")"
    fi
    stop_servers
    sleep 1
  done
}

echo "load average at start: $(cat /proc/loadavg)" >&2
for rep in $(seq "$REPS"); do
  for sc in "${SCEN[@]}"; do
    case $sc in
      workers|instances) ;;
      *) echo "unknown scenario $sc (workers, instances)" >&2; exit 2 ;;
    esac
    for t in "${TESTS[@]}"; do "$sc" "$rep" "$t"; done
  done
done
echo "results: $OUT/results.jsonl" >&2
python3 "$ROOT/scripts/scale_out_summary.py" "$OUT/results.jsonl"
