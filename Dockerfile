# syntax=docker/dockerfile:1
# Multi-stage build: compile in the Rust image, run in a small Debian image as a non-root user.

FROM rust:1.95-bookworm AS build
WORKDIR /src
# Build the dependencies first, in their own layer, so code changes do not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && echo '' > src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src
COPY src ./src
COPY migrations ./migrations
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin voxbridge

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin voxbridge
COPY --from=build /src/target/release/voxbridge /usr/local/bin/voxbridge
USER voxbridge
# Production rules: every secret, the MongoDB URI and an https public URL must be given.
ENV VOXBRIDGE__ENVIRONMENT=production \
    VOXBRIDGE__SERVER__HOST=0.0.0.0 \
    VOXBRIDGE__SERVER__PORT=8080 \
    VOXBRIDGE__LOG__FORMAT=json
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/voxbridge"]
CMD ["serve"]
