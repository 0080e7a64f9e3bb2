# Shared by scripts/up.sh, scripts/test.sh and scripts/down.sh: bring the real parts up from nothing
# (Debian packages, dockerd in swarm mode, etcd + kube-apiserver as envtest runs them) and reuse what
# already runs. Sourced, not executed.
# shellcheck shell=bash

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The machine's Go (Debian's golang-go is too old to build Kubernetes 1.34) and rustup's cargo.
for d in /usr/local/go/bin "$HOME/.cargo/bin" /usr/lib/google-cloud-sdk/bin; do
  [ -d "$d" ] && case ":$PATH:" in *":$d:"*) ;; *) PATH="$PATH:$d" ;; esac
done
export PATH
KUBECTL="${KUBECTL:-$(command -v kubectl.1.33 || ls /usr/lib/google-cloud-sdk/bin/kubectl.1.33 2>/dev/null || command -v kubectl)}"
# Debian's docker.io puts its CLI in /usr/bin; any docker CLI works, the API version is negotiated.
DOCKER="${DOCKER:-$(command -v docker)}"

log() { printf '\033[1m[%s]\033[0m %s\n' "${LOG_TAG:-swarm-operator}" "$*" >&2; }
die() { log "error: $*"; exit 1; }
timed() { local t=$SECONDS; "$@"; log "  (${*:1:2} took $((SECONDS - t))s)"; }

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2; shift 2
  local end=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || die "timed out after ${limit}s waiting for $what"
    sleep 0.5
  done
}

# Waits for a process started in the background to answer; stops at once, with its log, if it died.
wait_process() { # wait_process PIDFILE LOG SECONDS DESCRIPTION COMMAND...
  local pidfile=$1 logfile=$2 limit=$3 what=$4; shift 4
  local end=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    if ! pid_alive "$pidfile"; then tail -n 5 "$logfile" >&2; die "$what exited (log: $logfile)"; fi
    [ $SECONDS -lt $end ] || die "timed out after ${limit}s waiting for $what (log: $logfile)"
    sleep 0.5
  done
}

ensure_packages() {
  local missing=()
  command -v dockerd >/dev/null || [ -x /usr/sbin/dockerd ] || missing+=(docker.io)
  [ -x /bin/busybox ] && file -L /bin/busybox 2>/dev/null | grep -q "statically linked" || missing+=(busybox-static)
  command -v openssl >/dev/null || missing+=(openssl)
  command -v curl >/dev/null || missing+=(curl)
  command -v file >/dev/null || missing+=(file)
  command -v go >/dev/null || missing+=(golang-go)
  command -v nsenter >/dev/null || missing+=(util-linux)
  # runc for the current Engine (scripts/engine-bins.sh) is built with cgo and seccomp.
  command -v gcc >/dev/null || missing+=(gcc)
  dpkg -s libseccomp-dev >/dev/null 2>&1 || missing+=(libseccomp-dev)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  DOCKER="${DOCKER:-$(command -v docker)}"
  [ -n "$DOCKER" ] || DOCKER=/usr/bin/docker
  [ -n "$KUBECTL" ] || die "kubectl not found (looked for kubectl.1.33 and kubectl)"
}

# dockerd from Debian's docker.io, started here when nothing answers on the socket, then swarm init.
docker_up() {
  if ! "$DOCKER" info >/dev/null 2>&1; then
    log "starting dockerd (log: /var/log/swarm-operator-dockerd.log)"
    local dockerd; dockerd=$(command -v dockerd || echo /usr/sbin/dockerd)
    start_bg /var/run/swarm-operator-dockerd.pid /var/log/swarm-operator-dockerd.log "$dockerd"
    wait_for 60 "dockerd" "$DOCKER" info
  fi
  if [ "$("$DOCKER" info --format '{{.Swarm.LocalNodeState}}')" != "active" ]; then
    local addr; addr=$(ip -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p')
    log "docker swarm init --advertise-addr ${addr:-127.0.0.1}"
    "$DOCKER" swarm init --advertise-addr "${addr:-127.0.0.1}" >/dev/null
  fi
}

# A private registry on loopback (Debian's docker-registry) with htpasswd auth, holding the test
# images (two tags, so two digests); the local copies of the pushed tags are removed so the swarm
# must pull them with credentials.
# Variables: STATE, REGISTRY_PORT. Exports REGISTRY, REGISTRY_USER, REGISTRY_PASSWORD.
registry_up() {
  command -v docker-registry >/dev/null || { export DEBIAN_FRONTEND=noninteractive; apt-get install -y -qq docker-registry >/dev/null; }
  command -v htpasswd >/dev/null || { export DEBIAN_FRONTEND=noninteractive; apt-get install -y -qq apache2-utils >/dev/null; }
  local dir="$STATE/registry"
  mkdir -p "$dir/data"
  export REGISTRY="127.0.0.1:$REGISTRY_PORT" REGISTRY_USER=swarm-operator-e2e
  [ -s "$dir/password" ] || head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$dir/password"
  REGISTRY_PASSWORD=$(cat "$dir/password"); export REGISTRY_PASSWORD
  htpasswd -Bbn "$REGISTRY_USER" "$REGISTRY_PASSWORD" > "$dir/htpasswd" 2>/dev/null
  cat > "$dir/config.yml" <<CFG
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $dir/data}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$REGISTRY_PORT}
auth: {htpasswd: {realm: swarm-operator-test, path: $dir/htpasswd}}
CFG
  if ! pid_alive "$STATE/registry.pid"; then
    log "starting docker-registry on $REGISTRY (htpasswd auth)"
    start_bg "$STATE/registry.pid" "$STATE/logs/registry.log" docker-registry serve "$dir/config.yml"
    wait_process "$STATE/registry.pid" "$STATE/logs/registry.log" 30 docker-registry \
      sh -c "curl -s -o /dev/null -w '%{http_code}' http://$REGISTRY/v2/ | grep -q 401"
  fi
  local tag private cfg; cfg=$(mktemp -d)
  printf '%s' "$REGISTRY_PASSWORD" | DOCKER_CONFIG=$cfg "$DOCKER" login -u "$REGISTRY_USER" --password-stdin "$REGISTRY" >/dev/null 2>&1
  for tag in 1 2; do
    private="$REGISTRY/swarm-operator-test/whoami:$tag"
    "$DOCKER" tag "swarm-operator-test/whoami:$tag" "$private"
    DOCKER_CONFIG=$cfg "$DOCKER" push -q "$private" >/dev/null
    "$DOCKER" rmi "$private" >/dev/null
  done
  rm -rf "$cfg"
}

