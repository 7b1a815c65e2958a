# Build stage: a release binary from the locked dependency set.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin portcullis

# Runtime: glibc, CA certificates, no shell, non-root.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/portcullis /usr/local/bin/portcullis
COPY config.example.yaml /etc/portcullis/config.yaml
USER nonroot:nonroot
# 4180: proxy listener; 9091: admin listener (/healthz, /readyz).
EXPOSE 4180 9091
ENTRYPOINT ["/usr/local/bin/portcullis"]
CMD ["--config", "/etc/portcullis/config.yaml"]
