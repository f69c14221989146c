#!/bin/sh
# k8s-boot lab host: runs at boot (k8s-boot-lab-host.service), before containerd and the
# kubelet. Written into the lab rootfs by `k8s-boot lab up`; see docs/LAB.md.
set -eu

# 1. Writable cgroup v1 controllers. systemd-nspawn mounts them read-only; a fresh mount made
#    inside the guest's cgroup namespace shows only the guest's own subtree of the machine's
#    hierarchy, so containers' cgroups nest below the lab host's and nothing above it is
#    reachable. (A remount is often refused as busy; unmount and mount again works.)
mount -o remount,rw /sys/fs/cgroup
awk '$3 == "cgroup" { print $2, $4 }' /proc/self/mounts | while read -r dir opts; do
  case ",$opts," in *,name=*) continue ;; esac
  controllers=$(printf '%s\n' "$opts" | tr ',' '\n' |
    grep -vxE 'rw|ro|nosuid|nodev|noexec|relatime|noatime|nsdelegate' | paste -sd, -)
  umount "$dir"
  mount -t cgroup -o "rw,nosuid,nodev,noexec,$controllers" cgroup "$dir"
done

# 2. Kernel settings the kubelet writes when they differ from what it wants. They are
#    machine-wide, so the guest must not change them: show the kubelet the value it wants
#    (it then skips the write) through a read-only file bound over the /proc/sys entry.
mkdir -p /run/k8s-boot-lab/sysctl
for setting in vm/overcommit_memory=1 kernel/panic=10 kernel/panic_on_oops=1; do
  key=${setting%=*}
  want=${setting#*=}
  [ "$(cat "/proc/sys/$key")" = "$want" ] && continue
  shield=/run/k8s-boot-lab/sysctl/$(printf '%s' "$key" | tr / .)
  printf '%s\n' "$want" >"$shield"
  mount --bind "$shield" "/proc/sys/$key"
  mount -o remount,bind,ro "/proc/sys/$key"
done
