#!/usr/bin/env bash
# First install onto 4 fresh lab hosts and the no-change re-run (what this machine can run
# for real: PKI, binaries, 3-member etcd, nginx LB, verify). Needs root, debootstrap,
# systemd-container and hyperfine. Results: docs/PERFORMANCE.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=$PWD/target/release/k8s-boot
phases=preflight,prepare,pki,binaries,etcd,lb,verify
lab=$(mktemp -d -p "$PWD/target" bench-lab.XXXX)
trap '"$bin" lab down --dir "$lab" >/dev/null; rm -rf "$lab"' EXIT

"$bin" lab down >/dev/null 2>&1 || true   # one lab per machine
export K8S_BOOT_LAB_CACHE=${K8S_BOOT_LAB_CACHE:-$PWD/target/tmp/lab-cache}   # rootfs built once
echo "== lab up, 4 hosts"
/usr/bin/time -f "%e s" "$bin" lab up --dir "$lab" --hosts 4 | tail -1
echo "== first install onto fresh hosts"
/usr/bin/time -f "%e s wall" "$bin" install --inventory "$lab/hosts.yaml" --phases "$phases" --quiet
echo "== no-change re-run"
hyperfine --warmup 1 --runs 10 -N "$bin install --inventory $lab/hosts.yaml --phases $phases --quiet"
echo "== upload throughput, 100 MB to each host in parallel, against scp"
K8S_BOOT_BENCH_INVENTORY="$lab/hosts.yaml" cargo bench --quiet --bench upload 2>/dev/null | grep -E "round|mean"
