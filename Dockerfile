# Tasker container image: one binary, `tasker api | worker | migrate | dev`.
#
#   docker build -t tasker:local .
#   docker run --rm tasker:local --help
#
# Stage 1 compiles with the pinned Rust toolchain. Dependencies are built in a
# layer of their own, from Cargo.toml and Cargo.lock alone, so editing the
# sources rebuilds only the tasker crate. Stage 2 is distroless: glibc, CA
# certificates and a nonroot user, no shell and no package manager.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS builder
WORKDIR /build
# Debug symbols are of no use in the image and cost megabytes; panics still
# report file and line.
ENV CARGO_PROFILE_RELEASE_STRIP=symbols \
    CARGO_TERM_COLOR=never

# Dependency layer: a stand-in crate with the real manifest and lock file.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src \
           target/release/tasker target/release/tasker.d \
           target/release/deps/tasker-* target/release/deps/libtasker-* \
           target/release/.fingerprint/tasker-*

# The real sources. Migrations, the docs page's script and the console's
# files are embedded at compile time (`sqlx::migrate!("./migrations")`,
# `include_bytes!` of assets/scalar, `include_str!` of assets/console), so
# they are part of the build context.
COPY src ./src
COPY migrations ./migrations
COPY assets ./assets
RUN cargo build --release --locked \
 && install -D -m 0755 target/release/tasker /out/tasker \
 && /out/tasker --version

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
ARG VERSION=0.1.0
ARG REVISION=""
LABEL org.opencontainers.image.title="tasker" \
      org.opencontainers.image.description="Asynchronous task execution service: submit over REST, run on workers, poll for the result." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"

COPY --from=builder --chown=0:0 /out/tasker /usr/local/bin/tasker

# 65532 is distroless's `nonroot`; numeric so that Kubernetes' runAsNonRoot
# can verify it without reading /etc/passwd.
USER 65532:65532
# 8000: the API (`api.listen`). 8001: the worker's /health, /ready, /metrics
# (`worker.listen`). 8002: the API's /health, /ready, /metrics
# (`api.ops_listen`), never routed to by an Ingress.
EXPOSE 8000 8001 8002
# No HEALTHCHECK here: the same image runs as api, worker or migrate, so the
# check belongs to whoever picks the role (docker-compose.yml, the Helm chart).
# There is no curl in the image; `tasker probe URL` exits 0 on a 2xx answer.
ENTRYPOINT ["/usr/local/bin/tasker"]
CMD ["api"]
