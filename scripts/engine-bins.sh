#!/usr/bin/env bash
# Builds a current Docker Engine from Go modules (through the Go module proxy) and caches it outside
# the repo, keyed by version. Prints the directory holding dockerd, docker-proxy and runc; put it
# first in PATH and give DOCKERD=<dir>/dockerd to scripts/swarm-lab.sh to run a swarm on it.
#
# - dockerd and docker-proxy: github.com/moby/moby/v2, the Engine after 28 (API 1.56 here).
# - runc: Debian's 1.1.5 cannot start what this dockerd asks for (it rejects the OCI spec's
#   `time` namespace), so runc is built too, with seccomp (libseccomp-dev). Its go.mod replaces
#   opencontainers/selinux by a directory the module zip leaves out; the build takes the
#   upstream release of the same version instead.
# - containerd: Debian's 1.6 serves this dockerd (overlay2 graph driver), so it is not built.
set -euo pipefail
MOBY_VERSION="${MOBY_VERSION:-v2.0.0-beta.24}"
RUNC_VERSION="${RUNC_VERSION:-v1.3.3}"
CACHE="${SWARM_OPERATOR_CACHE:-$HOME/.cache/swarm-operator}"
OUT="$CACHE/engine/moby-$MOBY_VERSION-runc-$RUNC_VERSION"
log() { echo "[engine-bins] $*" >&2; }

if [ -x "$OUT/dockerd" ] && [ -x "$OUT/docker-proxy" ] && [ -x "$OUT/runc" ]; then
  echo "$OUT"; exit 0
fi
command -v go >/dev/null || { log "go is required"; exit 1; }
mkdir -p "$OUT"
start=$SECONDS

if [ ! -x "$OUT/dockerd" ] || [ ! -x "$OUT/docker-proxy" ]; then
  log "building dockerd and docker-proxy (moby $MOBY_VERSION; a few minutes on 2 cores)"
  ldflags="-s -w -X github.com/moby/moby/v2/dockerversion.Version=moby-$MOBY_VERSION"
  GOBIN="$OUT" CGO_ENABLED=0 go install -trimpath -ldflags "$ldflags" \
    -tags "exclude_graphdriver_btrfs netgo osusergo" \
    "github.com/moby/moby/v2/cmd/dockerd@$MOBY_VERSION" "github.com/moby/moby/v2/cmd/docker-proxy@$MOBY_VERSION"
fi

if [ ! -x "$OUT/runc" ]; then
  log "building runc $RUNC_VERSION"
  dir=$(go mod download -json "github.com/opencontainers/runc@$RUNC_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  work="$CACHE/build/runc-$RUNC_VERSION"; rm -rf "$work"; mkdir -p "$(dirname "$work")"
  cp -r "$dir" "$work"; chmod -R u+w "$work"; cd "$work"
  rm -rf vendor
  go mod edit -dropreplace github.com/opencontainers/selinux
  CGO_ENABLED=1 go build -trimpath -mod=mod -tags seccomp -ldflags "-s -w -X main.version=${RUNC_VERSION#v}" \
    -o "$OUT/runc" .
fi
log "Engine binaries built in $((SECONDS - start))s"
echo "$OUT"
