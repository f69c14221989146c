#!/usr/bin/env bash
# Cold and warm build of the lab's upstream binaries and images (`k8s-boot lab build`).
#
#   bash benches/lab-build.sh [WORK_DIR]
#
# Cold: empty Go module cache, Go build cache and k8s-boot build cache, all inside WORK_DIR
# (default: a new directory under /var/tmp), so nothing of the machine's caches is reused and
# every module is downloaded from the Go module proxy again. Warm: the same command once more
# with those caches. Prints the per-component lines `lab build` prints and the totals; the
# figures in docs/PERFORMANCE.md come from this script. Needs what `lab build` needs (Go 1.26+,
# gcc, pkg-config, libseccomp-dev, apt-get for the images' Debian packages, pip).
set -euo pipefail
cd "$(dirname "$0")/.."

work=${1:-$(mktemp -d /var/tmp/k8s-boot-lab-build.XXXXXX)}
mkdir -p "$work"
cargo build --release -q
bin=$PWD/target/release/k8s-boot

export GOMODCACHE=$work/gomodcache GOCACHE=$work/gocache K8S_BOOT_BUILD_CACHE=$work/build
echo "work directory: $work ($(nproc) cores, $(go version))"

for round in cold warm; do
  start=$(date +%s.%N)
  "$bin" lab build --dir "$work/lab" 2>&1 | tee "$work/$round.log" | grep -E 'done in|image .*: (built|cached)|ready in'
  end=$(date +%s.%N)
  printf '%s build: %.0f s\n' "$round" "$(echo "$end - $start" | bc)"
done
du -sh "$GOMODCACHE" "$GOCACHE" "$K8S_BOOT_BUILD_CACHE" "$work/lab/binaries" 2>/dev/null
# The module cache is read-only by design; make it removable.
echo "remove with: chmod -R u+w $work && rm -rf $work"
