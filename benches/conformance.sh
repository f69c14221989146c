#!/usr/bin/env bash
# The whole upstream conformance suite, run by `k8s-boot conformance`, on a fresh 6-host lab
# cluster (the seed's topology): every `[Conformance]` test, 3 at a time, the `[Serial]` and
# `[Disruptive]` ones too (ginkgo runs them alone at the end: the skip of `[Flaky]`, which no
# conformance test is, replaces the runner's default skip of `[Serial]` with more than one
# process). Results: docs/CONFORMANCE.md.
#
#   bash benches/conformance.sh [PARALLEL]      # as root; default 3
#
# Builds the lab's binaries and the conformance images first (`lab build --conformance`,
# cached), installs the cluster, runs the suite, and leaves e2e.log, the JUnit report and the
# JSON summary in target/bench-conformance/results/. The lab is taken down at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
parallel=${1:-3}
cargo build --release --quiet
bin=$PWD/target/release/k8s-boot
lab=$PWD/target/bench-conformance/lab
results=$PWD/target/bench-conformance/results
export K8S_BOOT_LAB_CACHE=${K8S_BOOT_LAB_CACHE:-$PWD/target/tmp/lab-cache}
trap '"$bin" lab down --dir "$lab" >/dev/null 2>&1 || true' EXIT
"$bin" lab down >/dev/null 2>&1 || true   # one lab per machine
"$bin" lab down --dir "$lab" >/dev/null 2>&1 || true

"$bin" lab up --dir "$lab" --hosts 6 --conformance
"$bin" install -i "$lab/hosts.yaml" --accept-new-host-keys -q
rm -rf "$results"
started=$(date +%s)
status=0
"$bin" conformance -i "$lab/hosts.yaml" --parallel "$parallel" --skip '\[Flaky\]' \
    --results "$results" --output json >"$results.json" || status=$?
mv "$results.json" "$results/summary.json"
echo "conformance: exit $status in $(( $(date +%s) - started )) s; summary: $results/summary.json"
grep -E '^(Ran|SUCCESS|FAIL)' "$results/e2e.log" || true
