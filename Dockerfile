# reflector: multi-stage build. The base images are build arguments so that they can be
# replaced by local ones where no registry is reachable (see the README).
ARG BUILDER=docker.io/library/rust:1-bookworm
ARG RUNTIME=docker.io/library/debian:bookworm-slim

FROM ${BUILDER} AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY config ./config
COPY benches ./benches
RUN cargo build --release --locked --bin reflector \
    && cp target/release/reflector /reflector

FROM ${RUNTIME}
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin reflector
COPY --from=build /reflector /usr/local/bin/reflector
USER reflector
EXPOSE 1935 8080
# Configuration comes from the environment (REFLECTOR_<SECTION>__<KEY>) or a mounted file.
ENV REFLECTOR_SERVER__LISTEN=0.0.0.0:1935
ENTRYPOINT ["/usr/local/bin/reflector"]
