# syntax=docker/dockerfile:1
# failoverd: multi-stage build, release binary on a minimal runtime image.
#
#   docker build -t failoverd .
#   docker run --read-only -v failoverd-state:/var/lib/failoverd \
#     -v $PWD/config:/etc/failoverd:ro failoverd serve --config /etc/failoverd/config.yaml
#
# The runtime image runs as an unprivileged user and writes only to /var/lib/failoverd (the state
# volume), so it works with a read-only root filesystem.

FROM rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies first, so source edits do not rebuild the AWS SDK. Cargo refuses a manifest whose
# declared targets have no file, so every `[[bench]]` of Cargo.toml gets a placeholder too.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src benches && echo 'fn main() {}' > src/main.rs && echo '' > src/lib.rs \
    && for bench in $(awk '/^\[\[bench\]\]/ {getline; gsub(/"/, "", $3); print $3}' Cargo.toml); do \
         echo 'fn main() {}' > "benches/$bench.rs"; \
       done \
    && cargo build --release --locked --bin failoverd \
    && rm -rf src benches
COPY src ./src
COPY benches ./benches
# Touch so cargo sees the real sources as newer than the placeholder build.
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin failoverd

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/failoverd /usr/local/bin/failoverd
COPY config/example.yaml /etc/failoverd/example.yaml
# distroless "nonroot" is uid/gid 65532.
USER 65532:65532
VOLUME ["/var/lib/failoverd"]
EXPOSE 8080
ENV FAILOVERD_LOG_FORMAT=json
ENTRYPOINT ["/usr/local/bin/failoverd"]
CMD ["serve", "--config", "/etc/failoverd/config.yaml"]
