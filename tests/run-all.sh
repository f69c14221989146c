#!/usr/bin/env bash
# Every check of the project: formatting, lints, Rust tests (unit, golden, real etcd /
# nginx / sshd / openssl / kubectl / systemd-analyze, and lab hosts, which need root) and the
# chat server tests (node). First it installs the Debian packages they need (setup.sh, the
# one list of them; it installs nothing when all are there).
set -euo pipefail
cd "$(dirname "$0")/.."

bash setup.sh --tests
cargo fmt --check
cargo clippy --all-targets -- -D warnings
# The lab tests run the upstream programs built from their Go modules: build them (or take
# them from /var/cache/k8s-boot/build) up front, with progress, instead of inside a test.
# Tests that run an upstream program themselves (kubectl) take it from here.
cargo run -q -- lab build --dir target/lab-build --conformance
# The previous minor, which tests/lab_cluster.rs installs and then upgrades.
cargo run -q -- lab build --dir target/lab-build-previous --version v1.36.3
cargo test --all-targets
node --test tests/chat/
