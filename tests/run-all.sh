#!/usr/bin/env bash
# Every check of the project: formatting, lints, Rust tests (unit, golden, real etcd /
# nginx / sshd / openssl / kubectl / systemd-analyze, and lab hosts, which need root) and the
# chat server tests (node).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for prog in etcd etcdctl nginx openssl systemd-analyze kubectl node sshd debootstrap systemd-nspawn curl go gcc pkg-config python3 unshare groff man script zsh fish; do
  command -v "$prog" >/dev/null 2>&1 || [ -x "/usr/sbin/$prog" ] || missing+=("$prog")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "missing programs: ${missing[*]}" >&2
  echo "install them with: apt-get install etcd-server etcd-client nginx libnginx-mod-stream openssh-server openssl systemd debootstrap systemd-container curl kubernetes-client nodejs gcc pkg-config libseccomp-dev python3-pip util-linux groff-base man-db bsdutils zsh fish (and Go 1.26 or newer on PATH)" >&2
  exit 1
fi

cargo fmt --check
cargo clippy --all-targets -- -D warnings
# The lab tests run the upstream programs built from their Go modules: build them (or take
# them from /var/cache/k8s-boot/build) up front, with progress, instead of inside a test.
cargo run -q -- lab build --dir target/lab-build
cargo test --all-targets
node --test tests/chat/
