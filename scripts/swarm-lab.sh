#!/usr/bin/env bash
# A real multi-manager swarm on this one machine: one dockerd per manager, each in its own network
# namespace (and UTS namespace, for its own hostname) on a Linux bridge, joined over VXLAN like
# separate hosts. Used by the SwarmCluster tests; every lab has a number that picks its subnet.
#
#   swarm-lab.sh up N MANAGERS [TLSDIR]  start lab N (198.18.N.0/24) with MANAGERS managers; with
#                                        TLSDIR (from `certs`) manager 1 listens with
#                                        --tlsverify on 198.18.N.11:2376 instead of 2375
#   swarm-lab.sh workers N COUNT         COUNT worker nodes join lab N (numbered after its managers)
#   swarm-lab.sh stop N I | start N I    stop (SIGTERM, wait) or start again node I of lab N
#   swarm-lab.sh down N                  remove lab N entirely
#   swarm-lab.sh certs DIR IP            CA, server certificate for IP, client certificate in DIR
#
# Endpoints: unix:///run/swl/N-I/docker.sock (for the test's own checks), tcp://198.18.N.1I:2375.
set -euo pipefail
LOG_TAG=swarm-lab
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

ROOT=/var/lib/swarm-operator-lab
RUN=/run/swl

lab_ip() { echo "198.18.$1.$((10 + $2))"; }
sock() { echo "unix://$RUN/$1-$2/docker.sock"; }
netns() { echo "swl$1-m$2"; }

net_up() { # net_up N MANAGERS
  local n=$1 count=$2 br="swl$1" i
  ip link show "$br" >/dev/null 2>&1 || {
    ip link add "$br" type bridge
    ip addr add "198.18.$n.1/24" dev "$br"
    ip link set "$br" up
  }
  # Docker's FORWARD policy is DROP and br_netfilter sends bridged frames through it.
  iptables -C FORWARD -i "$br" -o "$br" -j ACCEPT 2>/dev/null || iptables -I FORWARD -i "$br" -o "$br" -j ACCEPT
  for i in $(seq "$count"); do
    local ns; ns=$(netns "$n" "$i")
    [ -e "/var/run/netns/$ns" ] && continue
    ip netns add "$ns"
    ip link add "swl${n}m${i}" type veth peer name "swl${n}m${i}p"
    ip link set "swl${n}m${i}" master "$br" up
    ip link set "swl${n}m${i}p" netns "$ns"
    # No default route: a pull of a public image fails at once instead of waiting on DNS.
    nsenter --net="/var/run/netns/$ns" sh -c "
      ip link set lo up
      ip link set swl${n}m${i}p name eth0
      ip addr add $(lab_ip "$n" "$i")/24 dev eth0
      ip link set eth0 up"
  done
}

start_manager() { # start_manager N I [TLSDIR]
  local n=$1 i=$2 tls=${3:-} dir="$RUN/$1-$2" ip; ip=$(lab_ip "$1" "$2")
  mkdir -p "$dir" "$ROOT/$n-$i"
  pid_alive "$dir/dockerd.pid" && return 0
  # TLS settings apply to every tcp listener: a TLS manager listens on 2376 only. Plain ones say
  # --tls=false, or dockerd 20.10 delays its start by 15 s to warn about it.
  local listen=(-H "$(sock "$n" "$i")")
  [ -s "$ROOT/$n-$i/tls" ] && tls=$(cat "$ROOT/$n-$i/tls")
  if [ -n "$tls" ]; then
    echo "$tls" > "$ROOT/$n-$i/tls"
    listen+=(-H "tcp://$ip:2376" --tlsverify --tlscacert "$tls/ca.pem" --tlscert "$tls/server-cert.pem" --tlskey "$tls/server-key.pem")
  else
    listen+=(-H "tcp://$ip:2375" --tls=false)
  fi
  # DOCKERD picks another engine build (a current one, see scripts/engine-bins.sh).
  local dockerd=${DOCKERD:-}; [ -n "$dockerd" ] || dockerd=$(command -v dockerd || echo /usr/sbin/dockerd)
  start_bg "$dir/dockerd.pid" "$ROOT/$n-$i.log" \
    nsenter --net="/var/run/netns/$(netns "$n" "$i")" unshare --uts sh -c 'hostname "$0"; exec "$@"' "$(netns "$n" "$i")" \
    "$dockerd" --data-root "$ROOT/$n-$i/docker" --exec-root "$dir/exec" --pidfile "$dir/docker.pid" \
    "${listen[@]}"
  wait_process "$dir/dockerd.pid" "$ROOT/$n-$i.log" 60 "dockerd of $(netns "$n" "$i")" \
    "$DOCKER" -H "$(sock "$n" "$i")" info
}

stop_manager() { # stop_manager N I
  local pidfile="$RUN/$1-$2/dockerd.pid" pid
  pid_alive "$pidfile" || return 0
  pid=$(cat "$pidfile")
  kill -TERM "$pid"
  local t; for t in $(seq 120); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.25; done
  kill -KILL "$pid" 2>/dev/null || true
}

