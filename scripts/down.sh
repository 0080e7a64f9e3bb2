#!/usr/bin/env bash
# Stops what scripts/up.sh started: removes the stacks and resources (and so their Swarm objects) while the
# operator still runs, then stops the operator, kube-apiserver and etcd. dockerd and the swarm stay.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
LOG_TAG=down
STATE="${SWARM_OPERATOR_HOME:-$HOME/.swarm-operator}"
export KUBECONFIG="$STATE/kubeconfig"
if [ -f "$KUBECONFIG" ] && "$KUBECTL" get --raw /readyz >/dev/null 2>&1 && pid_alive "$STATE/operator.pid"; then
  # Stacks first (their children would be put back otherwise), then what is left; networks last,
  # once no service uses them.
  log "deleting SwarmStacks, SwarmServices, SwarmSecrets, SwarmConfigs, SwarmNetworks"
  for kind in swarmstacks swarmservices swarmsecrets swarmconfigs swarmnetworks; do
    "$KUBECTL" delete "$kind" --all --all-namespaces --timeout=60s || true
  done
fi
kube_down
log "stopped the operator, kube-apiserver and etcd (state kept in $STATE; dockerd and the swarm left running)"
