#!/usr/bin/env bash
# A private API server (etcd, kube-apiserver, kube-controller-manager) for a test that must kill and
# restart it without disturbing the others, with the CRDs installed. Built binaries come from the
# cache scripts/k8s-bins.sh fills.
#
#   kube-bed.sh up DIR APISERVER_PORT ETCD_PORT   start what is not running; DIR/kubeconfig
#   kube-bed.sh kill-apiserver DIR                kill -9 the API server, as a crash would
#   kube-bed.sh down DIR                          stop everything and remove DIR
set -euo pipefail
LOG_TAG=kube-bed
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
cmd=$1 STATE=$2
case "$cmd" in
  up)
    APISERVER_PORT=$3 ETCD_PORT=$4
    kube_up
    "$KUBECTL" --kubeconfig "$STATE/kubeconfig" apply --server-side --force-conflicts -f "$REPO/crds/generated/" >/dev/null
    "$KUBECTL" --kubeconfig "$STATE/kubeconfig" wait --for condition=Established --timeout=60s \
      -f "$REPO/crds/generated/" >/dev/null
    ;;
  kill-apiserver)
    pid_alive "$STATE/apiserver.pid" && kill -9 "$(cat "$STATE/apiserver.pid")"
    rm -f "$STATE/apiserver.pid"
    ;;
  down)
    kube_down
    rm -rf "$STATE"
    ;;
  *) die "usage: kube-bed.sh up|kill-apiserver|down DIR ..." ;;
esac
