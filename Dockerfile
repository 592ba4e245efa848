# syntax=docker/dockerfile:1
# keyfleet container image: build with the Rust toolchain, run as a non-root user on a minimal runtime
# (glibc, CA certificates, nothing else: no shell, no package manager).
#
#   docker build -t keyfleet .
#   docker run -d --name keyfleet -p 8443:8443 -v keyfleet-data:/var/lib/keyfleet \
#     -e KEYFLEET_ADMIN_PASSWORD='...' keyfleet
#
# See docs/DEPLOYMENT.md ("Container").

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p keyfleet-cli \
 && install -D -m 0755 target/release/keyfleet /out/usr/local/bin/keyfleet \
 && install -D -m 0644 deploy/keyfleet.toml /out/etc/keyfleet/keyfleet.toml \
 && install -d -m 0700 -o 65532 -g 65532 /out/var/lib/keyfleet

# distroless "cc": glibc, libgcc, CA certificates, /etc/passwd with `nonroot` (uid 65532).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/ /
# The shipped configuration, with what differs in a container as environment (which wins over the file).
ENV KEYFLEET_CONFIG=/etc/keyfleet/keyfleet.toml \
    KEYFLEET_DATA_DIR=/var/lib/keyfleet \
    KEYFLEET_LISTEN=0.0.0.0:8443 \
    KEYFLEET_LOG_FORMAT=json
VOLUME ["/var/lib/keyfleet"]
EXPOSE 8443
USER 65532:65532
# Probes: GET /healthz (alive) and GET /readyz (ready) over HTTPS on 8443; no shell in the image for a
# HEALTHCHECK command, so use the orchestrator's HTTP probes.
ENTRYPOINT ["/usr/local/bin/keyfleet"]
CMD ["serve"]
