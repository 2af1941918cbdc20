# bedrock-balancer: one static-ish binary plus its config directory.
# Build:  docker build -t bedrock-balancer .
# Run:    docker run -p 8080:8080 -p 9090:9090 bedrock-balancer serve --config /etc/bedrock-balancer/gateway.yaml

# The toolchain this was developed with (rust-version in Cargo.toml is the minimum).
FROM rust:1.95-bookworm AS builder
WORKDIR /src
# Dependencies first, so source edits do not rebuild them.
COPY Cargo.toml Cargo.lock ./
COPY sim/Cargo.toml sim/
COPY sigv4-verify/Cargo.toml sigv4-verify/
RUN mkdir -p src sim/src sigv4-verify/src && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs sim/src/lib.rs sigv4-verify/src/lib.rs \
    && cargo build --release --locked || true
COPY src ./src
COPY sim/src ./sim/src
COPY sigv4-verify/src ./sigv4-verify/src
RUN touch src/main.rs src/lib.rs sim/src/lib.rs sigv4-verify/src/lib.rs \
    && cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home bedrock
COPY --from=builder /src/target/release/bedrock-balancer /usr/local/bin/bedrock-balancer
COPY config/ /etc/bedrock-balancer/
USER 10001
# 8080: the API (server.listen); 9090: probes and /metrics (server.admin_listen).
EXPOSE 8080 9090
HEALTHCHECK --interval=10s --timeout=2s --start-period=5s \
    CMD curl -fsS http://127.0.0.1:9090/healthz || exit 1
ENTRYPOINT ["/usr/local/bin/bedrock-balancer"]
CMD ["serve", "--config", "/etc/bedrock-balancer/gateway.yaml"]
