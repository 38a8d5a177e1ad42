# waba-numbers: build with the Rust toolchain, run in a small Debian image as a non-root
# user. The base images are build arguments, so scripts/container-smoke.sh can build
# from locally made images where none can be pulled.
ARG RUST_IMAGE=docker.io/library/rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=docker.io/library/debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto proto
COPY src src
COPY tests tests
COPY benches benches
RUN cargo build --release --locked --bin waba-numbers \
    && cp target/release/waba-numbers /waba-numbers

FROM ${RUNTIME_IMAGE}
# CA certificates to reach graph.facebook.com over TLS.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
    && groupadd --system --gid 10001 waba \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin waba
COPY --from=build /waba-numbers /usr/local/bin/waba-numbers
USER 10001:10001
# gRPC, and HTTP (webhooks, /metrics).
EXPOSE 50051 8080
# The process is PID 1: it handles SIGTERM itself (health NOT_SERVING, streams end,
# in-flight calls finish).
ENTRYPOINT ["/usr/local/bin/waba-numbers"]
