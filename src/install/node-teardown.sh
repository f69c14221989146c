# k8s-boot reset, on a node (a host that ran the kubelet or containerd): stops what runs in
# pods and removes what the node components made at run time — pods and their mounts, the
# pod network's interfaces and packet-filter rules, and the runtime's state — before the
# recorded services and files are removed. Every step tolerates a host that never got that
# far. The etcd data directory is not touched here (reset keeps it unless --purge-data).
BIN=/usr/local/bin
systemctl stop kubelet 2>/dev/null
# Pods first, while containerd still runs: crictl stops their containers and sandboxes and
# lets the CNI plugins release their addresses.
if systemctl is-active --quiet containerd && [ -x "$BIN/crictl" ]; then
  "$BIN/crictl" --timeout 30s rmp --all --force >/dev/null 2>&1
fi
# The pods' cgroups (systemd slices the kubelet created).
systemctl stop kubepods.slice 2>/dev/null
systemctl stop kube-proxy containerd 2>/dev/null
# Shims that outlived containerd, and what they ran.
pkill -KILL -f "$BIN/containerd-shim-runc-v2" 2>/dev/null
# kube-proxy removes its own iptables, ip6tables and nftables rules.
[ -x "$BIN/kube-proxy" ] && "$BIN/kube-proxy" --cleanup >/dev/null 2>&1
# Rules of flannel and of the CNI plugins (bridge masquerade, portmap).
for tool in iptables ip6tables; do
  command -v "$tool-save" >/dev/null || continue
  ours='(^:|^-[AI] | -j | --jump )(KUBE|FLANNEL|CNI)-'
  if "$tool-save" | grep -qE "$ours"; then
    "$tool-save" | grep -vE "$ours" | "$tool-restore"
  fi
done
if command -v nft >/dev/null; then
  for t in "ip kube-proxy" "ip6 kube-proxy" "inet flannel" "ip flannel" "ip6 flannel"; do
    nft delete table $t 2>/dev/null
  done
  # Tables the iptables tools created and that now hold nothing but empty chains with the
  # default policy (a table with any rule or another policy is left alone).
  nft list tables 2>/dev/null | while read -r _ family name; do
    if ! nft list table "$family" "$name" | sed "s/#.*//" | grep -vqE '^\s*(table .*\{|chain .*\{|type .* policy accept;|\}|)$'; then
      nft delete table "$family" "$name"
    fi
  done
fi
# Mounts of pods and containers, deepest first.
awk '{ print $2 }' /proc/self/mounts |
  grep -E '^/(var/lib/kubelet|run/containerd|run/netns|var/lib/containerd)/' |
  sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
# The pod network's interfaces (the veths went with the pods' network namespaces).
for link in cni0 flannel.1 flannel-v6.1; do
  ip link delete "$link" 2>/dev/null
done
# State the node components keep. /var/lib/containerd may be a mount point itself (it is in
# the lab): empty it rather than remove it.
rm -rf /var/lib/kubelet /var/lib/cni /run/flannel /run/containerd /var/log/pods \
  /var/log/containers /run/netns/cni-* 2>/dev/null
find /var/lib/containerd -mindepth 1 -delete 2>/dev/null
# containerd's "opt" plugin directory, when nothing was installed into it.
find /opt/containerd -depth -type d -empty -delete 2>/dev/null
mountpoint -q /var/lib/containerd || rmdir /var/lib/containerd 2>/dev/null
exit 0
