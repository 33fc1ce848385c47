# syntax=docker/dockerfile:1
# failoverd: multi-stage build, release binary on a minimal runtime image.
#
#   docker build -t failoverd .
#   docker run --read-only -v failoverd-state:/var/lib/failoverd \
#     -v $PWD/config:/etc/failoverd:ro failoverd serve --config /etc/failoverd/config.yaml
#
# The runtime image runs as an unprivileged user and writes only to /var/lib/failoverd (the state
# volume), so it works with a read-only root filesystem.
#
# Nothing here names a target of Cargo.toml: the dependency skeleton is derived from the manifest,
# so a new [[bench]], [[test]], [[example]] or [[bin]] needs no change to this file.
# tests/support/test_dockerfile.py checks it without a Docker engine.

# --- plan: the dependency skeleton --------------------------------------------------------------
# `cargo metadata --no-deps` reads only the manifests (no registry, no network) and lists every
# target cargo requires a file for, declared or auto-discovered, with its path. The skeleton is the
# manifests, the lock file and a stub at each of those paths; it changes only when they do, so the
# dependency layer built from it below stays cached across source edits (COPY --from is cached by
# content). Only grep and sed parse the JSON: cargo's output is one line, its paths plain strings.
FROM rust:1.95-bookworm AS plan
WORKDIR /plan
COPY . context/
RUN cargo metadata --no-deps --offline --format-version 1 --manifest-path context/Cargo.toml > metadata.json \
    && ctx="$(cd context && pwd -P)/" \
    && grep -o '"manifest_path":"[^"]*"' metadata.json | sed 's/^"manifest_path":"//; s/"$//' > manifests \
    && grep -o '"src_path":"[^"]*"' metadata.json | sed 's/^"src_path":"//; s/"$//' > targets \
    && test -s manifests && test -s targets \
    && if grep -q '\\' manifests targets; then echo 'escaped characters in a target path' >&2; exit 1; fi \
    && mkdir skeleton && cp context/Cargo.toml context/Cargo.lock skeleton/ \
    && while IFS= read -r path; do \
         rel="${path#"$ctx"}"; \
         if [ "$rel" = "$path" ]; then echo "manifest outside the context: $path" >&2; exit 1; fi; \
         mkdir -p "skeleton/$(dirname "$rel")" && cp "context/$rel" "skeleton/$rel" || exit 1; \
       done < manifests \
    && while IFS= read -r path; do \
         rel="${path#"$ctx"}"; \
         if [ "$rel" = "$path" ]; then echo "target outside the context: $path" >&2; exit 1; fi; \
         mkdir -p "skeleton/$(dirname "$rel")" && echo 'fn main() {}' > "skeleton/$rel" || exit 1; \
       done < targets

# --- build --------------------------------------------------------------------------------------
FROM rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies first, from the skeleton alone: source edits do not rebuild the AWS SDK.
COPY --from=plan /plan/skeleton/ ./
RUN cargo build --release --locked --bin failoverd
# The real sources of what is built (the library and the binary). Every other target keeps its
# stub, which is all cargo asks of a target it does not build. Touched so cargo sees them newer
# than the stubs it just compiled (COPY keeps the context's modification times).
COPY src ./src
RUN find src -type f -exec touch {} + && cargo build --release --locked --bin failoverd

# --- runtime ------------------------------------------------------------------------------------
FROM gcr.io/distroless/cc-debian12:nonroot
# TLS trust roots. The AWS clients (aws-smithy-http-client through rustls-native-certs) and the
# Kubernetes client without a configured CA (kube through rustls-platform-verifier) read the
# platform store, /etc/ssl/certs/ca-certificates.crt; only the HTTP probes (reqwest) carry
# webpki-roots. distroless/cc ships the bundle; it is copied from the build stage's
# ca-certificates package anyway, so the image has it whatever the base.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /src/target/release/failoverd /usr/local/bin/failoverd
COPY config/example.yaml /etc/failoverd/example.yaml
# distroless "nonroot" is uid/gid 65532.
USER 65532:65532
VOLUME ["/var/lib/failoverd"]
EXPOSE 8080
ENV FAILOVERD_LOG_FORMAT=json
ENTRYPOINT ["/usr/local/bin/failoverd"]
CMD ["serve", "--config", "/etc/failoverd/config.yaml"]
