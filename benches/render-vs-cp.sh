#!/usr/bin/env bash
# `render` of a generated 100-host inventory against `cp -r` of its own output, on one disk.
#
#   bash benches/render-vs-cp.sh [DIR] [RUNS]
#
# DIR: a directory on the disk to measure (default: the repository's target/); the work
# happens in a temporary directory inside it, removed at the end. RUNS: rounds (default 7).
# Each round times, in turn: `render` into the existing earlier output (the usual re-render:
# it replaces that output), `render` into a new directory, and `cp -r` of the output into a
# new directory. Nothing is deleted between the timed commands except what `render` itself
# replaces, and `sync` runs (untimed) before each, so every command starts from the same
# state. Prints each round, then the medians of wall, user and system time and the ratios
# render / cp (of the medians, and the median of the per-round ratios). Results:
# docs/PERFORMANCE.md. K8S_BOOT_BIN=PATH times that binary instead of building the release
# one (to compare two versions).
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:-$PWD/target}
runs=${2:-7}
mkdir -p "$base"
if [ -n "${K8S_BOOT_BIN:-}" ]; then
  bin=$(realpath "$K8S_BOOT_BIN")
else
  cargo build --release --quiet
  bin=$PWD/target/release/k8s-boot
fi
work=$(mktemp -d -p "$base" render-vs-cp.XXXXXX)
trap 'rm -rf "$work"' EXIT
inv=$work/hosts.yaml
bash benches/gen-inventory.sh 100 >"$inv"
"$bin" certs --inventory "$inv" --pki-dir "$work/pki" >/dev/null
"$bin" render --inventory "$inv" --pki-dir "$work/pki" --out "$work/out" >/dev/null
echo "disk: $(df -hT "$work" | awk 'NR==2 {print $1, $2, "mounted on", $7}')"
echo "files: $(find "$work/out" -type f | wc -l), directories: $(find "$work/out" -type d | wc -l)"

TIMEFORMAT='%3R %3U %3S'
# Runs "$@" once after a sync; prints "wall user sys" in seconds.
timed() {
  sync
  { time "$@" >/dev/null 2>&1; } 2>&1
}

: >"$work/existing" && : >"$work/new" && : >"$work/cp"
printf '%-5s %-26s %-26s %-26s\n' round "render, existing (w u s)" "render, new dir" "cp -r"
for ((i = 1; i <= runs; i++)); do
  a=$(timed "$bin" render --inventory "$inv" --pki-dir "$work/pki" --out "$work/out")
  b=$(timed "$bin" render --inventory "$inv" --pki-dir "$work/pki" --out "$work/new-$i")
  c=$(timed cp -r "$work/out" "$work/copy-$i")
  echo "$a" >>"$work/existing" && echo "$b" >>"$work/new" && echo "$c" >>"$work/cp"
  printf '%-5s %-26s %-26s %-26s\n' "$i" "$a" "$b" "$c"
done

# median FILE COLUMN
median() {
  cut -d' ' -f"$2" "$1" | sort -n | awk '{v[NR] = $1} END {
    print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}
# Median of the per-round ratios of wall times, FILE over cp.
paired() {
  paste -d' ' "$1" "$work/cp" | awk '{print $1 / $4}' >"$work/ratio"
  median "$work/ratio" 1
}

echo
printf '%-28s %8s %8s %8s\n' "median of $runs (seconds)" wall user sys
for what in existing new cp; do
  printf '%-28s %8s %8s %8s\n' "$what" "$(median "$work/$what" 1)" \
    "$(median "$work/$what" 2)" "$(median "$work/$what" 3)"
done
cp_wall=$(median "$work/cp" 1)
for what in existing new; do
  awk -v r="$(median "$work/$what" 1)" -v c="$cp_wall" -v p="$(paired "$work/$what")" \
    -v w="$what" 'BEGIN {printf "render (%s) / cp -r: %.2f (median of per-round ratios %.2f)\n",
      w, r / c, p}'
done
