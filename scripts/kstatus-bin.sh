#!/usr/bin/env bash
# Builds tests/kstatus (kstatus itself, sigs.k8s.io/cli-utils, computing Flux's and kpt's view of
# an object's health) from Go modules and caches it outside the repo, keyed by version and by the
# program's content. Prints the binary's path.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
CLI_UTILS_VERSION="${CLI_UTILS_VERSION:-v0.37.2}"
CACHE="${SWARM_OPERATOR_CACHE:-$HOME/.cache/swarm-operator}"
sum=$(sha256sum "$REPO/tests/kstatus/main.go" | cut -c1-12)
OUT="$CACHE/kstatus/$CLI_UTILS_VERSION-$sum"
if [ -x "$OUT/kstatus" ]; then
  echo "$OUT/kstatus"; exit 0
fi
command -v go >/dev/null || { echo "[kstatus-bin] go is required" >&2; exit 1; }
work="$CACHE/build/kstatus-$CLI_UTILS_VERSION"; rm -rf "$work"; mkdir -p "$work" "$OUT"
cp "$REPO/tests/kstatus/main.go" "$work/"
cd "$work"
printf 'module swarm-operator.local/kstatus\n\ngo %s\n' "$(go env GOVERSION | sed 's/^go//; s/^\([0-9]*\.[0-9]*\).*/\1/')" > go.mod
start=$SECONDS
echo "[kstatus-bin] building kstatus (sigs.k8s.io/cli-utils $CLI_UTILS_VERSION)" >&2
go get "sigs.k8s.io/cli-utils@$CLI_UTILS_VERSION" >&2
go mod tidy >&2
CGO_ENABLED=0 go build -o "$OUT/kstatus" . >&2
echo "[kstatus-bin] built in $((SECONDS - start))s" >&2
echo "$OUT/kstatus"
