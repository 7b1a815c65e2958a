# Portcullis container image: a release binary on a distroless runtime, run as non-root.
#
# Build arguments:
#   RUST_IMAGE     the build stage's Rust toolchain image (default rust:1-bookworm; Rust >= 1.88)
#   RUNTIME_IMAGE  the runtime base (default distroless cc, nonroot; it must provide glibc)
#
#   docker build -t portcullis .
#   docker build --build-arg RUST_IMAGE=rust:1.88-bookworm -t portcullis:0.1.0 .
#
# No HEALTHCHECK: orchestrators probe the admin listener (/healthz, /readyz) themselves.
ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin portcullis

FROM ${RUNTIME_IMAGE}
COPY --from=build /src/target/release/portcullis /usr/local/bin/portcullis
# A development default only (loopback listeners, memory sessions, a demo user): mount your own
# config over /etc/portcullis/config.yaml, or pass another `--config` as deploy/kubernetes does.
COPY config.example.yaml /etc/portcullis/config.yaml
USER nonroot:nonroot
# 4180: proxy listener; 9091: admin listener (/healthz, /readyz, /metrics).
EXPOSE 4180 9091
ENTRYPOINT ["/usr/local/bin/portcullis"]
CMD ["--config", "/etc/portcullis/config.yaml"]
