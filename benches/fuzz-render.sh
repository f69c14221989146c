#!/usr/bin/env bash
# Fuzzes the template rendering (fuzz/fuzz_targets/render.rs: an arbitrary override of one
# template, picked by the first byte, through Templates::load and render::plan of the
# example inventory with a real PKI) for SECONDS (default 60). Needs cargo-fuzz and a
# nightly toolchain. Exits non-zero when the fuzzer finds a crash (panic, stack overflow,
# out-of-memory above 1 GiB, an input slower than 10 s, or the encryption key in an error or
# in another file); the input is left in fuzz/artifacts/render/. New corpus entries go to
# fuzz/corpus/render (not committed); fuzz/seeds/render holds the committed seeds.
#
#   benches/fuzz-render.sh [SECONDS] [extra libFuzzer flags]
set -euo pipefail
secs=${1:-60}
shift || true
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/fuzz"
mkdir -p corpus/render
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo +nightly fuzz run --dev render corpus/render seeds/render -- \
  -max_total_time="$secs" -rss_limit_mb=1024 -timeout=10 -max_len=65536 \
  -print_final_stats=1 -dict=render.dict "$@" 2>&1 | tee "$log" || status=$?
runs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | tail -1 || true)
echo "fuzz-render: ${runs:-no summary}; corpus $(ls corpus/render | wc -l) entries; exit $status"
exit "$status"
