#!/usr/bin/env bash
# Regenerates tests/vectors/chunks/*.bin and tests/vectors/amf0/*.bin by capturing
# real clients talking to nginx-rtmp on loopback (see tests/vectors/README.md).
# Needs root (or CAP_NET_RAW) for tshark on `lo`. Everything listens on 127.0.0.1.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY="python3 $ROOT/scripts/rtmp_vectors.py"
WORK=$(mktemp -d /tmp/rtmp-vectors.XXXXXX)
PORT=${PORT:-19935}
OUT=$ROOT/tests/vectors
mkdir -p "$OUT/chunks" "$OUT/amf0"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

# --- clip (same recipe as tests/common/clip.rs)
ffmpeg -nostdin -v error -y -f lavfi -i testsrc2=size=320x240:rate=25 \
    -f lavfi -i sine=frequency=440:sample_rate=44100 -t 8 \
    -c:v libx264 -profile:v main -pix_fmt yuv420p -bf 2 -g 25 -keyint_min 25 -sc_threshold 0 \
    -c:a aac -ar 44100 -ac 2 -b:a 128k -f flv "$WORK/clip.flv"

# --- nginx-rtmp (same config as tests/common/server.rs)
cat >"$WORK/nginx.conf" <<EOF
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/error.log info;
events { worker_connections 256; }
rtmp { server { listen 127.0.0.1:$PORT; chunk_size 4096; application live { live on; } } }
EOF
nginx -p "$WORK/" -e "$WORK/error.log" -c "$WORK/nginx.conf" -g 'daemon off;' &
PIDS+=($!)
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done

URL=rtmp://127.0.0.1:$PORT/live
GST_PUB="flvdemux name=d d.video ! queue ! h264parse ! flvmux name=m streamable=true"

start_capture() { # $1 = pcap name
    tshark -i lo -f "tcp port $PORT" -F pcap -w "$WORK/$1.pcap" >"$WORK/$1.tshark.log" 2>&1 &
    TSHARK=$!
    for _ in $(seq 100); do grep -q "Capturing on" "$WORK/$1.tshark.log" && break; sleep 0.1; done
    sleep 0.5
}
stop_capture() {
    sleep 0.5
    kill -INT "$TSHARK"
    wait "$TSHARK" || true
}
# Runs "$@" in the background for $1 seconds, then SIGINT (clients close cleanly).
run_for() {
    local secs=$1; shift
    "$@" >>"$WORK/clients.log" 2>&1 &
    local pid=$!
    sleep "$secs"
    kill -INT "$pid" 2>/dev/null || true
    wait "$pid" || true
}
publisher() { # background ffmpeg publisher for play sessions
    ffmpeg -nostdin -v error -re -i "$WORK/clip.flv" -c copy -f flv "$URL/$1" >>"$WORK/clients.log" 2>&1 &
    PUB=$!
    sleep 1.5
}
stop_publisher() { kill -INT "$PUB" 2>/dev/null || true; wait "$PUB" || true; }

# 1. publishers (connection 0 of each capture)
start_capture ffmpeg-publish
run_for 3 ffmpeg -nostdin -v error -re -i "$WORK/clip.flv" -c copy -f flv "$URL/vec"
stop_capture
start_capture rtmp2sink-publish
run_for 3 gst-launch-1.0 -e filesrc location="$WORK/clip.flv" ! $GST_PUB ! rtmp2sink location="$URL/vec" sync=true d.audio ! queue ! aacparse ! m.
stop_capture
start_capture rtmpsink-publish
run_for 3 gst-launch-1.0 -e filesrc location="$WORK/clip.flv" ! $GST_PUB ! rtmpsink location="$URL/vec" sync=true d.audio ! queue ! aacparse ! m.
stop_capture

# 2. players (connection 1; connection 0 is the ffmpeg publisher)
start_capture ffmpeg-play
publisher vec
run_for 3 ffmpeg -nostdin -v error -i "$URL/vec" -c copy -f flv -y "$WORK/ffmpeg-play.flv"
stop_publisher
stop_capture
start_capture rtmpdump-play
publisher vec
run_for 3 rtmpdump -q -r "$URL/vec" --live -o "$WORK/rtmpdump-play.flv"
stop_publisher
stop_capture
start_capture rtmp2src-play
publisher vec
run_for 3 gst-launch-1.0 -e rtmp2src location="$URL/vec" ! filesink location="$WORK/rtmp2src-play.flv"
stop_publisher
stop_capture

# 3. extract: client->server after C0+C1+C2; publishers trimmed to <= 64 KiB at
# a point where no message is partial.
LIMIT=65536
for c in ffmpeg rtmp2sink rtmpsink; do
    $PY extract "$WORK/$c-publish.pcap" "$PORT" 0 c2s "$WORK/$c-publish-c2s.full"
    $PY trim "$WORK/$c-publish-c2s.full" $LIMIT "$OUT/chunks/$c-publish-c2s.bin"
done
for c in ffmpeg rtmpdump rtmp2src; do
    $PY extract "$WORK/$c-play.pcap" "$PORT" 1 c2s "$OUT/chunks/$c-play-c2s.bin"
done
# Server->client of the ffmpeg play session, after S0+S1+S2, trimmed like above.
$PY extract "$WORK/ffmpeg-play.pcap" "$PORT" 1 s2c "$WORK/nginx-play-s2c.full"
$PY trim "$WORK/nginx-play-s2c.full" $LIMIT "$OUT/chunks/nginx-play-s2c.bin"

# 4. AMF0 bodies (message payloads, de-chunked): the first connect command and
# the first @setDataFrame data message.
python3 - "$ROOT/scripts" "$OUT" <<'EOF'
import sys
sys.path.insert(0, sys.argv[1])
import rtmp_vectors as rv
out = sys.argv[2]
def first(path, mtype, name):
    msgs, _ = rv.dechunk(open(path, "rb").read())
    for m in msgs:
        if m["type"] == mtype and rv.amf0_values(m["payload"])[:1] == [name]:
            return m["payload"]
    raise SystemExit(f"{path}: no {name}")
open(f"{out}/amf0/setdataframe-onmetadata.bin", "wb").write(first(f"{out}/chunks/ffmpeg-publish-c2s.bin", 18, "@setDataFrame"))
open(f"{out}/amf0/ffmpeg-connect.bin", "wb").write(first(f"{out}/chunks/ffmpeg-publish-c2s.bin", 20, "connect"))
open(f"{out}/amf0/rtmpdump-connect.bin", "wb").write(first(f"{out}/chunks/rtmpdump-play-c2s.bin", 20, "connect"))
EOF
ls -l "$OUT/chunks" "$OUT/amf0"
echo "work dir (pcaps, logs): $WORK"
