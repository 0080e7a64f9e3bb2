#!/usr/bin/env bash
# Runs every test: formatting, clippy, unit tests, CRD drift, and the end-to-end tests against a real
# kube-apiserver and the real swarm. Installs and starts what it needs; the test API server has its own
# state and ports, apart from the quickstart's, and starts from an empty etcd each run.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
LOG_TAG=test
STATE="${SWARM_OPERATOR_TEST_HOME:-$HOME/.swarm-operator-test}"
APISERVER_PORT="${TEST_APISERVER_PORT:-16443}"
ETCD_PORT="${TEST_ETCD_PORT:-12379}"
start=$SECONDS

ensure_packages
timed docker_up
kube_down; rm -rf "$STATE/etcd"
timed kube_up
timed "$REPO/scripts/images.sh"
REGISTRY_PORT="${TEST_REGISTRY_PORT:-15000}"
timed registry_up
# Swarm objects left by an earlier, interrupted run (their resources went with the old etcd);
# services first, as networks, secrets and configs in use cannot go.
for kind in service secret config network; do
  owned=$("$DOCKER" $kind ls -q --filter label=swarmoperator.io/owner-namespace)
  [ -n "$owned" ] || continue
  labels='.Spec.Labels'; [ "$kind" != network ] || labels='.Labels'
  stale=$("$DOCKER" $kind inspect $owned -f "{{.ID}} {{index $labels \"swarmoperator.io/owner-namespace\"}}" \
    2>/dev/null | awk '$2 ~ /^e2e-/ {print $1}')
  [ "$kind" != network ] || sleep 2
  [ -z "$stale" ] || "$DOCKER" $kind rm $stale >/dev/null 2>&1 || true
done

cd "$REPO"
log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy --all-targets -- -D warnings"
timed cargo clippy --quiet --workspace --all-targets -- -D warnings
log "cargo build"
timed cargo build --quiet --workspace --bins --tests

export KUBECONFIG="$STATE/kubeconfig" KUBECTL
"$KUBECTL" apply --server-side --force-conflicts -f crds/generated/ >/dev/null
"$KUBECTL" wait --for condition=Established --timeout=60s -f crds/generated/ >/dev/null

HELM=$(timed "$REPO/scripts/helm-bin.sh"); export HELM
OPERATOR_IMAGE=$(timed "$REPO/scripts/image.sh"); export OPERATOR_IMAGE
KSTATUS=$(timed "$REPO/scripts/kstatus-bin.sh"); export KSTATUS
ARGO_HEALTH=$(timed "$REPO/scripts/argo-health-bin.sh"); export ARGO_HEALTH
log "cargo test (unit, CRD drift, end-to-end)"
cargo test --workspace --no-fail-fast -- --include-ignored

# Users run Engines 24-29, not only Debian's 20.10: the service, update, data, runtime and stack
# tests (with the CLI's `docker stack deploy` as the reference) run again on a swarm of the current Engine (built from Go modules, cached), in lab 40's namespace.
ENGINE_LAB=40
engine=$(timed "$REPO/scripts/engine-bins.sh")
PATH="$engine:$PATH" DOCKERD="$engine/dockerd" timed "$REPO/scripts/swarm-lab.sh" up $ENGINE_LAB 1
log "cargo test (service, updates, data, runtime, stacks) on $("$DOCKER" -H unix:///run/swl/$ENGINE_LAB-1/docker.sock version --format 'Engine {{.Server.Version}}, API {{.Server.APIVersion}}')"
DOCKER_HOST=unix:///run/swl/$ENGINE_LAB-1/docker.sock SWARM_TEST_NETNS=swl$ENGINE_LAB-m1 \
  cargo test -p swarm-operator-e2e --test service --test updates --test data --test runtime --test stacks -- --include-ignored
"$REPO/scripts/swarm-lab.sh" down $ENGINE_LAB
kube_down
log "all tests passed in $((SECONDS - start))s"
