#!/usr/bin/env bash
# HTTP-FLV and WebSocket-FLV players against RTMP players on the same server: one reflector
# (one worker, pinned to SERVER_CORE) with its RTMP and HTTP listeners; the load tool (pinned
# to TOOL_CORE) publishes over RTMP and plays N players over RTMP, then over HTTP-FLV, then
# over WebSocket-FLV, each on a fresh server, A/B/C/A/B/C. Prints the server's CPU per
# delivered Gbit/s for each and the ratios (issue #18's target: HTTP-FLV <= 1.1x RTMP).
#
# Usage: scripts/bench-http-flv.sh [PLAYERS]   (default 500)
# Env: REPS (2), DURATION (10), SERVER_CORE (0), TOOL_CORE (1), KINDS ("rtmp http ws"),
#      NO_BUILD=1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=scripts/lib/bench.sh
source scripts/lib/bench.sh
PLAYERS=${1:-500}
REPS=${REPS:-2}
DURATION=${DURATION:-10}
SERVER_CORE=${SERVER_CORE:-0}
TOOL_CORE=${TOOL_CORE:-1}
read -r -a KINDS <<<"${KINDS:-rtmp http ws}"
build_tools
OUT=$(mktemp -d /tmp/bench-http-flv.XXXXXX)
for rep in $(seq "$REPS"); do
  for kind in "${KINDS[@]}"; do
    HTTP_PORT=$(free_port)
    start_reflector "$OUT/server-$kind-$rep.log" 1 "$SERVER_CORE" \
      --http-listen "127.0.0.1:$HTTP_PORT"
    wait_port "$HTTP_PORT" || { echo "no HTTP listener; see $OUT/server-$kind-$rep.log" >&2; exit 1; }
    case $kind in
      rtmp) play="rtmp://127.0.0.1:$PORT/live/bench" ;;
      http) play="http://127.0.0.1:$HTTP_PORT/live/bench.flv" ;;
      ws)   play="ws://127.0.0.1:$HTTP_PORT/live/bench.flv" ;;
      *) echo "unknown kind $kind (rtmp, http, ws)" >&2; exit 2 ;;
    esac
    echo "== rep $rep $kind ($play)" >&2
    taskset -c "$TOOL_CORE" "$LOAD" "rtmp://127.0.0.1:$PORT/live/bench" --play-url "$play" \
      --mode fixed --players "$PLAYERS" --duration "$DURATION" --server-pid "$SPID" \
      --label "$kind" 2>>"$OUT/load.stderr" | tail -n 1 | sed "s/^/$kind /" >>"$OUT/results.txt"
    stop_bg
    sleep 1
  done
done
python3 - "$OUT/results.txt" <<'PY'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    kind, _, js = line.partition(" ")
    runs.setdefault(kind, []).append(json.loads(js))
kinds = [k for k in ("rtmp", "http", "ws") if k in runs]
def med(kind, key):
    vals = [r.get(key) for r in runs[kind] if r.get(key) is not None]
    return statistics.median(vals) if vals else float("nan")
names = {"rtmp": "RTMP", "http": "HTTP-FLV", "ws": "WS-FLV"}
head = ["figure"] + [f"{names[k]} (runs)" for k in kinds]
head += [f"{names[k]}/RTMP (medians)" for k in kinds if k != "rtmp" and "rtmp" in runs]
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
for key in ("server_cpu_pct_per_gbps", "server_cpu_pct", "delivered_gbps", "delivery_pct",
            "p50_ms", "p99_ms", "rss_per_player_kb", "connect_failures"):
    row = [key]
    for k in kinds:
        row.append(" / ".join(f"{r.get(key) if r.get(key) is not None else float('nan'):.3g}"
                              for r in runs[k]))
    for k in kinds:
        if k != "rtmp" and "rtmp" in runs:
            base = med("rtmp", key)
            row.append(f"{med(k, key) / base:.2f}" if base else "-")
    print("| " + " | ".join(row) + " |")
PY
echo "files: $OUT" >&2
