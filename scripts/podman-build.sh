#!/usr/bin/env bash
# Build the project's Dockerfile with podman on a machine without a Docker engine or a
# registry (see ../shared/containers.md): local base images made with debootstrap stand in
# for the public ones, the machine's Rust toolchain is mounted into the build.
#
# Usage: scripts/podman-build.sh [IMAGE]      (default IMAGE: localhost/reflector:test)
#
# Environment:
#   REFLECTOR_PODMAN_DIR  state dir (containers.conf, debootstrap scratch); default
#                         /var/tmp/reflector-podman. tests/docker.rs uses the same default.
#   RUSTUP_HOME, CARGO_HOME  the toolchain to mount (default ~/.rustup, ~/.cargo).
#
# Caching: the base images are built once and kept (podman image exists). The image build
# uses podman's layer cache and the Dockerfile's cache mounts (cargo registry and target dir),
# so a rebuild after a source change compiles only the reflector crate. Measured on a 2-core
# machine: cold (debootstrap + builder image + every dependency) about 8.5 min, of which
# cargo 6m45s; a source change about 90 s; nothing changed about 4 s. Buildah keeps the cache
# mounts in /var/tmp/buildah-cache (about 460 MB), the images in /var/lib/containers.
set -euo pipefail

cd "$(dirname "$0")/.."

IMAGE=${1:-localhost/reflector:test}
STATE=${REFLECTOR_PODMAN_DIR:-/var/tmp/reflector-podman}
BASE=localhost/debian:bookworm-slim
BUILDER=localhost/rust:1-bookworm
RUSTUP_DIR=${RUSTUP_HOME:-$HOME/.rustup}
CARGO_BIN_DIR=${CARGO_HOME:-$HOME/.cargo}/bin

mkdir -p "$STATE"
# The sandbox forbids crun, cgroup v2 controller delegation and raising rlimits.
cat >"$STATE/containers.conf" <<'EOF'
[containers]
default_ulimits = []
[engine]
cgroup_manager = "cgroupfs"
EOF
export CONTAINERS_CONF="$STATE/containers.conf"

pm() { podman --runtime runc "$@"; }

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo

# The Debian mirror apt already uses here (deb822 .sources or one-line sources.list).
debian_mirror() {
    local uri
    uri=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null |
        awk '{print $2}' | grep -v -- '-security' | head -n1 || true)
    if [ -z "$uri" ]; then
        uri=$(grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
            awk '{for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}' |
            grep -v -- '-security' | head -n1 || true)
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}

t0=$(date +%s)

# --- 1. runtime base: Debian bookworm minbase, trimmed like the official slim image -----
if ! pm image exists "$BASE"; then
    mirror=$(debian_mirror)
    rootfs="$STATE/rootfs"
    echo "podman-build: debootstrap bookworm from $mirror"
    $SUDO rm -rf "$rootfs"
    $SUDO debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$STATE/debootstrap.log" 2>&1 ||
        { tail -n 30 "$STATE/debootstrap.log"; exit 1; }
    # What debian:bookworm-slim leaves out: docs, man pages, locales, apt lists and caches.
    $SUDO rm -rf "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* \
        "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/* \
        "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/log/*.log
    $SUDO tar -C "$rootfs" -c . | pm import - "$BASE" >/dev/null
    $SUDO rm -rf "$rootfs"
    echo "podman-build: $BASE imported"
fi

# --- 2. builder base: a stand-in for the official rust image without the toolchain -----
# The toolchain itself is mounted at build time (step 3). ca-certificates is installed here
# because the build step mounts the machine's CA directory read-only over it.
if ! pm image exists "$BUILDER"; then
    echo "podman-build: building $BUILDER"
    pm build --network host --ulimit nofile=20000:20000 -t "$BUILDER" -f - . <<EOF
FROM $BASE
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        gcc libc6-dev pkg-config ca-certificates >/dev/null \
 && rm -rf /var/lib/apt/lists/*
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:\$PATH
EOF
fi
t1=$(date +%s)

# --- 3. the image ------------------------------------------------------------------------
# --format docker keeps the HEALTHCHECK (the OCI image format has no field for it).
echo "podman-build: building $IMAGE"
pm build --format docker --network host --ulimit nofile=20000:20000 \
    --build-arg BUILDER="$BUILDER" --build-arg RUNTIME="$BASE" \
    -v "$RUSTUP_DIR:/usr/local/rustup:ro" \
    -v "$CARGO_BIN_DIR:/usr/local/cargo/bin:ro" \
    -v /etc/ssl/certs:/etc/ssl/certs:ro \
    -t "$IMAGE" .
t2=$(date +%s)

size=$(pm image inspect --format '{{.Size}}' "$IMAGE")
echo "podman-build: base images $((t1 - t0)) s, image build $((t2 - t1)) s;" \
    "$IMAGE is $((size / 1000000)) MB ($size bytes)"
