#!/usr/bin/env bash
# The benchmark, run on demand (never in CI): the operator (release build) against the Engine API
# itself on the local real swarm and an API server of its own. Prints a table and writes
# target/bench/results.json. Arguments go to the bench binary:
#   scripts/bench.sh [--sizes 100,1000,10000] [--stacks 200,1000] [--drift 100] [--resync 60] [--engine-qps 1000]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
LOG_TAG=bench
STATE="${SWARM_OPERATOR_BENCH_HOME:-$HOME/.swarm-operator-bench}"
APISERVER_PORT="${BENCH_APISERVER_PORT:-26443}"
ETCD_PORT="${BENCH_ETCD_PORT:-22379}"

ensure_packages
timed docker_up
kube_down; rm -rf "$STATE/etcd"
timed kube_up
timed "$REPO/scripts/images.sh"
cd "$REPO"
log "cargo build --release"
timed cargo build --quiet --release -p swarm-operator -p swarm-operator-e2e --bins
export KUBECONFIG="$STATE/kubeconfig" KUBECTL SWARM_OPERATOR_BIN="$REPO/target/release/swarm-operator"
"$KUBECTL" apply --server-side --force-conflicts -f crds/generated/ >/dev/null
"$KUBECTL" wait --for condition=Established --timeout=60s -f crds/generated/ >/dev/null
"$REPO/target/release/bench" "$@"
kube_down
