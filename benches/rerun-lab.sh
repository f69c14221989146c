#!/usr/bin/env bash
# The no-change re-run of `install` on the installed 6-host lab, with the digests of
# binaries.dir kept from the run before (src/install/digests.rs) and without them (the cache
# file removed first, so every binary and image archive is hashed again): ROUNDS alternating
# pairs, the median of each, and the `binaries` phase's share (`install --output json`).
#
#   bash benches/rerun-lab.sh [ROUNDS]      # as root; lab binaries built (`k8s-boot lab build`)
#
# The debug build the tests use: sha2 is optimized in it (Cargo.toml). Results:
# docs/PERFORMANCE.md.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
cargo build --quiet
bin=$PWD/target/debug/k8s-boot
lab=$PWD/target/bench-rerun-lab
export K8S_BOOT_LAB_CACHE=${K8S_BOOT_LAB_CACHE:-$PWD/target/tmp/lab-cache}
trap '"$bin" lab down --dir "$lab" >/dev/null 2>&1 || true' EXIT
"$bin" lab down >/dev/null 2>&1 || true   # one lab per machine
"$bin" lab up --dir "$lab" --hosts 6 >/dev/null
"$bin" install -i "$lab/hosts.yaml" --accept-new-host-keys --quiet 2>/dev/null
cache=$lab/binaries/.cache/digests.json

rerun() { # -> "seconds binaries_ms"
  local t0 out
  t0=$(date +%s.%N)
  out=$("$bin" install -i "$lab/hosts.yaml" --output json 2>/dev/null)
  printf '%s %s\n' "$(echo "$(date +%s.%N) - $t0" | bc)" \
    "$(python3 -c 'import json,sys; print(json.load(sys.stdin)["phase_ms"]["binaries"])' <<<"$out")"
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2)}'; }

hashed=() kept=()
for _ in $(seq "$rounds"); do
  rm -f "$cache"
  hashed+=("$(rerun)")
  kept+=("$(rerun)")
done
report() { # label, then "seconds ms" pairs
  local label=$1; shift
  printf '%s: median %s s (binaries phase median %s ms); runs:' "$label" \
    "$(printf '%s\n' "$@" | cut -d' ' -f1 | median)" "$(printf '%s\n' "$@" | cut -d' ' -f2 | median)"
  printf ' %.2f' $(printf '%s\n' "$@" | cut -d' ' -f1); echo
}
report "no-change re-run, every digest computed" "${hashed[@]}"
report "no-change re-run, digests kept" "${kept[@]}"
