#!/usr/bin/env bash
# Fuzzes the inventory loader (fuzz/fuzz_targets/inventory.rs: arbitrary bytes through
# Cluster::from_bytes, the path Cluster::load takes for a file) for SECONDS (default 60).
# Needs cargo-fuzz and a nightly toolchain. Exits non-zero when the fuzzer finds a crash
# (panic, out-of-memory above 512 MiB, or an input that takes more than 10 s); the input is
# left in fuzz/artifacts/inventory/. New corpus entries go to fuzz/corpus/inventory
# (not committed); fuzz/seeds/inventory holds the committed seeds.
#
#   benches/fuzz-inventory.sh [SECONDS] [extra libFuzzer flags, e.g. -jobs=2 -workers=2]
set -euo pipefail
secs=${1:-60}
shift || true
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/fuzz"
mkdir -p corpus/inventory
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# A dev build (the project avoids release builds on shared machines); fuzz/Cargo.toml
# raises its opt-level to 1.
status=0
cargo +nightly fuzz run --dev inventory corpus/inventory seeds/inventory -- \
  -max_total_time="$secs" -rss_limit_mb=512 -timeout=10 -max_len=65536 \
  -print_final_stats=1 -dict=inventory.dict "$@" 2>&1 | tee "$log" || status=$?
runs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | tail -1 || true)
echo "fuzz-inventory: ${runs:-no summary}; corpus $(ls corpus/inventory | wc -l) entries; exit $status"
exit "$status"
