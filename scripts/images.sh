#!/usr/bin/env bash
# Builds the test images locally (no registry is reachable): FROM scratch with Debian's busybox-static.
# swarm-operator-test/whoami:1 and :2 differ only in the version they report, for rolling updates;
# :broken is :2 serving on another port, a release whose healthcheck on port 80 fails (rollbacks).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
DOCKER="${DOCKER:-docker}"
ctx=$(mktemp -d); trap 'rm -rf "$ctx"' EXIT
cp "$here"/tests/images/whoami/* "$ctx/"
cp /bin/busybox "$ctx/busybox"
file "$ctx/busybox" 2>/dev/null | grep -q "statically linked" || { echo "/bin/busybox is not static: install busybox-static" >&2; exit 1; }
for v in 1 2; do
  if ! "$DOCKER" image inspect "swarm-operator-test/whoami:$v" >/dev/null 2>&1 || [ -n "${REBUILD_IMAGES:-}" ]; then
    # The legacy builder needs no buildx plugin; its deprecation notice goes to the log with the rest.
    DOCKER_BUILDKIT=0 "$DOCKER" build -q --build-arg "VERSION=$v" -t "swarm-operator-test/whoami:$v" "$ctx" \
      >"$ctx/build.log" 2>&1 || { cat "$ctx/build.log" >&2; exit 1; }
  fi
done
if ! "$DOCKER" image inspect swarm-operator-test/whoami:broken >/dev/null 2>&1 || [ -n "${REBUILD_IMAGES:-}" ]; then
  printf 'FROM swarm-operator-test/whoami:2\nENV PORT=81\n' > "$ctx/Dockerfile.broken"
  DOCKER_BUILDKIT=0 "$DOCKER" build -q -f "$ctx/Dockerfile.broken" -t swarm-operator-test/whoami:broken "$ctx" \
    >"$ctx/build.log" 2>&1 || { cat "$ctx/build.log" >&2; exit 1; }
fi
# The tutorials' proxy (tests/images/proxy): a static Go binary that finds services by label
# through the mounted Docker socket. Rebuilt when its source changes (the tag carries its hash).
proxy_tag=$(sha256sum "$here/tests/images/proxy/main.go" | cut -c1-12)
if ! "$DOCKER" image inspect "swarm-operator-test/proxy:$proxy_tag" >/dev/null 2>&1 || [ -n "${REBUILD_IMAGES:-}" ]; then
  command -v go >/dev/null || PATH="$PATH:/usr/local/go/bin"
  mkdir -p "$ctx/proxy"
  cp "$here/tests/images/proxy/main.go" "$here/tests/images/proxy/Dockerfile" "$ctx/proxy/"
  printf 'module swarm-operator.local/proxy\n\ngo 1.21\n' > "$ctx/proxy/go.mod"
  (cd "$ctx/proxy" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -o proxy .) >"$ctx/build.log" 2>&1 || { cat "$ctx/build.log" >&2; exit 1; }
  DOCKER_BUILDKIT=0 "$DOCKER" build -q -t "swarm-operator-test/proxy:$proxy_tag" -t swarm-operator-test/proxy:latest "$ctx/proxy" \
    >"$ctx/build.log" 2>&1 || { cat "$ctx/build.log" >&2; exit 1; }
fi
echo "images: swarm-operator-test/whoami:1 swarm-operator-test/whoami:2 swarm-operator-test/whoami:broken swarm-operator-test/proxy:$proxy_tag" >&2
