#!/usr/bin/env bash
# Prints an inventory with N hosts: 1 lb, 3 etcd/control-plane, N-4 workers.
set -euo pipefail
n=${1:?usage: gen-inventory.sh N}
cat <<YAML
cluster:
  name: bench
  kubernetes_version: v1.36.0
hosts:
  - {name: lb1, address: 10.20.0.1, roles: [lb]}
YAML
for i in 1 2 3; do
  echo "  - {name: m$i, address: 10.20.0.$((1 + i)), roles: [etcd, control-plane]}"
done
for ((i = 1; i <= n - 4; i++)); do
  echo "  - {name: w$i, address: 10.20.$((1 + i / 250)).$((i % 250 + 1)), roles: [worker]}"
done
