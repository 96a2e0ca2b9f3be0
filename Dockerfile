# reflector: multi-stage build. The base images are build arguments so that local ones can
# stand in where no registry is reachable (scripts/podman-build.sh); by default they are the
# public images.
#
#   docker build -t reflector .
#   docker run --rm -p 1935:1935 -p 8080:8080 -e REFLECTOR_ADMIN__TOKEN=s3cret reflector
#
# Configuration: every key of config/default.toml as REFLECTOR_<SECTION>__<KEY> (see the
# README), or a mounted file passed with --config. The admin port listens on all addresses
# here, and the server refuses a non-loopback admin address without REFLECTOR_ADMIN__TOKEN.
ARG BUILDER=docker.io/library/rust:1-bookworm
ARG RUNTIME=docker.io/library/debian:bookworm-slim

FROM ${BUILDER} AS build
WORKDIR /src
# The context is filtered by .dockerignore to what cargo needs (manifest, lock, src/,
# config/, and any benches/ tests/ examples/ that Cargo.toml may declare targets in).
COPY . .
# Cache mounts keep the crate registry and the target dir between builds, so a source
# change recompiles only this crate. The image gets no debug info (smaller, faster to build)
# but keeps symbols for readable panic backtraces.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_STRIP=debuginfo \
    cargo build --release --locked --bin reflector \
    && cp target/release/reflector /reflector

FROM ${RUNTIME}
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin reflector
COPY --from=build /reflector /usr/local/bin/reflector
USER 10001:10001
EXPOSE 1935 8080
ENV REFLECTOR_SERVER__LISTEN=0.0.0.0:1935 \
    REFLECTOR_SERVER__ADMIN_LISTEN=0.0.0.0:8080
# The image has no curl: the binary itself does the GET. Without a URL it asks the address
# the configuration gives server.admin_listen (the environment above), on loopback.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/reflector", "--healthcheck"]
# SIGTERM drains: players get UnpublishNotify + StreamEOF, the process exits when all have
# left or after server.drain_timeout_ms (10 s; keep the stop timeout above it).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/reflector"]
