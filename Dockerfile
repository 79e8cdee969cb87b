# syntax=docker/dockerfile:1
# The pet shop service. Build: docker build -t petshop .   (or: docker compose up --build)

# ---- build -----------------------------------------------------------------------------
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# The whole workspace: cargo resolves every member even when building one package.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p petshop \
    && install -D target/release/petshop /out/petshop

# ---- run -------------------------------------------------------------------------------
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data --create-home petshop
COPY --from=build /out/petshop /usr/local/bin/petshop
USER petshop
WORKDIR /data
# Listen on every interface inside the container; the SQLite default lands in /data.
ENV BIND=0.0.0.0:8000 \
    RUST_LOG=info,sqlx=warn,sea_orm=warn
EXPOSE 8000
# Liveness without curl: bash's /dev/tcp.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8000 && printf 'GET /health HTTP/1.0\\r\\n\\r\\n' >&3 && grep -q '200 OK' <&3"]
# SIGTERM (docker stop) lets requests in flight finish.
STOPSIGNAL SIGTERM
ENTRYPOINT ["petshop"]
CMD ["serve"]
