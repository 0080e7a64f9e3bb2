#!/usr/bin/env bash
# Builds the small Go program tests/<dir>/main.go against the Go modules given (module@version,
# as `go get` takes them) and caches it outside the repo, keyed by the modules and the program's
# content. Prints the binary's path. Used by kstatus-bin.sh and argo-health-bin.sh.
#   scripts/go-tool.sh DIR MODULE@VERSION...
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
name=$1; shift
CACHE="${SWARM_OPERATOR_CACHE:-$HOME/.cache/swarm-operator}"
sum=$( (cat "$REPO/tests/$name/main.go"; echo "$@") | sha256sum | cut -c1-12)
OUT="$CACHE/$name/$sum"
if [ -x "$OUT/$name" ]; then
  echo "$OUT/$name"; exit 0
fi
command -v go >/dev/null || { echo "[$name] go is required" >&2; exit 1; }
work="$CACHE/build/$name-$sum"; rm -rf "$work"; mkdir -p "$work" "$OUT"
cp "$REPO/tests/$name/main.go" "$work/"
cd "$work"
printf 'module swarm-operator.local/%s\n\ngo %s\n' "$name" "$(go env GOVERSION | sed 's/^go//; s/^\([0-9]*\.[0-9]*\).*/\1/')" > go.mod
start=$SECONDS
echo "[$name] building tests/$name with $*" >&2
go get "$@" >&2
go mod tidy >&2
CGO_ENABLED=0 go build -o "$OUT/$name" . >&2
echo "[$name] built in $((SECONDS - start))s" >&2
rm -rf "$work"
echo "$OUT/$name"
