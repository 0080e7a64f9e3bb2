#!/usr/bin/env bash
# The operator's image, built locally (no registry is reachable): FROM scratch with the release
# binary, the few libraries it links (glibc, libm, libgcc_s, the loader) and CA certificates; it
# runs as UID 65532, with nothing else in it (no shell). Prints the image's name.
#   scripts/image.sh [NAME:TAG]   default swarm-operator:<version of the workspace>
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
DOCKER="${DOCKER:-docker}"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$REPO/Cargo.toml" | head -1)
TAG="${1:-swarm-operator:$version}"
(cd "$REPO" && cargo build --quiet --release --bin swarm-operator)
bin="$REPO/target/release/swarm-operator"
ctx=$(mktemp -d); trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/rootfs/usr/local/bin" "$ctx/rootfs/etc/ssl/certs" "$ctx/rootfs/tmp"
cp "$bin" "$ctx/rootfs/usr/local/bin/swarm-operator"
strip "$ctx/rootfs/usr/local/bin/swarm-operator" 2>/dev/null || true
# Every library the binary links, at the path the loader looks for it.
for lib in $(ldd "$bin" | awk '{for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i}'); do
  mkdir -p "$ctx/rootfs$(dirname "$lib")"
  cp -L "$lib" "$ctx/rootfs$lib"
done
[ -f /etc/ssl/certs/ca-certificates.crt ] && cp /etc/ssl/certs/ca-certificates.crt "$ctx/rootfs/etc/ssl/certs/"
printf 'nonroot:x:65532:65532:nonroot:/:/sbin/nologin\n' > "$ctx/rootfs/etc/passwd"
cat > "$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY rootfs/ /
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/swarm-operator"]
DOCKERFILE
DOCKER_BUILDKIT=0 "$DOCKER" build -q -t "$TAG" "$ctx" >/dev/null
size=$("$DOCKER" image inspect "$TAG" --format '{{.Size}}')
echo "[image] $TAG: $((size / 1024 / 1024)) MiB" >&2
echo "$TAG"
