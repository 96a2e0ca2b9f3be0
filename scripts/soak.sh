#!/usr/bin/env bash
# Soak run for issue 7: the canary publisher/player streams while rounds of every hostile
# attacker (tests/hostile.rs), connect/disconnect churn and fresh players run against one
# reflector for DURATION seconds. The server's VmRSS and open descriptors are sampled every
# SAMPLE seconds (after each round's connections are gone); the run fails if the canary ever
# stalls or loses a frame, if an attacker is not closed, or if RSS in the second half exceeds
# the first half's peak by more than 10% + 8 MiB, or descriptors grow.
#
# Usage: scripts/soak.sh [DURATION_SECONDS (default 1800)] [SAMPLE_SECONDS (default 10)]
# Output: "SOAK t=... rss=... fds=..." lines and a "SOAK done" summary on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
export SOAK_SECS="${1:-1800}"
export SOAK_SAMPLE_SECS="${2:-10}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
exec cargo test --test suite -- --ignored --exact hostile::soak --nocapture
