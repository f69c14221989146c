#!/usr/bin/env bash
# Makes a Debian 12 machine ready for k8s-boot's lab and tests: the one list of the Debian
# packages they need, each with why. Installs only what is missing, says what and why before
# it does, and needs root only then. Go 1.26 or newer (for the lab's upstream builds) and
# Rust come from their own installers; they are checked, not installed.
#
#   bash setup.sh            what the README's first command needs: build k8s-boot, build the
#                            upstream programs from their Go modules, run lab hosts
#   bash setup.sh --tests    that, plus the real programs the tests run (tests/run-all.sh
#                            calls this itself)
set -euo pipefail

want_tests=0
case "${1:-}" in
"") ;;
--tests) want_tests=1 ;;
*)
    echo "usage: bash setup.sh [--tests]" >&2
    exit 2
    ;;
esac

# package | a program that already satisfies it ("-": only the package does) | group | why
PACKAGES='
gcc               | -                | lab   | k8s-boot links libssh2 (C); runc and flannel build with cgo; the pause image is C
pkg-config        | -                | lab   | finds OpenSSL for the libssh2 build, libseccomp for runc
libssl-dev        | -                | lab   | OpenSSL headers: k8s-boot speaks SSH through libssh2 on OpenSSL
zlib1g-dev        | -                | lab   | zlib for libssh2
ca-certificates   | -                | lab   | TLS to the Go module proxy, PyPI and the Debian mirror
libseccomp-dev    | -                | lab   | runc is built with seccomp support
debootstrap       | -                | lab   | the Debian root file system of the lab hosts
systemd-container | -                | lab   | systemd-nspawn runs each lab host with its own systemd
systemd           | -                | lab   | systemctl (the rootfs cache) and systemd-analyze (unit checks)
iproute2          | -                | lab   | the lab bridge and its veth links
openssh-client    | -                | lab   | ssh-keygen for the lab key and host keys, ssh to wait for hosts
util-linux        | -                | lab   | setsid for the host supervisors, unshare for tests
python3           | -                | lab   | fetches the Node.js wheel for the chat image (and reads OCI archives in tests)
python3-pip       | -                | lab   | pip download of that wheel from PyPI
netcat-openbsd    | -                | lab   | nc, to talk to the chat through the load balancer
etcd-server       | -                | tests | a real etcd cluster checks the rendered etcd flags and certificates
etcd-client       | -                | tests | etcdctl against that cluster
nginx             | -                | tests | the rendered load balancer configuration, run for real
libnginx-mod-stream | -              | tests | the stream module the L4 load balancer needs
openssh-server    | -                | tests | a real sshd behind every SSH path
openssl           | -                | tests | certificates and keys checked with openssl
nftables          | nft              | tests | the rendered node firewall is checked with nft
nodejs            | node             | tests | the chat server tests (node --test)
groff-base        | -                | tests | renders the generated man pages
man-db            | -                | tests | man reads them
bsdutils          | -                | tests | script gives the progress test a pseudo-terminal
zsh               | -                | tests | the zsh completion script is loaded in zsh
fish              | -                | tests | the fish completion script is loaded in fish
'

missing=()
reasons=()
while IFS='|' read -r package program group why; do
    package=$(echo "$package" | xargs)
    [[ -n $package ]] || continue
    program=$(echo "$program" | xargs)
    group=$(echo "$group" | xargs)
    [[ $group == lab || $want_tests == 1 ]] || continue
    if [[ $program != - ]] && command -v "$program" >/dev/null 2>&1; then
        continue
    fi
    if [[ $(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null) == installed ]]; then
        continue
    fi
    missing+=("$package")
    reasons+=("$(printf '  %-20s %s' "$package" "$(echo "$why" | xargs)")")
done <<<"$PACKAGES"

go_ok=0
if go_version=$(go env GOVERSION 2>/dev/null); then
    minor=${go_version#go1.}
    minor=${minor%%[.a-z]*}
    [[ $minor =~ ^[0-9]+$ ]] && ((minor >= 26)) && go_ok=1
fi
if ((go_ok == 0)); then
    echo "setup.sh: Go 1.26 or newer must be on PATH (found: ${go_version:-none}); the lab builds" >&2
    echo "the upstream programs from their Go modules. Debian 12's golang-go is too old: install" >&2
    echo "Go from its own release archive." >&2
    exit 1
fi

if ((${#missing[@]} == 0)); then
    echo "setup.sh: every package needed is installed"
    exit 0
fi
echo "setup.sh: installing ${#missing[@]} Debian package(s):"
printf '%s\n' "${reasons[@]}"
if [[ $(id -u) != 0 ]]; then
    echo "setup.sh: that needs root; run as root, or: sudo apt-get install ${missing[*]}" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null; then
    echo "setup.sh: no apt-get: this is not a Debian system; install the equivalents of: ${missing[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup.sh: installed ${missing[*]}"
