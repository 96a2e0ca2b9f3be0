#!/usr/bin/env bash
# Players at the SLO per number of server workers (issue #16): for workers 1, 2, 4, 8 (no
# more than the machine's cores), with one stream and with one stream per worker, a bounded
# search (doubling, then bisection) for the most players that still meet the SLO
# (delivery >= 99.9 %, p99 <= 500 ms). The server is pinned to the lower half of the cores
# and the load tool to the upper half (taskset; on 2 cores: server core 0, tool core 1).
# Every run starts a fresh reflector. One stream per worker means one reflector-load
# process per stream, players split evenly; their figures are combined (delivery: the
# lowest, p99: the highest, Gbit/s and tool CPU: summed, server CPU: the server's, measured
# by every tool over its window from /proc/PID/stat, averaged).
#
# Prints per configuration: players at the SLO, p99 there, server CPU per delivered Gbit/s
# and the load tool's own CPU (with its warning when a tool thread was the bottleneck).
# Open files are capped per process (20000 here): searches stay below it and say so.
#
# Usage: scripts/bench-cores.sh [--quick]     (on a shared machine: nice scripts/bench-cores.sh --quick)
#   --quick: small counts and short runs (start 100, at most 300 players, 3 s windows).
# Env: START (1000), MAX_PLAYERS (the cap), ITER (6: runs per search), DURATION (10),
#      WARMUP (2), RAMP (1000/s), BITRATE (2000), WORKERS ("1 2 4 8"), OUT (dir), NO_BUILD=1
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=scripts/lib/bench.sh
. "$ROOT/scripts/lib/bench.sh"

QUICK=
[ "${1:-}" = --quick ] && QUICK=1
if [ -n "$QUICK" ]; then
  START=${START:-100}; MAX_PLAYERS=${MAX_PLAYERS:-300}; ITER=${ITER:-3}
  DURATION=${DURATION:-3}; WARMUP=${WARMUP:-1}; RAMP=${RAMP:-300}
else
  START=${START:-1000}; ITER=${ITER:-6}; DURATION=${DURATION:-10}; WARMUP=${WARMUP:-2}
  RAMP=${RAMP:-1000}
fi
BITRATE=${BITRATE:-2000}
OUT=${OUT:-$(mktemp -d /tmp/bench-cores.XXXXXX)}
mkdir -p "$OUT"
build_tools

CORES=$(nproc)
HALF=$((CORES / 2 > 0 ? CORES / 2 : 1))
SERVER_CPUS=0-$((HALF - 1))
TOOL_CPUS=$HALF-$((CORES - 1))
[ "$CORES" -gt 1 ] || TOOL_CPUS=0
TOOL_CORES=$((CORES - HALF > 0 ? CORES - HALF : 1))
# Server and tool each hold one socket per player, plus their own files.
FD_CAP=$((NOFILE_CAP - 200))
MAX_PLAYERS=${MAX_PLAYERS:-$FD_CAP}
[ "$MAX_PLAYERS" -le "$FD_CAP" ] || MAX_PLAYERS=$FD_CAP
WORKERS_LIST=()
for w in ${WORKERS:-1 2 4 8}; do [ "$w" -le "$CORES" ] && WORKERS_LIST+=("$w"); done

echo "bench-cores: $CORES cores; server on CPUs $SERVER_CPUS, load tool on CPUs $TOOL_CPUS; workers ${WORKERS_LIST[*]}"
echo "bench-cores: open files are capped at $NOFILE_CAP per process (hard limit), server and load tool each hold one per player: searches stay at or below $FD_CAP players (this run: $MAX_PLAYERS)"
echo "bench-cores: SLO delivery >= 99.9 %, p99 <= 500 ms; ${BITRATE} kbit/s, 30 fps + AAC; search from $START, at most $ITER runs per configuration, ${DURATION} s windows"

# run_once WORKERS STREAMS PLAYERS -> appends one line to results.jsonl, prints "ok" or "fail"
run_once() {
  local workers=$1 streams=$2 players=$3
  start_reflector "$OUT/server-w$workers-s$streams-p$players.log" "$workers" "$SERVER_CPUS"
  local per=$(((players + streams - 1) / streams)) threads=$((TOOL_CORES / streams))
  [ "$threads" -ge 1 ] || threads=1
  local i pids=() files=()
  for i in $(seq "$streams"); do
    local f="$OUT/load-w$workers-s$streams-p$players-$i.json"
    files+=("$f")
    taskset -c "$TOOL_CPUS" "$LOAD" "rtmp://127.0.0.1:$PORT/live/s$i" --mode fixed \
      --players "$per" --threads "$threads" --duration "$DURATION" --warmup "$WARMUP" \
      --ramp "$RAMP" --bitrate-kbps "$BITRATE" --server-pid "$SPID" \
      --label "w$workers-s$streams" 2>>"$OUT/load.stderr" | tail -n 1 >"$f" &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || true; done
  stop_pid "$SPID"
  python3 "$ROOT/scripts/cores_summary.py" --combine "$workers" "$streams" "$players" "${files[@]}" \
    >>"$OUT/results.jsonl"
  tail -n 1 "$OUT/results.jsonl" | python3 -c 'import json,sys; print("ok" if json.load(sys.stdin)["slo_ok"] else "fail")'
}

# search WORKERS STREAMS: doubling from START until a failure or the cap, then bisection.
search() {
  local workers=$1 streams=$2 lo=0 hi=0 p=$START n=0 verdict
  [ "$p" -le "$MAX_PLAYERS" ] || p=$MAX_PLAYERS
  while [ "$n" -lt "$ITER" ] && [ "$p" -gt "$lo" ]; do
    verdict=$(run_once "$workers" "$streams" "$p")
    n=$((n + 1))
    echo "  workers $workers, streams $streams: $p players -> $verdict" >&2
    if [ "$verdict" = ok ]; then
      lo=$p
      if [ "$hi" = 0 ]; then
        [ "$p" -lt "$MAX_PLAYERS" ] || break
        p=$((p * 2)); [ "$p" -le "$MAX_PLAYERS" ] || p=$MAX_PLAYERS
      else
        p=$(((lo + hi) / 2))
      fi
    else
      hi=$p
      p=$(((lo + hi) / 2))
    fi
    # Bisection finer than 2 % of the count says nothing new.
    [ "$hi" = 0 ] || [ $((hi - lo)) -gt $((hi / 50 + 1)) ] || break
  done
}

for w in "${WORKERS_LIST[@]}"; do
  search "$w" 1
  # One stream per worker; with one worker that is the run above.
  if [ "$w" -gt 1 ]; then search "$w" "$w"; fi
done
echo "results: $OUT/results.jsonl" >&2
python3 "$ROOT/scripts/cores_summary.py" "$OUT/results.jsonl" "$MAX_PLAYERS" "$NOFILE_CAP"
