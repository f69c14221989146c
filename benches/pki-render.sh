#!/usr/bin/env bash
# Benchmarks of the offline half: `certs` from empty and with nothing to do on the example
# inventory, and `render` of a generated 100-host inventory (time and peak memory).
# Needs hyperfine and GNU time (Debian packages hyperfine, time). Results: docs/PERFORMANCE.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=$PWD/target/release/k8s-boot
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp inventory/hosts.yaml "$work/hosts.yaml"

echo "== certs, example inventory, from an empty PKI directory"
hyperfine --warmup 2 --runs 20 --prepare "rm -rf $work/pki" \
  "$bin certs --inventory $work/hosts.yaml --pki-dir $work/pki"

echo "== certs, example inventory, nothing to change"
"$bin" certs --inventory "$work/hosts.yaml" --pki-dir "$work/pki" >/dev/null
hyperfine --warmup 3 --runs 50 -N \
  "$bin certs --inventory $work/hosts.yaml --pki-dir $work/pki"

echo "== render, generated 100-host inventory (PKI already issued)"
bash benches/gen-inventory.sh 100 >"$work/h100.yaml"
"$bin" certs --inventory "$work/h100.yaml" --pki-dir "$work/pki100" >/dev/null
hyperfine --warmup 2 --runs 20 \
  "$bin render --inventory $work/h100.yaml --pki-dir $work/pki100 --out $work/out100"

echo "== render, generated 100-host inventory, output on tmpfs (/dev/shm)"
shm=$(mktemp -d -p /dev/shm)
trap 'rm -rf "$work" "$shm"' EXIT
hyperfine --warmup 2 --runs 20 \
  "$bin render --inventory $work/h100.yaml --pki-dir $work/pki100 --out $shm/out100"

echo "== floor on this disk: cp -r of the same rendered tree"
hyperfine --runs 5 --prepare "rm -rf $work/copy" "cp -r $work/out100 $work/copy"

echo "== render, generated 100-host inventory, from an empty PKI directory"
hyperfine --warmup 1 --runs 10 --prepare "rm -rf $work/pki100b" \
  "$bin render --inventory $work/h100.yaml --pki-dir $work/pki100b --out $work/out100b"

echo "== peak memory (maximum resident set size) of render, 100 hosts"
/usr/bin/time -v "$bin" render --inventory "$work/h100.yaml" --pki-dir "$work/pki100" --out "$work/out100" 2>&1 \
  | grep -E "Maximum resident set size|Elapsed"
echo "files rendered: $(find "$work/out100" -type f | wc -l)"
