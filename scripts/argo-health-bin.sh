#!/usr/bin/env bash
# Builds tests/argo-health (Argo CD's way of running Lua health checks: gopher-lua, the version
# Argo CD pins) from Go modules and caches it outside the repo, keyed by version and by the
# program's content. Prints the binary's path.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
GOPHER_LUA_VERSION="${GOPHER_LUA_VERSION:-v1.1.1}"
SIGS_YAML_VERSION="${SIGS_YAML_VERSION:-v1.4.0}"
CACHE="${SWARM_OPERATOR_CACHE:-$HOME/.cache/swarm-operator}"
sum=$(sha256sum "$REPO/tests/argo-health/main.go" | cut -c1-12)
OUT="$CACHE/argo-health/$GOPHER_LUA_VERSION-$sum"
if [ -x "$OUT/argo-health" ]; then
  echo "$OUT/argo-health"; exit 0
fi
command -v go >/dev/null || { echo "[argo-health-bin] go is required" >&2; exit 1; }
work="$CACHE/build/argo-health-$GOPHER_LUA_VERSION"; rm -rf "$work"; mkdir -p "$work" "$OUT"
cp "$REPO/tests/argo-health/main.go" "$work/"
cd "$work"
printf 'module swarm-operator.local/argo-health\n\ngo %s\n' "$(go env GOVERSION | sed 's/^go//; s/^\([0-9]*\.[0-9]*\).*/\1/')" > go.mod
start=$SECONDS
echo "[argo-health-bin] building argo-health (gopher-lua $GOPHER_LUA_VERSION)" >&2
go get "github.com/yuin/gopher-lua@$GOPHER_LUA_VERSION" "sigs.k8s.io/yaml@$SIGS_YAML_VERSION" >&2
go mod tidy >&2
CGO_ENABLED=0 go build -o "$OUT/argo-health" . >&2
echo "[argo-health-bin] built in $((SECONDS - start))s" >&2
echo "$OUT/argo-health"
