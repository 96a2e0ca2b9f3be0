#!/usr/bin/env bash
# How real RTMP players read, next to reflector-load's players: starts a reflector and a
# synthetic publisher (reflector-load, 2 Mbit/s, 30 fps + AAC), then runs ffmpeg, rtmpdump,
# GStreamer rtmp2src and reflector-load (one player, each --player-profile given) one after
# another under strace for SECS seconds each, and prints read sizes, reads per second, bursts,
# Acknowledgement spacing, Window Acknowledgement Size and SetBufferLength
# (scripts/player_reads.py), then strace -c syscall counts per client.
#
# Usage: scripts/bench-player-reads.sh   Env: SECS (8), OUT (dir), NO_BUILD=1,
#        PROFILES ("ffmpeg legacy")
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=scripts/lib/bench.sh
. "$ROOT/scripts/lib/bench.sh"
SECS=${SECS:-8}
PROFILES=${PROFILES:-ffmpeg legacy}
OUT=${OUT:-$(mktemp -d /tmp/player-reads.XXXXXX)}
mkdir -p "$OUT"
build_tools
command -v strace >/dev/null || { echo "strace is needed" >&2; exit 2; }

start_reflector "$OUT/server.log" 1
URL=rtmp://127.0.0.1:$PORT/live/reads
nice "$LOAD" "$URL" --players 0 --duration $((SECS * 12 + 30)) --warmup 0 >"$OUT/publisher.out" 2>&1 &
PUB=$!
BG_PIDS+=("$PUB")
sleep 2

TRACE=(strace -f -tt -xx -s 4096 -e trace=read,recvfrom,readv,recvmsg,write,sendto,sendmsg,writev)
COUNT=(strace -f -c -e trace=read,recvfrom,readv,recvmsg,write,sendto,sendmsg,writev,epoll_wait,poll,ppoll)
declare -A CMD=(
  [ffmpeg]="ffmpeg -hide_banner -loglevel quiet -i $URL -c copy -f null -"
  [rtmpdump]="rtmpdump -q -r $URL --live -o /dev/null"
  [gstreamer]="gst-launch-1.0 -q rtmp2src location=$URL ! fakesink"
)
# reflector-load always publishes too: its own stream (the same synthetic media), which its
# one player plays.
for p in $PROFILES; do
  CMD[reflector-load-$p]="$LOAD $URL-$p --players 1 --duration $SECS --warmup 0 --player-profile $p"
done
ARGS=()
for name in ffmpeg rtmpdump gstreamer $(for p in $PROFILES; do echo "reflector-load-$p"; done); do
  # shellcheck disable=SC2086
  timeout "$SECS" nice "${TRACE[@]}" -o "$OUT/$name.trace" ${CMD[$name]} >/dev/null 2>&1 || true
  # shellcheck disable=SC2086
  timeout "$SECS" nice "${COUNT[@]}" -o "$OUT/$name.count" ${CMD[$name]} >/dev/null 2>&1 || true
  ARGS+=("$name" "$OUT/$name.trace")
done
python3 "$ROOT/scripts/player_reads.py" "${ARGS[@]}"
echo
echo "strace -c over $SECS s (every thread of each client; reflector-load's include its publisher):"
for name in "${!CMD[@]}"; do
  echo "-- $name"
  grep -E "^ *[0-9.]+ +[0-9.]+ +[0-9]+ +[0-9]+ +[0-9]* *(read|recvfrom|recvmsg|readv|write|sendto|sendmsg|writev|epoll_wait|poll|ppoll)$" "$OUT/$name.count" |
    awk '{printf "   %-10s %7d calls\n", $NF, $4}'
done
echo "traces: $OUT" >&2
