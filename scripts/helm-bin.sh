#!/usr/bin/env bash
# Builds helm from its Go module (through the Go module proxy: no release download is reachable)
# and caches it outside the repo, keyed by version. Prints the binary's path.
set -euo pipefail
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
CACHE="${SWARM_OPERATOR_CACHE:-$HOME/.cache/swarm-operator}"
OUT="$CACHE/helm/$HELM_VERSION"
if [ -x "$OUT/helm" ]; then
  echo "$OUT/helm"; exit 0
fi
command -v go >/dev/null || { echo "[helm-bin] go is required" >&2; exit 1; }
mkdir -p "$OUT"
start=$SECONDS
echo "[helm-bin] building helm $HELM_VERSION from its Go module" >&2
CGO_ENABLED=0 GOBIN="$OUT" go install -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
  "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
echo "[helm-bin] built in $((SECONDS - start))s" >&2
echo "$OUT/helm"
