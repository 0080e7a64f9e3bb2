#!/usr/bin/env bash
# Quickstart: a local single-node swarm and Kubernetes API server, the operator, and
# examples/whoami.yaml applied and shown working. Leaves everything running; run twice, it reuses
# what is already up. Stop it all with scripts/down.sh.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
LOG_TAG=up
STATE="${SWARM_OPERATOR_HOME:-$HOME/.swarm-operator}"
APISERVER_PORT="${APISERVER_PORT:-6443}"
ETCD_PORT="${ETCD_PORT:-2379}"
LOGS_PORT="${LOGS_PORT:-8443}"
export KUBECONFIG="$STATE/kubeconfig"

ensure_packages
timed docker_up
timed kube_up
timed "$REPO/scripts/images.sh"

log "building the operator and the kubectl plugin"
(cd "$REPO" && cargo build --quiet --bin swarm-operator --bin kubectl-swarm)
BIN="$REPO/target/debug/swarm-operator"
# `kubectl swarm ...` finds the plugin on PATH.
export PATH="$REPO/target/debug:$PATH"

log "installing the CRDs"
"$KUBECTL" apply --server-side --force-conflicts -f "$REPO/crds/generated/" >/dev/null
"$KUBECTL" wait --for condition=Established --timeout=60s -f "$REPO/crds/generated/" >/dev/null

# (Re)start the operator when it is not running or was built anew since it started.
if pid_alive "$STATE/operator.pid" && [ "$(cat "$STATE/operator.built" 2>/dev/null)" = "$(stat -c %Y "$BIN")" ]; then
  log "operator already running (pid $(cat "$STATE/operator.pid"), reused)"
else
  pid_alive "$STATE/operator.pid" && kill "$(cat "$STATE/operator.pid")" && sleep 1
  log "starting the operator (log: $STATE/logs/operator.log)"
  logs_serving_cert "$STATE/certs"
  DOCKER_HOST="${DOCKER_HOST:-unix:///var/run/docker.sock}" start_bg "$STATE/operator.pid" "$STATE/logs/operator.log" \
    "$BIN" --logs-addr "127.0.0.1:$LOGS_PORT" --logs-tls-cert "$STATE/certs/logs.crt" --logs-tls-key "$STATE/certs/logs.key"
  stat -c %Y "$BIN" > "$STATE/operator.built"
fi
# `kubectl swarm logs` goes through the API server to the operator's logs API: the APIService the
# chart makes, here pointing at the operator on loopback (an ExternalName Service; no kube-proxy).
"$KUBECTL" apply -f - >/dev/null <<APISERVICE
apiVersion: v1
kind: Service
metadata: {name: swarm-operator-logs, namespace: default}
spec: {type: ExternalName, externalName: localhost}
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1alpha1.logs.swarmoperator.io}
spec:
  group: logs.swarmoperator.io
  version: v1alpha1
  groupPriorityMinimum: 1000
  versionPriority: 15
  caBundle: $(base64 -w0 < "$STATE/certs/logs-ca.crt")
  service: {namespace: default, name: swarm-operator-logs, port: $LOGS_PORT}
APISERVICE

log "kubectl apply -f examples/whoami.yaml"
"$KUBECTL" apply -f "$REPO/examples/whoami.yaml"
if ! "$KUBECTL" wait --for=condition=Ready --timeout=180s swarmservice/whoami; then
  "$KUBECTL" get swarmservice whoami \
    -o jsonpath='{range .status.conditions[*]}  {.type}={.status} {.reason}: {.message}{"\n"}{end}' >&2
  die "whoami did not become Ready (operator log: $STATE/logs/operator.log)"
fi
echo
"$KUBECTL" get swarmservices
echo
"$DOCKER" service ls --filter name=whoami
echo
log "kubectl swarm ps whoami (docker service ps, from Kubernetes)"
kubectl_swarm() { PATH="$(dirname "$KUBECTL"):$PATH" "$KUBECTL" swarm "$@"; }
kubectl_swarm ps whoami
log "kubectl get swarmnodes (docker node ls)"
wait_for 60 "SwarmNodes" sh -c "'$KUBECTL' get swarmnodes -o name | grep -q ."
"$KUBECTL" get swarmnodes
echo

if has_ipvs; then
  log "asking the routing mesh on port 4567 six times:"
  for _ in 1 2 3 4 5 6; do curl -s --max-time 3 http://127.0.0.1:4567/ | grep Hostname; done
else
  log "this kernel has no IPVS, so the routing mesh accepts port 4567 but carries no traffic here; asking each replica directly over docker_gwbridge, the network that links the published port to each task:"
  for c in $("$DOCKER" ps -q --filter label=com.docker.swarm.service.name=whoami); do
    ip=$("$DOCKER" network inspect docker_gwbridge \
      -f "{{range \$id, \$e := .Containers}}{{if eq (slice \$id 0 12) \"$c\"}}{{\$e.IPv4Address}}{{end}}{{end}}")
    ip=${ip%/*}
    printf '  %-18s ' "$ip:80"
    curl -s --max-time 3 "http://$ip:80/" | grep Hostname || echo "(no answer)"
  done
fi

log "kubectl apply -f examples/stack.yaml (a stack file, as docker stack deploy takes it)"
"$KUBECTL" apply -f "$REPO/examples/stack.yaml"
if ! "$KUBECTL" wait --for=condition=Ready --timeout=180s swarmstack/shop; then
  "$KUBECTL" get swarmstack shop \
    -o jsonpath='{range .status.conditions[*]}  {.type}={.status} {.reason}: {.message}{"\n"}{end}' >&2
  die "the shop stack did not become Ready (operator log: $STATE/logs/operator.log)"
fi
echo
"$KUBECTL" get swarmstacks
echo
"$DOCKER" stack services shop
echo
log "kubectl swarm logs --stack shop --tail 2 (docker service logs, through the API server)"
for _ in $(seq 120); do "$KUBECTL" get --raw /apis/logs.swarmoperator.io/v1alpha1 >/dev/null 2>&1 && break; sleep 0.5; done
if shown=$(kubectl_swarm logs --stack shop --tail 2); then
  [ -n "$shown" ] && echo "$shown" || log "(the logs API answers; the shop's services write nothing to stdout)"
else
  log "(the logs API does not answer: an API server started by an older up.sh lacks the aggregation layer; scripts/down.sh, then scripts/up.sh)"
fi
echo

cat <<USAGE

swarm-operator is running. To use it:
  export KUBECONFIG=$KUBECONFIG
  export DOCKER_HOST=${DOCKER_HOST:-unix:///var/run/docker.sock}
  kubectl get swarmservices            # kubectl is $KUBECTL here
  kubectl scale swarmservice/whoami --replicas=5
  docker service ps whoami
  kubectl get swstack shop -o yaml     # one line per service under status.services
  export PATH=$REPO/target/debug:\$PATH   # the kubectl plugin: kubectl swarm ...
  kubectl swarm logs whoami -f         # docker service logs -f whoami
  kubectl swarm history whoami; kubectl swarm rollback whoami
  kubectl get swarmnodes; kubectl swarm drain <node>
  swarm-operator convert -f docker-stack.yml --name prod --split   # preview what a file becomes
Operator log: $STATE/logs/operator.log
Stop everything: scripts/down.sh
USAGE
