# Shared pieces of scripts/bench-*.sh (sourced, not run): paths, ports, the build, starting
# and stopping a reflector, and the open-file cap. Expects ROOT (the repository) to be set.
# shellcheck shell=bash

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
REFLECTOR=$CARGO_TARGET_DIR/release/reflector
LOAD=$CARGO_TARGET_DIR/release/reflector-load
# These machines cap open files at 20000 (hard), per process: every player is one socket in
# the load tool and one in the server.
NOFILE_CAP=$(ulimit -Hn)
[ "$NOFILE_CAP" = unlimited ] && NOFILE_CAP=1048576
ulimit -n "$NOFILE_CAP" 2>/dev/null || echo "warning: could not raise ulimit -n to $NOFILE_CAP" >&2
# The default per-IP limit (2000) would stop a single-host load test first.
export REFLECTOR_LIMITS__MAX_CONNECTIONS_PER_IP=20000 RUST_LOG=${RUST_LOG:-warn}

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

build_tools() {
  [ -n "${NO_BUILD:-}" ] || nice cargo build --release -j 1 --bin reflector --bin reflector-load >&2
}

# Processes started in the background, stopped on exit.
BG_PIDS=()
stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
stop_bg() {
  local p
  for p in "${BG_PIDS[@]}"; do stop_pid "$p"; done
  BG_PIDS=()
}
trap stop_bg EXIT

# start_reflector LOG WORKERS [CPUS [ARGS...]]: a reflector on 127.0.0.1, pinned to CPUS
# (taskset list) if given. Sets PORT and SPID.
start_reflector() {
  local log=$1 workers=$2 cpus=${3:-}
  shift $(($# < 3 ? $# : 3))
  PORT=$(free_port)
  local pin=()
  [ -z "$cpus" ] || pin=(taskset -c "$cpus")
  "${pin[@]}" "$REFLECTOR" --workers "$workers" --listen "127.0.0.1:$PORT" \
    --admin-listen "127.0.0.1:$(free_port)" "$@" >"$log" 2>&1 &
  SPID=$!
  BG_PIDS+=("$SPID")
  wait_port "$PORT" || { echo "reflector did not start; see $log" >&2; exit 1; }
}

# cpu_ticks PID: utime + stime of a process (fields 14 and 15 of /proc/PID/stat; the name
# field is skipped by cutting at its closing parenthesis).
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
