# syntax=docker/dockerfile:1
#
# The sluice image: /usr/local/bin/sluice (operator, agent, device-plugin,
# install-cni) and /usr/local/bin/sluice-cni, which the node DaemonSet's
# init container copies onto the host. One image for the operator and the
# node agent (the operator runs the node DaemonSet at its own image).
#
#   make docker-build IMG=ghcr.io/sluice-net/sluice:v0.1.0
#   docker buildx build --platform linux/amd64,linux/arm64 --build-arg VERSION=v0.1.0 -t IMG .
#
# Needs BuildKit (the default builder since Docker 23) for the cache mounts.

# Pinned to a release (not a floating minor tag), at least go.mod's go
# directive: TestDockerfilePinsGo.
ARG GO_VERSION=1.26.8

# Compile on the build machine's platform and cross-compile for the target:
# both binaries are pure Go (CGO_ENABLED=0), as distroless/static requires.
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
# -buildvcs=false: the build context has no .git (.dockerignore).
ENV GOTOOLCHAIN=local \
    GOFLAGS=-buildvcs=false \
    CGO_ENABLED=0
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    export GOOS="${TARGETOS:-linux}" GOARCH="${TARGETARCH:-$(go env GOARCH)}" && \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/sluice . && \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/sluice-cni ./cni

# distroless/static: no shell, no libc, CA certificates and tzdata only.
# The image runs as root on purpose: the node agent is privileged and writes
# sysfs, and install-cni writes the host's /opt/cni/bin. The operator
# Deployment runs without privileges; it must pick its own non-root user
# (securityContext.runAsUser), since runAsNonRoot alone refuses this image.
FROM gcr.io/distroless/static-debian12
COPY --from=build /out/sluice /out/sluice-cni /usr/local/bin/
USER 0:0
ENTRYPOINT ["/usr/local/bin/sluice"]