load_images() { # load_images N I: the test images, so tasks can run on the lab's nodes
  local image
  for image in swarm-operator-test/whoami:1 swarm-operator-test/whoami:2 swarm-operator-test/whoami:broken; do
    "$DOCKER" image inspect "$image" >/dev/null 2>&1 || continue
    "$DOCKER" save "$image" | "$DOCKER" -H "$(sock "$1" "$2")" load -q >/dev/null
  done
}

up() { # up N MANAGERS [TLSDIR]
  local n=$1 count=$2 tls=${3:-} i
  net_up "$n" "$count"
  start_manager "$n" 1 "$tls"
  local d1=(-H "$(sock "$n" 1)")
  if [ "$("$DOCKER" "${d1[@]}" info --format '{{.Swarm.LocalNodeState}}')" != active ]; then
    "$DOCKER" "${d1[@]}" swarm init --advertise-addr "$(lab_ip "$n" 1)" >/dev/null
  fi
  load_images "$n" 1
  local token; token=$("$DOCKER" "${d1[@]}" swarm join-token -q manager)
  for i in $(seq 2 "$count"); do
    start_manager "$n" "$i"
    local di=(-H "$(sock "$n" "$i")")
    if [ "$("$DOCKER" "${di[@]}" info --format '{{.Swarm.LocalNodeState}}')" != active ]; then
      "$DOCKER" "${di[@]}" swarm join --token "$token" --advertise-addr "$(lab_ip "$n" "$i")" "$(lab_ip "$n" 1):2377" >/dev/null
    fi
    load_images "$n" "$i"
  done
  wait_for 60 "$count managers in lab $n" sh -c \
    "[ \$('$DOCKER' -H '$(sock "$n" 1)' node ls --filter role=manager -q | wc -l) -eq $count ]"
  log "lab $n: $count managers on 198.18.$n.0/24"
}

workers() { # workers N COUNT: worker nodes join lab N, numbered after the nodes it has
  local n=$1 count=$2 d1=(-H "$(sock "$1" 1)") have i
  have=$("$DOCKER" "${d1[@]}" node ls -q | wc -l)
  local token; token=$("$DOCKER" "${d1[@]}" swarm join-token -q worker)
  net_up "$n" $((have + count))
  for i in $(seq $((have + 1)) $((have + count))); do
    start_manager "$n" "$i"
    "$DOCKER" -H "$(sock "$n" "$i")" swarm join --token "$token" --advertise-addr "$(lab_ip "$n" "$i")" \
      "$(lab_ip "$n" 1):2377" >/dev/null
    load_images "$n" "$i"
  done
  wait_for 60 "$count workers ready in lab $n" sh -c \
    "[ \$('$DOCKER' -H '$(sock "$n" 1)' node ls --filter role=worker --format '{{.Status}}' | grep -c Ready) -eq $count ]"
  log "lab $n: $count workers joined"
}

down() { # down N
  local n=$1 dir i
  for dir in "$RUN/$n"-*; do
    [ -d "$dir" ] || continue
    i=${dir##*-}
    stop_manager "$n" "$i"
    # containerd and shims of a stopped dockerd may linger: end them with the namespace.
    ip netns pids "$(netns "$n" "$i")" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
    ip netns del "$(netns "$n" "$i")" 2>/dev/null || true
    ip link del "swl${n}m${i}" 2>/dev/null || true
    grep -q " $dir/" /proc/mounts && grep " $dir/" /proc/mounts | awk '{print $2}' | sort -r | xargs -r umount -l
    rm -rf "$dir"
  done
  grep -q " $ROOT/$n-" /proc/mounts && grep " $ROOT/$n-" /proc/mounts | awk '{print $2}' | sort -r | xargs -r umount -l
  rm -rf "${ROOT:?}/$n"-*
  iptables -D FORWARD -i "swl$n" -o "swl$n" -j ACCEPT 2>/dev/null || true
  ip link del "swl$n" 2>/dev/null || true
}

certs() { # certs DIR IP: a CA, a server certificate for IP and a client certificate, like dockerd's docs
  local d=$1 ip=$2
  mkdir -p "$d"
  (
    cd "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca-key.pem -out ca.pem -days 2 -subj "/CN=swarm-lab-ca" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout server-key.pem -out server.csr -subj "/CN=$ip" 2>/dev/null
    printf 'subjectAltName=IP:%s,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' "$ip" > server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out server-cert.pem -days 2 -extfile server.ext 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout key.pem -out client.csr -subj "/CN=swarm-operator" 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' > client.ext
    openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out cert.pem -days 2 -extfile client.ext 2>/dev/null
    rm -f ./*.csr ./*.ext ./*.srl
  )
}

case "${1:-}" in
  up) up "$2" "$3" "${4:-}" ;;
  workers) workers "$2" "$3" ;;
  stop) stop_manager "$2" "$3" ;;
  start) start_manager "$2" "$3" ;;
  down) down "$2" ;;
  certs) certs "$2" "$3" ;;
  *) sed -n '2,14p' "$0" >&2; exit 2 ;;
esac
