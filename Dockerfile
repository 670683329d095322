# syntax=docker/dockerfile:1.7
#
# users-api container image.
#   docker build -t users-api .
#   docker run --rm -p 8000:8000 -e JWT_SECRET_KEY=... -e DATABASE_URL=postgres://... users-api
# With SQLite (the image default), keep the database on a volume:
#   docker run --rm -p 8000:8000 -v users-data:/data users-api
# The root filesystem may be read-only (docker run --read-only --tmpfs /tmp): the service only
# writes the SQLite file (under /data) and, in development without JWT_SECRET_KEY, a signing
# key under DATA_DIR.

# ---- build ----------------------------------------------------------------------------------
FROM rust:1.95-slim-bookworm AS builder
WORKDIR /build

# Dependencies first, in their own layer: it is rebuilt only when Cargo.toml or Cargo.lock
# change. Cargo.toml names tests/api/main.rs as a test target, so cargo wants that file to
# exist even though only the binary is built; the stub stays (tests are not copied in).
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src tests/api \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs tests/api/main.rs \
    && cargo build --release --locked --bin users-api \
    && rm -rf src target/release/.fingerprint/users-api-*

# The real sources. Dropping the crate's own fingerprints above makes cargo rebuild it even
# when the copied files are older than the stubs.
COPY src ./src
RUN cargo build --release --locked --bin users-api \
    && install -D -m 0755 target/release/users-api /out/users-api \
    && mkdir -p /out/data

# ---- runtime --------------------------------------------------------------------------------
# glibc, libgcc and CA certificates, no shell, no package manager. The tag's default user
# (65532) is replaced by our own uid below.
FROM gcr.io/distroless/cc-debian12:nonroot

COPY --from=builder /out/users-api /usr/local/bin/users-api
# Empty, owned by the service user: a named volume mounted here inherits that ownership.
COPY --from=builder --chown=10001:10001 /out/data /data

ENV HOST=0.0.0.0 \
    PORT=8000 \
    LOG_FORMAT=json \
    DATABASE_URL=sqlite:///data/users.db \
    DATA_DIR=/tmp/users-api

USER 10001:10001
EXPOSE 8000

# The binary probes its own /healthz, so the image needs no curl or shell.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/users-api", "healthcheck"]

ENTRYPOINT ["/usr/local/bin/users-api"]
CMD ["serve"]
