#!/usr/bin/env bash
# How evenly one hot stream's work spreads over the workers: a reflector with N workers
# (default 2), one stream, P players (default 4000) from reflector-load; during the measured
# window, each server thread's CPU (/proc/PID/task/*/stat) as a share of the server's total.
# The per-core fan-out's target: no arbiter thread above 53 % of the server's CPU with 2
# workers (an even split is 50 %).
#
# Usage: scripts/bench-thread-split.sh [WORKERS] [PLAYERS]
# Env: SERVER_CPUS (taskset list for the server; default: all), TOOL_CPUS (default: all),
#      DURATION (20 s), TOOL_ARGS (extra reflector-load arguments, e.g. --threads 2), NO_BUILD=1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=scripts/lib/bench.sh
source scripts/lib/bench.sh
WORKERS=${1:-2}
PLAYERS=${2:-4000}
DURATION=${DURATION:-20}
build_tools
OUT=$(mktemp -d /tmp/thread-split.XXXXXX)
start_reflector "$OUT/server.log" "$WORKERS" "${SERVER_CPUS:-}"
tool=()
[ -z "${TOOL_CPUS:-}" ] || tool=(taskset -c "$TOOL_CPUS")
"${tool[@]}" "$LOAD" "rtmp://127.0.0.1:$PORT/live/split" --mode fixed --players "$PLAYERS" \
  --duration "$DURATION" --server-pid "$SPID" --label split ${TOOL_ARGS:-} >"$OUT/load.json" 2>"$OUT/load.stderr" &
LPID=$!
BG_PIDS+=("$LPID")
# Wait for the players to connect and the window to start, then sample the threads.
connect_s=$((PLAYERS / 200 + 4))
sleep "$connect_s"
thread_ticks() {
  local t
  for t in /proc/"$SPID"/task/*; do
    printf '%s %s %s\n' "${t##*/}" "$(tr -d '\n' <"$t/comm" | tr ' ' _)" \
      "$(sed 's/.*) //' "$t/stat" | awk '{print $12 + $13}')"
  done
}
thread_ticks >"$OUT/before"
window=$((DURATION / 2))
sleep "$window"
thread_ticks >"$OUT/after"
wait "$LPID" || true
python3 - "$OUT/before" "$OUT/after" "$window" "$WORKERS" "$PLAYERS" <<'PY'
import sys
before = {l.split()[0]: (l.split()[1], int(l.split()[2])) for l in open(sys.argv[1])}
after = {l.split()[0]: (l.split()[1], int(l.split()[2])) for l in open(sys.argv[2])}
window, workers, players = float(sys.argv[3]), sys.argv[4], sys.argv[5]
hz = 100.0
rows = []
for tid, (name, t1) in after.items():
    t0 = before.get(tid, (name, t1))[1]
    rows.append((t1 - t0, tid, name))
total = sum(r[0] for r in rows) or 1
print(f"{workers} workers, {players} players, {window:.0f} s window: server CPU {total / hz / window * 100:.1f} % of a core")
for ticks, tid, name in sorted(rows, reverse=True):
    if ticks == 0:
        continue
    print(f"  thread {tid:>8} {name:<18} {ticks / hz / window * 100:6.1f} % of a core  {ticks / total * 100:5.1f} % of the server")
PY
tail -n 1 "$OUT/load.json" | python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); print("load:", {k: r.get(k) for k in ("delivery_pct","p99_ms","delivered_gbps","server_cpu_pct","server_cpu_pct_per_gbps","tool_saturated")})' 2>/dev/null || true
echo "files: $OUT"
