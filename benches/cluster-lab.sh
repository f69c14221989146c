#!/usr/bin/env bash
# The whole install on lab hosts with the lab binaries cached (run `k8s-boot lab build` once
# first): time to chat, the no-change re-run, and what each host adds.
#
#   bash benches/cluster-lab.sh [ROUNDS]        # as root; needs hyperfine and nc
#
# 1. Time to chat: from hosts up (`lab up` returned) to the chat answering through the LB
#    (a client on lb1:30000 sees another client's join notice): one plain `install` plus the
#    wait for the chat. 6 hosts, the seed's topology.
# 2. No-change re-run: `hyperfine` over `install` on the installed 6-host lab.
# 3. Cost per host: the first install onto 5, 6 and 7 hosts (1, 2 and 3 workers; the rest is
#    the same), ROUNDS times each (default 1); the slope is what one more worker adds.
# Results: docs/PERFORMANCE.md.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-1}
cargo build --release --quiet
bin=$PWD/target/release/k8s-boot
lab=$PWD/target/bench-cluster-lab
export K8S_BOOT_LAB_CACHE=${K8S_BOOT_LAB_CACHE:-$PWD/target/tmp/lab-cache}
trap '"$bin" lab down --dir "$lab" >/dev/null 2>&1 || true' EXIT
"$bin" lab down >/dev/null 2>&1 || true   # one lab per machine

now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc; }

# The chat answers through the LB when a second client's join reaches the first.
chat_answers() {
  local out
  # (The listener's stdin stays open: a half-closed connection is a client that left.)
  out=$( { sleep 1; printf 'ping\n'; sleep 1; } | timeout 5 nc -q 1 10.77.0.11 30000 >/dev/null 2>&1 &
         sleep 0.3; sleep 3 | timeout 3 nc 10.77.0.11 30000 2>/dev/null; wait) || true
  [[ $out == *"ping"* ]]
}

fresh_install() { # hosts -> seconds of install, and seconds until the chat answers
  local hosts=$1
  "$bin" lab down --dir "$lab" >/dev/null 2>&1 || true
  "$bin" lab up --dir "$lab" --hosts "$hosts" >/dev/null
  local t0 t1 t2
  t0=$(now)
  "$bin" install --inventory "$lab/hosts.yaml" --quiet >/dev/null
  t1=$(now)
  until chat_answers; do
    if (( $(echo "$(now) - $t1 > 120" | bc) )); then echo "chat never answered" >&2; exit 1; fi
    sleep 0.5
  done
  t2=$(now)
  echo "$(secs "$t0" "$t1") $(secs "$t0" "$t2")"
}

echo "== time to chat, 6 hosts (install; install + chat answering through the LB)"
read -r install chat < <(fresh_install 6)
printf 'install %.1f s, chat answering %.1f s after the hosts were up\n' "$install" "$chat"

echo "== no-change re-run, 6 hosts"
hyperfine --warmup 1 --runs 10 -N "$bin install --inventory $lab/hosts.yaml --quiet"

echo "== first install by host count (workers 1, 2, 3)"
for hosts in 5 6 7; do
  for ((r = 1; r <= rounds; r++)); do
    read -r install chat < <(fresh_install "$hosts")
    printf 'hosts %d round %d: install %.1f s, chat %.1f s\n' "$hosts" "$r" "$install" "$chat"
  done
done
