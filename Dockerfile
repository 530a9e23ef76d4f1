# syntax=docker/dockerfile:1
# tlog container image: a glibc binary built with cargo-auditable (its
# dependency list is embedded, so image scanners see the exact crates), on
# distroless cc: no shell, no package manager, non-root.
#
#   docker build -t tlog .
#   docker run --rm tlog --help
#
# scripts/release.sh builds, signs and attests the released image.

ARG RUST_VERSION=1.95.0

FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
ENV CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0 \
    CARGO_NET_RETRY=5
RUN cargo install --locked cargo-auditable@0.7.7

# Dependencies only: this layer stays cached until Cargo.toml or Cargo.lock change.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && echo 'fn main() {}' > benches/load.rs \
    && cargo auditable build --release --locked --bin tlog \
    && rm -rf src benches target/release/deps/tlog-* target/release/deps/libtlog-* \
        target/release/.fingerprint/tlog-*

COPY migrations ./migrations
COPY benches ./benches
COPY src ./src
RUN cargo auditable build --release --locked --bin tlog \
    && install -D -m 0755 target/release/tlog /out/tlog

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="tlog" \
      org.opencontainers.image.description="A self-hosted, Rekor-compatible transparency log" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/tlog /usr/local/bin/tlog
USER 65532:65532
ENV TLOG_LISTEN=0.0.0.0:3000 \
    TLOG_METRICS_LISTEN=0.0.0.0:2112
EXPOSE 3000 2112
# Probes come from the orchestrator (GET /healthz, /readyz); there is no
# shell or curl in the image to run one here.
HEALTHCHECK NONE
ENTRYPOINT ["/usr/local/bin/tlog"]
CMD ["serve"]
