#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager and etcd from Go modules (through the Go module
# proxy) and caches them outside the repo, keyed by version. Prints the directory holding the
# binaries (usable as KUBEBUILDER_ASSETS). The controller manager gives the bed what a real cluster
# has: namespace deletion and ownerReference garbage collection.
# kube-apiserver cannot be `go install`ed (its go.mod has replace directives), so a wrapper module pins
# k8s.io/kubernetes and replaces every staging module, read from kubernetes' own go.mod, by v0.X.Y.
set -euo pipefail
K8S_VERSION="${K8S_VERSION:-v1.34.4}"
# kube-apiserver 1.31+ wants etcd >= 3.5.11; Debian's etcd-server is 3.4.23, so build etcd too.
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
CACHE="${SWARM_OPERATOR_CACHE:-$HOME/.cache/swarm-operator}"
OUT="$CACHE/k8s/$K8S_VERSION-etcd-$ETCD_VERSION"
log() { echo "[k8s-bins] $*" >&2; }

if [ -x "$OUT/kube-apiserver" ] && [ -x "$OUT/kube-controller-manager" ] && [ -x "$OUT/etcd" ]; then
  echo "$OUT"; exit 0
fi
command -v go >/dev/null || { log "go is required"; exit 1; }
mkdir -p "$OUT"
export GOFLAGS="-mod=mod" CGO_ENABLED=0

ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2)"
if [ ! -x "$OUT/kube-apiserver" ] || [ ! -x "$OUT/kube-controller-manager" ]; then
  start=$SECONDS
  work="$CACHE/build/kube-apiserver-$K8S_VERSION"; rm -rf "$work"; mkdir -p "$work"; cd "$work"
  staging_minor="v0.${K8S_VERSION#v1.}"
  gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  {
    echo "module swarm-operator.local/kube-apiserver-build"
    echo "go $(go env GOVERSION | sed 's/^go//; s/^\([0-9]*\.[0-9]*\).*/\1/')"
    echo "require k8s.io/kubernetes $K8S_VERSION"
    grep -oE '^\s*k8s.io/[a-z0-9-]+ => ./staging/src/k8s.io/[a-z0-9-]+' "$gomod" \
      | awk -v v="$staging_minor" '{print "replace " $1 " => " $1 " " v}'
  } > go.mod
  printf 'package main\n\nimport (\n\t_ "k8s.io/kubernetes/cmd/kube-apiserver"\n\t_ "k8s.io/kubernetes/cmd/kube-controller-manager"\n)\n' > tools.go
  log "resolving modules for kube-apiserver and kube-controller-manager $K8S_VERSION"
  go mod tidy >/dev/null 2>&1 || go get "k8s.io/kubernetes@$K8S_VERSION" >&2
  for cmd in kube-apiserver kube-controller-manager; do
    [ -x "$OUT/$cmd" ] && continue
    log "building $cmd $K8S_VERSION (several minutes on 2 cores)"
    go build -trimpath -ldflags "$ldflags" -o "$OUT/$cmd" "k8s.io/kubernetes/cmd/$cmd"
  done
  log "Kubernetes binaries built in $((SECONDS - start))s"
fi

if [ ! -x "$OUT/etcd" ]; then
  start=$SECONDS
  work="$CACHE/build/etcd-$ETCD_VERSION"; rm -rf "$work"; mkdir -p "$work"; cd "$work"
  printf 'module swarm-operator.local/etcd-build\ngo 1.24\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" > go.mod
  echo 'package main; import _ "go.etcd.io/etcd/server/v3/etcdmain"' > tools.go
  log "building etcd $ETCD_VERSION"
  go mod tidy >/dev/null 2>&1 || go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2
  go build -trimpath -ldflags "-s -w" -o "$OUT/etcd" go.etcd.io/etcd/server/v3
  log "etcd built in $((SECONDS - start))s"
fi
echo "$OUT"
