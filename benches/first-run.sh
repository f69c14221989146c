#!/usr/bin/env bash
# Time to a first cluster as a new user gets it: the README's first command line, read from
# README.md and run as written in a fresh clone of this repository's HEAD, then a check that
# the cluster answers (nodes Ready, `kubectl top nodes`), then `lab down`.
#
#   bash benches/first-run.sh [--cold] [WORK_DIR]
#
# --cold: empty Go module cache, Go build cache, k8s-boot build cache, lab rootfs cache and
# Cargo registry (`GOMODCACHE`, `GOCACHE`, `K8S_BOOT_BUILD_CACHE`, `K8S_BOOT_LAB_CACHE`,
# `CARGO_HOME`, all new directories in WORK_DIR): every module and crate is downloaded and
# built again, as on a fresh machine. Without it the machine's caches are used (the Rust
# release build is always new: the clone has no target/). Debian packages are whatever
# setup.sh finds; on a machine that lacks them the command installs them inside the timed
# span. Needs root; one lab at a time runs on a machine. Figures: docs/PERFORMANCE.md.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)

cold=0
if [[ ${1:-} == --cold ]]; then
    cold=1
    shift
fi
work=${1:-$(mktemp -d /var/tmp/k8s-boot-first-run.XXXXXX)}
mkdir -p "$work"
git clone -q "$repo" "$work/checkout"
cd "$work/checkout"
# The command as README.md gives it: first line of the first sh block, without its comment.
command=$(awk '/^```sh$/{getline; print; exit}' README.md | sed 's/ # .*$//; s/[[:space:]]*$//')
if ((cold)); then
    export GOMODCACHE=$work/gomodcache GOCACHE=$work/gocache K8S_BOOT_BUILD_CACHE=$work/build
    export K8S_BOOT_LAB_CACHE=$work/lab-cache CARGO_HOME=$work/cargo-home
fi
echo "first run ($( ((cold)) && echo cold || echo warm)) in $work/checkout: $command"

start=$(date +%s.%N)
bash -c "$command" >"$work/first-run.log" 2>&1 || {
    tail -40 "$work/first-run.log"
    echo "the command failed; log: $work/first-run.log" >&2
    exit 1
}
end=$(date +%s.%N)
grep -E 'Finished .release|lab binaries and images ready|lab host\(s\) up in|^install|changed in' \
    "$work/first-run.log" || true
printf 'time to a first cluster: %.0f s\n' "$(echo "$end - $start" | bc)"

kubectl=(lab/binaries/kubectl --kubeconfig lab/pki/admin.kubeconfig)
"${kubectl[@]}" get nodes
"${kubectl[@]}" top nodes
target/release/k8s-boot lab down >/dev/null
# The module cache is read-only by design; make it removable.
echo "remove with: chmod -R u+w $work && rm -rf $work"
