#!/usr/bin/env bash
# Stops what scripts/up.sh started: removes the SwarmServices (and so their Swarm services) while the
# operator still runs, then stops the operator, kube-apiserver and etcd. dockerd and the swarm stay.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
LOG_TAG=down
STATE="${SWARM_OPERATOR_HOME:-$HOME/.swarm-operator}"
export KUBECONFIG="$STATE/kubeconfig"
if [ -f "$KUBECONFIG" ] && "$KUBECTL" get --raw /readyz >/dev/null 2>&1 && pid_alive "$STATE/operator.pid"; then
  log "deleting SwarmServices"
  "$KUBECTL" delete swarmservices --all --all-namespaces --timeout=60s || true
fi
kube_down
log "stopped the operator, kube-apiserver and etcd (state kept in $STATE; dockerd and the swarm left running)"
