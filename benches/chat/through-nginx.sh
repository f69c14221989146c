#!/usr/bin/env bash
# Chat fan-out benchmark through the nginx LB exactly as k8s-boot renders it.
#
#   benches/chat/through-nginx.sh                 # 1,000 clients, one burst round
#   benches/chat/through-nginx.sh --rounds 5      # any other fanout.js options
#
# Builds k8s-boot (cargo build --release), renders a loopback inventory (lb1, one
# control-plane host, one worker on 127.0.0.31), starts one chat server on the
# worker's address with its PROXY protocol port on chat.lb_node_port (standing
# in for kube-proxy forwarding the NodePorts to the pod) and nginx from the rendered
# /etc/nginx/nginx.conf of lb1, then runs
#
#   node benches/chat/fanout.js --target 127.0.0.1:<chat.port> --server-pid <pid> \
#     --proxy-pids <nginx worker pids>
#
# The nginx.conf is used as rendered except for two lines, as in
# tests/chat_via_nginx.rs: the access log goes to the work directory, and the
# apiserver listener `listen 6443;` becomes `listen 127.0.0.1:6443;`.
#
# Environment: CHAT_BENCH_CLIENTS (default 1000), CHAT_BENCH_LB_PORT (chat.port,
# default 31900; the plain NodePort is the next port, the LB's PROXY NodePort the
# one after), KEEP=1 keeps the work directory.
# Needs nginx with the stream module (Debian: nginx libnginx-mod-stream), node
# 20 and cargo. Everything it starts is stopped on exit.

set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
clients=${CHAT_BENCH_CLIENTS:-1000}
chat_port=${CHAT_BENCH_LB_PORT:-31900}
node_port=$((chat_port + 1))
lb_node_port=$((chat_port + 2))
apiserver_port=6443
worker=127.0.0.31
nginx=$(PATH="$PATH:/usr/sbin:/sbin" command -v nginx) || { echo "through-nginx: nginx not found (apt-get install nginx libnginx-mod-stream)" >&2; exit 2; }

work=$(mktemp -d /tmp/chat-through-nginx.XXXXXX)
chat_pid=
nginx_pid=
cleanup() {
  local rc=$?
  set +e # a stopped process's exit status must not end the cleanup
  if [ -n "$nginx_pid" ]; then kill -TERM "$nginx_pid" 2>/dev/null; wait "$nginx_pid" 2>/dev/null; fi
  if [ -n "$chat_pid" ]; then kill -KILL "$chat_pid" 2>/dev/null; wait "$chat_pid" 2>/dev/null; fi
  if [ "${KEEP:-0}" = 1 ] || [ "$rc" != 0 ]; then
    echo "through-nginx: logs kept in $work" >&2
  else
    rm -rf "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for port in "$chat_port" "$apiserver_port" "$node_port" "$lb_node_port"; do
  if [ -n "$(ss -Hltn "sport = :$port")" ]; then
    echo "through-nginx: something already listens on port $port (see ss -ltnp)" >&2
    exit 2
  fi
done

# 1,000 proxied clients are 2,000 descriptors in nginx and 1,000 each in the
# server and the benchmark.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

echo "through-nginx: building k8s-boot (release)" >&2
(cd "$root" && cargo build --release --quiet)

cat > "$work/hosts.yaml" <<EOF
cluster:
  name: bench
  kubernetes_version: v1.36.0
  allow_loopback_hosts: true         # every host runs on this machine

chat:
  port: $chat_port
  node_port: $node_port
  lb_node_port: $lb_node_port

hosts:
  - name: lb1
    address: 127.0.0.20
    roles: [lb]
  - name: m1
    address: 127.0.0.21
    roles: [etcd, control-plane]
  - name: w1
    address: $worker
    roles: [worker]
EOF
"$root/target/release/k8s-boot" render --inventory "$work/hosts.yaml" \
  --pki-dir "$work/pki" --out "$work/out" > "$work/render.log" 2>&1 \
  || { cat "$work/render.log" >&2; exit 1; }

rendered="$work/out/hosts/lb1/etc/nginx/nginx.conf"
one() { # exactly one occurrence of a fixed string
  [ "$(grep -cF -- "$1" "$rendered")" = 1 ] || { echo "through-nginx: expected one '$1' in $rendered" >&2; exit 1; }
}
one "/var/log/nginx/k8s-boot-stream.log"
one "listen $apiserver_port;"
one "listen $chat_port;"
one "proxy_protocol on;"
conf="$work/nginx.conf"
sed -e "s#/var/log/nginx/k8s-boot-stream.log#$work/k8s-boot-stream.log#" \
    -e "s#listen $apiserver_port;#listen 127.0.0.1:$apiserver_port;#" \
    "$rendered" > "$conf"
"$nginx" -t -q -c "$conf" -e "$work/nginx-t.log" -g "pid $work/nginx-t.pid;"

CHAT_HOST=$worker CHAT_PORT=$node_port CHAT_PROXY_PORT=$lb_node_port \
  node "$root/templates/workloads/chat/server.js" > "$work/chat.log" 2>&1 &
chat_pid=$!
"$nginx" -c "$conf" -e "$work/nginx-error.log" -g "daemon off; pid $work/nginx.pid;" &
nginx_pid=$!

wait_until() { # wait_until <what> <command...>: up to 10 s
  local what=$1; shift
  for _ in $(seq 200); do
    "$@" && return 0
    sleep 0.05
  done
  echo "through-nginx: timed out waiting for $what" >&2
  exit 1
}
wait_until "the chat server" grep -q "chat server listening on" "$work/chat.log"
wait_until "nginx to listen on :$chat_port" sh -c "ss -Hltn 'sport = :$chat_port' | grep -q ."

wait_until "the nginx workers" sh -c "pgrep -P $nginx_pid > /dev/null"
sleep 0.2 # all workers forked
workers=$(pgrep -P "$nginx_pid" | paste -sd, -)

echo "through-nginx: load before the run: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
node "$root/benches/chat/fanout.js" --clients "$clients" \
  --target "127.0.0.1:$chat_port" --server-pid "$chat_pid" --proxy-pids "$workers" "$@"