has_ipvs() { [ -e /proc/net/ip_vs ] || modprobe -q ip_vs 2>/dev/null && [ -e /proc/net/ip_vs ]; }

# kube-apiserver + etcd, as controller-runtime's envtest runs them, under $STATE with its own ports.
# Variables: STATE, APISERVER_PORT, ETCD_PORT.
kube_up() {
  local certs="$STATE/certs" kc="$STATE/kubeconfig"
  mkdir -p "$certs" "$STATE/logs"
  if [ -f "$kc" ] && "$KUBECTL" --kubeconfig "$kc" get --raw /readyz >/dev/null 2>&1; then
    log "API server already up on 127.0.0.1:$APISERVER_PORT (reused)"
    controller_manager_up "$("$REPO/scripts/k8s-bins.sh")"
    return 0
  fi
  local bins; bins=$(timed "$REPO/scripts/k8s-bins.sh") || die "building kube-apiserver/etcd failed"
  [ -f "$certs/ca.crt" ] || make_certs "$certs"
  [ -f "$certs/front-proxy-ca.crt" ] || make_front_proxy_certs "$certs"
  if ! pid_alive "$STATE/etcd.pid"; then
    log "starting etcd on 127.0.0.1:$ETCD_PORT"
    : > "$STATE/logs/etcd.log"
    start_bg "$STATE/etcd.pid" "$STATE/logs/etcd.log" "$bins/etcd" --name default --data-dir "$STATE/etcd" \
      --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
      --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
      --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
      --initial-cluster "default=http://127.0.0.1:$((ETCD_PORT + 1))" \
      --unsafe-no-fsync --log-level warn
    wait_process "$STATE/etcd.pid" "$STATE/logs/etcd.log" 30 etcd curl -sf "http://127.0.0.1:$ETCD_PORT/health"
  fi
  if ! pid_alive "$STATE/apiserver.pid"; then
    write_audit_policy "$STATE/audit-policy.yaml"
    log "starting kube-apiserver on 127.0.0.1:$APISERVER_PORT"
    : > "$STATE/logs/kube-apiserver.log"
    start_bg "$STATE/apiserver.pid" "$STATE/logs/kube-apiserver.log" "$bins/kube-apiserver" \
      --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
      --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$APISERVER_PORT" \
      --tls-cert-file "$certs/apiserver.crt" --tls-private-key-file "$certs/apiserver.key" \
      --client-ca-file "$certs/ca.crt" \
      --service-account-issuer "https://127.0.0.1:$APISERVER_PORT" \
      --service-account-key-file "$certs/sa.pub" --service-account-signing-key-file "$certs/sa.key" \
      --service-cluster-ip-range 10.0.0.0/24 --authorization-mode RBAC --allow-privileged=true \
      --disable-admission-plugins ServiceAccount \
      --enable-admission-plugins OwnerReferencesPermissionEnforcement \
      --audit-policy-file "$STATE/audit-policy.yaml" --audit-log-path "$STATE/logs/audit.log" \
      --audit-log-maxsize 200 --audit-log-maxbackup 1 --audit-log-format json \
      --requestheader-client-ca-file "$certs/front-proxy-ca.crt" --requestheader-allowed-names front-proxy-client \
      --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
      --requestheader-extra-headers-prefix X-Remote-Extra- \
      --proxy-client-cert-file "$certs/front-proxy-client.crt" --proxy-client-key-file "$certs/front-proxy-client.key" \
      --cert-dir "$certs"
  fi
  write_kubeconfig "$kc" "$certs"
  wait_process "$STATE/apiserver.pid" "$STATE/logs/kube-apiserver.log" 90 kube-apiserver \
    "$KUBECTL" --kubeconfig "$kc" get --raw /readyz
  controller_manager_up "$bins"
}

