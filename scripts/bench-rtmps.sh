#!/usr/bin/env bash
# RTMPS against plain RTMP on the same server: one reflector (one worker, pinned to
# SERVER_CORE) with both listeners and a certificate from a throwaway CA made here; the load
# tool (pinned to TOOL_CORE) plays N players over plain RTMP, then over RTMPS, A/B/A/B.
# Prints the server's CPU per delivered Gbit/s for each and the ratio (issue #17's target:
# RTMPS <= 1.6x plain).
#
# Usage: scripts/bench-rtmps.sh [PLAYERS]   (default 1000)
# Env: REPS (2), DURATION (10), SERVER_CORE (0), TOOL_CORE (1), NO_BUILD=1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=scripts/lib/bench.sh
source scripts/lib/bench.sh
PLAYERS=${1:-1000}
REPS=${REPS:-2}
DURATION=${DURATION:-10}
SERVER_CORE=${SERVER_CORE:-0}
TOOL_CORE=${TOOL_CORE:-1}
build_tools
OUT=$(mktemp -d /tmp/bench-rtmps.XXXXXX)
# A CA and a server certificate for 127.0.0.1 signed by it.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=bench-ca \
  -keyout "$OUT/ca.key" -out "$OUT/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 \
  -keyout "$OUT/key.pem" -out "$OUT/req.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$OUT/ext.cnf"
openssl x509 -req -in "$OUT/req.csr" -CA "$OUT/ca.pem" -CAkey "$OUT/ca.key" -CAcreateserial \
  -days 2 -extfile "$OUT/ext.cnf" -out "$OUT/cert.pem" 2>/dev/null
for rep in $(seq "$REPS"); do
  for kind in plain rtmps; do
    TLS_PORT=$(free_port)
    start_reflector "$OUT/server-$kind-$rep.log" 1 "$SERVER_CORE" \
      --rtmps-listen "127.0.0.1:$TLS_PORT" --rtmps-cert-file "$OUT/cert.pem" \
      --rtmps-key-file "$OUT/key.pem"
    wait_port "$TLS_PORT"
    if [ "$kind" = plain ]; then url="rtmp://127.0.0.1:$PORT/live/bench"; else url="rtmps://127.0.0.1:$TLS_PORT/live/bench"; fi
    echo "== rep $rep $kind" >&2
    taskset -c "$TOOL_CORE" "$LOAD" "$url" --ca-file "$OUT/ca.pem" --mode fixed \
      --players "$PLAYERS" --duration "$DURATION" --server-pid "$SPID" --label "$kind" \
      2>>"$OUT/load.stderr" | tail -n 1 | sed "s/^/$kind /" >>"$OUT/results.txt"
    stop_bg
    sleep 1
  done
done
python3 - "$OUT/results.txt" <<'PY'
import json, statistics, sys
runs = {"plain": [], "rtmps": []}
for line in open(sys.argv[1]):
    kind, _, js = line.partition(" ")
    r = json.loads(js)
    runs[kind].append(r)
def med(kind, key):
    vals = [r.get(key) for r in runs[kind] if r.get(key) is not None]
    return statistics.median(vals) if vals else float("nan")
print("| figure | plain (runs) | RTMPS (runs) | ratio RTMPS/plain (medians) |")
print("|---|---|---|---|")
for key in ("server_cpu_pct_per_gbps", "delivered_gbps", "delivery_pct", "p99_ms", "rss_per_player_kb"):
    p = " / ".join(f"{r.get(key, float('nan')):.3g}" for r in runs["plain"])
    t = " / ".join(f"{r.get(key, float('nan')):.3g}" for r in runs["rtmps"])
    ratio = med("rtmps", key) / med("plain", key) if med("plain", key) else float("nan")
    print(f"| {key} | {p} | {t} | {ratio:.2f} |")
PY
echo "files: $OUT" >&2
