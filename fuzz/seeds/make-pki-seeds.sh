#!/usr/bin/env bash
# Writes the seeds of the pki fuzz target into fuzz/seeds/pki/: the eight files of a fresh
# PKI (made by `k8s-boot certs` for a one-host inventory) as PEM (flags 0), the same with the
# certificates and keys as raw DER (flags 3), and a few malformed variants. The keys are made
# for the seeds and used for nothing else.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out="$root/fuzz/seeds/pki"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/hosts.yaml" <<'INV'
cluster: {name: fuzz, kubernetes_version: v1.36.0}
hosts:
  - {name: m1, address: 192.0.2.11, roles: [etcd, control-plane, worker]}
INV
(cd "$root" && cargo run -q -- certs -q -i "$work/hosts.yaml" >/dev/null)
files=(ca.crt ca.key admin.crt admin.key etcd/ca.crt sa.key sa.pub encryption.key)
der() { # PEM file -> DER bytes
  sed '/^-----/d' "$1" | base64 -d
}
seed() { # name flags producer
  local name=$1 flags=$2 producer=$3 first=1
  {
    printf "\\x$flags"
    for f in "${files[@]}"; do
      [ $first = 1 ] || printf '\n--8<--\n'
      first=0
      "$producer" "$work/pki/$f" "$f"
    done
  } > "$out/$name"
}
pem() { cat "$1"; }
raw() { case $2 in *.crt|ca.key|admin.key|sa.key) der "$1" ;; *) cat "$1" ;; esac; }
rm -f "$out"/*
seed pem 00 pem
seed der 03 raw
truncated() { head -c 100 "$1"; }
seed truncated 00 truncated
sec1() { case $2 in *.key) if [ "$2" != encryption.key ]; then openssl ec -in "$1" 2>/dev/null; else cat "$1"; fi ;; *) cat "$1" ;; esac; }
seed sec1 00 sec1
encrypted() { case $2 in ca.key|admin.key|sa.key) openssl pkcs8 -topk8 -in "$1" -passout pass:x 2>/dev/null ;; *) cat "$1" ;; esac; }
seed encrypted 00 encrypted
ls -l "$out"