# What the API server's audit log keeps: the requests of ServiceAccounts (the operator running as
# the chart's, tests/tests/rbac.rs), with who, verb and resource, no bodies. Nothing else.
write_audit_policy() { # write_audit_policy FILE
  cat > "$1" <<'POLICY'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  userGroups: ["system:serviceaccounts"]
- level: None
POLICY
}

# kube-controller-manager with what a real cluster does to every object, whatever its kind:
# namespace deletion and ownerReference garbage collection. No serving port (tests run several beds).
controller_manager_up() { # controller_manager_up BINS
  pid_alive "$STATE/controller-manager.pid" && return 0
  log "starting kube-controller-manager (namespace deletion, garbage collection)"
  : > "$STATE/logs/kube-controller-manager.log"
  start_bg "$STATE/controller-manager.pid" "$STATE/logs/kube-controller-manager.log" "$1/kube-controller-manager" \
    --kubeconfig "$STATE/kubeconfig" --controllers=namespace,garbagecollector \
    --leader-elect=false --secure-port 0 --use-service-account-credentials=false \
    --service-account-private-key-file "$STATE/certs/sa.key" --root-ca-file "$STATE/certs/ca.crt"
}

pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Starts a command in its own session, detached from this script, logging to LOG. The process writes
# its own PID before exec: `$!` would name setsid's parent when setsid has to fork.
start_bg() { # start_bg PIDFILE LOG COMMAND...
  local pidfile=$1 logfile=$2; shift 2
  rm -f "$pidfile"
  setsid sh -c 'echo $$ > "$0"; exec "$@"' "$pidfile" "$@" >>"$logfile" 2>&1 < /dev/null &
  local i; for i in $(seq 50); do [ -s "$pidfile" ] && return 0; sleep 0.1; done
  die "could not start $1"
}

make_certs() {
  local d=$1
  log "generating a CA, serving and client certificates and a service-account key in $d"
  (
    cd "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 -subj "/CN=swarm-operator-local-ca" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n' > apiserver.ext
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out apiserver.crt -days 3650 -extfile apiserver.ext 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr -subj "/O=system:masters/CN=admin" 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' > admin.ext
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out admin.crt -days 3650 -extfile admin.ext 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  )
}

# The aggregation layer's own CA and the client certificate the API server presents to aggregated
# API servers (the operator's logs), as kubeadm makes them.
make_front_proxy_certs() {
  (
    cd "$1"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout front-proxy-ca.key -out front-proxy-ca.crt -days 3650 -subj "/CN=front-proxy-ca" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout front-proxy-client.key -out front-proxy-client.csr -subj "/CN=front-proxy-client" 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' > front-proxy-client.ext
    openssl x509 -req -in front-proxy-client.csr -CA front-proxy-ca.crt -CAkey front-proxy-ca.key -CAcreateserial \
      -out front-proxy-client.crt -days 3650 -extfile front-proxy-client.ext 2>/dev/null
  )
}

# The operator's logs API serving certificate (for the quickstart's APIService), signed by a CA of
# its own: logs-ca.crt, logs.crt, logs.key in DIR.
logs_serving_cert() { # logs_serving_cert DIR
  [ -f "$1/logs.crt" ] && return 0
  (
    cd "$1"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout logs-ca.key -out logs-ca.crt -days 3650 -subj "/CN=swarm-operator-logs-ca" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout logs.key -out logs.csr -subj "/CN=swarm-operator-logs" 2>/dev/null
    printf 'subjectAltName=DNS:swarm-operator-logs.default.svc\nextendedKeyUsage=serverAuth\n' > logs.ext
    openssl x509 -req -in logs.csr -CA logs-ca.crt -CAkey logs-ca.key -CAcreateserial -out logs.crt -days 3650 -extfile logs.ext 2>/dev/null
  )
}

write_kubeconfig() {
  local kc=$1 certs=$2
  cat > "$kc" <<KC
apiVersion: v1
kind: Config
clusters:
- name: swarm-operator-local
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 < "$certs/ca.crt")
users:
- name: admin
  user:
    client-certificate-data: $(base64 -w0 < "$certs/admin.crt")
    client-key-data: $(base64 -w0 < "$certs/admin.key")
contexts:
- name: swarm-operator-local
  context: {cluster: swarm-operator-local, user: admin, namespace: default}
current-context: swarm-operator-local
KC
}

# Stops the operator, kube-apiserver and etcd under $STATE and waits until they have exited, so their
# ports are free for the next start.
kube_down() {
  local f pid i
  for f in operator controller-manager apiserver etcd registry; do
    if pid_alive "$STATE/$f.pid"; then
      pid=$(cat "$STATE/$f.pid")
      kill "$pid" 2>/dev/null || true
      for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$STATE/$f.pid"
  done
}
