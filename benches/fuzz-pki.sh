#!/usr/bin/env bash
# Fuzzes the PKI loader (fuzz/fuzz_targets/pki.rs: pieces of the input in place of ca.crt,
# ca.key, admin.crt, admin.key, etcd/ca.crt, sa.key, sa.pub and encryption.key of a complete
# PKI, read by Pki::check and a dry-run Pki::ensure) for SECONDS (default 60). Needs
# cargo-fuzz and a nightly toolchain. Exits non-zero when the fuzzer finds a crash (panic,
# out-of-memory above 512 MiB, an input slower than 10 s, or key material in a message);
# the input is left in fuzz/artifacts/pki/. New corpus entries go to fuzz/corpus/pki (not
# committed); fuzz/seeds/pki holds the committed seeds (made by fuzz/seeds/make-pki-seeds.sh).
#
#   benches/fuzz-pki.sh [SECONDS] [extra libFuzzer flags]
set -euo pipefail
secs=${1:-60}
shift || true
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/fuzz"
mkdir -p corpus/pki
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo +nightly fuzz run --dev pki corpus/pki seeds/pki -- \
  -max_total_time="$secs" -rss_limit_mb=512 -timeout=10 -max_len=65536 \
  -print_final_stats=1 -dict=pki.dict "$@" 2>&1 | tee "$log" || status=$?
runs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | tail -1 || true)
echo "fuzz-pki: ${runs:-no summary}; corpus $(ls corpus/pki | wc -l) entries; exit $status"
exit "$status"
